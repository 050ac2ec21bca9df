"""Composition, schemas and cross-field validation: no torch needed, answers in milliseconds."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from helpers.imports import modules_loaded_by
from recfit.config import compose, conf_dir, validate
from recfit.errors import ConfigError
from recfit.tasks.registry import make_task

CSV_OVERRIDES = ["experiment=text_csv_bert", f"dataset.reader.path={__file__}"]


def check(overrides: list[str]):
    cfg = compose(overrides)
    validate(cfg)
    return cfg


def test_default_is_the_quickstart():
    cfg = check([])
    assert cfg.experiment_name == "quickstart"
    assert cfg.backbone.name_or_path == "sentence-transformers/all-MiniLM-L6-v2"
    assert cfg.task.name == "ranking" and cfg.loss.name.value == "cross_entropy"
    assert cfg.model.name.value == "two_tower"


@pytest.mark.parametrize("experiment", sorted(p.stem for p in (conf_dir() / "experiment").glob("*.yaml")))
def test_every_experiment_composes(experiment, tmp_path):
    overrides = [f"experiment={experiment}"]
    if experiment == "text_csv_bert":
        overrides.append(f"dataset.reader.path={__file__}")
    if experiment.endswith("_multidomain"):  # one data path per domain
        overrides += [
            f"dataset.domains.{d}.path={Path(__file__).parent}" for d in ("amazon_games", "movielens_100k")
        ]
    elif experiment.startswith("games_"):
        overrides.append(f"dataset.reader.path={Path(__file__).parent}")
    cfg = check(overrides)
    assert cfg.experiment_name == experiment


@pytest.mark.parametrize("backbone", ["bert", "gpt2", "minilm", "tiny_bert", "tiny_gpt2"])
def test_text_backbones_compose(backbone):
    assert check([f"backbone={backbone}"]).backbone.modality.value == "text"


@pytest.mark.parametrize("backbone", ["resnet", "tiny_resnet"])
def test_image_backbones_compose(backbone):
    assert check([f"backbone={backbone}"]).backbone.modality.value == "image"


@pytest.mark.parametrize(
    "group",
    [
        "optimizer=adam",
        "optimizer=sgd",
        "scheduler=cosine",
        "scheduler=constant",
        "trainer=cpu",
        "trainer=gpu",
        "logger=csv",
    ],
)
def test_other_options_compose(group):
    check([group])


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["backbone=bertt"], "unknown option 'bertt' for 'backbone' (did you mean 'bert'?)"),
        (
            ["trainer.max_epoch=3"],
            "unknown config key 'trainer.max_epoch' (did you mean 'trainer.max_epochs'?)",
        ),
        (["trainer.max_epochs=abc"], "trainer.max_epochs: Value 'abc' of type 'str' could not be converted"),
        (
            ["backbone.pooling=max"],
            "backbone.pooling: Invalid value 'max', expected one of [cls, mean, last]",
        ),
        (["loss=mse"], "loss 'mse' does not fit task 'ranking' (use loss=cross_entropy or bpr)"),
        (["task=rating"], "loss 'cross_entropy' does not fit task 'rating' (use loss=mse)"),
        (["task=ctr", "loss=mse"], "loss 'mse' does not fit task 'ctr' (use loss=bce)"),
        (["model=mf"], "model 'mf' needs backbone=none, but backbone modality is 'text'"),
        (["model=two_tower", "backbone=none"], "model 'two_tower' needs a text or image backbone"),
        (["model=cross_encoder"], "model 'cross_encoder' cannot do task 'ranking'"),
        (["model=cross_encoder", "backbone=tiny_resnet", "task=ctr", "loss=bce"], "needs a text backbone"),
        (["task.metric=ndcg@5"], "task.metric 'ndcg@5' is not reported for task 'ranking'"),
        (["task=rating", "loss=mse", "task.metric=auc"], "task.metric 'auc' is not reported"),
        (["backbone.freeze=some"], "backbone.freeze 'some' must be one of none, all, embeddings"),
        (
            ["split.test=0.6", "split.val=0.5"],
            "must be in [0, 1) and leave some training data",
        ),
        (["dataset.batch_size=0"], "dataset.batch_size must be at least 1"),
        (
            ["experiment=ml100k_rating", "dataset.reader.path=/no/such/folder"],
            "dataset.reader.path does not exist: /no/such/folder",
        ),
        (["experiment=text_csv_bert"], "required config value missing: dataset.reader.path"),
        (
            ["backbone.name_or_path=./no/such/model"],
            "backbone.name_or_path is a local path that does not exist",
        ),
        (
            ["task=text_classification", "model=cross_encoder"],
            "task 'text_classification' needs a labelled text data set",
        ),
        ([*CSV_OVERRIDES, "task=rating", "loss=mse", "task.metric=rmse"], "dataset=text_csv only supports"),
        (["trainer=tpu_pod"], "unknown option 'tpu_pod' for 'trainer'"),
        (["task.candidates=all"], "task.candidates 'all' must be full, uniN or popN"),
        (["split.method=random"], "split.method: Invalid value 'random'"),
        (["dataset.filter.k_core_users=-1"], "dataset.filter.k_core_users must be 0 or more"),
        (
            ["model=popularity", "backbone=none", "task=rating", "loss=mse", "task.metric=rmse"],
            "cannot do task",
        ),
        (["model=lr", "backbone=none"], "model 'lr' cannot do task 'ranking'"),
        (["loss=bpr", "task=rating"], "loss 'bpr' does not fit task 'rating'"),
        (["foo"], "cannot parse override"),
    ],
)
def test_bad_configs_give_one_line(overrides, message):
    with pytest.raises(ConfigError) as raised:
        check(overrides)
    text = str(raised.value)
    assert message in text
    assert "\n" not in text


def test_unknown_option_lists_only_real_options():
    with pytest.raises(ConfigError) as raised:
        compose(["dataset=nope"])
    assert (
        "available: amazon_games, image_folder, movielens_100k, movielens_1m, multi_domain, recbole, "
        "synthetic, text_csv" in str(raised.value)
    )


def test_every_task_has_its_default_metric_and_loss():
    for task in ("rating", "ctr", "ranking", "text_classification"):
        cfg = compose([f"task={task}"])
        assert cfg.task.metric in make_task(cfg.task.name, cfg.task).metric_names()  # its default loss


def test_config_is_light():
    """Composing and validating must not import torch, transformers or Lightning."""
    assert modules_loaded_by("from recfit.config import compose, validate; validate(compose([]))") == []


KEY_LINE = re.compile(r"^\s*[A-Za-z_][\w.@-]*:\s*(?!$)")


def test_every_yaml_option_has_a_comment():
    """Configs are the API: each key with a value carries a one-line comment (hydra: settings aside)."""
    missing = []
    for file in sorted(Path(conf_dir()).rglob("*.yaml")):
        in_hydra = False
        for number, line in enumerate(file.read_text().splitlines(), 1):
            if line.startswith("hydra:"):
                in_hydra = True
            elif line and not line.startswith((" ", "#")):
                in_hydra = False
            if in_hydra or line.lstrip().startswith(("defaults:", "#", "- ")):
                continue
            if KEY_LINE.match(line) and "#" not in line:
                missing.append(f"{file.relative_to(conf_dir())}:{number}: {line.strip()}")
    assert not missing, "\n".join(missing)


def test_schemas_are_stored_once_and_again_when_missing():
    from hydra.core.config_store import ConfigStore

    from recfit.config.schema import register_schemas

    store = ConfigStore.instance()
    register_schemas()
    stored = store.repo["trainer"]["trainer_schema.yaml"]
    register_schemas()  # every composition calls it: nothing stored again
    assert store.repo["trainer"]["trainer_schema.yaml"] is stored
    del store.repo["trainer"]["trainer_schema.yaml"]
    register_schemas()
    assert store.repo["trainer"]["trainer_schema.yaml"] is not stored
    assert compose(["trainer=cpu", "trainer.max_epochs=2"]).trainer.max_epochs == 2
