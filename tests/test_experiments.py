"""Every experiment file runs end to end with its real pretrained backbone (all-MiniLM-L6-v2)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from helpers.files import REPO, write_reviews_csv
from helpers.runs import run_records
from recfit.cli import main

QUIET = ["trainer.enable_progress_bar=false"]


def only_record(outputs: Path) -> dict:
    (record,) = run_records(outputs)
    assert record["status"] == "completed", record["error"]
    return record


@pytest.mark.slow
def test_quickstart_as_make_run_runs_it(tmp_path):
    """`recfit train` with no overrides, in a fresh process, prints the table and the run folder."""
    result = subprocess.run(
        [str(Path(sys.executable).parent / "recfit"), "train", f"paths.output_dir={tmp_path}", *QUIET],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    record = only_record(tmp_path)
    assert record["experiment"] == "quickstart"
    assert "ndcg@10" in result.stdout and f"run folder: {record['run_dir']}" in result.stdout
    # 200 items, ~10 seen per user: random ranking gives ndcg@10 near 0.03; topic-aware text vectors do better
    assert record["metrics"]["test/ndcg@10"] > 0.08


@pytest.mark.slow
def test_ml100k_rating(tmp_path, ml100k_dir):
    main(
        [
            "train",
            "experiment=ml100k_rating",
            f"dataset.reader.path={ml100k_dir}",
            "trainer.max_epochs=2",
            f"paths.output_dir={tmp_path}",
            *QUIET,
        ]
    )
    record = only_record(tmp_path)
    assert record["data"] == "movielens_100k: 100,000 interactions, 943 users, 1,682 items"
    assert 0.85 < record["metrics"]["test/rmse"] < 1.05  # a mean-rating predictor scores about 1.12


@pytest.mark.slow
def test_ml100k_ranking(tmp_path, ml100k_dir):
    main(
        [
            "train",
            "experiment=ml100k_ranking",
            f"dataset.reader.path={ml100k_dir}",
            "trainer.max_epochs=1",
            f"paths.output_dir={tmp_path}",
            *QUIET,
        ]
    )
    record = only_record(tmp_path)
    assert record["metrics"]["test/ndcg@10"] > 0.06  # after one epoch; random ranking scores about 0.02


@pytest.mark.slow
def test_text_csv_bert(tmp_path):
    csv_file = write_reviews_csv(tmp_path / "reviews.csv", rows=64)
    main(
        [
            "train",
            "experiment=text_csv_bert",
            f"dataset.reader.path={csv_file}",
            "dataset.reader.text_column=review",
            "dataset.reader.label_column=sentiment",
            "trainer.max_epochs=2",
            f"paths.output_dir={tmp_path}",
            *QUIET,
        ]
    )
    record = only_record(tmp_path)
    assert record["metrics"]["test/accuracy"] >= 0.5
    assert record["parameters"]["trainable"] > 22_000_000  # the whole BERT is fine-tuned


@pytest.mark.slow
def test_ml100k_bpr_lr_and_folds_run(tmp_path, ml100k_dir):
    for experiment in ("ml100k_bpr", "ml100k_lr_ctr", "ml100k_svd_folds"):
        main(["train", f"experiment={experiment}", f"dataset.reader.path={ml100k_dir}",
              "trainer.max_epochs=1", f"paths.output_dir={tmp_path / experiment}", *QUIET])  # fmt: skip
        record = only_record(tmp_path / experiment)
        assert record["experiment"] == experiment
    folds = only_record(tmp_path / "ml100k_svd_folds")
    assert "fold '1' predefined test set" in folds["protocol"]
    assert folds["metrics"]["test/rmse"] < 1.2


@pytest.mark.slow
def test_cold_transfer_experiments_run(tmp_path, ml100k_dir, amazon_games_dir):
    for experiment, path in (("ml100k_cold_transfer", ml100k_dir), ("games_cold_transfer", amazon_games_dir)):
        # the real experiments use the packaged MiniLM; CI checks the wiring with a tiny BERT
        main(["train", f"experiment={experiment}", f"dataset.reader.path={path}", "backbone=tiny_bert",
              "backbone.freeze=all", "trainer.max_epochs=1", "trainer.limit_train_batches=20",
              f"paths.output_dir={tmp_path / experiment}", *QUIET])  # fmt: skip
        record = only_record(tmp_path / experiment)
        assert "cold_item" in record["protocol"]


@pytest.mark.slow
def test_data_efficiency_experiment_trains_on_a_fraction(tmp_path, ml100k_dir):
    # the real grid uses the packaged MiniLM (scripts/results/data_efficiency.sh); CI checks the wiring
    for split in ("cold_item", "ratio"):
        main(["train", "experiment=ml100k_data_efficiency", f"split={split}",
              f"dataset.reader.path={ml100k_dir}", "backbone=tiny_bert", "backbone.freeze=all",
              "split.train_fraction=0.1", "trainer.max_epochs=1",
              f"paths.output_dir={tmp_path / split}", *QUIET])  # fmt: skip
        record = only_record(tmp_path / split)
        assert record["protocol"].startswith(f"no filtering; {split} ")
        assert ", train_fraction 0.1 (" in record["protocol"]
        assert record["train_throughput"]["samples"] < 10_000  # 10% of ~70-80k training interactions
        assert record["metrics"]["test/ndcg@10"] is not None
