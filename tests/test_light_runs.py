"""Light run folders (issue 16): a run needs nothing outside its own folder once it has started, and a
frozen backbone's item vectors come from the shared cache wherever a run is loaded. Real runs, in
this process, on a tiny local BERT."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from helpers.cli import recfit, run_cli
from helpers.models import save_tiny_pretrained_bert, tiny_pretrained_bert
from helpers.runs import SMALL_DATA, interrupted_after_step, train

TWO_TOWER = ["task=ranking", "loss=cross_entropy", "model=two_tower", "dataset.batch_size=16"]
SIX_STEPS = ["trainer.max_epochs=2", "trainer.limit_train_batches=3", "trainer.enable_progress_bar=false"]


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory) -> Path:
    return save_tiny_pretrained_bert(tmp_path_factory.mktemp("tiny_pretrained"))


def _overrides(outputs: Path, *overrides: str) -> list[str]:
    data = outputs.parent / "data"  # one data folder (and item vector cache) for the runs of a test
    return [*SMALL_DATA, *SIX_STEPS, *TWO_TOWER, f"paths.data_dir={data}", *overrides]


def _run(outputs: Path, *overrides: str) -> dict:
    return train(outputs, *_overrides(outputs, *overrides))


def _resume(run: Path, *overrides: str) -> dict:
    """`recfit train ... resume=auto` into the interrupted run's own folder; its metrics.json."""
    from recfit.cli import main

    outputs = run.parent.parent.parent
    main(["train", f"paths.output_dir={outputs}", *_overrides(outputs, *overrides), "resume=auto"])
    record = json.loads((run / "metrics.json").read_text())
    assert record["status"] == "completed", record.get("error")
    return record


def _count_catalogue_encodings(monkeypatch) -> list[int]:
    """Every pass of the catalogue through the frozen backbone from now on (the real method still runs)."""
    from recfit.models.two_tower import TwoTower

    encoded: list[int] = []
    encode = TwoTower.cache_item_features
    monkeypatch.setattr(TwoTower, "cache_item_features", lambda self, b: encoded.append(1) or encode(self, b))
    return encoded


def _printed_json(stdout: str) -> dict:
    """The JSON document a command printed (after the log lines of earlier runs in this process)."""
    return json.loads(stdout[stdout.index("\n{") + 1 :] if not stdout.startswith("{") else stdout)


def _embedded(capsys, run_dir: str, output: Path) -> np.ndarray:
    """`recfit embed RUN_DIR --items --output OUTPUT`: the item vectors it wrote."""
    import pandas as pd

    result = run_cli(capsys, "embed", run_dir, "--items", "--output", str(output))
    assert result.returncode == 0, result.stderr
    return np.stack(pd.read_parquet(output)["vector"])


def _test_metrics(metrics: dict) -> dict:
    return {k: v for k, v in metrics.items() if k.startswith("test/")}


def test_a_child_resumes_evaluates_and_recommends_without_its_parent(
    pretrained, tmp_path, monkeypatch, capsys
):
    """The parent fine-tunes the backbone; the child freezes all of it (its item vectors come from the
    parent's weights). With the parent's folder deleted, the interrupted child resumes to exactly the
    metrics of the child left alone, `recfit eval` gives them again, `recfit recommend` the same list as
    before the deletion, and `recfit embed` the vectors that encoding the catalogue again gives: all
    three from the item vector cache, without running the backbone over the catalogue."""
    import recfit

    parent = _run(tmp_path / "parent", *tiny_pretrained_bert(pretrained, "none"))
    child = [*tiny_pretrained_bert(pretrained, "all"), f"init_from.path={parent['run_dir']}"]
    alone = _run(tmp_path / "alone", *child)
    assert "backbone" in alone["init_from"]["taken"]
    stopped = interrupted_after_step(4, _run, tmp_path / "stopped", monkeypatch, *child)
    recommend = ["recommend", "--user", "3", "--k", "5", "--format", "json"]
    before = run_cli(capsys, *recommend[:1], alone["run_dir"], *recommend[1:])
    assert before.returncode == 0, before.stderr

    shutil.rmtree(parent["run_dir"])
    resumed = _resume(stopped, *child)
    assert resumed["metrics"] == alone["metrics"]
    assert resumed["init_from"] == alone["init_from"]  # the lineage still names the parent it came from

    encoded = _count_catalogue_encodings(monkeypatch)
    evaluation = recfit.evaluate(resumed["run_dir"], [f"paths.output_dir={tmp_path / 'evals'}"])
    assert _test_metrics(evaluation.metrics) == _test_metrics(resumed["metrics"])
    after = run_cli(capsys, *recommend[:1], resumed["run_dir"], *recommend[1:])
    assert after.returncode == 0, after.stderr
    assert _printed_json(after.stdout) == _printed_json(before.stdout)
    cached = _embedded(capsys, resumed["run_dir"], tmp_path / "cached.parquet")
    assert not encoded  # the cached vectors of the parent's backbone, never the pretrained ones
    shutil.rmtree(tmp_path / "data" / "cache" / "item_vectors")  # now the catalogue is encoded again
    assert np.array_equal(_embedded(capsys, resumed["run_dir"], tmp_path / "encoded.parquet"), cached)
    assert encoded


MF = ["backbone=none", "model=mf", "task=ranking", "loss=bpr", *SMALL_DATA, "trainer.max_epochs=1"]
SUMMARY = "Trainable params"  # a line of Lightning's model summary table


def _train_log(run_dir: str | Path) -> str:
    return (Path(run_dir) / "train.log").read_text()


def test_the_model_summary_goes_to_train_log_only(pretrained, tmp_path, capsys):
    """A single run with its progress bar: the summary table is in train.log, not in the terminal, and
    loading the backbone draws no progress bar."""
    record = _run(
        tmp_path / "runs", *tiny_pretrained_bert(pretrained, "all"), "trainer.enable_progress_bar=true"
    )
    terminal = capsys.readouterr()
    assert SUMMARY not in terminal.out + terminal.err
    assert "Loading weights" not in terminal.err
    assert SUMMARY in _train_log(record["run_dir"])
    assert "run folder:" in terminal.out  # the end of the run is still shown
    # nor does loading the run again (eval, recommend, embed), in a fresh process: the variable the
    # in-process run set must not hide a missing switch
    env = {key: value for key, value in os.environ.items() if key != "HF_HUB_DISABLE_PROGRESS_BARS"}
    embedded = recfit(
        "embed", record["run_dir"], "--items", "--output", str(tmp_path / "items.parquet"), env=env
    )
    assert embedded.returncode == 0, embedded.stderr
    assert "Loading weights" not in embedded.stderr + embedded.stdout


def test_sweep_resume_is_quiet_like_a_sweep(tmp_path, capsys):
    """`recfit sweep resume` runs the missing job as a sweep's job: no config tree, progress bar or
    metrics table in the terminal, the one summary line instead; `quiet=false` brings them back."""
    sweep = tmp_path / "sweep"
    sweep.mkdir()
    # what Hydra writes for `recfit train -m seed=1 ...`: the sweep's overrides; job 0 never ran
    task = [*MF, "seed=1", f"paths.output_dir={tmp_path}", f"paths.data_dir={tmp_path / 'data'}"]
    (sweep / "multirun.yaml").write_text(json.dumps({"hydra": {"overrides": {"task": task}}}))
    quiet = run_cli(capsys, "sweep", "resume", str(sweep)).stdout
    assert json.loads((sweep / "0" / "metrics.json").read_text())["status"] == "completed"
    assert "CONFIG" not in quiet and "┃ metric" not in quiet and SUMMARY not in quiet
    assert f"run folder: {sweep / '0'}" in quiet  # the summary line of a quiet run
    assert SUMMARY in _train_log(sweep / "0")

    shutil.rmtree(sweep / "0")
    shown = run_cli(capsys, "sweep", "resume", str(sweep), "quiet=false").stdout
    assert "CONFIG" in shown and "┃ metric" in shown


def test_frozen_weights_are_hashed_once_while_unchanged(monkeypatch):
    """The item vector cache's key and the checkpoints' reference share one hash of a frozen backbone;
    any in-place change, another tensor at the same place, or state_dict copies hash again."""
    import hashlib

    import torch

    from recfit.training import frozen_reference
    from recfit.training.frozen_reference import parameters_by_name, weights_digest

    hashed: list[int] = []
    sha256 = hashlib.sha256
    monkeypatch.setattr(frozen_reference.hashlib, "sha256", lambda *a: hashed.append(1) or sha256(*a))
    layer = torch.nn.Linear(4, 3).requires_grad_(False)
    first = weights_digest(parameters_by_name(layer).items())
    assert weights_digest(parameters_by_name(layer).items()) == first and len(hashed) == 1
    assert weights_digest(layer.state_dict().items()) == first and len(hashed) == 2  # copies: not kept
    with torch.no_grad():
        layer.weight[0, 0] += 1.0
    changed = weights_digest(parameters_by_name(layer).items())
    assert changed != first and len(hashed) == 3
    layer.weight = torch.nn.Parameter(layer.weight.detach().clone(), requires_grad=False)
    assert weights_digest(parameters_by_name(layer).items()) == changed and len(hashed) == 4
