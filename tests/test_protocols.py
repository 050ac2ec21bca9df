"""Split protocols, filters and the RecBole / Amazon Games / MovieLens readers.

Real data comes from ../shared/data (MovieLens-100K, Amazon Games-6k) and is never copied into the
repository; the small files of the format tests are written here.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from recfit.data.filters import filter_interactions
from recfit.data.sources.movielens import read_movielens_1m, read_movielens_100k
from recfit.data.sources.recbole import read_amazon_games, read_recbole_atomic
from recfit.data.sources.synthetic import make_synthetic
from recfit.data.split import Splits, make_splits, recbole_counts
from recfit.data.tables import RecData
from recfit.errors import DataError


@pytest.fixture(scope="module")
def ml100k(ml100k_dir) -> RecData:
    return read_movielens_100k(str(ml100k_dir))


@pytest.fixture(scope="module")
def games(amazon_games_dir) -> RecData:
    return read_amazon_games(str(amazon_games_dir))


def _pairs(frame: pd.DataFrame) -> set[tuple[int, int]]:
    return set(zip(frame["user"].tolist(), frame["item"].tolist(), strict=True))


def _assert_disjoint_cover(splits: Splits, total: int) -> None:
    """train / val / test share no (user, item) and together hold every interaction once."""
    train, val, test = (_pairs(s) for s in (splits.train, splits.val, splits.test))
    assert not (train & val or train & test or val & test)
    assert len(train) + len(val) + len(test) == total


def _frame(counts: dict[int, int]) -> RecData:
    """Users with the given numbers of interactions, timestamps increasing with the item code."""
    rows = [(user, item, item) for user, count in counts.items() for item in range(count)]
    frame = pd.DataFrame(rows, columns=["user", "item", "timestamp"])
    return RecData("toy", frame, num_users=max(counts) + 1, num_items=max(counts.values()))


# --- ratio -----------------------------------------------------------------------------------------


def test_ratio_counts_follow_recboles_rounding_rule():
    # Worked by hand from RecBole 1.2.1 `_calcu_split_ids`: floor(0.1 * n) for val and test, train
    # the rest; then test, then val, gets 1 row when 0 < 0.1 * n < 1 and train still has > 1.
    expected = {1: (1, 0, 0), 2: (1, 0, 1), 3: (1, 1, 1), 9: (7, 1, 1), 10: (8, 1, 1), 15: (13, 1, 1)}
    expected |= {19: (17, 1, 1), 20: (16, 2, 2), 25: (21, 2, 2)}
    data = _frame({user: n for user, n in enumerate(expected)})
    splits = make_splits(data, "ratio", val=0.1, test=0.1, seed=0)
    sizes = [s.groupby("user").size() for s in (splits.train, splits.val, splits.test)]
    for user, counts in enumerate(expected.values()):
        assert tuple(int(s.get(user, 0)) for s in sizes) == counts
    # 0.7/0.1/0.2 of 15: 1.5 -> 1 and 3.0 -> 3; of 3: 0.3 and 0.6 round to 0, then both get 1.
    n_val, n_test = recbole_counts(np.array([15, 3]), 0.1, 0.2)
    assert (n_val.tolist(), n_test.tolist()) == ([1, 1], [3, 1])


def test_ratio_per_user_on_movielens(ml100k):
    splits = make_splits(ml100k, "ratio", val=0.1, test=0.1, seed=0)
    per_user = ml100k.interactions.groupby("user").size().to_numpy()
    assert len(splits.val) == len(splits.test) == int((per_user // 10).sum()) == 9_596
    assert len(splits.train) == 100_000 - 2 * 9_596
    _assert_disjoint_cover(splits, 100_000)
    assert splits.protocol == "ratio 0.8/0.1/0.1 per user, random order, split_seed 0"
    again, other = (make_splits(ml100k, "ratio", seed=s) for s in (0, 1))
    pd.testing.assert_frame_equal(splits.test, again.test)
    assert _pairs(splits.test) != _pairs(other.test)
    assert other.protocol.endswith("split_seed 1")


def test_ratio_time_order_puts_each_users_latest_in_test(ml100k):
    splits = make_splits(ml100k, "ratio", order="time", seed=0)
    latest_train = splits.train.groupby("user")["timestamp"].max()
    assert (splits.val.groupby("user")["timestamp"].min() >= latest_train).all()
    assert (
        splits.test.groupby("user")["timestamp"].min() >= splits.val.groupby("user")["timestamp"].max()
    ).all()
    assert splits.protocol == "ratio 0.8/0.1/0.1 per user, time order"  # no seed: nothing is random
    pd.testing.assert_frame_equal(splits.test, make_splits(ml100k, "ratio", order="time", seed=5).test)


def test_ratio_global_and_bootstrap(ml100k):
    splits = make_splits(ml100k, "ratio", per_user=False, val=0.05, test=0.2, seed=3, bootstrap=500)
    assert (len(splits.val), len(splits.test), len(splits.train)) == (5_000, 20_000, 75_000 + 500)
    assert (
        splits.protocol == "ratio 0.75/0.05/0.2 global, random order, bootstrap +500 train rows, split_seed 3"
    )


# --- temporal and leave-one-out ---------------------------------------------------------------------


def test_temporal_global_is_one_cut_in_time(ml100k):
    splits = make_splits(ml100k, "temporal", per_user=False, seed=0)
    assert (len(splits.train), len(splits.val), len(splits.test)) == (80_000, 10_000, 10_000)
    assert splits.test["timestamp"].min() >= splits.val["timestamp"].max() >= splits.train["timestamp"].max()
    _assert_disjoint_cover(splits, 100_000)
    assert splits.protocol == "temporal 0.8/0.1/0.1 global by timestamp"
    pd.testing.assert_frame_equal(splits.test, make_splits(ml100k, "temporal", per_user=False, seed=9).test)
    per_user = make_splits(ml100k, "temporal", per_user=True)
    assert per_user.protocol == "temporal 0.8/0.1/0.1 per user by timestamp"
    assert len(per_user.test) == 9_596


def test_time_protocols_need_timestamps():
    data = _frame({0: 5, 1: 5})
    data.interactions = data.interactions.drop(columns="timestamp")
    for method in ("temporal", "leave_one_out"):
        with pytest.raises(DataError, match="has no 'timestamp'"):
            make_splits(data, method)


def test_leave_one_out_holds_out_the_last_two_per_user():
    data = _frame({0: 5, 1: 2, 2: 3})
    data.interactions = data.interactions.iloc[::-1].reset_index(drop=True)  # row order is not time order
    splits = make_splits(data, "leave_one_out", seed=0)
    assert sorted(_pairs(splits.test)) == [(0, 4), (2, 2)]
    assert sorted(_pairs(splits.val)) == [(0, 3), (2, 1)]
    assert sorted(_pairs(splits.train)) == [(0, 0), (0, 1), (0, 2), (1, 0), (1, 1), (2, 0)]
    assert splits.protocol.startswith("leave_one_out per user by timestamp: last -> test")
    with pytest.raises(
        DataError, match="validation split is empty: leave_one_out needs users with at least 3"
    ):
        make_splits(_frame({0: 2, 1: 1}), "leave_one_out")


def test_leave_one_out_reproduces_the_amazon_games_files(games, amazon_games_dir):
    def targets(name: str) -> pd.DataFrame:
        frame = pd.read_csv(amazon_games_dir / f"Games-6k.{name}.inter", sep="\t", dtype=str)
        return frame.rename(columns=lambda c: c.split(":")[0])

    item_ids = pd.read_csv(amazon_games_dir / "Games-6k.item", sep="\t", dtype=str, usecols=[0]).iloc[:, 0]
    test_rows, valid_rows = targets("test"), targets("valid")
    user_code = pd.Series(range(len(test_rows)), index=test_rows["user_id"])  # users in file order
    item_code = pd.Series(range(len(item_ids)), index=item_ids.to_numpy())

    splits = make_splits(games, "leave_one_out")
    assert (len(splits.val), len(splits.test)) == (50_546, 50_546)
    for split, rows in ((splits.test, test_rows), (splits.val, valid_rows)):
        expected = pd.Series(
            item_code[rows["item_id"]].to_numpy(), index=user_code[rows["user_id"]].to_numpy()
        ).sort_index()
        actual = split.set_index("user")["item"].sort_index()
        np.testing.assert_array_equal(actual.index, expected.index)
        np.testing.assert_array_equal(actual.to_numpy(), expected.to_numpy())


# --- predefined folds and cold items ---------------------------------------------------------------


def test_folds_use_the_movielens_test_files(ml100k, ml100k_dir):
    def raw_pairs(name: str) -> set[tuple[int, int]]:
        frame = pd.read_csv(ml100k_dir / name, sep="\t", header=None)
        return set(zip(frame[0] - 1, frame[1] - 1, strict=True))  # ML-100K codes are id - 1

    splits = make_splits(ml100k, "folds", fold="1", val=0.1, seed=0)
    assert _pairs(splits.test) == raw_pairs("u1.test")
    assert _pairs(splits.train) | _pairs(splits.val) == raw_pairs("u1.base")
    _assert_disjoint_cover(splits, 100_000)
    assert len(splits.test) == 20_000 and 0 < len(splits.val) < 10_000
    assert splits.protocol == (
        "fold '1' predefined test set (fold_1), val 0.1 of the rest per user, random order, split_seed 0"
    )
    other = make_splits(ml100k, "folds", fold="1", val=0.1, seed=1)
    assert _pairs(other.test) == _pairs(splits.test) and _pairs(other.val) != _pairs(splits.val)
    assert _pairs(make_splits(ml100k, "folds", fold="b").test) == raw_pairs("ub.test")
    with pytest.raises(DataError, match="this data set has no predefined fold '3'"):
        make_splits(_frame({0: 5}), "folds", fold="3")


def test_cold_items_never_reach_training(ml100k):
    splits = make_splits(ml100k, "cold_item", val=0.1, test=0.1, seed=0)
    train_items, val_items, test_items = (set(s["item"]) for s in (splits.train, splits.val, splits.test))
    assert not (train_items & val_items or train_items & test_items or val_items & test_items)
    assert (len(train_items), len(val_items), len(test_items)) == (1_346, 168, 168)  # of 1,682 items
    _assert_disjoint_cover(splits, 100_000)
    assert splits.protocol == (
        "cold_item 0.8/0.1/0.1 of items (1,346/168/168 items) with all their interactions, split_seed 0"
    )
    pd.testing.assert_frame_equal(splits.test, make_splits(ml100k, "cold_item", seed=0).test)
    assert set(make_splits(ml100k, "cold_item", seed=1).test["item"]) != test_items


@pytest.mark.parametrize("method", ["ratio", "cold_item"])
def test_train_fraction_keeps_nested_train_subsets_and_the_same_evaluation(ml100k, method):
    full = make_splits(ml100k, method, seed=4)
    parts = {f: make_splits(ml100k, method, seed=4, train_fraction=f) for f in (0.1, 0.25, 0.5)}
    rows = {f: set(map(tuple, s.train[["user", "item"]].to_numpy())) for f, s in parts.items()}
    assert rows[0.1] < rows[0.25] < rows[0.5] < set(map(tuple, full.train[["user", "item"]].to_numpy()))
    for fraction, splits in parts.items():
        assert len(splits.train) == math.ceil(fraction * len(full.train))
        kept = f"train_fraction {fraction:g} ({len(splits.train):,} train rows), split_seed 4"
        assert kept in splits.protocol
        pd.testing.assert_frame_equal(splits.val, full.val)
        pd.testing.assert_frame_equal(splits.test, full.test)
        # the rows left out are still masked as seen: every fraction ranks the same candidates
        for split in ("val", "test"):
            seen = splits.seen_before(split).sort_values(["user", "item"]).reset_index(drop=True)
            expected = full.seen_before(split).sort_values(["user", "item"]).reset_index(drop=True)
            pd.testing.assert_frame_equal(seen, expected)
    other_seed = make_splits(ml100k, method, seed=5, train_fraction=0.1).train
    assert rows[0.1] != set(map(tuple, other_seed[["user", "item"]].to_numpy()))


def test_bad_split_arguments_are_data_errors():
    data = _frame({0: 5})
    for kwargs, message in (
        ({"method": "random"}, "unknown split method 'random'"),
        ({"method": "ratio", "order": "newest"}, "unknown split order"),
        ({"method": "ratio", "val": 0.6, "test": 0.4}, "must be >= 0 and sum to less than 1"),
        ({"method": "ratio", "train_fraction": 1.5}, r"split.train_fraction=1.5 must be in \(0, 1\]"),
    ):
        with pytest.raises(DataError, match=message):
            make_splits(data, **kwargs)


# --- filters ---------------------------------------------------------------------------------------


def _small(rows: list[tuple[int, int]], **columns) -> RecData:
    frame = pd.DataFrame(rows, columns=["user", "item"]).assign(**columns)
    users, items = frame["user"].max() + 1, frame["item"].max() + 1
    return RecData(
        "small",
        frame,
        num_users=users,
        num_items=items,
        item_text=[f"item {i}" for i in range(items)],
        user_text=[f"user {u}" for u in range(users)],
    )


def test_k_core_removes_until_stable():
    # u0 has one interaction -> goes; then i0 has one -> goes; then u1 has one -> goes. A single pass
    # would have stopped after u0.
    rows = [(2, 1), (2, 2), (3, 1), (3, 2), (1, 2), (1, 0), (0, 0)]
    filtered, description = filter_interactions(_small(rows), k_core_users=2, k_core_items=2)
    assert filtered.interactions[["user", "item"]].values.tolist() == [[0, 0], [0, 1], [1, 0], [1, 1]]
    assert (filtered.num_users, filtered.num_items) == (2, 2)
    assert filtered.item_text == ["item 1", "item 2"] and filtered.user_text == ["user 2", "user 3"]
    if hasattr(filtered, "item_features"):  # side-feature tables are subset like the texts
        featured = _small(rows)
        featured.item_features = pd.DataFrame({"genre": ["a", "b", "c"]})
        subset = filter_interactions(featured, k_core_users=2, k_core_items=2)[0].item_features
        assert subset["genre"].tolist() == ["b", "c"]
    assert description == "kept 4 of 7 interactions (2 of 4 users, 2 of 3 items): 2-core users/items"
    chain = [(0, 0), (0, 1), (1, 1), (1, 2), (2, 2), (2, 3), (3, 3)]  # peels away completely
    with pytest.raises(DataError, match="no interactions left after filtering by 2-core users/items"):
        filter_interactions(_small(chain), k_core_users=2, k_core_items=2)


def test_rating_threshold_and_deduplication():
    rows = [(0, 0), (0, 1), (0, 0), (1, 1), (1, 1)]
    data = _small(rows, rating=[5.0, 2.0, 3.0, 4.0, 5.0], timestamp=[9, 1, 2, 3, 3])
    filtered, description = filter_interactions(data, rating_threshold=4, deduplicate=True)
    # (0, 0): the last by time is the first row (t=9, rating 5); (1, 1): a tie in time keeps the later row.
    assert filtered.interactions[["user", "item", "rating"]].values.tolist() == [[0, 0, 5.0], [1, 1, 5.0]]
    assert description.endswith("deduplicated (user, item) keeping the last, rating >= 4")
    no_time = _small(rows, rating=[5.0, 2.0, 3.0, 4.0, 5.0])
    assert filter_interactions(no_time, deduplicate=True)[0].interactions["rating"].tolist() == [
        2.0,
        3.0,
        5.0,
    ]
    with pytest.raises(DataError, match="no interactions left after filtering by rating >= 6"):
        filter_interactions(data, rating_threshold=6)
    with pytest.raises(DataError, match="needs a 'rating' column"):
        filter_interactions(_small(rows), rating_threshold=4)
    assert filter_interactions(data) == (data, "no filtering")


def test_filtering_keeps_texts_with_their_interactions(ml100k):
    data = RecData(
        **{**ml100k.__dict__, "interactions": ml100k.interactions.assign(old_item=lambda f: f["item"])}
    )
    data.interactions["old_user"] = data.interactions["user"]
    filtered, description = filter_interactions(data, rating_threshold=4, k_core_users=5, k_core_items=5)
    frame = filtered.interactions
    assert description.startswith(
        "kept 54,413 of 100,000 interactions (938 of 943 users, 1,008 of 1,682 items)"
    )
    assert frame["item"].max() == filtered.num_items - 1 and frame["item"].nunique() == filtered.num_items
    new_text = np.array(filtered.item_text, dtype=object)[frame["item"]]
    old_text = np.array(ml100k.item_text, dtype=object)[frame["old_item"]]
    assert (new_text == old_text).all()
    assert (
        np.array(filtered.user_text)[frame["user"]] == np.array(ml100k.user_text)[frame["old_user"]]
    ).all()
    toy_story = filtered.item_text.index("Toy Story (1995). Genres: Animation, Children's, Comedy.")
    assert (frame.loc[frame["item"] == toy_story, "old_item"] == 0).all()
    assert frame.filter(like="fold_").shape[1] == 7  # the fold columns travel with their rows


def test_filtering_subsets_item_images():
    data = make_synthetic(num_users=30, num_items=60, interactions_per_user=6, seed=1)
    data.interactions["old_item"] = data.interactions["item"]
    filtered, _ = filter_interactions(data, k_core_items=4)
    assert filtered.num_items < 60 and filtered.item_images.shape[0] == filtered.num_items
    frame = filtered.interactions
    assert (filtered.item_images[frame["item"]] == data.item_images[frame["old_item"]]).all()


# --- readers ---------------------------------------------------------------------------------------


def _write(path: Path, lines: list[str], encoding: str = "utf-8") -> None:
    path.write_bytes(("\n".join(lines) + "\n").encode(encoding))


def _toy_recbole(folder: Path) -> Path:
    folder.mkdir()
    _write(
        folder / "toy.inter",
        [
            "user_id:token\titem_id:token\trating:float\ttimestamp:float",
            "u7\tb\t4.5\t100",
            "u3\ta\t2\t50",
            "u7\ta\t5\t120",
        ],
    )
    _write(
        folder / "toy.item",
        [
            "item_id:token\ttitle:token_seq\tgenre:token_seq",
            "a\tTom &amp; Jerry\tCartoon Comedy",
            'b\t"Quoted" Film\t',
            "c\tNever Seen\tDrama",
        ],
    )
    _write(folder / "toy.user", ["user_id:token\tage:float\tgender:token", "u3\t31\tF", "u7\t\tM"])
    return folder


def test_recbole_atomic_reader(tmp_path):
    folder = _toy_recbole(tmp_path / "toy")
    data = read_recbole_atomic(str(folder))
    frame = data.interactions
    assert (data.name, data.num_users, data.num_items) == ("toy", 2, 3)
    assert frame[["user", "item"]].values.tolist() == [[1, 1], [0, 0], [1, 0]]  # codes in .user/.item order
    assert frame["rating"].dtype == np.float32 and frame["rating"].tolist() == [4.5, 2.0, 5.0]
    assert frame["timestamp"].tolist() == [100, 50, 120]
    assert data.item_text == ["Tom & Jerry", '"Quoted" Film', "Never Seen"]
    assert data.user_text == ["age: 31, gender: F", "gender: M"]
    both = read_recbole_atomic(str(folder), "toy", text_fields=["title", "genre"])
    assert both.item_text[0] == "Tom & Jerry. Cartoon Comedy" and both.item_text[1] == '"Quoted" Film'

    (folder / "toy.item").unlink()
    (folder / "toy.user").unlink()
    bare = read_recbole_atomic(str(folder))
    assert bare.interactions[["user", "item"]].values.tolist() == [[0, 0], [1, 1], [0, 1]]  # first appearance
    assert bare.item_text is None and bare.user_text is None


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (
            {"toy.inter": ["user_id:token\titem_id:token", "u7\tz", "u3\tz", "u3\ta"]},
            "2 interactions name items",
        ),
        ({"toy.inter": ["user_id:token\titem_id:tokens", "u7\ta"]}, "bad header cell 'item_id:tokens'"),
        ({"toy.inter": ["user_id\titem_id:token", "u7\ta"]}, "bad header cell 'user_id'"),
        ({"toy.inter": ["user:token\titem_id:token", "u7\ta"]}, "has no field user_id"),
        ({"toy.item": ["item_id:token\ttitle:token_seq", "a\tCaf\xe9"]}, "is not UTF-8 text"),
    ],
)
def test_bad_recbole_files(tmp_path, edit, message):
    folder = _toy_recbole(tmp_path / "toy")
    for name, lines in edit.items():
        _write(folder / name, lines, "latin-1")
    with pytest.raises(DataError, match=message):
        read_recbole_atomic(str(folder))


def test_recbole_missing_inter_file(tmp_path):
    with pytest.raises(DataError, match="RecBole atomic file missing: .*none.inter"):
        read_recbole_atomic(str(tmp_path), "none")


def test_amazon_games_counts_and_titles(games):
    assert len(games.interactions) == 440_264
    assert (games.num_users, games.num_items) == (50_546, 16_859)
    assert games.interactions["user"].nunique() == 50_546 and games.interactions["item"].nunique() == 16_859
    assert games.item_text[11] == "Phantasy Star Online, Episode I & II"
    assert not any("&amp;" in title for title in games.item_text)
    assert not games.interactions.duplicated(["user", "item"]).any()


def test_amazon_games_missing_file(tmp_path, amazon_games_dir):
    (tmp_path / "Games-6k.item").write_bytes((amazon_games_dir / "Games-6k.item").read_bytes())
    with pytest.raises(DataError, match="RecBole atomic file missing: .*Games-6k.test.inter"):
        read_amazon_games(str(tmp_path))


def _toy_movielens_1m(folder: Path) -> Path:
    folder.mkdir()
    _write(folder / "ratings.dat", ["1::1193::5::978300760", "1::661::3::978302109", "2::1193::4::978298413"])
    _write(
        folder / "movies.dat",
        [
            "1193::One Flew Over the Cuckoo's Nest (1975)::Drama",
            "661::Misérables, Les (1995)::Drama|Musical",
            '3::"Great Performances" Cats (1998)::Musical',
        ],
        encoding="latin-1",
    )
    _write(folder / "users.dat", ["1::F::1::10::48067", "2::M::56::16::70072"])
    return folder


def test_movielens_1m_reader(tmp_path):
    data = read_movielens_1m(str(_toy_movielens_1m(tmp_path / "ml-1m")))
    assert (data.num_users, data.num_items) == (2, 3)
    assert data.interactions[["user", "item"]].values.tolist() == [[0, 0], [0, 1], [1, 0]]
    assert data.interactions["rating"].tolist() == [5.0, 3.0, 4.0]
    assert data.interactions["timestamp"].tolist() == [978300760, 978302109, 978298413]
    assert data.item_text == [
        "One Flew Over the Cuckoo's Nest (1975). Genres: Drama.",
        "Misérables, Les (1995). Genres: Drama, Musical.",
        '"Great Performances" Cats (1998). Genres: Musical.',
    ]
    assert data.user_text == [
        "A woman aged under 18, K-12 student.",
        "A man aged 56 or older, self-employed.",
    ]


def test_movielens_1m_bad_files(tmp_path):
    folder = _toy_movielens_1m(tmp_path / "ml-1m")
    _write(folder / "ratings.dat", ["1::9999::5::978300760"])
    with pytest.raises(DataError, match="names 1 ratings of unknown movies"):
        read_movielens_1m(str(folder))
    _write(folder / "ratings.dat", ["1::1193::5"])
    with pytest.raises(DataError, match="expected 4 '::'-separated fields"):
        read_movielens_1m(str(folder))
    (folder / "users.dat").unlink()
    with pytest.raises(DataError, match="MovieLens-1M file missing: .*users.dat"):
        read_movielens_1m(str(folder))


def test_movielens_100k_fold_columns(ml100k, ml100k_dir, tmp_path):
    folds = ml100k.interactions.filter(like="fold_")
    assert folds.columns.tolist() == [f"fold_{k}" for k in "12345ab"]
    assert folds.sum().tolist() == [20_000] * 5 + [9_430] * 2
    assert (folds[[f"fold_{k}" for k in "12345"]].sum(axis=1) == 1).all()  # u1..u5 partition u.data
    assert (ml100k.interactions[folds["fold_a"]].groupby("user").size() == 10).all()
    for name in ("u.data", "u.item", "u.user"):
        (tmp_path / name).write_bytes((ml100k_dir / name).read_bytes())
    assert "fold_1" not in read_movielens_100k(str(tmp_path)).interactions.columns
    lines = (ml100k_dir / "u1.test").read_bytes().splitlines(keepends=True)
    (tmp_path / "u1.test").write_bytes(b"".join(lines[:-1]))
    with pytest.raises(DataError, match="u1.test has 19,999 rows, expected 20,000"):
        read_movielens_100k(str(tmp_path))
