"""Train / validation / test splits, seeded by `dataset.split_seed` alone."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from recfit.data.tables import LABEL, USER
from recfit.errors import DataError


@dataclass
class Splits:
    train: pd.DataFrame
    val: pd.DataFrame
    test: pd.DataFrame

    def sizes(self) -> str:
        return f"train {len(self.train):,} / val {len(self.val):,} / test {len(self.test):,}"


def _cut(count: int, val: float, test: float) -> tuple[int, int]:
    """How many of `count` rows go to validation and test; at least one always stays in train."""
    n_test = min(int(round(count * test)), count - 1)
    n_val = min(int(round(count * val)), count - 1 - n_test)
    return n_val, n_test


def _assign(groups: list[np.ndarray], val: float, test: float, rng: np.random.Generator) -> np.ndarray:
    """0 = train, 1 = val, 2 = test for every row, shuffling inside each group."""
    total = sum(len(g) for g in groups)
    part = np.zeros(total, dtype=np.int8)
    for rows in groups:
        order = rng.permutation(rows)
        n_val, n_test = _cut(len(order), val, test)
        part[order[len(order) - n_test :]] = 2
        part[order[len(order) - n_test - n_val : len(order) - n_test]] = 1
    return part


def split_interactions(
    frame: pd.DataFrame, val: float, test: float, seed: int, stratify: bool = False, bootstrap: int = 0
) -> Splits:
    """Split per user (each user's interactions shuffled, ratio cut), or per label when `stratify`.

    `bootstrap` adds that many training rows drawn with replacement from the training split.
    """
    rng = np.random.default_rng(seed)
    key = LABEL if stratify else USER
    if key not in frame.columns:
        raise DataError(f"cannot split by '{key}': the interactions have no such column")
    frame = frame.reset_index(drop=True)
    groups = [np.asarray(rows) for rows in frame.groupby(key, sort=True).indices.values()]
    part = _assign(groups, val, test, rng)
    train, val_rows, test_rows = (frame[part == p].reset_index(drop=True) for p in (0, 1, 2))
    if bootstrap > 0:
        extra = train.iloc[rng.integers(0, len(train), size=bootstrap)]
        train = pd.concat([train, extra], ignore_index=True)
    for name, rows, share in (("validation", val_rows, val), ("test", test_rows, test)):
        if share > 0 and rows.empty:
            raise DataError(f"the {name} split is empty: too few interactions per {key} for share {share}")
    return Splits(train, val_rows, test_rows)
