"""Multi-task runs (`tasks=[rating,ctr]`): real Hydra compositions, real Lightning training on synthetic
data; per-task metrics, the monitor, loss weighting (fixed and learned), reproducibility, bad inputs."""

from __future__ import annotations

import json
import math
from pathlib import Path

import lightning.pytorch as pl
import numpy as np
import pandas as pd
import pytest
import torch

from helpers.cli import assert_one_line_error, run_cli
from helpers.compare import compare, compare_json
from helpers.files import tree_digest
from helpers.runs import interrupted_after_step
from helpers.runs import train as run_training
from recfit.config import compose
from recfit.training.checkpoint_state import load_state_dict
from recfit.training.run import build

SMALL = [
    "dataset.reader.num_users=40",
    "dataset.reader.num_items=60",
    "dataset.reader.interactions_per_user=10",
]
FAST = ["trainer.max_epochs=1", "trainer.enable_progress_bar=false", "trainer.log_every_n_steps=1"]
MF_MULTI = ["backbone=none", "model=mf", "task=ctr", "loss=bce", "tasks=[rating,ctr]", *SMALL]
REGRESSION = {"rmse", "mae"}
BINARY = {"auc", "gauc", "logloss", "accuracy", "f1"}
RATING_HEAD, CTR_HEAD = 0, 1  # columns of the tasks in [B, T] outputs and per-task parameters
# mf's per-task parameters (models/dot_product.py) and how to take one task's share of each
RATING_AND_CTR_HEADS = {
    "recommender.task_heads": lambda weight, task: weight[task],
    "recommender.global_bias": lambda weight, task: weight[task],
    "recommender.user_bias.weight": lambda weight, task: weight[:, task],
    "recommender.item_bias.weight": lambda weight, task: weight[:, task],
}


def train(folder: Path, *overrides: str) -> dict:
    """`recfit train` in this process; returns the run's metrics.json."""
    return run_training(folder, *FAST, *overrides)


def step_rows(record: dict) -> pd.DataFrame:
    curves = pd.read_csv(Path(record["run_dir"]) / "metrics.csv")
    return curves[curves["train/loss_step"].notna()]


@pytest.fixture(scope="module")
def weighted(tmp_path_factory) -> dict:
    """Fixed weights rating 0.5, ctr 2.0; ctr is the primary task."""
    folder = tmp_path_factory.mktemp("weighted")
    # checkpoint.keep=both: last.ckpt holds the callbacks' state (best.ckpt holds weights only)
    return train(
        folder, *MF_MULTI, "task_weights.rating=0.5", "task_weights.ctr=2.0", "seed=3", "checkpoint.keep=both"
    )


@pytest.fixture(scope="module")
def uncertainty(tmp_path_factory) -> dict:
    folder = tmp_path_factory.mktemp("uncertainty")
    return train(folder, *MF_MULTI, "task_weighting=uncertainty", "trainer.max_epochs=2")


def test_every_task_reports_its_metrics_and_the_primary_one_picks_the_model(weighted):
    metrics = weighted["metrics"]
    for stage in ("val", "test"):
        assert {f"{stage}/rating/{m}" for m in REGRESSION} | {f"{stage}/ctr/{m}" for m in BINARY} <= set(
            metrics
        )
        assert all(metrics[f"{stage}/rating/{m}"] > 0 for m in REGRESSION)
        assert 0 <= metrics[f"{stage}/ctr/auc"] <= 1
    assert not any(key.count("/") == 1 for key in metrics)  # no unprefixed single-task keys
    assert weighted["monitor"] == "val/ctr/auc" and weighted["mode"] == "max"
    assert weighted["task_weights"] == {"rating": 0.5, "ctr": 2.0}
    run = Path(weighted["run_dir"])
    last = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True, map_location="cpu")
    (state,) = [
        v for k, v in last["callbacks"].items() if k.startswith("ModelCheckpoint") and v["best_model_path"]
    ]
    assert state["monitor"] == "val/ctr/auc"
    curves = pd.read_csv(run / "metrics.csv")
    assert {"val/ctr/auc", "val/rating/rmse", "test/ctr/auc", "test/rating/rmse"} <= set(curves.columns)
    per_row = pd.read_parquet(run / "per_user.parquet")
    # per-row values per task, averaging to that task's test metric
    assert per_row["rating/abs_error"].mean() == pytest.approx(metrics["test/rating/mae"], abs=1e-5)
    assert per_row["ctr/logloss"].mean() == pytest.approx(metrics["test/ctr/logloss"], abs=1e-5)
    assert math.sqrt(per_row["rating/squared_error"].mean()) == pytest.approx(
        metrics["test/rating/rmse"], abs=1e-5
    )


def test_fixed_weights_make_the_total_loss(weighted):
    rows = step_rows(weighted)
    assert len(rows) >= 3
    assert (rows["train/rating/weight_step"] == 0.5).all() and (rows["train/ctr/weight_step"] == 2.0).all()
    expected = 0.5 * rows["train/rating/loss_step"] + 2.0 * rows["train/ctr/loss_step"]
    np.testing.assert_allclose(rows["train/loss_step"], expected, rtol=1e-5)
    # and not merely one of the two: both parts are real, different losses
    assert (rows["train/rating/loss_step"] - rows["train/ctr/loss_step"]).abs().min() > 1e-3


def test_a_task_weighted_zero_leaves_its_head_untouched(tmp_path):
    overrides = [*MF_MULTI, "task_weights.rating=0.0", "optimizer.weight_decay=0.0", "seed=5"]
    # the weights training started from: same seed and config, built as `train` builds them
    cfg = compose([*FAST, f"paths.output_dir={tmp_path}", *overrides])
    pl.seed_everything(cfg.seed, workers=True, verbose=False)
    initial = {k: v.clone() for k, v in build(cfg).module.state_dict().items()}
    record = train(tmp_path, *overrides, "checkpoint.keep=last")  # last.ckpt: the weights training ended with
    trained = load_state_dict(Path(record["run_dir"]) / "checkpoints" / "last.ckpt")
    for name, part in RATING_AND_CTR_HEADS.items():
        assert torch.equal(part(trained[name], RATING_HEAD), part(initial[name], RATING_HEAD)), name
        # the ctr head, in the same tensors, did train: the comparison above can fail
        assert not torch.equal(part(trained[name], CTR_HEAD), part(initial[name], CTR_HEAD)), name
    shared = "recommender.user_embedding.weight"
    assert not torch.equal(trained[shared], initial[shared])


def test_uncertainty_weights_are_learned_logged_and_saved(uncertainty):
    run = Path(uncertainty["run_dir"])
    saved = load_state_dict(run / "checkpoints" / "best.ckpt")
    log_variance = saved["multitask.log_variance"]
    assert log_variance.shape == (2,) and log_variance.abs().min() > 1e-4  # moved from 0
    learned = torch.exp(-log_variance)
    assert uncertainty["task_weights"] == pytest.approx(
        {"rating": float(learned[0]), "ctr": float(learned[1])}
    )
    rows = step_rows(uncertainty)
    for task in ("rating", "ctr"):
        np.testing.assert_allclose(
            rows[f"train/{task}/weight_step"], np.exp(-rows[f"train/{task}/log_variance_step"]), rtol=1e-5
        )
    assert rows["train/ctr/log_variance_step"].nunique() > 1
    expected = sum(
        rows[f"train/{t}/weight_step"] * rows[f"train/{t}/loss_step"] + rows[f"train/{t}/log_variance_step"]
        for t in ("rating", "ctr")
    )
    np.testing.assert_allclose(rows["train/loss_step"], expected, rtol=1e-5, atol=1e-6)


# Ctrl-C after step 7 of 10 (in the second epoch), raised where tests/test_resume.py raises it, then
# resume=auto; both in this process (helpers.runs.interrupted_after_step records the stopped run's process
# as exited; tests/test_resume.py stops runs in processes of their own)
@pytest.mark.slow
def test_an_interrupted_uncertainty_run_resumes_exactly(uncertainty, tmp_path, capsys, monkeypatch):
    arguments = [*MF_MULTI, "task_weighting=uncertainty", "trainer.max_epochs=2"]
    run_dir = interrupted_after_step(7, train, tmp_path, monkeypatch, *arguments)
    record = json.loads((run_dir / "metrics.json").read_text())
    assert record["status"] == "interrupted"
    arguments = [*FAST, f"paths.output_dir={tmp_path}", *arguments]
    result = run_cli(capsys, "train", *arguments, "resume=auto")
    assert result.returncode == 0, result.stderr[-2000:]
    resumed = json.loads((Path(record["run_dir"]) / "metrics.json").read_text())
    # the learned log-variances and their optimizer state came back from last.ckpt
    assert resumed["metrics"] == uncertainty["metrics"]
    assert resumed["task_weights"] == uncertainty["task_weights"]
    weights = [
        load_state_dict(Path(r["run_dir"]) / "checkpoints" / "best.ckpt") for r in (resumed, uncertainty)
    ]
    assert torch.equal(weights[0]["multitask.log_variance"], weights[1]["multitask.log_variance"])


def test_same_seed_same_multitask_metrics(weighted, tmp_path):
    again = train(tmp_path, *MF_MULTI, "task_weights.rating=0.5", "task_weights.ctr=2.0", "seed=3")
    assert again["metrics"] == weighted["metrics"]
    assert again["task_weights"] == weighted["task_weights"]


def test_eval_reproduces_every_task_and_recommend_refuses_in_one_line(tmp_path, capsys):
    record = train(tmp_path, *MF_MULTI, "task_weighting=uncertainty", "seed=11")
    run = record["run_dir"]
    code, _, err = run_cli(capsys, "eval", run)
    assert code == 0, err
    (evaluated,) = [json.loads(p.read_text()) for p in tmp_path.glob("evals/*/*/metrics.json")]
    assert evaluated["metrics"] == {k: v for k, v in record["metrics"].items() if k.startswith("test/")}
    code, _, err = run_cli(capsys, "recommend", run, "--user", "1")
    assert code != 0 and "Traceback" not in err
    assert (
        err.strip()
        == "recfit: error: recommend needs one score per item; this multi-task run predicts one per task"
    )


@pytest.mark.slow
@pytest.mark.parametrize(
    "model",
    [
        ["backbone=tiny_bert", "model=cross_encoder"],
        ["backbone=tiny_bert", "model=two_tower"],
        ["backbone=none", "model=lr"],
    ],
    ids=["cross_encoder", "two_tower", "lr"],
)
def test_each_model_with_heads_trains_both_tasks(tmp_path, model):
    overrides = ["task=rating", "loss=mse", "tasks=[ctr,rating]", *SMALL, "trainer.limit_train_batches=3"]
    record = train(tmp_path, *model, *overrides)
    assert record["monitor"] == "val/rating/rmse" and record["mode"] == "min"
    assert {"test/rating/rmse", "test/ctr/auc"} <= set(record["metrics"])
    rows = step_rows(record)
    assert rows["train/ctr/loss_step"].notna().all() and rows["train/rating/loss_step"].notna().all()


def test_compare_reads_per_task_metrics_and_pairs_per_task_rows(weighted, uncertainty):
    folders = [Path(weighted["run_dir"]).parents[2], Path(uncertainty["run_dir"]).parents[2]]
    payload = compare_json(*folders, "--metric", "test/ctr/auc,test/rating/rmse")
    values = sorted(row["test/ctr/auc"] for row in payload["rows"])
    expected = sorted([weighted["metrics"]["test/ctr/auc"], uncertainty["metrics"]["test/ctr/auc"]])
    assert values == pytest.approx(expected, abs=1e-12)
    # rmse is lower-is-better although no run monitors it
    payload = compare_json(*folders, "--metric", "test/rating/rmse", "--sort", "test/rating/rmse")
    rmse = [row["test/rating/rmse"] for row in payload["rows"]]
    assert rmse == sorted(rmse)
    users = ["--baseline", Path(weighted["run_dir"]), "--test", "users"]
    baseline = compare_json(*folders, "--metric", "test/rating/rmse", *users)
    assert baseline["paired_on"] == {"test/rating/rmse": "rating/squared_error"}
    code, _, err = compare(*folders, "--metric", "test/ctr/auc", *users)
    assert code == 2 and "test/ctr/auc is not an average over users" in err


MULTI = ["backbone=none", "model=mf", "task=ctr", "loss=bce", "trainer.max_epochs=1"]
BAD = [
    (["tasks=[rating,ranking]"], "tasks: 'ranking' cannot share a multi-task model"),
    (["tasks=[rating,text_classification]"], "'text_classification' cannot share a multi-task model"),
    (["tasks=[rating,clicks]"], "tasks[1]: Invalid value 'clicks'"),
    (["tasks=[ctr,ctr]"], "tasks lists 'ctr' twice"),
    (["tasks=[ctr]"], "tasks needs at least two tasks (got [ctr]); for one, use task=ctr"),
    (["tasks=[rating,ctr]", "task=ranking", "loss=cross_entropy"], "task 'ranking' (the primary task"),
    (["tasks=[rating,ctr]", "task_weights.clicks=1"], "unknown config key 'task_weights.clicks'"),
    (["task_weights.ctr=2"], "task_weights.ctr needs several tasks, e.g. tasks=[rating,ctr]"),
    (["task_weighting=uncertainty"], "task_weighting needs several tasks"),
    (["tasks=[rating,ctr]", "task_weighting=learned"], "task_weighting: Invalid value 'learned'"),
    (["tasks=[rating,ctr]", "task_weights.ctr=-1"], "task_weights must be 0 or more, and not all 0"),
    (["tasks=[rating,ctr]", "task_weights.ctr=0", "task_weights.rating=0"], "and not all 0"),
    (
        ["tasks=[rating,ctr]", "task_weighting=uncertainty", "task_weights.ctr=2"],
        "task_weighting=uncertainty learns them",
    ),
    (["tasks=[rating,ctr]", "model=popularity"], "model 'popularity' cannot do task 'ctr'"),
    (["tasks=[rating,ctr]", "dataset.resampling=oversample"], "a multi-task run takes neither"),
]


@pytest.mark.slow
def test_bad_multitask_settings_are_one_line_and_leave_earlier_runs_alone(weighted, capsys):
    outputs = Path(weighted["run_dir"]).parents[2]
    before = tree_digest(outputs)
    for arguments, expected in BAD:
        result = run_cli(capsys, "train", *MULTI, *arguments, f"paths.output_dir={outputs}")
        assert_one_line_error(result, expected)
    assert tree_digest(outputs) == before
