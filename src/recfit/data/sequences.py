"""Users as chronological item sequences: building them, leave-one-out in time order, prefix examples.

Where sequences come from:
- interactions with a timestamp (MovieLens, any RecData): each user's rows sorted by time, ties kept
  in the original row order. That is RecBole 1.2's order: `SequentialDataset.data_augmentation` sorts
  by [user, time] with stable argsorts (`Interaction.sort`: `np.argsort(kind="stable")`, time first,
  then user), so rows with the same time stay in file order. Without a timestamp the row order is the
  time order.
- RecBole atomic files whose rows hold a history (`item_id_list:token_seq`) and its next item
  (`item_id:token`): the row's sequence is the history followed by the item (Amazon Games: the
  `Games-6k.test.inter` row of a user is their whole sequence).
- a plain interactions CSV (user, item and optionally time columns).

The split is leave-one-out in time order (RecBole `eval_args: {split: {LS: valid_and_test}, order:
TO}`): the last item is the test target, the second-to-last the validation target, the rest is the
training sequence. Validation histories are the training sequences; test histories add the
validation item. Users with 1 or 2 interactions are refused (a DataError in one line); users with none
have no targets.

Training examples are prefixes (RecBole's data augmentation): for a training sequence s and every
t >= 1, the history s[max(0, t - max_history):t] predicts s[t]. This module is numpy/pandas only;
`recfit.data.sequence_batches` turns examples into padded tensors.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from recfit.data.sources.recbole import read_atomic_file
from recfit.data.tables import ITEM, TIMESTAMP, USER, RecData
from recfit.errors import ConfigError, DataError

VAL, TEST = "val", "test"
MIN_LEAVE_ONE_OUT = 3  # one training item, one validation target, one test target
LEAVE_ONE_OUT_PROTOCOL = (
    "leave_one_out per user in time order (ties: file order): last -> test, second-to-last -> val "
    "(RecBole LS valid_and_test, TO)"
)


@dataclass(frozen=True)
class UserSequences:
    """Every user's item codes in time order, packed: user u's are `items[offsets[u]:offsets[u + 1]]`.

    user_ids / item_ids: the raw id of each code when the source has its own ids (None: code = id).
    """

    items: np.ndarray  # int64 [total]
    offsets: np.ndarray  # int64 [num_users + 1], offsets[0] = 0
    num_items: int
    user_ids: np.ndarray | None = None
    item_ids: np.ndarray | None = None

    @classmethod
    def from_lists(
        cls,
        sequences: list[list[int]],
        num_items: int,
        user_ids: np.ndarray | None = None,
        item_ids: np.ndarray | None = None,
    ) -> UserSequences:
        """From one list of item codes per user (already in time order)."""
        lengths = np.array([len(s) for s in sequences], dtype=np.int64)
        offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        items = np.array([i for s in sequences for i in s], dtype=np.int64)
        return cls(items, offsets, num_items, user_ids, item_ids)

    def __post_init__(self) -> None:
        if len(self.items) and (self.items.min() < 0 or self.items.max() >= self.num_items):
            raise DataError(f"item codes must lie in 0..{self.num_items - 1}")

    @property
    def num_users(self) -> int:
        return len(self.offsets) - 1

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    def __getitem__(self, user: int) -> np.ndarray:
        return self.items[self.offsets[user] : self.offsets[user + 1]]

    def to_lists(self) -> list[list[int]]:
        return [self[u].tolist() for u in range(self.num_users)]

    def drop_last(self, count: int) -> UserSequences:
        """Each user's sequence without its last `count` items (empty when it is not longer)."""
        lengths = np.maximum(self.lengths - count, 0)
        keep = np.arange(len(self.items)) < np.repeat(self.offsets[:-1] + lengths, self.lengths)
        offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        return UserSequences(self.items[keep], offsets, self.num_items, self.user_ids, self.item_ids)

    def from_end(self, back: int) -> np.ndarray:
        """[num_users] the item `back` places from each sequence's end (1 = last); -1 when it is shorter."""
        has = self.lengths >= back
        if not has.any():
            return np.full(self.num_users, -1, dtype=np.int64)
        positions = np.where(has, self.offsets[1:] - back, 0)
        return np.where(has, self.items[positions], -1)

    def item_counts(self) -> np.ndarray:
        """[num_items] how often each item occurs over all sequences."""
        return np.bincount(self.items, minlength=self.num_items)


# --- building sequences ----------------------------------------------------------------------------


def sequences_from_interactions(
    frame: pd.DataFrame,
    num_users: int,
    num_items: int,
    time_column: str | None = TIMESTAMP,
    user_ids: np.ndarray | None = None,
    item_ids: np.ndarray | None = None,
) -> UserSequences:
    """Each user's `item` codes ordered by `time_column`, ties (and no time column) by row order.

    Two stable sorts, time then user, as RecBole orders its sequential data. A missing time is a
    DataError: an interaction without a time has no place in a sequence.
    """
    users = frame[USER].to_numpy(dtype=np.int64)
    order = np.arange(len(frame))
    if time_column is not None and time_column in frame.columns:
        times = frame[time_column]
        if times.isna().any():
            raise DataError(f"{int(times.isna().sum()):,} interactions have no '{time_column}'")
        order = np.argsort(times.to_numpy(), kind="stable")
    order = order[np.argsort(users[order], kind="stable")]
    lengths = np.bincount(users, minlength=num_users)
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    items = frame[ITEM].to_numpy(dtype=np.int64)[order]
    return UserSequences(items, offsets, num_items, user_ids, item_ids)


def sequences_from_recdata(data: RecData) -> UserSequences:
    """The sequences of a canonical data set: by `timestamp` when it has one, else by row order."""
    return sequences_from_interactions(
        data.interactions, data.num_users, data.num_items, TIMESTAMP, data.user_ids, data.item_ids
    )


def read_item_list_sequences(
    inter_file: str | Path,
    item_file: str | Path | None = None,
    history_field: str = "item_id_list",
    target_field: str = "item_id",
    user_field: str = "user_id",
) -> UserSequences:
    """One sequence per row of a RecBole atomic file: the `history_field` tokens, then `target_field`.

    Item codes follow `item_file`'s rows when given (an unknown item is a DataError), else first
    appearance. Users follow the rows; a user on two rows is a DataError (which row is the sequence?).
    """
    inter_file = Path(inter_file)
    rows, types = read_atomic_file(inter_file)
    for field, kind in ((user_field, "token"), (history_field, "token_seq"), (target_field, "token")):
        if types.get(field) != kind:
            raise DataError(f"{inter_file} needs a field '{field}:{kind}' (fields: {', '.join(types)})")
    user_ids = pd.Index(rows[user_field])
    if user_ids.has_duplicates:
        raise DataError(f"{inter_file} names {int(user_ids.duplicated().sum()):,} users on more than one row")
    if (rows[target_field] == "").any():
        raise DataError(
            f"{inter_file}: {int((rows[target_field] == '').sum()):,} rows have an empty {target_field}"
        )
    history = rows[history_field].str.split()
    lengths = history.str.len().to_numpy(dtype=np.int64) + 1
    sequence_tokens = [
        token for past, target in zip(history, rows[target_field], strict=True) for token in (*past, target)
    ]
    if item_file is not None:
        items, _ = read_atomic_file(Path(item_file))
        if "item_id" not in items.columns:
            raise DataError(f"{item_file} has no field item_id")
        item_ids = pd.Index(items["item_id"])
        if item_ids.has_duplicates:
            raise DataError(f"{item_file} lists {int(item_ids.duplicated().sum()):,} item ids more than once")
    else:
        item_ids = pd.Index(pd.unique(np.asarray(sequence_tokens, dtype=object)))
    codes = item_ids.get_indexer(sequence_tokens)
    if (codes < 0).any():
        raise DataError(f"{int((codes < 0).sum()):,} items in {inter_file} are missing from {item_file}")
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    return UserSequences(
        codes.astype(np.int64), offsets, len(item_ids), user_ids.to_numpy(), item_ids.to_numpy()
    )


def read_interactions_csv(
    path: str | Path,
    user_column: str = "user_id",
    item_column: str = "item_id",
    time_column: str | None = "timestamp",
) -> UserSequences:
    """Sequences from a CSV with one interaction per row. Ids are text, coded by first appearance.

    `time_column` orders each user's rows (ties: file order); None, or a file without that column,
    means the file is already in time order.
    """
    path = Path(path)
    try:
        frame = pd.read_csv(path, dtype={user_column: str, item_column: str}, keep_default_na=False)
    except FileNotFoundError:
        raise DataError(f"interactions file missing: {path}") from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, ValueError) as error:
        raise DataError(f"cannot read {path}: {str(error).splitlines()[0]}") from None
    missing = [column for column in (user_column, item_column) if column not in frame.columns]
    if missing:
        raise DataError(f"{path} has no column {', '.join(missing)} (columns: {', '.join(frame.columns)})")
    if frame.empty:
        raise DataError(f"{path} holds no interactions")
    user_codes, user_ids = pd.factorize(frame[user_column])
    item_codes, item_ids = pd.factorize(frame[item_column])
    canonical = pd.DataFrame({USER: user_codes, ITEM: item_codes})
    if time_column is not None and time_column in frame.columns:
        times = pd.to_numeric(frame[time_column].replace("", np.nan), errors="coerce")
        if times.isna().any():
            bad = int(times.isna().sum())
            raise DataError(f"{path}: {bad:,} rows have no numeric '{time_column}'")
        canonical[TIMESTAMP] = times.to_numpy()
    return sequences_from_interactions(
        canonical, len(user_ids), len(item_ids), TIMESTAMP, np.asarray(user_ids), np.asarray(item_ids)
    )


# --- leave-one-out ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class LeaveOneOut:
    """A leave-one-out split of full sequences (see the module docstring)."""

    sequences: UserSequences
    protocol: str = LEAVE_ONE_OUT_PROTOCOL

    @property
    def train(self) -> UserSequences:
        """Training sequences: everything before the validation target."""
        return self.sequences.drop_last(2)

    def history(self, split: str) -> UserSequences:
        """What a user has seen before the `split` target: train (val), train + val item (test)."""
        return self.sequences.drop_last(_back(split))

    def targets(self, split: str) -> np.ndarray:
        """[num_users] the `split` target per user; -1 for users without interactions."""
        return self.sequences.from_end(_back(split))

    def users(self) -> np.ndarray:
        """The users that have targets (every user with interactions)."""
        return np.flatnonzero(self.sequences.lengths > 0)


def _back(split: str) -> int:
    if split not in (VAL, TEST):
        raise ValueError(f"split must be '{VAL}' or '{TEST}', got {split!r}")
    return 2 if split == VAL else 1


def leave_one_out(sequences: UserSequences) -> LeaveOneOut:
    """Split in time order; a DataError naming the first offender when a user has 1 or 2 interactions."""
    lengths = sequences.lengths
    short = np.flatnonzero((lengths > 0) & (lengths < MIN_LEAVE_ONE_OUT))
    if len(short):
        first = short[0]
        name = sequences.user_ids[first] if sequences.user_ids is not None else first
        raise DataError(
            f"leave_one_out needs at least {MIN_LEAVE_ONE_OUT} interactions per user: {len(short):,} users "
            f"have fewer (e.g. user {name} with {lengths[first]}); drop them first "
            f"(dataset.filter.k_core_users={MIN_LEAVE_ONE_OUT})"
        )
    return LeaveOneOut(sequences)


# --- examples --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class NextItemExamples:
    """Rows (user, end, target): the history is `sequences[user][max(0, end - max_history):end]`.

    A map-style data set: `examples[i]` is row i's index, for a DataLoader whose collate function
    (`recfit.data.sequence_batches.NextItemCollator`) looks the rows up.
    """

    users: np.ndarray  # int64 [N]
    ends: np.ndarray  # int64 [N], >= 1: the history's length before truncation
    targets: np.ndarray  # int64 [N]

    def __len__(self) -> int:
        return len(self.users)

    def __getitem__(self, index: int) -> int:
        if not 0 <= index < len(self.users):
            raise IndexError(index)
        return index


def prefix_examples(train: UserSequences, max_history: int) -> NextItemExamples:
    """Every prefix of every training sequence predicts its next item (user-major, time order).

    A sequence of n items gives n - 1 examples. `max_history` only bounds the history the collator
    cuts out (the most recent items); it does not drop examples.
    """
    check_max_history(max_history)
    lengths = train.lengths
    counts = np.maximum(lengths - 1, 0)
    users = np.repeat(np.arange(train.num_users, dtype=np.int64), counts)
    starts = np.repeat(np.cumsum(counts) - counts, counts)
    ends = np.arange(len(users), dtype=np.int64) - starts + 1  # 1..n-1 within each user
    targets = train.items[train.offsets[users] + ends]
    return NextItemExamples(users, ends, targets)


def window_examples(train: UserSequences) -> NextItemExamples:
    """One row per training sequence of >= 2 items: its whole history predicts its last item.

    With the collator's `next_items` as per-position targets this is SASRec's original objective
    (Kang & McAuley): every position of the latest `max_history` window predicts its next item in one
    forward pass; with a causal encoder that is the loss of those positions' prefix examples at once.
    """
    lengths = train.lengths
    users = np.flatnonzero(lengths >= 2).astype(np.int64)
    ends = lengths[users] - 1
    return NextItemExamples(users, ends, train.items[train.offsets[users] + ends])


def evaluation_examples(split: LeaveOneOut, which: str, max_history: int) -> NextItemExamples:
    """One row per user with a `which` target: the user's whole history (before it) predicts it."""
    check_max_history(max_history)
    users = split.users()
    history = split.history(which)
    return NextItemExamples(users, history.lengths[users], split.targets(which)[users])


def history_codes(
    ids: list[str], item_ids: np.ndarray | None, num_items: int, max_history: int
) -> np.ndarray:
    """The item codes of a history given as raw item ids (oldest first), for a user never trained on.

    The most recent `max_history` are kept. An empty history, an id the data set does not have, or
    an item named twice is a DataError in one line (ids compare as text; without `item_ids` the
    codes are the ids).
    """
    check_max_history(max_history)
    ids = [str(raw).strip() for raw in ids]
    if not ids:
        raise DataError("the history is empty: give at least one item id")
    known = pd.Index([str(raw) for raw in (item_ids if item_ids is not None else range(num_items))])
    codes = known.get_indexer(ids)
    unknown = [raw for raw, code in zip(ids, codes, strict=True) if code < 0]
    if unknown:
        raise DataError(
            f"unknown item '{unknown[0]}' in the history ({len(unknown)} of {len(ids)} ids unknown; "
            f"the data set has {num_items:,} items)"
        )
    repeated = pd.Index(codes).duplicated()
    if repeated.any():
        raise DataError(f"item '{ids[int(np.argmax(repeated))]}' appears more than once in the history")
    return codes[-max_history:].astype(np.int64)


def check_max_history(max_history: int) -> None:
    """A ConfigError unless `max_history` is a positive number of items."""
    # the same rule as recfit.models.user_encoders.check_max_history (data and models share no import)
    if isinstance(max_history, bool) or not isinstance(max_history, int) or max_history <= 0:
        raise ConfigError(f"max_history must be a positive number of items, got {max_history!r}")
