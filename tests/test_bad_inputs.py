"""Forty-odd bad inputs, each as a user would hit it: a non-zero exit, one `recfit: error:` line, no
traceback, and the earlier run folder byte for byte as it was.

They run `recfit` in this process (`run_cli`): the same `main()` a shell reaches, without paying the
imports once per case. tests/test_cli.py keeps a few of them as real subprocesses, which prove the
command-line path itself (argv, exit code, stderr)."""

from __future__ import annotations

import shutil
import subprocess
import sys
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
        ["experiment=ml100k_rating", "dataset.reader.path=/no/such/dir"],
        "dataset.reader.path does not exist",
    ),
    ("required path", ["experiment=text_csv_bert"], "required config value missing: dataset.reader.path"),
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
    (
        "bad-rows policy",
        ["dataset=movielens_100k", "dataset.reader.on_bad_rows=maybe"],
        "dataset.reader.on_bad_rows: Invalid value 'maybe'",
    ),
    ("resume value", ["resume=sometimes"], "resume must be auto or null"),
    ("bad sweep job", ["-m", "loss=mse,cross_entropy"], "sweep job 0 ("),
    ("nothing to resume", ["resume=auto", "experiment_name=nothing_here"], "resume=auto: no unfinished run"),
    ("checkpoint path", ["ckpt_path=/no/such.ckpt"], "ckpt_path does not exist: /no/such.ckpt"),
    # issue 15: each of these printed a traceback, or was accepted and silently did something else
    ("recursive interpolation", ["seed=${seed}"], "seed: Recursive interpolation detected"),
    ("missing variable", ["seed=${oc.env:RECFIT_UNSET_X}"], "variable 'RECFIT_UNSET_X' not found"),
    ("huge batch", ["dataset.batch_size=1000000000000000000000"], "dataset.batch_size is too large"),
    ("seed too large", ["seed=4294967296"], "seed must be a whole number from 0 to 4294967295"),
    ("negative seed", ["seed=-1"], "seed must be a whole number from 0 to 4294967295 (2**32 - 1), got -1"),
    ("negative split seed", ["dataset.split_seed=-3"], "dataset.split_seed must be a whole number from 0"),
    ("negative lr", ["optimizer.head_lr=-1.0"], "optimizer.head_lr must be a positive learning rate"),
    ("zero lr", ["optimizer.backbone_lr=0"], "optimizer.backbone_lr must be a positive learning rate"),
    ("nan lr", ["optimizer.head_lr=nan"], "optimizer.head_lr must be a positive learning rate"),
    ("negative decay", ["optimizer.weight_decay=-0.1"], "optimizer.weight_decay must be 0 or more"),
    ("unknown strategy", ["trainer.strategy=foo"], "trainer.strategy 'foo' is not a Lightning strategy"),
    ("negative epochs", ["trainer.max_epochs=-5"], "trainer.max_epochs must be -1 (no limit) or 0 or more"),
    ("foreign model", ["model._target_=os.system"], "refusing model._target_='os.system'"),
    ("unknown added key", ["+no_such_key=1"], "unknown config key 'no_such_key'"),
    ("typo in added key", ["+trainer.max_epoch=3"], "'trainer.max_epoch' (did you mean 'trainer.max_epochs"),
    ("escaping name", ["experiment_name=../../x"], "experiment_name '../../x' would write outside"),
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
    ("rating off scale", append("u.data", "1\t2\t6\t881250949\n"), "with a rating other than a whole 1-5"),
    ("half a star", append("u.data", "1\t2\t3.5\t881250949\n"), "with a rating other than a whole 1-5"),
    ("infinite rating", append("u.data", "1\t2\tinf\t881250949\n"), "or a NaN or infinite one"),
    ("future timestamp", append("u.data", "1\t2\t3\t99999999999\n"), "with a timestamp outside 1995-01-01"),
    ("negative timestamp", append("u.data", "1\t2\t3\t-5\n"), "with a timestamp outside 1995-01-01"),
]


@pytest.mark.slow
@pytest.mark.parametrize(("edit", "expected"), [c[1:] for c in DATA_CASES], ids=[c[0] for c in DATA_CASES])
def test_bad_movielens_files(capsys, outputs, tmp_path, ml100k_dir, edit, expected):
    before = tree_digest(outputs / "runs" / "quickstart")
    folder = ml100k_copy(tmp_path, ml100k_dir, edit)
    result = run_cli(capsys, "train", *ML_MF, f"dataset.reader.path={folder}", f"paths.output_dir={outputs}")
    assert_one_line_error(result, expected)
    assert tree_digest(outputs / "runs" / "quickstart") == before


@pytest.mark.slow
def test_empty_after_filtering(capsys, outputs, ml100k_dir):
    result = run_cli(capsys, "train", *ML_MF, f"dataset.reader.path={ml100k_dir}",
                     "dataset.filter.rating_threshold=6", f"paths.output_dir={outputs}")  # fmt: skip
    assert_one_line_error(result, "rating")


@pytest.mark.slow
def test_bad_rows_can_be_skipped_and_are_counted(capsys, tmp_path, ml100k_dir):
    edits = "1\t2\tfive\t881250949\n1\t99999\t4\t881250949\n196\t242\t3\t881250949\n"
    folder = ml100k_copy(tmp_path, ml100k_dir, append("u.data", edits))
    result = run_cli(capsys, "train", *ML_MF, f"dataset.reader.path={folder}",
                    "dataset.reader.on_bad_rows=skip", "trainer.limit_train_batches=2",
                    f"paths.output_dir={tmp_path / 'out'}")  # fmt: skip
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
                    f"dataset.reader.path={csv(tmp_path, content)}",
                    f"paths.output_dir={outputs}")  # fmt: skip
    assert_one_line_error(result, expected)
    assert tree_digest(outputs / "runs" / "quickstart") == before


@pytest.mark.slow
def test_bad_checkpoints(capsys, outputs, tmp_path):
    (finished,) = list((outputs / "runs" / "quickstart").iterdir())
    before = tree_digest(outputs / "runs" / "quickstart")
    completed = run_cli(capsys, "train", f"ckpt_path={finished / 'checkpoints' / 'best.ckpt'}")
    assert_one_line_error(completed, "has completed; a finished run is never resumed")

    # an unfinished run whose checkpoint is corrupt, and one whose checkpoint is from another model
    for name, make in (
        ("corrupt", lambda path: path.write_bytes(b"not a checkpoint")),
        ("foreign", lambda path: shutil.copy(finished / "checkpoints" / "best.ckpt", path)),
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


# Issue 15, part 4: checked in process by the functions that refuse them (no training needed).


def test_output_folder_under_a_file_is_refused(tmp_path):
    from recfit.config import compose, validate
    from recfit.errors import ConfigError

    (tmp_path / "a_file").write_text("")
    with pytest.raises(ConfigError, match="a_file is a file, not a folder"):
        validate(compose([f"paths.output_dir={tmp_path / 'a_file' / 'outputs'}"]))


@pytest.mark.parametrize("kind", ["fifo", "device"])
def test_a_fifo_or_device_as_data_path_is_refused_not_read(tmp_path, kind):
    """Reading either would block for ever (a FIFO) or never end (/dev/zero)."""
    import os

    from recfit.config import compose, validate
    from recfit.errors import ConfigError

    path = Path("/dev/zero")
    if kind == "fifo":
        path = tmp_path / "pipe"
        os.mkfifo(path)
    with pytest.raises(ConfigError, match="is not a regular file or folder"):
        validate(compose(["experiment=text_csv_bert", f"dataset.reader.path={path}"]))


def ml100k_with_folds(tmp: Path, source: Path) -> Path:
    folder = ml100k_copy(tmp, source)
    for fold in "12345ab":
        shutil.copy(source / f"u{fold}.test", folder / f"u{fold}.test")
    return folder


def test_skipped_rows_leave_the_folds(tmp_path, ml100k_dir):
    """on_bad_rows=skip on ML-100K used to fail the u1-u5 fold check, whatever the split."""
    from recfit.data.sources.movielens import read_movielens_100k
    from recfit.data.split import make_splits
    from recfit.errors import DataError

    folder = ml100k_with_folds(tmp_path, ml100k_dir)
    first_test_row = (folder / "u1.test").read_text().splitlines()[0].split("\t")
    lines = (folder / "u.data").read_text().splitlines()
    lines = [
        "\t".join([*row[:2], "9", row[3]]) if row[:2] == first_test_row[:2] else line
        for line, row in ((line, line.split("\t")) for line in lines)
    ]  # that rating, off the 1-5 scale, is in fold 1's test set
    (folder / "u.data").write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match="1 rows with a rating other than a whole 1-5 stars"):
        read_movielens_100k(str(folder))
    data = read_movielens_100k(str(folder), on_bad_rows="skip")
    assert len(data.interactions) == 99_999 and data.interactions["fold_1"].sum() == 19_999
    assert data.interactions["fold_2"].sum() == 20_000
    for method in ("ratio", "folds"):
        splits = make_splits(data, method, val=0.1, test=0.1, seed=0, fold="1")
        assert len(splits.train) + len(splits.val) + len(splits.test) == 99_999


def test_recbole_text_in_a_float_field_and_nan_ratings(tmp_path):
    from recfit.data.sources.recbole import read_atomic_file, read_recbole_atomic
    from recfit.errors import DataError

    folder = tmp_path / "toy"
    folder.mkdir()
    header = "user_id:token\titem_id:token\trating:float\ttimestamp:float\n"
    rows = ["u1\ta\t4.5\t100", "u1\tb\tfour\t110", "u2\ta\tnan\t120", "u2\tb\tinf\t130", "u3\ta\t2\t140"]
    (folder / "toy.inter").write_text(header + "\n".join(rows) + "\n")
    with pytest.raises(DataError, match="1 rows with text in float field 'rating'"):
        read_recbole_atomic(str(folder))
    data = read_recbole_atomic(str(folder), on_bad_rows="skip")
    assert data.interactions["rating"].tolist() == [4.5, 2.0]
    assert sum(data.skipped_rows.values()) == 3
    (folder / "toy.user").write_text("user_id:token\tage:float\nu1\tthirty\nu2\t\nu3\t31\n")
    with pytest.raises(DataError, match="toy.user line 2: float field 'age' holds text 'thirty'"):
        read_atomic_file(folder / "toy.user")


def test_an_infinite_numeric_label_is_bad_data(tmp_path):
    from recfit.data.sources.text_csv import read_text_csv
    from recfit.errors import DataError

    file = tmp_path / "scores.csv"
    file.write_text("text,label\n" + "".join(f"t{i},{i % 3}\n" for i in range(10)) + "t,inf\n")
    with pytest.raises(DataError, match="1 rows with an infinite label"):
        read_text_csv(str(file))


def test_unsafe_settings_are_refused_before_torch_is_imported():
    """Each used to be refused only after ~20 s of loading data and libraries."""
    code = (
        "import sys\nfrom recfit.cli import main\n"
        "for bad in sys.argv[1:]:\n"
        "    try:\n        main(['train', bad])\n"
        "    except SystemExit as stop:\n        print('exit', stop.code)\n"
        "print('torch loaded' if 'torch' in sys.modules else 'torch not loaded')"
    )
    bad = ["model._target_=os.system", "trainer.strategy=foo", "trainer.max_epochs=-5", "optimizer.head_lr=0"]
    result = subprocess.run([sys.executable, "-c", code, *bad], capture_output=True, text=True, timeout=120)
    assert result.stdout.split("\n")[:-1] == ["exit 2"] * len(bad) + ["torch not loaded"], result.stderr
    assert result.stderr.count("recfit: error:") == len(bad) and "Traceback" not in result.stderr
