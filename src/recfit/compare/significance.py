"""Paired significance of each row against a baseline row, on per-user (or per-row) test values.

Two runs evaluated on the same test users are paired: the question is whether the per-user
differences average away from zero. Per row of the table this module gives the mean difference
(row minus baseline), a paired t-test p-value, a paired bootstrap 95% CI of the mean difference,
and the Holm-adjusted p-value across all rows compared.
"""

from __future__ import annotations

import warnings
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from recfit.compare.metrics import per_unit_column
from recfit.errors import RecfitError
from recfit.run_folder import PER_USER_FILE

ALPHA = 0.05
RESAMPLES = 10_000
CONFIDENCE = 0.95
# Resampled means are computed in blocks of at most this many draws, so memory stays ~50 MB
# whatever the number of users (a rating test set has one unit per row: tens of thousands).
BLOCK_DRAWS = 2_000_000
COLUMNS = ("delta", "ci_low", "ci_high", "p", "p_holm", "sig", "pairs")


def holm_adjust(p_values: np.ndarray | list[float]) -> np.ndarray:
    """Holm-Bonferroni adjusted p-values (step-down); NaN entries are not tests and stay NaN.

    The i-th smallest of m p-values is multiplied by (m - i), i counted from 0; a running maximum
    keeps the adjusted values in the same order as the raw ones; values are capped at 1.
    """
    p = np.asarray(p_values, dtype=float)
    adjusted = np.full_like(p, np.nan)
    tested = np.flatnonzero(~np.isnan(p))
    order = tested[np.argsort(p[tested], kind="stable")]
    scaled = (len(order) - np.arange(len(order))) * p[order]
    adjusted[order] = np.minimum(np.maximum.accumulate(scaled), 1.0)
    return adjusted


def bootstrap_mean_cis(
    differences: list[np.ndarray], resamples: int = RESAMPLES, seed: int = 0, confidence: float = CONFIDENCE
) -> np.ndarray:
    """Percentile bootstrap CI of the mean of each vector: an array of (low, high) rows.

    Resampling users (not runs) with replacement. Vectors of the same length share the same
    resampled indices, drawn from `seed` alone, so one vector's CI does not depend on which other
    vectors come along, and a whole table costs one matrix product per distinct length.
    """
    bounds = np.full((len(differences), 2), np.nan)
    positions_by_length: dict[int, list[int]] = defaultdict(list)
    for position, values in enumerate(differences):
        if len(values):
            positions_by_length[len(values)].append(position)
    tail = (1 - confidence) / 2
    for positions in positions_by_length.values():
        stacked = np.column_stack([differences[position] for position in positions])
        means = _resampled_means(stacked, resamples, seed)
        bounds[positions] = np.quantile(means, [tail, 1 - tail], axis=0).T
    return bounds


def _resampled_means(values: np.ndarray, resamples: int, seed: int) -> np.ndarray:
    """(resamples x columns) means of `values` (units x columns) over units drawn with replacement."""
    rng = np.random.default_rng(seed)
    units = len(values)
    block = max(1, BLOCK_DRAWS // units)
    means = []
    for start in range(0, resamples, block):
        size = min(block, resamples - start)
        draws = rng.integers(0, units, size=(size, units))
        # how often each unit was drawn in each resample; a matrix product then averages every column
        offsets = (np.arange(size) * units)[:, None]
        counts = np.bincount((draws + offsets).ravel(), minlength=size * units).reshape(size, units)
        means.append(counts @ values / units)
    return np.vstack(means)


def load_unit_values(run_folders: list[str], column: str) -> pd.Series:
    """`column` of per_user.parquet per user (ranking) or per (user, item) row (other tasks),
    averaged over the given runs: a group's seeds become one value per user before pairing."""
    tables = []
    for folder in run_folders:
        path = Path(folder) / PER_USER_FILE
        if not path.is_file():
            raise RecfitError(f"{folder} has no {PER_USER_FILE}")
        table = pd.read_parquet(path)
        if column not in table.columns:
            shown = ", ".join(map(str, table.columns)) or "none"
            raise RecfitError(f"{path} has no column '{column}' (columns: {shown})")
        tables.append(table)
    keys = ["user", "item"] if all("item" in table.columns for table in tables) else ["user"]
    values = pd.concat([table[[*keys, column]] for table in tables], ignore_index=True).astype(
        {column: float}
    )
    # also averages repeated (user, item) rows, so the inner join below cannot multiply them
    return values.groupby(keys)[column].mean()


@dataclass(frozen=True)
class Significance:
    """Per row label: delta, ci_low, ci_high, p, p_holm, sig ("*" / "baseline" / ""), pairs."""

    table: pd.DataFrame
    paired_on: str  # the per_user.parquet column compared
    warnings: list[str]


def compare_to_baseline(
    members: dict[str, list[str]],
    baseline: str,
    metric: str,
    resamples: int = RESAMPLES,
    seed: int = 0,
) -> Significance:
    """Pair every row of `members` (label -> its completed run folders) with the `baseline` row.

    Rows without completed runs, or whose per_user.parquet is missing, get blanks and a warning.
    """
    from scipy import stats  # half a second to import: only --baseline pays it

    column = per_unit_column(metric)
    if not members.get(baseline):
        raise RecfitError(f"baseline '{baseline}' has no completed run to compare against")
    base = load_unit_values(members[baseline], column)
    labels, differences, p_values, notes = [], [], [], []
    for label, folders in members.items():
        if label == baseline or not folders:
            continue
        try:
            values = load_unit_values(folders, column)
        except RecfitError as error:
            notes.append(f"{label}: not compared: {error}")
            continue
        paired = pd.concat({"row": values, "base": base}, axis=1, join="inner")
        if len(paired) < 2:
            notes.append(f"{label}: not compared: fewer than 2 users in common with the baseline")
            continue
        labels.append(label)
        differences.append((paired["row"] - paired["base"]).to_numpy(dtype=float))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # identical runs: 0/0, p is NaN
            p_values.append(stats.ttest_rel(paired["row"], paired["base"]).pvalue)
    bounds = bootstrap_mean_cis(differences, resamples=resamples, seed=seed)
    table = pd.DataFrame(
        {
            "delta": [values.mean() for values in differences],
            "ci_low": bounds[:, 0],
            "ci_high": bounds[:, 1],
            "p": np.asarray(p_values, dtype=float),
            "p_holm": holm_adjust(p_values),
            "pairs": [len(values) for values in differences],
        },
        index=pd.Index(labels, dtype=object),
    )
    table["sig"] = np.where(table["p_holm"] < ALPHA, "*", "")
    table.loc[baseline, ["sig", "pairs"]] = ["baseline", len(base)]
    table["pairs"] = table["pairs"].astype("Int64")
    return Significance(table=table.reindex(columns=list(COLUMNS)), paired_on=column, warnings=notes)
