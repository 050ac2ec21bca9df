"""Warm- and cold-item columns of next-item runs: `recfit compare --cold-items N`.

A next_item run's per_user.parquet holds one row per test user: the target item (`item`), that
item's number of training interactions (`item_train_count`) and the user's metric values. A user
falls in the `cold` subset when the target has at most N training interactions (MoRec's cold items:
N = 5), else in `warm`. `test/ndcg@10[cold]` of a run is the mean of per-user `ndcg@10` over its cold
users: one value per run, like a metrics.json value, so grouping, sorting and every `--test` treat
it as any other metric (`users` and `bootstrap` pair the same subset of users).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from recfit.compare.metrics import counterpart, per_unit_column
from recfit.errors import RecfitError
from recfit.run_folder import ITEM_TRAIN_COUNT_COLUMN, PER_USER_FILE

WARM = "warm"
COLD = "cold"
BUCKETS = (WARM, COLD)


@dataclass(frozen=True)
class Bucket:
    """The users whose test target has at most (`cold`) or more than (`warm`) `cold_max` training
    interactions."""

    name: str
    cold_max: int

    def mask(self, table: pd.DataFrame) -> np.ndarray:
        """Which rows of a per_user table are in this subset (RecfitError without the count column)."""
        if ITEM_TRAIN_COUNT_COLUMN not in table.columns:
            raise RecfitError(
                f"its {PER_USER_FILE} has no '{ITEM_TRAIN_COUNT_COLUMN}' column (written by task "
                "next_item runs: train it again with this recfit)"
            )
        cold = table[ITEM_TRAIN_COUNT_COLUMN].to_numpy() <= self.cold_max
        return cold if self.name == COLD else ~cold


def bucket_metric(metric: str, bucket: str) -> str:
    """`test/ndcg@10`, "cold" -> `test/ndcg@10[cold]`."""
    return f"{metric}[{bucket}]"


def split_bucket(metric: str) -> tuple[str, str | None]:
    """`test/ndcg@10[cold]` -> (`test/ndcg@10`, "cold"); a metric without a subset -> (metric, None)."""
    if metric.endswith("]") and "[" in metric:
        base, _, bucket = metric[:-1].rpartition("[")
        if bucket in BUCKETS:
            return base, bucket
    return metric, None


def read_per_user(folder: Path | str) -> pd.DataFrame:
    """A run's per_user.parquet; RecfitError (one line) when it is missing or not a Parquet table."""
    path = Path(folder) / PER_USER_FILE
    if not path.is_file():
        raise RecfitError(f"no {PER_USER_FILE}")
    try:
        return pd.read_parquet(path)
    except Exception as error:  # pyarrow raises its own types for a file that is not Parquet
        raise RecfitError(f"{PER_USER_FILE} is unreadable ({type(error).__name__})") from None


def bucket_values(table: pd.DataFrame, metrics: list[str], cold_max: int) -> dict[str, float]:
    """{`M[warm]`: mean, `M[cold]`: mean} of each metric's per-user values in a run's per_user table
    (NaN for an empty subset); RecfitError (one line) when a column is missing."""
    values: dict[str, float] = {}
    for bucket in BUCKETS:
        mask = Bucket(bucket, cold_max).mask(table)
        for metric in metrics:
            unit = per_unit_column(metric)
            if unit not in table.columns:
                raise RecfitError(f"its {PER_USER_FILE} has no '{unit}' column")
            chosen = table.loc[mask, unit].to_numpy(dtype=float)
            values[bucket_metric(metric, bucket)] = float(chosen.mean()) if len(chosen) else float("nan")
    return values


def bucket_sizes(table: pd.DataFrame, cold_max: int) -> dict[str, int]:
    """{"warm": users, "cold": users} of one run's test set (its per_user table)."""
    return {bucket: int(Bucket(bucket, cold_max).mask(table).sum()) for bucket in BUCKETS}


def with_buckets(
    runs: pd.DataFrame, chosen: list[str], cold_max: int, completed: pd.Series
) -> tuple[pd.DataFrame, list[str], list[str]]:
    """`runs` with `M[warm]` and `M[cold]` columns for each test/ metric M of `chosen` (their test/
    counterparts when none is a test/ metric), the metrics to show (each M followed by its two
    subsets), and notes: how the subsets are defined and which runs have none. Only `completed`
    runs get values. RecfitError when no run has them."""
    if cold_max < 0:
        raise RecfitError(f"--cold-items must be 0 or more (got {cold_max})")
    tested = [metric for metric in chosen if metric.startswith("test/")]
    if not tested:
        tested = [m for m in dict.fromkeys(counterpart(m, "test") for m in chosen) if m in runs.columns]
    if not tested:
        raise RecfitError("--cold-items splits test/ metrics: choose one with --metric")
    columns: dict[str, list[float]] = {bucket_metric(m, b): [] for b in BUCKETS for m in tested}
    failed: dict[str, list[str]] = {}
    sizes: dict[str, int] | None = None
    for index, folder in runs["path"].items():
        values: dict[str, float] = {}
        if completed[index]:
            try:
                table = read_per_user(folder)  # read once: values and subset sizes
                values = bucket_values(table, tested, cold_max)
                sizes = sizes or bucket_sizes(table, cold_max)
            except RecfitError as error:
                failed.setdefault(str(error), []).append(str(runs.at[index, "run"]))
        for name, entries in columns.items():
            entries.append(values.get(name, float("nan")))
    if sizes is None:
        reason = next(iter(failed), "no completed run")
        raise RecfitError(f"--cold-items: no run has per-user warm/cold values: {reason}")
    shown: list[str] = []
    for metric in chosen:
        shown.append(metric)
        if metric in tested:
            shown += [bucket_metric(metric, bucket) for bucket in BUCKETS]
    shown += [name for name in columns if name not in shown]
    notes = [
        f"[cold]: test users whose target item has at most {cold_max} training interactions "
        f"({sizes[COLD]:,} users), [warm]: more ({sizes[WARM]:,} users); each the mean of per_user.parquet "
        "values over those users"
    ]
    for reason, labels in failed.items():
        more = f" and {len(labels) - 3} more" if len(labels) > 3 else ""
        notes.append(f"{', '.join(labels[:3])}{more}: no warm/cold values: {reason}")
    return runs.assign(**columns), shown, notes
