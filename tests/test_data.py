"""Readers, splits and content encoding on real files (MovieLens-100K from ../shared, CSVs we write)."""

from __future__ import annotations

import hashlib
import inspect
import json
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hydra.utils import get_method, instantiate

from helpers.files import REPO, write_reviews_csv
from helpers.runs import ONE_EPOCH, SMALL_DATA, train
from recfit.config import compose
from recfit.data.configured import read_dataset
from recfit.data.download import download_zip
from recfit.data.sources.movielens import read_movielens_100k
from recfit.data.sources.synthetic import TOPICS, make_synthetic
from recfit.data.sources.text_csv import read_text_csv
from recfit.data.split import split_interactions
from recfit.errors import DataError


def test_movielens_100k_counts_and_texts(ml100k_dir):
    data = read_movielens_100k(str(ml100k_dir))
    frame = data.interactions
    assert len(frame) == 100_000
    assert (data.num_users, data.num_items) == (943, 1682)
    assert frame["user"].nunique() == 943 and frame["item"].nunique() == 1682
    assert frame["rating"].value_counts().sort_index().tolist() == [6110, 11370, 27145, 34174, 21201]
    assert data.item_text[0] == "Toy Story (1995). Genres: Animation, Children's, Comedy."
    latin = [text for text in data.item_text if any(ord(c) > 127 for c in text)]
    assert len(latin) == 9  # u.item's 9 Latin-1 lines decode to real accented letters, not mojibake
    assert all("\ufffd" not in text and "Ã" not in text for text in latin)
    assert any("é" in text for text in latin)
    assert data.user_text[0] == "A 24-year-old man, technician."


def test_movielens_missing_file_is_a_data_error(tmp_path, ml100k_dir):
    for name in ("u.data", "u.item"):
        (tmp_path / name).write_bytes((ml100k_dir / name).read_bytes())
    with pytest.raises(DataError, match="MovieLens-100K file missing: .*u.user"):
        read_movielens_100k(str(tmp_path))


def test_movielens_truncated_file_is_a_data_error(tmp_path, ml100k_dir):
    for name in ("u.data", "u.item", "u.user"):
        (tmp_path / name).write_bytes((ml100k_dir / name).read_bytes())
    with open(tmp_path / "u.data", "a") as handle:
        handle.write("1\t99999\t5\n")  # a cut-off line naming an item that does not exist
    with pytest.raises(DataError, match="missing or non-numeric"):
        read_movielens_100k(str(tmp_path))


def _zip_of(folder: Path, files: dict[str, bytes]) -> Path:
    archive = folder / "ml-100k.zip"
    with zipfile.ZipFile(archive, "w") as bundle:
        for name, content in files.items():
            bundle.writestr(f"ml-100k/{name}", content)
    return archive


def test_download_verifies_the_checksum(tmp_path):
    source = tmp_path / "server"
    source.mkdir()
    archive = _zip_of(source, {"u.data": b"1\t1\t5\t0\n"})
    md5 = hashlib.md5(archive.read_bytes()).hexdigest()
    target = tmp_path / "data"
    download_zip(archive.as_uri(), target, md5)
    assert (target / "ml-100k" / "u.data").read_bytes() == b"1\t1\t5\t0\n"
    with pytest.raises(DataError, match="checksum mismatch"):
        download_zip(archive.as_uri(), tmp_path / "other", "0" * 32)
    assert not list((tmp_path / "other").glob("*.zip"))  # no half-verified archive left behind


def test_synthetic_texts_carry_the_topics():
    data = make_synthetic(num_users=30, num_items=40, interactions_per_user=6, seed=3)
    assert len(data.interactions) == 30 * 6
    assert data.item_images.shape == (40, 32, 32, 3)
    words = {w for vocabulary in TOPICS.values() for w in vocabulary}
    assert all(any(w in text for w in words) for text in data.item_text)
    again = make_synthetic(num_users=30, num_items=40, interactions_per_user=6, seed=3)
    pd.testing.assert_frame_equal(data.interactions, again.interactions)
    assert not data.interactions.duplicated(["user", "item"]).any()


def test_per_user_split_is_seeded_and_disjoint():
    frame = make_synthetic(num_users=50, num_items=80, interactions_per_user=10).interactions
    splits = split_interactions(frame, 0.1, 0.2, seed=0)
    assert (len(splits.train), len(splits.val), len(splits.test)) == (350, 50, 100)
    keys = [set(zip(s["user"], s["item"], strict=True)) for s in (splits.train, splits.val, splits.test)]
    assert not (keys[0] & keys[1] or keys[0] & keys[2] or keys[1] & keys[2])
    assert splits.train["user"].nunique() == 50  # every user keeps training data
    same = split_interactions(frame, 0.1, 0.2, seed=0)
    other = split_interactions(frame, 0.1, 0.2, seed=1)
    pd.testing.assert_frame_equal(splits.test, same.test)
    assert not splits.test.equals(other.test)


def test_stratified_split_and_bootstrap(tmp_path):
    data = read_text_csv(str(write_reviews_csv(tmp_path / "r.csv", rows=100)), "review", "sentiment")
    splits = split_interactions(data.interactions, 0.1, 0.1, seed=0, stratify=True, bootstrap=30)
    assert splits.val["label"].value_counts().tolist() == [5, 5]
    assert splits.test["label"].value_counts().tolist() == [5, 5]
    assert len(splits.train) == 80 + 30


def test_text_csv_drops_incomplete_rows_and_encodes_labels(tmp_path):
    data = read_text_csv(str(write_reviews_csv(tmp_path / "r.csv", rows=20)), "review", "sentiment")
    assert data.num_items == 20 and data.label_names == ["neg", "pos"]
    assert data.interactions["label"].tolist() == [0, 1] * 10
    numeric = read_text_csv(str(tmp_path / "r.csv"), "review", "stars")
    assert numeric.interactions["rating"].tolist()[:2] == [1.0, 5.0]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "cannot parse"),
        (b'text,label\n"unterminated,pos\n', "cannot parse"),
        ("text,label\ncaf\xe9,pos\n".encode("latin-1"), "is not UTF-8 text"),
        (b"text,label\n,\n,\n", "has no rows with both a text and a label"),
        (b"words,label\nhello,pos\n", "has no column 'text' (columns: words, label)"),
    ],
)
def test_bad_csv_files(tmp_path, content, message):
    file = tmp_path / "bad.csv"
    file.write_bytes(content)
    with pytest.raises(DataError, match=message.replace("(", r"\(").replace(")", r"\)")):
        read_text_csv(str(file))


def test_missing_csv_file(tmp_path):
    with pytest.raises(DataError, match="CSV file not found"):
        read_text_csv(str(tmp_path / "none.csv"))


def test_split_refuses_an_empty_validation_split():
    # One interaction per user: it stays in train (RecBole's rule gives a 2-row user one held-out row).
    frame = pd.DataFrame({"user": [0, 1], "item": [0, 1]})
    with pytest.raises(DataError, match="validation split is empty"):
        split_interactions(frame, 0.1, 0.0, seed=0)
    assert np.isfinite(split_interactions(frame, 0.0, 0.0, seed=0).train["item"]).all()


# Metrics recorded before the DataModule took over reading, filtering and splitting (issue 13): the same
# config and seed must still give them. One run per task, a few steps each.
SHORT = [*ONE_EPOCH, "trainer.limit_train_batches=4", "quiet=true"]
SYNTHETIC_FINGERPRINT = "525d303221fcd91a6e4cd6987a36396ab4874f19a610f6ee3c5640efd87bf949"
RECORDED = {
    "rating": (
        ["dataset=movielens_100k", "backbone=none", "model=mf", "task=rating", "loss=mse", "split=folds",
         "dataset.filter.k_core_users=5"],
        "4890aea4e977c2c312abf73a126497c5795351f365210726e4d5f62e51f9a181",
        {"test/rmse": 1.1558785165814982, "test/mae": 0.9669959716439247, "val/rmse": 1.128696056178793},
    ),
    "ctr": (
        ["backbone=tiny_bert", "model=two_tower", "task=ctr", "loss=bce", *SMALL_DATA],
        SYNTHETIC_FINGERPRINT,
        {"test/auc": 0.6200716495513916, "test/logloss": 0.530518651008606, "val/auc": 0.3727598488330841},
    ),
    "ranking": (
        ["backbone=tiny_bert", "model=two_tower", "task=ranking", "loss=cross_entropy", *SMALL_DATA],
        SYNTHETIC_FINGERPRINT,
        {"test/ndcg@10": 0.10871302038431167, "test/mrr@20": 0.1000863142311573,
         "val/ndcg@20": 0.16146595627069474},
    ),
}  # fmt: skip


@pytest.mark.parametrize("task", sorted(RECORDED))
def test_same_seed_gives_the_recorded_metrics_and_data_fingerprint(tmp_path, ml100k_dir, task):
    overrides, fingerprint, expected = RECORDED[task]
    data = [f"dataset.reader.path={ml100k_dir}"] if "dataset=movielens_100k" in overrides else []
    record = train(tmp_path, *SHORT, *overrides, *data)
    info = json.loads((Path(record["run_dir"]) / "run_info.json").read_text())
    assert info["data_sha256"] == fingerprint
    assert {key: record["metrics"][key] for key in expected} == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize("option", sorted(p.stem for p in (REPO / "conf" / "dataset").glob("*.yaml")))
def test_each_data_set_reader_is_a_plain_instantiate_target(tmp_path, option):
    """`dataset.reader` holds a reader function and its arguments, all of them: Hydra calls it as it stands,
    and every argument the reader takes (e.g. on_bad_rows) can be set from the config."""
    overrides = {
        "multi_domain": ["dataset=[synthetic, text_csv]", f"dataset.domains.text_csv.reader.path={tmp_path}"],
    }.get(option, [f"dataset={option}", f"dataset.reader.path={tmp_path}"] if option != "synthetic" else [])
    cfg = compose(overrides)
    reader = cfg.dataset.reader
    accepted = inspect.signature(get_method(reader._target_)).parameters
    assert set(reader) - {"_target_"} == set(accepted), option
    bound = instantiate(reader, _partial_=True, _recursive_=False)
    assert set(bound.keywords) == set(reader) - {"_target_"}


def test_reader_arguments_at_their_old_place_are_read_under_dataset_reader(ml100k_dir):
    """`dataset.path=...` (the layout before `dataset.reader`) keeps composing the same config."""
    old = compose(["dataset.num_users=40", "dataset.seed=3", "dataset.batch_size=16"])
    new = compose(["dataset.reader.num_users=40", "dataset.reader.seed=3", "dataset.batch_size=16"])
    assert old == new and new.dataset.reader.num_users == 40
    domains = compose(
        ["dataset=[synthetic, movielens_100k]", f"dataset.domains.movielens_100k.path={ml100k_dir}"]
    )
    assert domains.dataset.domains.movielens_100k.reader.path == str(ml100k_dir)
    assert read_dataset(domains.dataset).domain_names == ["synthetic", "movielens_100k"]


def test_an_earlier_run_folder_with_reader_arguments_at_their_old_place_recomposes(tmp_path):
    """overrides.yaml of a run made before `dataset.reader` (rerun, resume, eval read it) still composes."""
    from recfit.config.rerun import OVERRIDES_FILE, saved_overrides

    (tmp_path / OVERRIDES_FILE).parent.mkdir()
    (tmp_path / OVERRIDES_FILE).write_text("- dataset.num_users=40\n- dataset.interactions_per_user=8\n")
    saved = saved_overrides(tmp_path)
    assert saved == ["dataset.reader.num_users=40", "dataset.reader.interactions_per_user=8"]
    assert compose(saved).dataset.reader.num_users == 40
