"""Train / validation / test splits: one function, five protocols, seeded by `dataset.split_seed` alone.

`make_splits(data, method, ...)` returns the three interaction frames and one protocol line that states
the whole protocol; that line goes into every run's metrics.json, so two runs can only be compared when
their lines agree.

| method          | what goes to test                                                        |
|-----------------|--------------------------------------------------------------------------|
| `ratio`         | a share of each user's (or all) interactions, random or latest by time    |
| `temporal`      | the latest share by timestamp, over all interactions or per user         |
| `leave_one_out` | each user's last interaction (second-to-last: validation)                |
| `folds`         | a predefined test set marked by the reader in a bool column `fold_<name>` |
| `cold_item`     | every interaction of a share of the items (never seen in training)       |

Ranking evaluation masks the items a user saw in train (and val, for test); that happens elsewhere.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from recfit.data.tables import ITEM, LABEL, TIMESTAMP, USER, RecData
from recfit.errors import DataError

METHODS = ("ratio", "temporal", "leave_one_out", "folds", "cold_item")
ORDERS = ("random", "time")
TRAIN, VAL, TEST = 0, 1, 2
TRAIN_SUBSET_STREAM = 1  # a second random stream of split_seed, for split.train_fraction


@dataclass
class Splits:
    train: pd.DataFrame
    val: pd.DataFrame
    test: pd.DataFrame
    protocol: str  # one line stating the whole protocol; written into every run's metrics.json
    # train rows that split.train_fraction left out: still masked as seen at evaluation, so every
    # fraction is scored on the same candidates
    held_back: pd.DataFrame | None = None

    def sizes(self) -> str:
        return f"train {len(self.train):,} / val {len(self.val):,} / test {len(self.test):,}"

    def seen_before(self, split: str) -> pd.DataFrame:
        """The interactions a user had before `split` (val or test): masked when ranking it."""
        earlier = [self.train, self.held_back] + ([self.val] if split == "test" else [])
        return pd.concat([frame for frame in earlier if frame is not None], ignore_index=True)


def make_splits(
    data: RecData,
    method: str,
    *,
    val: float = 0.1,
    test: float = 0.1,
    seed: int = 0,
    order: str = "random",
    per_user: bool = True,
    fold: str = "1",
    stratify: bool = False,
    bootstrap: int = 0,
    train_fraction: float = 1.0,
) -> Splits:
    """Split `data.interactions` into train / val / test by `method`; deterministic given `seed`.

    ratio: cut each user's interactions (per_user=True), each label's rows (stratify=True, the
        text-classification case) or all interactions (per_user=False) into val / test shares.
        `order="random"` shuffles each group (seeded); `order="time"` sorts by `timestamp` (ties by row
        order), so the latest rows go to test and the ones before them to validation.
        Counts follow RecBole 1.2.1 (`Dataset._calcu_split_ids`, see `recbole_counts`), so a per-user
        0.8/0.1/0.1 ratio split here has the same sizes per user as RecBole's RS [0.8,0.1,0.1] with
        group_by user.
    temporal: ratio in time order; global (per_user=False) is one cut over all interactions by
        timestamp (sizes exact: ties at a boundary are broken by row order), per user cuts each
        user's own timeline. Needs `timestamp`.
    leave_one_out: per user by `timestamp` (ties by row order): last interaction -> test,
        second-to-last -> validation, the rest -> train; users with fewer than 3 interactions keep
        everything in train. `val` and `test` are not used. Needs `timestamp`: a reader with an
        explicit order and no times (e.g. the Amazon Games sequences) writes the position as timestamp.
    folds: the rows where the reader's bool column `fold_<fold>` is True are the test set; a `val`
        share of the rest is carved per user (per_user, order and seed as for ratio).
    cold_item: a `test` share of the items (seeded) with all their interactions -> test, a `val`
        share of the items, drawn from the others, -> validation, the rest -> train. Item counts use
        the same RecBole rule over the number of items that have interactions. No val or test item
        appears in train.

    `train_fraction` keeps that share of the train split (rounded up), validation and test untouched: a
    data-efficiency study. The rows kept are a prefix of one permutation drawn from `seed` alone, so a
    smaller fraction's rows are a subset of a larger one's. `bootstrap` then adds that many train rows
    drawn with replacement from the rows kept. An empty validation (val > 0) or test split is a DataError.
    """
    if method not in METHODS:
        raise DataError(f"unknown split method '{method}' (choose from {', '.join(METHODS)})")
    if order not in ORDERS:
        raise DataError(f"unknown split order '{order}' (choose from {', '.join(ORDERS)})")
    if val < 0 or test < 0 or val + test >= 1:
        raise DataError(f"split shares val={val:g}, test={test:g} must be >= 0 and sum to less than 1")
    if not 0 < train_fraction <= 1:
        raise DataError(f"split.train_fraction={train_fraction:g} must be in (0, 1]")
    frame = data.interactions.reset_index(drop=True)
    rng = np.random.default_rng(seed)

    if method == "ratio":
        cut = _ratio(frame, val, test, rng, order, per_user, stratify)
    elif method == "temporal":
        cut = _ratio(frame, val, test, rng, "time", per_user, stratify=False)
        cut.protocol = f"temporal {_shares(val, test)} {'per user' if per_user else 'global'} by timestamp"
    elif method == "leave_one_out":
        cut = _leave_one_out(frame)
    elif method == "folds":
        cut = _folds(frame, fold, val, rng, order, per_user)
    else:
        cut = _cold_item(frame, val, test, rng)
    return _finish(frame, cut, rng, seed, bootstrap, train_fraction)


def split_interactions(
    frame: pd.DataFrame, val: float, test: float, seed: int, stratify: bool = False, bootstrap: int = 0
) -> Splits:
    """The ratio split (random order, per user, or per label when `stratify`) of a bare frame.

    Kept for callers that hold a frame rather than a RecData; new code calls `make_splits`.
    """
    data = RecData(
        name="interactions",
        interactions=frame,
        num_users=int(frame[USER].max()) + 1 if USER in frame.columns and len(frame) else 1,
        num_items=int(frame[ITEM].max()) + 1 if ITEM in frame.columns and len(frame) else 1,
    )
    return make_splits(data, "ratio", val=val, test=test, seed=seed, stratify=stratify, bootstrap=bootstrap)


# --- counting rule ---------------------------------------------------------------------------------


def recbole_counts(sizes: np.ndarray, val: float, test: float) -> tuple[np.ndarray, np.ndarray]:
    """How many of each group's `sizes` rows go to validation and to test, by RecBole 1.2.1's rule.

    RecBole's `Dataset._calcu_split_ids(tot, ratios)` (recbole/data/dataset/dataset.py, v1.2.1):
    normalise the ratios [train, val, test] by their sum; val and test get `int(ratio * n)` rows
    (rounded down) and train the remainder; then, test first and val second, a part whose
    `ratio * n` lies strictly between 0 and 1 gets one row taken from train, as long as train still
    has more than one row. E.g. 0.8/0.1/0.1: n=1 -> 1/0/0, n=2 -> 1/0/1, n=3 -> 1/1/1, n=9 -> 7/1/1,
    n=15 -> 13/1/1, n=20 -> 16/2/2, n=25 -> 21/2/2.
    """
    # The train share rounded to 10 decimals, so 1 - 0.1 - 0.2 is the 0.7 a RecBole config would list
    # and the normalised floats (hence the rounded-down counts) are bit-for-bit RecBole's.
    train = round(1.0 - val - test, 10)
    total = train + val + test
    sizes = np.asarray(sizes, dtype=np.int64)
    exact_val, exact_test = val / total * sizes, test / total * sizes
    n_val, n_test = exact_val.astype(np.int64), exact_test.astype(np.int64)
    n_train = sizes - n_val - n_test
    for counts, exact in ((n_test, exact_test), (n_val, exact_val)):
        bump = (n_train > 1) & (exact > 0) & (exact < 1)
        counts += bump
        n_train -= bump
    return n_val, n_test


# --- the protocols ---------------------------------------------------------------------------------


@dataclass
class _Cut:
    """What one protocol decided, before the frame is cut."""

    part: np.ndarray  # TRAIN / VAL / TEST per row
    protocol: str  # the protocol line, without the seed
    seeded: bool  # whether split_seed changes the cut
    # split name -> why it came out empty, for each split that must not be empty
    must_hold: dict[str, str]


def _ratio(
    frame: pd.DataFrame,
    val: float,
    test: float,
    rng: np.random.Generator,
    order: str,
    per_user: bool,
    stratify: bool,
) -> _Cut:
    if stratify:
        if LABEL not in frame.columns:
            raise DataError(f"cannot split by '{LABEL}': the interactions have no such column")
        keys, scope, unit = frame[LABEL].to_numpy(), "per label (stratified)", "label"
    elif per_user:
        keys, scope, unit = frame[USER].to_numpy(), "per user", "user"
    else:
        keys, scope, unit = np.zeros(len(frame), dtype=np.int64), "global", "data set"
    sort_key = _timestamps(frame) if order == "time" else rng.random(len(frame))
    rank, size = _rank_within_groups(keys, sort_key)
    n_val, n_test = recbole_counts(size, val, test)
    part = _parts_from_end(rank, size, n_val, n_test)
    protocol = f"ratio {_shares(val, test)} {scope}, {order} order"
    must_hold = {
        name: f"too few interactions per {unit} for share {share:g}"
        for name, share in (("validation", val), ("test", test))
        if share > 0
    }
    return _Cut(part, protocol, order == "random", must_hold)


def _leave_one_out(frame: pd.DataFrame) -> _Cut:
    rank, size = _rank_within_groups(frame[USER].to_numpy(), _timestamps(frame))
    held_out = (size >= 3).astype(np.int64)  # one validation and one test row for users with >= 3
    protocol = (
        "leave_one_out per user by timestamp: last -> test, second-to-last -> val "
        "(users with < 3 interactions: train only)"
    )
    part = _parts_from_end(rank, size, held_out, held_out)
    reason = "leave_one_out needs users with at least 3 interactions"
    return _Cut(part, protocol, False, {"validation": reason, "test": reason})


def _folds(
    frame: pd.DataFrame, fold: str, val: float, rng: np.random.Generator, order: str, per_user: bool
) -> _Cut:
    column = f"fold_{fold}"
    if column not in frame.columns:
        raise DataError(f"this data set has no predefined fold '{fold}' (no column '{column}')")
    in_test = frame[column].to_numpy(dtype=bool)
    carve = _ratio(frame[~in_test].reset_index(drop=True), val, 0.0, rng, order, per_user, stratify=False)
    part = np.full(len(frame), TEST, dtype=np.int8)
    part[~in_test] = carve.part
    scope = "per user" if per_user else "global"
    protocol = f"fold '{fold}' predefined test set ({column}), val {val:g} of the rest {scope}, {order} order"
    must_hold = {**carve.must_hold, "test": f"column '{column}' marks no interaction"}
    return _Cut(part, protocol, carve.seeded and val > 0, must_hold)


def _cold_item(frame: pd.DataFrame, val: float, test: float, rng: np.random.Generator) -> _Cut:
    items = rng.permutation(np.unique(frame[ITEM].to_numpy()))
    n_val, n_test = (int(count[0]) for count in recbole_counts(np.array([len(items)]), val, test))
    test_items = items[len(items) - n_test :]
    val_items = items[len(items) - n_test - n_val : len(items) - n_test]
    codes = frame[ITEM].to_numpy()
    part = np.where(np.isin(codes, test_items), TEST, np.where(np.isin(codes, val_items), VAL, TRAIN))
    counts = f"{len(items) - n_val - n_test:,}/{n_val:,}/{n_test:,}"
    protocol = f"cold_item {_shares(val, test)} of items ({counts} items) with all their interactions"
    must_hold = {
        name: f"too few items for share {share:g}"
        for name, share in (("validation", val), ("test", test))
        if share > 0
    }
    return _Cut(part.astype(np.int8), protocol, True, must_hold)


# --- helpers ---------------------------------------------------------------------------------------


def _finish(
    frame: pd.DataFrame, cut: _Cut, rng: np.random.Generator, seed: int, bootstrap: int, train_fraction: float
) -> Splits:
    """Cut the frame, subsample and bootstrap train, refuse empty splits, end the protocol with the seed."""
    train, val_rows, test_rows = (frame[cut.part == p].reset_index(drop=True) for p in (TRAIN, VAL, TEST))
    for name, rows in (("validation", val_rows), ("test", test_rows)):
        if rows.empty and name in cut.must_hold:
            raise DataError(f"the {name} split is empty: {cut.must_hold[name]}")
    protocol, held_back = cut.protocol, None
    if train_fraction < 1:
        train, held_back = _train_subset(train, train_fraction, seed)
        protocol += f", train_fraction {train_fraction:g} ({len(train):,} train rows)"
    if bootstrap > 0:
        extra = train.iloc[rng.integers(0, len(train), size=bootstrap)]
        train = pd.concat([train, extra], ignore_index=True)
        protocol += f", bootstrap +{bootstrap:,} train rows"
    if cut.seeded or bootstrap > 0 or train_fraction < 1:
        protocol += f", split_seed {seed}"
    return Splits(train, val_rows, test_rows, protocol, held_back)


def _train_subset(train: pd.DataFrame, fraction: float, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(kept, held back): the kept rows are the first ceil(fraction * rows) of a permutation seeded by
    `seed` alone (not by the cut's draws), in their original order, so they are nested across fractions
    and identical across models and training seeds."""
    order = np.random.default_rng([seed, TRAIN_SUBSET_STREAM]).permutation(len(train))
    count = max(1, math.ceil(fraction * len(train)))
    keep = np.zeros(len(train), dtype=bool)
    keep[order[:count]] = True
    return train[keep].reset_index(drop=True), train[~keep].reset_index(drop=True)


def _shares(val: float, test: float) -> str:
    return f"{round(1.0 - val - test, 10):g}/{val:g}/{test:g}"


def _timestamps(frame: pd.DataFrame) -> np.ndarray:
    """The `timestamp` column as numbers to sort by; DataError when it is missing or incomplete."""
    if TIMESTAMP not in frame.columns:
        raise DataError(f"this split orders interactions by time, but the data set has no '{TIMESTAMP}'")
    times = frame[TIMESTAMP]
    if times.isna().any():
        raise DataError(f"{int(times.isna().sum()):,} interactions have no '{TIMESTAMP}'")
    if pd.api.types.is_datetime64_any_dtype(times):
        return times.to_numpy().astype("datetime64[ns]").astype(np.int64)
    return times.to_numpy()


def _rank_within_groups(keys: np.ndarray, sort_key: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each row's 0-based position inside its group (rows sharing a key) ordered by `sort_key`, ties
    by row order; and the size of its group. Both in the frame's row order."""
    count = len(keys)
    by_group = np.lexsort((np.arange(count), sort_key, keys))
    sorted_keys = keys[by_group]
    starts_group = np.r_[True, sorted_keys[1:] != sorted_keys[:-1]] if count else np.zeros(0, dtype=bool)
    starts = np.flatnonzero(starts_group)
    group = np.cumsum(starts_group) - 1
    sizes = np.diff(np.r_[starts, count])
    rank, size = np.empty(count, dtype=np.int64), np.empty(count, dtype=np.int64)
    rank[by_group] = np.arange(count) - starts[group]
    size[by_group] = sizes[group]
    return rank, size


def _parts_from_end(rank: np.ndarray, size: np.ndarray, n_val: np.ndarray, n_test: np.ndarray) -> np.ndarray:
    """The last `n_test` rows of each group -> test, the `n_val` before them -> val, the rest -> train."""
    from_end = size - 1 - rank
    return np.where(from_end < n_test, TEST, np.where(from_end < n_test + n_val, VAL, TRAIN)).astype(np.int8)
