"""The `recfit` command as a user runs it: real subprocesses, real exit codes, real stderr."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from helpers.cli import assert_one_line_error, recfit
from helpers.files import tree_digest, write_reviews_csv

TINY = ["backbone=tiny_bert", "trainer.max_epochs=1", "trainer.enable_progress_bar=false"]


def test_usage_and_help_answer():
    assert "train" in recfit().stdout
    help_text = recfit("train", "--help")
    assert help_text.returncode == 0
    assert (
        "backbone    bert, gpt2, minilm, none, resnet, tiny_bert, tiny_gpt2, tiny_resnet" in help_text.stdout
    )
    assert "_schema" not in help_text.stdout


def test_unknown_command():
    assert_one_line_error(recfit("trian"), "unknown command 'trian'")


@pytest.fixture(scope="module")
def earlier_run(tmp_path_factory) -> Path:
    """A finished run that the bad commands below must leave byte for byte as it was."""
    outputs = tmp_path_factory.mktemp("outputs")
    result = recfit("train", *TINY, f"paths.output_dir={outputs}")
    assert result.returncode == 0, result.stderr[-3000:]
    return outputs


@pytest.mark.slow
@pytest.mark.parametrize(
    ("arguments", "expected"),
    [
        (["backbone=bertt"], "unknown option 'bertt' for 'backbone' (did you mean 'bert'?)"),
        (
            ["trainer.max_epoch=1"],
            "unknown config key 'trainer.max_epoch' (did you mean 'trainer.max_epochs'?)",
        ),
        (["loss=mse"], "loss 'mse' does not fit task 'ranking'"),
        (["experiment=ml100k_rating", "dataset.path=/no/such/ml-100k"], "dataset.path does not exist"),
        (["experiment=text_csv_bert"], "required config value missing: dataset.path"),
    ],
)
def test_bad_config_exits_with_one_line(earlier_run, arguments, expected):
    before = tree_digest(earlier_run)
    result = recfit("train", *arguments, f"paths.output_dir={earlier_run}")
    assert_one_line_error(result, expected)
    assert result.returncode == 2
    assert tree_digest(earlier_run) == before


@pytest.mark.slow
def test_bad_data_exits_with_one_line_and_records_the_failure(earlier_run, tmp_path):
    before = tree_digest(earlier_run / "runs" / "quickstart")
    csv_file = write_reviews_csv(tmp_path / "reviews.csv")
    result = recfit(
        "train",
        "experiment=text_csv_bert",
        *TINY,
        f"dataset.path={csv_file}",
        "dataset.text_column=body",
        f"paths.output_dir={earlier_run}",
    )
    assert_one_line_error(result, "has no column 'body' (columns: review, sentiment, stars)")
    assert result.returncode == 1
    failed = [json.loads(p.read_text()) for p in earlier_run.glob("runs/text_csv_bert/*/metrics.json")]
    assert [record["status"] for record in failed] == ["failed"]
    assert "has no column 'body'" in failed[0]["error"]
    assert tree_digest(earlier_run / "runs" / "quickstart") == before


@pytest.mark.slow
def test_non_utf8_csv_exits_with_one_line(tmp_path):
    bad = tmp_path / "latin1.csv"
    bad.write_bytes("text,label\ncaf\xe9 cr\xe8me,pos\nnice,neg\n".encode("latin-1"))
    result = recfit(
        "train", "experiment=text_csv_bert", *TINY, f"dataset.path={bad}", f"paths.output_dir={tmp_path}"
    )
    assert_one_line_error(result, "is not UTF-8 text")


@pytest.mark.slow
def test_train_writes_a_complete_run_folder(earlier_run):
    (run,) = list((earlier_run / "runs" / "quickstart").iterdir())
    record = json.loads((run / "metrics.json").read_text())
    assert record["status"] == "completed" and record["error"] is None
    assert record["duration_s"] > 0
    assert set(record["metrics"]) >= {"val/ndcg@10", "test/ndcg@10", "test/recall@20", "test/mrr@10"}
    for name in (
        ".hydra/config.yaml",
        ".hydra/overrides.yaml",
        "metrics.csv",
        "checkpoints/best.ckpt",
        "checkpoints/last.ckpt",
        "train.log",
    ):
        assert (run / name).is_file(), name
    assert "backbone=tiny_bert" in (run / ".hydra" / "overrides.yaml").read_text()
