"""The task registry (recfit.tasks): one object per task, declared model abilities, and runs that give
exactly the metrics they gave before the registry existed."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd
import pytest
import yaml

from helpers.files import REPO, write_reviews_csv
from helpers.imports import modules_loaded_by
from helpers.runs import ONE_EPOCH, SMALL_DATA, train
from recfit.config import compose, conf_dir, validate
from recfit.config.schema import ModelName
from recfit.errors import ConfigError
from recfit.models.declarations import MODELS
from recfit.tasks.names import TaskName
from recfit.tasks.registry import known_metrics, make_task, task_class, task_names, unregister

FAST = [*ONE_EPOCH, "trainer.limit_train_batches=4", "seed=0"]
SMALL = SMALL_DATA
MORE_ROWS = "dataset.reader.interactions_per_user=20"  # several test rows per user: GAUC is defined
MF = ["backbone=none", "model=mf", *SMALL]
TEXT_CSV = ["experiment=text_csv_bert", "backbone=tiny_bert", "dataset.reader.text_column=review"]

# One run per task, loss and path through the code (class weights, BPR, a backbone, multi-task).
SAME_AS_BEFORE_RUNS = {
    "rating": [*MF, "task=rating", "loss=mse"],
    "ctr": [*MF, MORE_ROWS, "task=ctr", "loss=bce"],
    "ctr_lr_weighted": [
        "backbone=none",
        "model=lr",
        *SMALL,
        "task=ctr",
        "loss=bce",
        "dataset.class_weights=[1,3]",
    ],
    "ranking": [*MF, "task=ranking", "loss=cross_entropy"],
    "ranking_bpr": [*MF, "task=ranking", "loss=bpr"],
    "ranking_two_tower": [
        "backbone=tiny_bert",
        "model=two_tower",
        *SMALL,
        "task=ranking",
        "loss=cross_entropy",
    ],
    "text_classification": [*TEXT_CSV, "dataset.reader.label_column=sentiment", "loss=cross_entropy"],
    "text_regression": [
        *TEXT_CSV,
        "dataset.reader.label_column=stars",
        "loss=mse",
        "task.metric=rmse",
        "task.mode=min",
    ],
    "multitask": [*MF, MORE_ROWS, "task=ctr", "loss=bce", "tasks=[rating,ctr]"],
}
# Recorded by running golden_run on each case, on CPU, with the code before the registry, where task
# knowledge was spread over config/validate.py, training/run.py, module.py, multitask.py and losses.py:
# first at commit f510c12, then again at main 447dc69 (still before the registry), after the
# evaluation work changed GAUC's weighting, summed log loss in float64 and added gauc_rows; the two
# recordings agree on every other value. Every metric of metrics.json, and per_user.parquet's columns.
BEFORE = json.loads((Path(__file__).parent / "data" / "task_runs_before_registry.json").read_text())


def golden_run(folder: Path, name: str) -> tuple[dict, list[str]]:
    """Train case `name` in this process; its metrics.json and its per_user.parquet columns."""
    overrides = list(SAME_AS_BEFORE_RUNS[name])
    if "experiment=text_csv_bert" in overrides:
        overrides.append(f"dataset.reader.path={write_reviews_csv(folder / 'reviews.csv', rows=80)}")
    record = train(folder, *FAST, *overrides)
    columns = list(pd.read_parquet(Path(record["run_dir"]) / "per_user.parquet").columns)
    return record, columns


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(SAME_AS_BEFORE_RUNS))
def test_same_seed_gives_the_metrics_of_before_the_registry(tmp_path, name):
    record, columns = golden_run(tmp_path, name)
    before = BEFORE[name]
    assert columns == before["columns"]
    assert sorted(record["metrics"]) == sorted(before["metrics"])
    for metric, value in before["metrics"].items():
        if value is None:  # GAUC with no user holding both classes
            assert record["metrics"][metric] is None, metric
        else:
            assert record["metrics"][metric] == pytest.approx(value, rel=0, abs=1e-6), metric


# ---- the registry ---------------------------------------------------------------------------------
def test_every_task_is_registered_and_its_yaml_picks_a_metric_it_reports_in_the_right_direction():
    assert task_names()[: len(TaskName)] == [name.value for name in TaskName]
    for path in sorted((conf_dir() / "task").glob("*.yaml")):
        if path.stem.endswith("_schema"):
            continue
        cfg = compose([f"task={path.stem}"])
        task = make_task(cfg.task.name, cfg.task)  # with its default loss
        assert cfg.task.metric in task.metric_names(), path.name
        smaller = known_metrics()[cfg.task.metric.split("@")[0]].smaller
        assert cfg.task.mode.value == ("min" if smaller else "max"), path.name


def test_every_metric_states_its_direction_and_pairing_once():
    metrics = known_metrics()
    assert {name for name, metric in metrics.items() if metric.smaller} == {"rmse", "mae", "logloss"}
    assert metrics["rmse"].per_row == "squared_error" and metrics["auc"].per_row is None
    assert metrics["ndcg"].column("ndcg@10") == "ndcg@10"


def test_each_model_declares_its_inputs_and_the_tasks_it_can_do():
    from recfit.data.datamodule import BatchInputs

    assert set(MODELS) == {name.value for name in ModelName}
    does = {
        model: [name for name in task_names() if task_class(name).shape in MODELS[model].shapes]
        for model in MODELS
    }
    assert does == {
        "two_tower": ["rating", "ctr", "ranking", "next_item"],
        "mf": ["rating", "ctr", "ranking", "next_item"],
        "cross_encoder": ["rating", "ctr", "text_classification"],
        "popularity": ["ranking", "next_item"],
        "lr": ["rating", "ctr"],
    }
    for declared in MODELS.values():
        BatchInputs(declared.inputs)


def test_no_code_outside_the_registry_compares_against_a_task():
    member = re.compile(r"TaskName\.(rating|ctr|ranking|text_classification)\b|task\.name\.value ==")
    found = [
        f"{path.relative_to(REPO)}:{number}"
        for path in sorted((REPO / "src" / "recfit").rglob("*.py"))
        if "tasks" not in path.relative_to(REPO / "src" / "recfit").parts
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if member.search(line)
    ]
    assert found == []


def test_the_registry_loads_no_torch_hydra_or_omegaconf():
    code = "from recfit.tasks.registry import task_names, known_metrics; task_names(); known_metrics()"
    assert modules_loaded_by(code, ("torch", "lightning", "hydra", "omegaconf")) == []


def test_conf_task_files_name_registered_tasks():
    for path in sorted((conf_dir() / "task").glob("*.yaml")):
        name = yaml.safe_load(path.read_text())["name"]
        assert task_class(name).name == name


# ---- adding a task: the worked example of docs/extending.md, as written there -------------------------
def docs_block(language: str, after: str) -> str:
    """The first ```language code block after the text `after` in docs/extending.md."""
    text = (REPO / "docs" / "extending.md").read_text()
    start = text.index(f"```{language}\n", text.index(after)) + len(f"```{language}\n")
    return text[start : text.index("```", start)]


def golden_run_with(folder: Path, *overrides: str) -> tuple[dict, list[str]]:
    """Train with `overrides` in this process; its metrics.json and its per_user.parquet columns."""
    record = train(folder, *FAST, *overrides)
    return record, list(pd.read_parquet(Path(record["run_dir"]) / "per_user.parquet").columns)


@pytest.fixture
def dislike(tmp_path: Path):
    """The docs' `dislike` task registered from its code block, and a config folder holding its YAML."""
    exec(compile(docs_block("python", "`src/recfit/tasks/dislike.py`"), "extending.md", "exec"), {})
    folder = tmp_path / "conf"
    (folder / "task").mkdir(parents=True)
    (folder / "task" / "dislike.yaml").write_text(docs_block("yaml", "`conf/task/dislike.yaml`"))
    yield f"hydra.searchpath=[file://{folder}]"
    unregister("dislike")


def test_the_worked_example_task_is_one_class_and_one_yaml_that_train(dislike, tmp_path):
    assert "dislike" in task_names() and task_class("dislike").multitask is False
    record, columns = golden_run_with(tmp_path, dislike, "task=dislike", "loss=bce", *MF, MORE_ROWS)
    assert set(record["metrics"]) == {f"{stage}/{m}" for stage in ("val", "test") for m in ("auc", "logloss")}
    assert 0 <= record["metrics"]["test/auc"] <= 1 and record["monitor"] == "val/auc"
    per_row = pd.read_parquet(Path(record["run_dir"]) / "per_user.parquet")
    assert columns == ["user", "item", "target", "prediction", "logloss", "correct"]
    assert per_row["logloss"].mean() == pytest.approx(record["metrics"]["test/logloss"], abs=1e-6)
    assert 0 < per_row["target"].mean() < 1  # rated 2 or lower: some rows, not all
    refused = {
        "model=popularity": "model 'popularity' cannot do task 'dislike' (it does: ranking, next_item)",
        "loss=mse": "loss 'mse' does not fit task 'dislike' (use loss=bce)",
        "task.metric=rmse": "task.metric 'rmse' is not reported for task 'dislike' with loss 'bce'",
    }
    for override, message in refused.items():
        cfg = compose([dislike, "task=dislike", "loss=bce", *MF, override])
        with pytest.raises(ConfigError, match=re.escape(message)):
            validate(cfg)


def test_an_unknown_task_name_is_refused_like_a_wrong_enum_value():
    expected = "expected one of [rating, ctr, ranking, text_classification, next_item]"
    with pytest.raises(ConfigError, match=re.escape(f"task.name: Invalid value 'clicks', {expected}")):
        validate(compose(["task.name=clicks"]))
    with pytest.raises(ConfigError, match=re.escape(f"tasks[1]: Invalid value 'clicks', {expected}")):
        validate(compose(["tasks=[rating,clicks]", "task=ctr", "loss=bce", "backbone=none", "model=mf"]))
