"""Forty-odd bad inputs, each as a user would hit it: a non-zero exit, one `recfit: error:` line, no
traceback, and the earlier run folder byte for byte as it was.

They run `recfit` in this process (`run_cli`): the same `main()` a shell reaches, without paying the
imports once per case. tests/test_cli.py keeps a few of them as real subprocesses, which prove the
command-line path itself (argv, exit code, stderr)."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from helpers.cli import assert_one_line_error, run_cli
from helpers.files import tree_digest
from helpers.runs import train

QUIET = ["trainer.enable_progress_bar=false", "trainer.max_epochs=1"]
ML_MF = ["experiment=ml100k_rating", "backbone=none", "model=mf", *QUIET]


@pytest.fixture(scope="module")
def outputs(tmp_path_factory) -> Path:
    """One finished run; every case below writes next to it and must leave it untouched."""
    folder = tmp_path_factory.mktemp("outputs")
    train(folder, "backbone=none", "model=mf", *QUIET)
    return folder


def ml100k_copy(tmp: Path, source: Path, edit: Callable[[Path], None] | None = None) -> Path:
    folder = tmp / "ml-100k"
    folder.mkdir()
    for name in ("u.data", "u.item", "u.user"):
        shutil.copy(source / name, folder / name)
    if edit:
        edit(folder)
    return folder


def append(name: str, text: str) -> Callable[[Path], None]:
    return lambda folder: (folder / name).open("a").write(text)


def csv(tmp: Path, content: bytes) -> Path:
    file = tmp / "data.csv"
    file.write_bytes(content)
    return file


# (case id, arguments builder(tmp, ml100k folder, outputs) -> args, expected text in the one error line)
CONFIG_CASES = [
    ("unknown option", ["backbone=bertt"], "unknown option 'bertt' for 'backbone' (did you mean 'bert'?)"),
    ("unknown key", ["trainer.max_epoch=1"], "unknown config key 'trainer.max_epoch' (did you mean"),
    ("unknown nested key", ["dataset.filter.kcore=5"], "unknown config key 'dataset.filter.kcore'"),
    ("wrong type", ["trainer.max_epochs=abc"], "trainer.max_epochs: Value 'abc' of type 'str' could not"),
    ("wrong enum", ["backbone.pooling=max"], "backbone.pooling: Invalid value 'max'"),
    ("loss vs ranking", ["loss=mse"], "loss 'mse' does not fit task 'ranking'"),
    ("loss vs rating", ["task=rating"], "loss 'cross_entropy' does not fit task 'rating'"),
    ("loss vs ctr", ["task=ctr", "loss=mse"], "loss 'mse' does not fit task 'ctr'"),
    ("mf with a text backbone", ["model=mf"], "model 'mf' needs backbone=none"),
    ("two tower without backbone", ["backbone=none"], "model 'two_tower' needs a text or image backbone"),
    ("cross encoder ranking", ["model=cross_encoder"], "model 'cross_encoder' cannot do task 'ranking'"),
    ("metric not reported", ["task.metric=ndcg@5"], "task.metric 'ndcg@5' is not reported"),
    ("metric of another task", ["task=rating", "loss=mse", "task.metric=auc"], "task.metric 'auc' is not"),
    ("bad freeze", ["backbone.freeze=some"], "backbone.freeze 'some' must be one of"),
    ("split shares", ["split.test=0.6", "split.val=0.5"], "must be in [0, 1) and leave some training data"),
    ("train fraction", ["split.train_fraction=0"], "split.train_fraction (0.0) must be in (0, 1]"),
    ("batch size", ["dataset.batch_size=0"], "dataset.batch_size must be at least 1"),
    ("batch size vs in-batch softmax", ["dataset.batch_size=1"], "dataset.batch_size must be at least 2"),
    ("length buckets", ["dataset.length_buckets=-1"], "dataset.length_buckets must be 0 (off) or more"),
    ("devices", ["trainer.devices=0"], "trainer.devices must be auto, -1 (all), a count of at least 1"),
    (
        "missing data path",
        ["experiment=ml100k_rating", "dataset.path=/no/such/dir"],
        "dataset.path does not exist",
    ),
    ("required path", ["experiment=text_csv_bert"], "required config value missing: dataset.path"),
    (
        "missing model folder",
        ["backbone.name_or_path=./no/such/model"],
        "backbone.name_or_path is a local path",
    ),
    (
        "task without labels",
        ["task=text_classification", "model=cross_encoder"],
        "needs a labelled text data",
    ),
    ("unknown trainer", ["trainer=tpu_pod"], "unknown option 'tpu_pod' for 'trainer'"),
    ("unparseable override", ["foo"], "cannot parse override"),
    ("candidates", ["task.candidates=all"], "task.candidates 'all' must be full, uniN or popN"),
    ("split method", ["split.method=random"], "split.method: Invalid value 'random'"),
    ("k-core", ["dataset.filter.k_core_users=-1"], "dataset.filter.k_core_users must be 0 or more"),
    ("temperature", ["loss.temperature=0"], "loss.temperature must be positive"),
    ("bad-rows policy", ["dataset.on_bad_rows=maybe"], "dataset.on_bad_rows: Invalid value 'maybe'"),
    ("resume value", ["resume=sometimes"], "resume must be auto or null"),
    ("bad sweep job", ["-m", "loss=mse,cross_entropy"], "sweep job 0 ("),
    ("nothing to resume", ["resume=auto", "experiment_name=nothing_here"], "resume=auto: no unfinished run"),
    ("checkpoint path", ["ckpt_path=/no/such.ckpt"], "ckpt_path does not exist: /no/such.ckpt"),
]


@pytest.mark.slow
@pytest.mark.parametrize(
    ("arguments", "expected"), [c[1:] for c in CONFIG_CASES], ids=[c[0] for c in CONFIG_CASES]
)
def test_bad_config(capsys, outputs, arguments, expected):
    before = tree_digest(outputs)
    result = run_cli(capsys, "train", *arguments, f"paths.output_dir={outputs}")
    assert_one_line_error(result, expected)
    assert tree_digest(outputs) == before


DATA_CASES = [
    ("missing u.data", lambda f: (f / "u.data").unlink(), "MovieLens-100K file missing"),
    ("non-numeric rating", append("u.data", "1\t2\tfive\t881250949\n"), "rows with a missing or non-numeric"),
    ("missing rating", append("u.data", "1\t2\t\t881250949\n"), "rows with a missing or non-numeric"),
    ("truncated line", append("u.data", "196\t24"), "rows with a missing or non-numeric"),
    ("unknown item", append("u.data", "1\t99999\t4\t881250949\n"), "naming an item missing from u.item"),
    ("unknown user", append("u.data", "99999\t1\t4\t881250949\n"), "naming a user missing from u.user"),
    ("duplicate", append("u.data", "196\t242\t3\t881250949\n"), "repeating a (user, item) pair"),
    ("not UTF-8", lambda f: (f / "u.user").write_bytes(b"1|24|M|t\xe9chnician|85711\n"), "cannot read"),
]


@pytest.mark.slow
@pytest.mark.parametrize(("edit", "expected"), [c[1:] for c in DATA_CASES], ids=[c[0] for c in DATA_CASES])
def test_bad_movielens_files(capsys, outputs, tmp_path, ml100k_dir, edit, expected):
    before = tree_digest(outputs / "runs" / "quickstart")
    folder = ml100k_copy(tmp_path, ml100k_dir, edit)
    result = run_cli(capsys, "train", *ML_MF, f"dataset.path={folder}", f"paths.output_dir={outputs}")
    assert_one_line_error(result, expected)
    assert tree_digest(outputs / "runs" / "quickstart") == before


@pytest.mark.slow
def test_empty_after_filtering(capsys, outputs, ml100k_dir):
    result = run_cli(capsys, "train", *ML_MF, f"dataset.path={ml100k_dir}",
                     "dataset.filter.rating_threshold=6", f"paths.output_dir={outputs}")  # fmt: skip
    assert_one_line_error(result, "rating")


@pytest.mark.slow
def test_bad_rows_can_be_skipped_and_are_counted(capsys, tmp_path, ml100k_dir):
    edits = "1\t2\tfive\t881250949\n1\t99999\t4\t881250949\n196\t242\t3\t881250949\n"
    folder = ml100k_copy(tmp_path, ml100k_dir, append("u.data", edits))
    result = run_cli(capsys, "train", *ML_MF, f"dataset.path={folder}", "dataset.on_bad_rows=skip",
                    "trainer.limit_train_batches=2", f"paths.output_dir={tmp_path / 'out'}")  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    import json

    (info,) = [json.loads(p.read_text()) for p in (tmp_path / "out").glob("runs/*/*/run_info.json")]
    assert sum(info["skipped_rows"].values()) == 3  # a non-numeric rating, an unknown item, a duplicate
    assert info["data"].startswith("movielens_100k: 100,000 interactions")


CSV_CASES = [
    ("missing column", b"words,label\nhello,pos\nbye,neg\n", "has no column 'text' (columns: words, label)"),
    ("not UTF-8", "text,label\ncaf\xe9,pos\n".encode("latin-1"), "is not UTF-8 text (line 2, byte 14)"),
    ("empty file", b"", "cannot parse"),
    ("only missing values", b"text,label\n,\n,\n", "has no rows with both a text and a label"),
    (
        "one class only",
        b"text,label\n" + b"".join(b"t%d,pos\n" % i for i in range(20)),
        "at least 2 distinct labels",
    ),
]


@pytest.mark.slow
@pytest.mark.parametrize(("content", "expected"), [c[1:] for c in CSV_CASES], ids=[c[0] for c in CSV_CASES])
def test_bad_csv_files(capsys, outputs, tmp_path, content, expected):
    before = tree_digest(outputs / "runs" / "quickstart")
    result = run_cli(capsys, "train", "experiment=text_csv_bert", "backbone=tiny_bert", *QUIET,
                    f"dataset.path={csv(tmp_path, content)}", f"paths.output_dir={outputs}")  # fmt: skip
    assert_one_line_error(result, expected)
    assert tree_digest(outputs / "runs" / "quickstart") == before


@pytest.mark.slow
def test_bad_checkpoints(capsys, outputs, tmp_path):
    (finished,) = list((outputs / "runs" / "quickstart").iterdir())
    before = tree_digest(outputs / "runs" / "quickstart")
    completed = run_cli(capsys, "train", f"ckpt_path={finished / 'checkpoints' / 'last.ckpt'}")
    assert_one_line_error(completed, "has completed; a finished run is never resumed")

    # an unfinished run whose checkpoint is corrupt, and one whose checkpoint is from another model
    for name, make in (
        ("corrupt", lambda path: path.write_bytes(b"not a checkpoint")),
        ("foreign", lambda path: shutil.copy(finished / "checkpoints" / "last.ckpt", path)),
    ):
        run = tmp_path / name / "runs" / "quickstart" / "2026-01-01_00-00-00_000000"
        shutil.copytree(finished, run)
        (run / "metrics.json").write_text('{"status": "interrupted"}')
        make(run / "checkpoints" / "last.ckpt")
        extra = ["model.embedding_dim=8"] if name == "foreign" else []
        result = run_cli(capsys, "train", f"ckpt_path={run / 'checkpoints' / 'last.ckpt'}", *extra)
        expected = "cannot load checkpoint" if name == "corrupt" else "does not fit this model"
        assert_one_line_error(result, expected)
    assert tree_digest(outputs / "runs" / "quickstart") == before
