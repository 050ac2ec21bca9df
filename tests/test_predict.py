"""`recfit predict RUN_DIR --input new.csv`: one prediction per input row, metrics when labelled.

A tiny text classifier (tiny BERT, a small reviews CSV, 2 epochs) and a tiny mf rating / ctr run on
synthetic data are trained once through `recfit.train` and shared by the tests.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import recfit
from helpers.cli import assert_one_line_error, run_cli
from helpers.files import tree_digest, write_reviews_csv
from helpers.runs import ONE_EPOCH, SMALL_DATA
from recfit.api import TrainResult

pytestmark = pytest.mark.slow

TEXT_RUN = [
    "experiment=text_csv_bert",
    "backbone=tiny_bert",
    "dataset.reader.text_column=review",
    "dataset.reader.label_column=sentiment",
    "trainer.max_epochs=2",
    "trainer.enable_progress_bar=false",
]


@pytest.fixture(scope="module")
def outputs(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("outputs")


@pytest.fixture(scope="module")
def text_run(outputs) -> TrainResult:
    reviews = write_reviews_csv(outputs / "reviews.csv", rows=80)
    return recfit.train(
        overrides=[*TEXT_RUN, f"dataset.reader.path={reviews}", f"paths.output_dir={outputs}"]
    )


@pytest.fixture(scope="module")
def test_rows(text_run, outputs) -> Path:
    """The run's own test split as a CSV a user would bring: its texts and labels, nothing else."""
    loaded = recfit.load_run(text_run.run_dir)
    test = loaded.datamodule.splits.test
    names = loaded.data.label_names
    frame = pd.DataFrame(
        {
            "review": [loaded.data.item_text[i] for i in test["item"]],
            "sentiment": [names[label] for label in test["label"]],
        }
    )
    path = outputs / "test_rows.csv"
    frame.to_csv(path, index=False)
    return path


def write_csv(path: Path, header: list[str], rows: list[list[object]]) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def test_labelled_rows_give_the_run_test_metrics_report_and_confusion_matrix(text_run, test_rows):
    predictions = recfit.predict(text_run.run_dir, test_rows)
    frame = predictions.frame
    source = pd.read_csv(test_rows)
    assert len(frame) == len(source) and frame["review"].tolist() == source["review"].tolist()
    probabilities = frame[["prob_neg", "prob_pos"]].to_numpy()
    np.testing.assert_allclose(probabilities.sum(1), 1.0, rtol=1e-6)
    assert frame["prediction"].tolist() == np.array(["neg", "pos"])[probabilities.argmax(1)].tolist()
    # the same rows, weights and metric definitions as the run's test pass: the same numbers
    assert predictions.metrics["accuracy"] == pytest.approx(text_run.metrics["test/accuracy"], abs=1e-6)
    assert predictions.metrics["f1"] == pytest.approx(text_run.metrics["test/f1"], abs=1e-6)
    assert predictions.labelled_rows == len(source)
    report = predictions.report
    assert report.classes == ["neg", "pos"]
    confusion = np.array(report.confusion)
    truth, guess = source["sentiment"].to_numpy(), frame["prediction"].to_numpy()
    for i, true_name in enumerate(report.classes):
        for j, guessed_name in enumerate(report.classes):
            assert confusion[i, j] == ((truth == true_name) & (guess == guessed_name)).sum()
    assert report.support == confusion.sum(1).tolist()
    assert np.mean(report.f1) == pytest.approx(predictions.metrics["f1"], abs=1e-6)  # macro-F1
    assert np.trace(confusion) / confusion.sum() == pytest.approx(predictions.metrics["accuracy"])


def test_cli_writes_one_row_per_input_row_and_prints_the_report(text_run, test_rows, tmp_path, capsys):
    before = tree_digest(text_run.run_dir)
    target = tmp_path / "preds.csv"
    result = run_cli(
        capsys, "predict", str(text_run.run_dir), "--input", str(test_rows), "--output", str(target)
    )
    assert result.returncode == 0, result.stderr
    written = pd.read_csv(target)
    assert list(written.columns) == ["review", "sentiment", "prediction", "prob_neg", "prob_pos"]
    assert len(written) == len(pd.read_csv(test_rows))
    assert f"{len(written)} predictions written to {target}" in result.stdout
    assert "macro-F1" in result.stdout and "confusion matrix" in result.stdout
    assert tree_digest(text_run.run_dir) == before  # the run folder is only read

    # without --output: the CSV on stdout (pipeable), the report on stderr; unlabelled: no report
    unlabelled = write_csv(
        tmp_path / "new.csv", ["id", "review"], [[1, "great movie"], [2, "boring and long"]]
    )
    result = run_cli(capsys, "predict", str(text_run.run_dir), "--input", str(unlabelled))
    assert result.returncode == 0, result.stderr
    from io import StringIO

    rows = pd.read_csv(StringIO(result.stdout))
    assert rows["id"].tolist() == [1, 2] and set(rows["prediction"]) <= {"neg", "pos"}
    assert "accuracy" not in result.stderr


def test_bad_inputs_give_one_line(text_run, test_rows, tmp_path, capsys):
    run = str(text_run.run_dir)
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    cases = [
        (write_csv(tmp_path / "a.csv", ["text"], [["fine"]]), "the input has no text column 'review'"),
        (
            write_csv(tmp_path / "b.csv", ["review", "sentiment"], [["ok", "pos"], ["meh", "neutral"]]),
            "label 'neutral' in column 'sentiment' never occurred in training (classes: neg, pos)",
        ),
        (empty, "is empty: nothing to predict"),
        (write_csv(tmp_path / "c.csv", ["review"], []), "has a header but no rows"),
        (write_csv(tmp_path / "d.csv", ["review"], [["ok"], [""]]), "column 'review' is empty in row 2"),
        (
            write_csv(tmp_path / "e.csv", ["review", "prediction"], [["ok", "x"]]),
            "the input already has a column 'prediction'",
        ),
        (tmp_path / "nowhere.csv", "input file not found"),
    ]
    for path, expected in cases:
        assert_one_line_error(run_cli(capsys, "predict", run, "--input", str(path)), expected)
    assert_one_line_error(
        run_cli(capsys, "predict", run, "--input", str(test_rows), "--output", str(test_rows)),
        "is the input file",
    )
    assert_one_line_error(run_cli(capsys, "predict", run), "the following arguments are required: --input")


@pytest.fixture(scope="module")
def rating_run(outputs) -> TrainResult:
    overrides = [*SMALL_DATA, *ONE_EPOCH, "backbone=none", "model=mf", "task=rating", "loss=mse"]
    return recfit.train(overrides=[*overrides, f"paths.output_dir={outputs}"])


@pytest.fixture(scope="module")
def ctr_run(outputs) -> TrainResult:
    overrides = [*SMALL_DATA, *ONE_EPOCH, "backbone=none", "model=mf", "task=ctr", "loss=bce"]
    return recfit.train(overrides=[*overrides, f"paths.output_dir={outputs}"])


def test_ctr_rows_give_probabilities_labels_and_the_run_test_metrics(ctr_run, tmp_path):
    loaded = recfit.load_run(ctr_run.run_dir)
    test = loaded.datamodule.splits.test
    rows = test[["user", "item", "rating"]].to_numpy().tolist()
    predictions = recfit.predict(
        ctr_run.run_dir, write_csv(tmp_path / "pairs.csv", ["user", "item", "rating"], rows)
    )
    frame = predictions.frame
    assert ((frame["probability"] >= 0) & (frame["probability"] <= 1)).all()
    assert (frame["prediction"] == (frame["probability"] >= 0.5).astype(int)).all()
    for name in ("auc", "logloss", "accuracy"):  # ratings thresholded as in training
        assert predictions.metrics[name] == pytest.approx(ctr_run.metrics[f"test/{name}"], abs=1e-5), name


def test_rating_rows_predict_the_model_score_and_rmse(rating_run, tmp_path, capsys):
    import torch

    loaded = recfit.load_run(rating_run.run_dir)
    test = loaded.datamodule.splits.test
    rows = test[["user", "item", "rating"]].to_numpy().tolist()
    path = write_csv(tmp_path / "pairs.csv", ["user", "item", "rating"], rows)
    predictions = recfit.predict(rating_run.run_dir, path)
    with torch.no_grad():
        expected = loaded.recommender(
            {
                "user": torch.as_tensor(test["user"].to_numpy()),
                "item": torch.as_tensor(test["item"].to_numpy()),
            }
        )
    np.testing.assert_allclose(predictions.frame["prediction"].to_numpy(), expected.numpy(), rtol=1e-5)
    assert predictions.metrics["rmse"] == pytest.approx(rating_run.metrics["test/rmse"], abs=1e-5)
    assert predictions.metrics["mae"] == pytest.approx(rating_run.metrics["test/mae"], abs=1e-5)

    unknown = write_csv(tmp_path / "unknown.csv", ["user", "item"], [[1, 2], [999, 2]])
    assert_one_line_error(
        run_cli(capsys, "predict", str(rating_run.run_dir), "--input", str(unknown)),
        "user '999' (row 2) unknown to the run's data set 'synthetic'",
    )
    no_item = write_csv(tmp_path / "no_item.csv", ["user"], [[1]])
    assert_one_line_error(
        run_cli(capsys, "predict", str(rating_run.run_dir), "--input", str(no_item)),
        "the input has no id column 'item'",
    )
