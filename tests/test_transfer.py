"""Transfer: `init_from` (a run's weights, part by part) and LoRA adapters, through real Hydra runs.

One tiny parent run and one tiny LoRA run are trained per module and shared by the tests below.
"""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import pandas as pd
import pytest
import torch

from helpers.cli import assert_one_line_error, run_cli
from helpers.files import tree_digest
from helpers.runs import interrupted_after_step
from helpers.runs import train as run_training
from recfit.compare.cli import run as compare
from recfit.config import compose, validate
from recfit.errors import ConfigError, DataError

FAST = ["trainer.max_epochs=1", "trainer.enable_progress_bar=false", "trainer.limit_train_batches=4"]
DATA = [
    "dataset.reader.num_users=40",
    "dataset.reader.num_items=60",
    "dataset.reader.interactions_per_user=8",
]
# a rating two-tower with item IDs: every part (backbone, item tower, user tower, head) has weights
PARENT = ["backbone=tiny_bert", "model=two_tower", "task=rating", "loss=mse", "model.item_id_embedding=true"]
LORA = ["backbone.adapter=lora", "backbone.freeze=none", "backbone.lora.rank=4", "optimizer.backbone_lr=0.01"]


def train(output: Path, *overrides: str) -> dict:
    """`recfit train` in this process into `output`; returns the new run's metrics.json."""
    return run_training(output, *FAST, *overrides)


def built(*overrides: str):
    """The Lightning module a run with these overrides starts from (step 0), seeded as `train` seeds it."""
    import lightning.pytorch as pl

    from recfit.training.run import build

    cfg = compose([*FAST, *overrides])
    validate(cfg)
    pl.seed_everything(cfg.seed, workers=True, verbose=False)
    return build(cfg)


def checkpoint_weights(path: Path) -> dict[str, torch.Tensor]:
    state = torch.load(path, map_location="cpu", weights_only=True)["state_dict"]
    return {name.removeprefix("recommender."): tensor for name, tensor in state.items()}


@pytest.fixture(scope="module")
def parent(tmp_path_factory) -> Path:
    """A trained tiny run: the parent every init_from test starts from."""
    output = tmp_path_factory.mktemp("parent")
    return Path(train(output, *PARENT, *DATA)["run_dir"])


# ---- init_from --------------------------------------------------------------------------------------
@pytest.mark.slow
def test_matching_shapes_take_exactly_the_chosen_parts(parent):
    child = built(*PARENT, *DATA, f"init_from.path={parent}", "init_from.parts=[backbone,user_tower]")
    assert child.lineage["taken"] == ["backbone", "user_tower"]
    assert child.lineage["reinitialised"] == {} and child.lineage["parent_run"] == str(parent)
    saved = checkpoint_weights(parent / "checkpoints" / "best.ckpt")
    own = dict(child.module.recommender.named_parameters())
    for name, weight in own.items():
        if name.startswith(("backbone.", "user_embedding.", "user_bias.")):
            assert torch.equal(weight, saved[name]), name
    # the parts not asked for start fresh: trained parent weights are not what a new run starts with
    for name in ("projection.1.weight", "item_embedding.weight", "item_bias.weight", "global_bias"):
        assert not torch.equal(own[name], saved[name]), name


@pytest.mark.slow
def test_head_of_another_task_is_reinitialised(parent):
    child = built(*PARENT, *DATA, "task=ctr", "loss=bce", "task.metric=auc", f"init_from.path={parent}")
    assert child.lineage["taken"] == ["backbone", "item_tower", "user_tower"]
    assert "trained for task 'rating', this run is 'ctr'" in child.lineage["reinitialised"]["head"][0]


@pytest.mark.slow
def test_lora_child_takes_the_plain_parents_backbone_under_its_adapters(parent):
    child = built(*PARENT, *DATA, *LORA, f"init_from.path={parent}")
    assert "backbone" in child.lineage["taken"] and "backbone" not in child.lineage["reinitialised"]
    saved = checkpoint_weights(parent / "checkpoints" / "best.ckpt")
    backbone = child.module.recommender.backbone.model  # the peft wrapper
    query = backbone.base_model.model.encoder.layer[0].attention.self.query
    assert torch.equal(
        query.base_layer.weight, saved["backbone.model.encoder.layer.0.attention.self.query.weight"]
    )
    assert not query.lora_B["default"].weight.any()  # fresh adapters: the update starts at zero


@pytest.fixture(scope="module")
def child_of_another_catalogue(parent, tmp_path_factory) -> dict:
    """A full run from the parent on a bigger catalogue: the item-ID weights cannot carry over."""
    output = tmp_path_factory.mktemp("child")
    before = tree_digest(parent)
    record = train(output, *PARENT, *DATA, "dataset.reader.num_items=80", f"init_from.path={parent}")
    assert tree_digest(parent) == before  # the parent run is only read
    return record


@pytest.mark.slow
def test_mismatching_shapes_are_reinitialised_with_one_line_each(child_of_another_catalogue, parent):
    record = child_of_another_catalogue
    lineage = record["init_from"]
    assert lineage["parent_run"] == str(parent)
    assert lineage["checkpoint"] == str(parent / "checkpoints" / "best.ckpt")
    assert lineage["taken"] == ["backbone", "item_tower", "user_tower", "head"]  # projection still fits
    misfits = lineage["reinitialised"]["item_tower"]
    assert sorted(m.split()[0] for m in misfits) == ["item_bias.weight", "item_embedding.weight"]
    assert "item_embedding.weight (60, 64) in the parent, (80, 64) here" in misfits
    assert list(lineage["reinitialised"]) == ["item_tower"]
    run_dir = Path(record["run_dir"])
    assert json.loads((run_dir / "run_info.json").read_text())["init_from"] == lineage
    log_lines = [
        line for line in (run_dir / "train.log").read_text().splitlines() if "re-initialised" in line
    ]
    assert len(log_lines) == 1 and "item_tower" in log_lines[0], log_lines


@pytest.mark.slow
def test_compare_shows_the_parent(child_of_another_catalogue, parent, capsys):
    child = Path(child_of_another_catalogue["run_dir"])
    assert compare([str(parent), str(child), "--format", "csv"]) == 0
    table = pd.read_csv(io.StringIO(capsys.readouterr().out), keep_default_na=False)
    shown = dict(zip(table["path"].map(lambda path: Path(path).name), table["init_from.path"], strict=True))
    assert shown == {parent.name: "null", child.name: str(parent)}


@pytest.mark.slow
def test_bad_init_from_gives_one_line_and_leaves_the_parent_alone(parent, tmp_path, capsys):
    before = tree_digest(parent)
    tiny = ["backbone=tiny_bert", *FAST, f"paths.output_dir={tmp_path}"]
    missing = run_cli(capsys, "train", *tiny, f"init_from.path={tmp_path / 'nowhere'}")
    assert_one_line_error(missing, "init_from.path does not exist")
    unknown = run_cli(capsys, "train", *tiny, f"init_from.path={parent}", "init_from.parts=[backbone,heed]")
    assert_one_line_error(unknown, "init_from.parts[1]: Invalid value 'heed', expected one of [backbone")
    broken = tmp_path / "broken.ckpt"
    broken.write_bytes((parent / "checkpoints" / "best.ckpt").read_bytes()[:1000])
    truncated = run_cli(capsys, "train", *tiny, f"init_from.path={broken}")
    assert_one_line_error(truncated, f"init_from: cannot load checkpoint {broken}")
    assert tree_digest(parent) == before
    assert not list(tmp_path.glob("runs/*/*/checkpoints/*.ckpt"))


def test_folder_without_checkpoint_is_refused_before_loading(tmp_path):
    with pytest.raises(ConfigError, match="holds no checkpoints/best.ckpt"):
        validate(compose(["backbone=tiny_bert", f"init_from.path={tmp_path}"]))


def test_every_parameter_of_every_model_belongs_to_a_part():
    from recfit.models.backbone import load_backbone
    from recfit.models.cross_encoder import CrossEncoder
    from recfit.models.linear import FeatureLinear
    from recfit.models.mf import MatrixFactorization
    from recfit.models.parts import part_of
    from recfit.models.two_tower import TwoTower

    backbone_cfg = compose(["backbone=tiny_bert"]).backbone
    models = [
        TwoTower(load_backbone(backbone_cfg), 5, 7, item_id_embedding=True, biases=True),
        CrossEncoder(load_backbone(backbone_cfg)),
        MatrixFactorization(5, 7, biases=True),
        FeatureLinear(5, 7),
    ]
    for model in models:
        orphans = [name for name, _ in model.named_parameters() if part_of(name) is None]
        assert not orphans, (type(model).__name__, orphans)


# ---- LoRA -------------------------------------------------------------------------------------------
def lora_weights(hidden: int, rank: int, layers: int, shapes: list[tuple[int, int]]) -> int:
    """A's (rank x in) plus B's (out x rank) over every adapted (in, out) module of every layer."""
    return layers * sum(rank * fan_in + fan_out * rank for fan_in, fan_out in shapes)


@pytest.mark.parametrize(
    ("backbone", "expected"),
    [
        ("tiny_bert", lora_weights(32, 4, 2, [(32, 32), (32, 32)])),  # query, value
        ("tiny_gpt2", lora_weights(32, 4, 2, [(32, 96)])),  # c_attn: q, k, v in one
    ],
)
def test_lora_adapts_the_default_modules_of_each_architecture(backbone, expected):
    from recfit.models.backbone import load_backbone

    model = load_backbone(compose([f"backbone={backbone}", *LORA]).backbone).model
    assert model.get_nb_trainable_parameters()[0] == expected
    trainable = [name for name, p in model.named_parameters() if p.requires_grad]
    assert trainable and all(".lora_A." in name or ".lora_B." in name for name in trainable)


def test_lora_with_freeze_n_leaves_the_first_n_layers_without_adapters():
    from recfit.models.backbone import load_backbone

    model = load_backbone(compose(["backbone=tiny_bert", *LORA, "backbone.freeze=1"]).backbone).model
    adapted = {
        name.split(".layer.")[1].split(".")[0] for name, _ in model.named_parameters() if ".lora_" in name
    }
    assert adapted == {"1"}
    assert model.get_nb_trainable_parameters()[0] == lora_weights(32, 4, 1, [(32, 32), (32, 32)])
    with pytest.raises(ConfigError, match="backbone.freeze=2 leaves none of the 2 layers"):
        load_backbone(compose(["backbone=tiny_bert", *LORA, "backbone.freeze=2"]).backbone)


def test_lora_with_gradient_checkpointing_still_trains_the_adapters():
    from recfit.models.backbone import load_backbone

    torch.manual_seed(0)
    backbone = load_backbone(
        compose(["backbone=tiny_bert", *LORA, "backbone.gradient_checkpointing=true"]).backbone
    )
    backbone.train()
    inputs = {
        "input_ids": torch.randint(0, 1000, (3, 8)),
        "attention_mask": torch.ones(3, 8, dtype=torch.long),
    }
    backbone(inputs).pow(2).sum().backward()
    adapters = [p for name, p in backbone.named_parameters() if ".lora_A." in name]
    assert adapters and all(p.grad is not None for p in adapters)
    assert all(p.grad is None for name, p in backbone.named_parameters() if ".lora_" not in name)


@pytest.fixture(scope="module")
def lora_run(tmp_path_factory) -> dict:
    output = tmp_path_factory.mktemp("lora")
    return train(output, *PARENT, *DATA, *LORA)


@pytest.mark.slow
def test_lora_trains_only_the_adapters(lora_run):
    fresh = built(*PARENT, *DATA, *LORA).module
    peft_model = fresh.recommender.backbone.model
    adapters, _ = peft_model.get_nb_trainable_parameters()
    assert adapters == lora_weights(32, 4, 2, [(32, 32), (32, 32)])
    outside = sum(
        p.numel() for n, p in fresh.recommender.named_parameters() if p.requires_grad and "backbone." not in n
    )
    assert lora_run["parameters"]["trainable"] == adapters + outside
    assert lora_run["parameters"]["total"] == sum(p.numel() for p in fresh.parameters())
    trained = checkpoint_weights(Path(lora_run["best_checkpoint"]))
    changed = []
    for name, weight in fresh.recommender.state_dict().items():
        if name.startswith("backbone.") and not torch.equal(weight, trained[name]):
            changed.append(name)
    assert changed and all(".lora_" in name for name in changed), changed  # base weights never move
    assert any(".lora_B." in name for name in changed)  # B starts at zero: the update became non-zero


@pytest.mark.slow
def test_lora_checkpoint_reloads(lora_run):
    assert lora_run["metrics"]["test/rmse"] is not None  # best.ckpt reloaded by Lightning for the test
    fresh = built(*PARENT, *DATA, *LORA).module
    state = torch.load(lora_run["best_checkpoint"], map_location="cpu", weights_only=True)["state_dict"]
    fresh.load_state_dict(state, strict=True)


# Ctrl-C after step 2 (as tests/test_resume.py raises it) in this process, then a resume from last.ckpt
@pytest.mark.slow
def test_lora_run_stopped_and_resumed_ends_like_the_run_left_alone(lora_run, tmp_path, monkeypatch, capsys):
    run_dir = interrupted_after_step(2, train, tmp_path, monkeypatch, *PARENT, *DATA, *LORA)
    assert json.loads((run_dir / "metrics.json").read_text())["status"] == "interrupted"
    result = run_cli(capsys, "train", f"ckpt_path={run_dir / 'checkpoints' / 'last.ckpt'}")
    assert result.returncode == 0, result.stderr[-2000:]
    resumed = json.loads((run_dir / "metrics.json").read_text())
    assert resumed["status"] == "completed", resumed["error"]
    assert resumed["metrics"] == lora_run["metrics"]
    assert resumed["parameters"] == lora_run["parameters"]
    alone = checkpoint_weights(Path(lora_run["best_checkpoint"]))
    again = checkpoint_weights(run_dir / "checkpoints" / "best.ckpt")
    assert alone.keys() == again.keys() and all(torch.equal(alone[k], again[k]) for k in alone)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["backbone.freeze=all"], "backbone.adapter=lora with backbone.freeze=all would train no adapter"),
        (["backbone.lora.rank=0"], "backbone.lora needs rank >= 1"),
        (["backbone.lora.dropout=1.0"], "dropout in [0, 1)"),
        (["backbone=none", "model=mf"], "backbone.adapter=lora needs a backbone"),
        (["backbone=tiny_resnet"], "backbone.lora.target_modules must name the layers"),
    ],
)
def test_bad_lora_configs_are_refused(overrides, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        validate(compose(["backbone=tiny_bert", "backbone.adapter=lora", *overrides]))


def test_lora_on_modules_that_do_not_exist_is_one_line():
    from recfit.models.backbone import load_backbone

    cfg = compose(["backbone=tiny_bert", *LORA, "backbone.lora.target_modules=[nope]"])
    with pytest.raises(ConfigError, match="backbone.adapter=lora on BertModel"):
        load_backbone(cfg.backbone)


def test_truncated_parent_checkpoint_is_a_data_error(tmp_path):
    from recfit.training.init_from import take_parent_weights

    broken = tmp_path / "broken.ckpt"
    broken.write_bytes(b"not a checkpoint")
    cfg = compose([f"init_from.path={broken}"]).init_from
    with pytest.raises(DataError, match="init_from: cannot load checkpoint"):
        take_parent_weights(cfg, torch.nn.Linear(2, 2), "ranking")
