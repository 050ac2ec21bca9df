"""A run's validation metrics are those of its best checkpoint, validated once (during fit), not twice."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import torch

from helpers.runs import SMALL_DATA, evaluate, interrupted_in, train
from recfit.cli import main
from recfit.training.checkpoint_state import VALIDATION_METRICS_KEY, stored_validation_metrics

RUN = ["backbone=none", "model=mf", *SMALL_DATA, "trainer.max_epochs=2", "trainer.enable_progress_bar=false"]


def validation_of(record: dict) -> dict[str, float]:
    return {name: value for name, value in record["metrics"].items() if name.startswith("val/")}


def test_the_recorded_validation_is_the_best_checkpoints_and_is_not_repeated(tmp_path):
    record = train(tmp_path, *RUN)
    best = record["best_checkpoint"]
    assert validation_of(record) == stored_validation_metrics(best)
    fresh, _ = evaluate(RUN, best, tmp_path / "fresh")  # a validation of best.ckpt, run now
    assert validation_of(record) == {name: value for name, value in fresh.items() if name.startswith("val/")}
    curves = pd.read_csv(Path(record["run_dir"]) / "metrics.csv")
    validated = curves.dropna(subset=["val/ndcg@10"])["epoch"].tolist()
    assert validated == [0, 1]  # one validation per trained epoch, none after fit


def test_a_best_checkpoint_written_without_its_metrics_is_validated_after_fit(tmp_path, monkeypatch):
    """A run resumed from checkpoints of an earlier recfit (no stored metrics) validates best.ckpt again."""

    def stop(module: object) -> None:
        raise KeyboardInterrupt  # Ctrl-C in the test phase: fit is over, best.ckpt written

    run = interrupted_in("on_test_start", stop, train, tmp_path, monkeypatch, *RUN)
    best = run / "checkpoints" / "best.ckpt"
    checkpoint = torch.load(best, weights_only=True)
    expected = checkpoint.pop(VALIDATION_METRICS_KEY)
    torch.save(checkpoint, best)

    main(["train", f"paths.output_dir={tmp_path}", *RUN, "resume=auto"])
    resumed = json.loads((run / "metrics.json").read_text())
    assert resumed["status"] == "completed", resumed["error"]
    assert validation_of(resumed) == expected
    curves = pd.read_csv(run / "metrics.csv")
    assert curves.dropna(subset=["val/ndcg@10"])["epoch"].tolist() == [0, 1, 2]  # validated again
