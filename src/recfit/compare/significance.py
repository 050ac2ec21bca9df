"""Significance of each row against a baseline row, per metric, with training seeds as the replicates.

A row of the comparison table is a run or a group of runs that differ only in their seed. Two rows
differ for two reasons: their configs, and the luck of their seeds. Three tests (`TESTS`):

- `seeds` (the default): a t-test on the per-seed metric values (one value per run, as its
  metrics.json reports it). Paired by seed when both rows ran the same seeds; Welch's t-test when
  they ran different ones; the pooled-variance t-test when one row has a single run (its seed
  variance is then taken to be the other row's). The 95% CI is the matching t interval. Conditional
  on the test users: it asks whether the difference is larger than what another seed would give.
- `bootstrap`: a hierarchical bootstrap, resampling each row's seeds, then the test users (the same
  users for both rows, which share a test set). Counts both seed and user sampling variance, but the
  percentile interval is too narrow with few seeds (about 10 or more are needed for it to hold).
- `users`: a paired t-test over users (per_user.parquet) of seed-averaged values, with a paired
  bootstrap CI over users. It ignores seed variance: it says whether these particular trained models
  differ on these users, not whether their configs do (two seeds of one config come out "different").

Holm's step-down adjustment runs over every (row, metric) test of the table.
"""

from __future__ import annotations

import warnings
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from recfit.compare.buckets import Bucket, split_bucket
from recfit.compare.metrics import per_unit_column
from recfit.errors import RecfitError
from recfit.run_folder import PER_USER_FILE

ALPHA = 0.05
RESAMPLES = 10_000
CONFIDENCE = 0.95
MIN_SEEDS = 3  # fewer seeds in a row than this: a one-line warning
# The hierarchical bootstrap's percentile interval is too narrow with few seeds: on simulated null
# data it called 16% of differences significant at the 5% level with 3 seeds a row, 10% with 5, 7%
# with 10, 4% with 20; below this many it warns.
MIN_SEEDS_BOOTSTRAP = 10
TESTS = ("seeds", "bootstrap", "users")
DEFAULT_TEST = "seeds"
# Resampled means are computed in blocks of at most this many draws, so memory stays ~50 MB
# whatever the number of users (a rating test set has one unit per row: tens of thousands).
BLOCK_DRAWS = 2_000_000
# Per tested metric M, the table has the columns "M delta", "M ci_low", ... in this order.
METRIC_FIELDS = ("delta", "ci_low", "ci_high", "p", "p_holm", "sig")
# Per row: how the seeds were compared (seeds test) and how many users were paired (the others).
ROW_FIELDS = ("method", "pairs")
BASELINE = "baseline"  # the sig cell of the baseline row
UNREADABLE = "unreadable"  # the sig cell of a row whose per_user.parquet cannot be read


def column(metric: str, name: str) -> str:
    """The table column holding `name` (one of METRIC_FIELDS) of the test on `metric`."""
    return f"{metric} {name}"


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


def _counts(rng: np.random.Generator, size: int, units: int) -> np.ndarray:
    """(size x units): how often each unit was drawn in each of `size` resamples of `units` draws."""
    draws = rng.integers(0, units, size=(size, units))
    offsets = (np.arange(size) * units)[:, None]
    return np.bincount((draws + offsets).ravel(), minlength=size * units).reshape(size, units)


def _resampled_means(values: np.ndarray, resamples: int, seed: int) -> np.ndarray:
    """(resamples x columns) means of `values` (units x columns) over units drawn with replacement."""
    rng = np.random.default_rng(seed)
    units = len(values)
    block = max(1, BLOCK_DRAWS // units)
    means = []
    for start in range(0, resamples, block):
        size = min(block, resamples - start)
        # a matrix product of the draw counts averages every column at once
        means.append(_counts(rng, size, units) @ values / units)
    return np.vstack(means)


def hierarchical_bootstrap(
    row: np.ndarray, base: np.ndarray, resamples: int = RESAMPLES, seed: int = 0
) -> np.ndarray:
    """Resampled differences of means between two (seeds x units) matrices over the same units.

    Each resample draws each side's seeds with replacement, then the units (users) with
    replacement, the same units for both sides since they were evaluated on the same test set.
    """
    rng = np.random.default_rng(seed)
    units = row.shape[1]
    block = max(1, BLOCK_DRAWS // units)
    deltas = []
    for start in range(0, resamples, block):
        size = min(block, resamples - start)
        unit_counts = _counts(rng, size, units)
        # each resample's mean over its drawn seeds, per unit: (size x units)
        row_means = _counts(rng, size, len(row)) @ row / len(row)
        base_means = _counts(rng, size, len(base)) @ base / len(base)
        deltas.append(((row_means - base_means) * unit_counts).sum(axis=1) / units)
    return np.concatenate(deltas)


@dataclass(frozen=True)
class Arm:
    """The completed runs of one table row: one entry per run, in the same order."""

    folders: list[str]
    seeds: list[int | None]
    values: pd.DataFrame  # one row per run, one column per metric (metrics.json values; NaN if absent)


@dataclass(frozen=True)
class Significance:
    """Per row label: for each tested metric M, "M delta", "M ci_low", ..., "M sig"; then method, pairs."""

    table: pd.DataFrame
    metrics: list[str]  # the metrics tested, in column order
    test: str  # one of TESTS
    paired_on: dict[str, str]  # metric -> per_user.parquet column (bootstrap and users tests)
    warnings: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class _Result:
    delta: float = np.nan
    low: float = np.nan
    high: float = np.nan
    p: float = np.nan
    method: str = ""
    pairs: int | None = None


def compare_to_baseline(
    arms: dict[str, Arm],
    baseline: str,
    metrics: list[str],
    test: str = DEFAULT_TEST,
    resamples: int = RESAMPLES,
    seed: int = 0,
    cold_items: int | None = None,
) -> Significance:
    """Test every row of `arms` (label -> its completed runs) against the `baseline` row, per metric.

    `cold_items`: the N of warm / cold subset metrics (`test/ndcg@10[cold]`, compare/buckets.py), whose
    per-user tests pair only the users of that subset.

    Rows that cannot be tested (no completed run, one run on each side, an unreadable or missing
    per_user.parquet) get blanks and a note; nothing here raises for one bad row.
    """
    if test not in TESTS:
        raise RecfitError(f"unknown test '{test}' (choose from {', '.join(TESTS)})")
    if not arms.get(baseline) or not arms[baseline].folders:
        raise RecfitError(f"baseline '{baseline}' has no completed run to compare against")
    notes: list[str] = []
    paired_on: dict[str, str] = {}
    tested = list(metrics)
    if test != "seeds":
        tested = []
        for metric in metrics:
            try:
                paired_on[metric] = per_unit_column(split_bucket(metric)[0])
                tested.append(metric)
            except RecfitError as error:
                notes.append(f"{metric}: not tested: {error}; --test seeds tests it")
        if not tested:
            raise RecfitError(f"--test {test} pairs per-user values: {notes[0]}")
    others = [label for label, arm in arms.items() if label != baseline and arm.folders]
    reader = _UnitReader()
    results: dict[tuple[str, str], _Result] = {}
    unreadable: set[str] = set()
    # why a comparison was not made -> row -> metrics: one note per reason, not per cell
    failures: dict[str, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
    for metric in tested:
        for label in others:
            try:
                bucket = split_bucket(metric)[1]
                rows = Bucket(bucket, cold_items) if bucket and cold_items is not None else None
                results[label, metric] = _test_one(
                    arms[label],
                    arms[baseline],
                    metric,
                    paired_on.get(metric),
                    test,
                    reader,
                    resamples,
                    seed,
                    rows,
                )
            except _Unreadable as error:
                unreadable.add(label if error.side == "row" else baseline)
                failures[str(error)][label].append(metric)
            except RecfitError as error:
                failures[str(error)][label].append(metric)
    for reason, rows in failures.items():
        metric_sets = {tuple(metrics) for metrics in rows.values()}
        on = ", ".join(metric_sets.pop()) if len(metric_sets) == 1 else "some metrics"
        notes.append(f"{_some(list(rows))}: not compared on {on}: {reason}")
    table = _table(results, others, baseline, tested, unreadable)
    least = MIN_SEEDS_BOOTSTRAP if test == "bootstrap" else MIN_SEEDS
    few = {label: len(arms[label].folders) for label in [baseline, *others]}
    few = {label: count for label, count in few.items() if count < least}
    if few and test != "users":
        shown = _some([f"{label} ({count})" for label, count in few.items()])
        consequence = (
            "its intervals are too narrow (p too small), prefer --test seeds"
            if test == "bootstrap"
            else "seed variance is barely estimated, so p and CI are wide or blank"
        )
        notes.insert(
            0,
            f"warning: fewer than {least} seeds in {shown}: {consequence}; train more seeds and compare "
            "them with --group-by",
        )
    return Significance(table=table, metrics=tested, test=test, paired_on=paired_on, warnings=notes)


def _some(labels: list[str], shown: int = 3) -> str:
    """The first `shown` labels, then how many more: a note stays one readable line."""
    more = len(labels) - shown
    return ", ".join(labels[:shown]) + (f" and {more} more" if more > 0 else "")


def _table(
    results: dict[tuple[str, str], _Result],
    others: list[str],
    baseline: str,
    metrics: list[str],
    unreadable: set[str],
) -> pd.DataFrame:
    labels = [baseline, *others]
    table = pd.DataFrame(index=pd.Index(labels, dtype=object))
    keys = [(label, metric) for metric in metrics for label in others]
    raw_p = [results[key].p if key in results else np.nan for key in keys]
    adjusted = dict(zip(keys, holm_adjust(raw_p), strict=True))
    for metric in metrics:
        got = {label: results.get((label, metric), _Result()) for label in others}
        values = {
            "delta": [got[label].delta for label in others],
            "ci_low": [got[label].low for label in others],
            "ci_high": [got[label].high for label in others],
            "p": [got[label].p for label in others],
            "p_holm": [adjusted[label, metric] for label in others],
        }
        for name, entries in values.items():
            table[column(metric, name)] = pd.Series([np.nan, *entries], index=table.index, dtype=float)
        p_holm = table[column(metric, "p_holm")]
        sig = np.where(p_holm < ALPHA, "*", "")
        table[column(metric, "sig")] = sig
        table.loc[baseline, column(metric, "sig")] = BASELINE
        for label in unreadable:
            table.loc[label, column(metric, "sig")] = UNREADABLE
    # the first metric's method and pairs: all metrics of a row share its runs and users
    methods: dict[str, str] = {}
    pairs: dict[str, int | None] = {}
    for (label, _), result in results.items():
        methods.setdefault(label, result.method)
        pairs.setdefault(label, result.pairs)
    table["method"] = pd.Series(methods, dtype=object).reindex(table.index).fillna("")
    table["pairs"] = pd.Series(pairs, dtype="Int64").reindex(table.index)
    return table


class _Unreadable(RecfitError):
    """A per_user.parquet that is not a readable Parquet table; `side` is "row" or "baseline"."""

    def __init__(self, message: str, side: str = "row") -> None:
        super().__init__(message)
        self.side = side


def _test_one(
    row: Arm,
    base: Arm,
    metric: str,
    unit_column: str | None,
    test: str,
    reader: _UnitReader,
    resamples: int,
    seed: int,
    rows: Bucket | None = None,
) -> _Result:
    if test == "seeds":
        return seed_test(row, base, metric)
    try:
        base_units = reader.matrix(base.folders, unit_column, rows)
    except _Unreadable as error:
        raise _Unreadable(f"baseline: {error}", side="baseline") from None
    row_units = reader.matrix(row.folders, unit_column, rows)
    common = row_units.columns.intersection(base_units.columns)
    if len(common) < 2:
        raise RecfitError("fewer than 2 users in common with the baseline")
    row_values = row_units[common].to_numpy(dtype=float)
    base_values = base_units[common].to_numpy(dtype=float)
    if test == "users":
        return _user_test(row_values.mean(axis=0), base_values.mean(axis=0), resamples, seed)
    deltas = hierarchical_bootstrap(row_values, base_values, resamples, seed)
    tail = (1 - CONFIDENCE) / 2
    low, high = np.quantile(deltas, [tail, 1 - tail])
    # two-sided: twice the smaller share of resampled differences on either side of zero
    extreme = min(np.count_nonzero(deltas <= 0), np.count_nonzero(deltas >= 0))
    p = min(1.0, 2 * (extreme + 1) / (len(deltas) + 1))
    delta = float(row_values.mean() - base_values.mean())
    return _Result(delta, float(low), float(high), p, "hierarchical bootstrap", len(common))


def _user_test(row: np.ndarray, base: np.ndarray, resamples: int, seed: int) -> _Result:
    from scipy import stats  # half a second to import: only --baseline pays it

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # identical runs: 0/0, p is NaN
        p = float(stats.ttest_rel(row, base).pvalue)
    differences = row - base
    low, high = bootstrap_mean_cis([differences], resamples=resamples, seed=seed)[0]
    return _Result(float(differences.mean()), low, high, p, "paired t over users", len(differences))


def seed_test(row: Arm, base: Arm, metric: str) -> _Result:
    """t-test of `metric` between the runs of two rows, one value per run (seed); see the module doc."""
    from scipy import stats

    x = _finite(row, metric)
    y = _finite(base, metric)
    if x.empty or y.empty:
        side = "row" if x.empty else "baseline"
        raise RecfitError(f"no finite value in the {side}'s runs")
    if len(x) + len(y) < 3:
        raise RecfitError(
            "one run on each side: no seed variance to test against (group seeds with --group-by; "
            "--test users compares these two trained models)"
        )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # no variance at all: p is NaN
        if _same_seeds(x, y):
            paired = pd.concat({"x": x, "y": y}, axis=1)
            result = stats.ttest_rel(paired["x"], paired["y"])
            method = "paired t over seeds"
        elif min(len(x), len(y)) >= 2:
            result = stats.ttest_ind(x, y, equal_var=False)
            method = "Welch t over seeds"
        else:
            result = stats.ttest_ind(x, y, equal_var=True)
            method = "pooled t over seeds"
        interval = result.confidence_interval(CONFIDENCE)
    delta = float(x.mean() - y.mean())
    return _Result(delta, float(interval.low), float(interval.high), float(result.pvalue), method)


def _finite(arm: Arm, metric: str) -> pd.Series:
    """The arm's finite values of `metric`, indexed by seed (position where a seed is unknown)."""
    values = arm.values[metric] if metric in arm.values else pd.Series(np.nan, index=arm.values.index)
    values = pd.Series(values.to_numpy(dtype=float), index=pd.Index(arm.seeds, dtype=object))
    return values[np.isfinite(values.to_numpy())]


def _same_seeds(x: pd.Series, y: pd.Series) -> bool:
    """Both rows ran the same seeds, each once: the seeds pair them."""
    return (
        len(x) >= 2
        and x.index.notna().all()
        and x.index.is_unique
        and y.index.is_unique
        and set(x.index) == set(y.index)
    )


class _UnitReader:
    """Reads per_user.parquet columns, each file once, as (runs x units) tables."""

    def __init__(self) -> None:
        self._tables: dict[str, pd.DataFrame] = {}

    def table(self, folder: str) -> pd.DataFrame:
        if folder not in self._tables:
            path = Path(folder) / PER_USER_FILE
            if not path.is_file():
                raise RecfitError(f"{folder} has no {PER_USER_FILE}")
            try:
                self._tables[folder] = pd.read_parquet(path)
            except Exception as error:  # pyarrow raises its own types for a file that is not Parquet
                raise _Unreadable(
                    f"{path} is unreadable ({type(error).__name__}: not a Parquet table)"
                ) from None
        return self._tables[folder]

    def matrix(self, folders: list[str], unit_column: str | None, rows: Bucket | None = None) -> pd.DataFrame:
        """`unit_column` per user (ranking) or per (user, item) row, one row per run; units that some
        run lacks are left out, so that every run of the row averages over the same users. `rows`: only
        the users of that warm / cold subset."""
        assert unit_column is not None
        tables = [self.table(folder) for folder in folders]
        if rows is not None:
            tables = [table[rows.mask(table)] for table in tables]
        for folder, table in zip(folders, tables, strict=True):
            if unit_column not in table.columns:
                shown = ", ".join(map(str, table.columns)) or "none"
                raise RecfitError(
                    f"{Path(folder) / PER_USER_FILE} has no column '{unit_column}' (columns: {shown})"
                )
        keys = ["user", "item"] if all(_one_row_per_item(table) for table in tables) else ["user"]
        # repeated (user, item) rows are averaged, so that joins cannot multiply them
        series = [
            table[[*keys, unit_column]].astype({unit_column: float}).groupby(keys)[unit_column].mean()
            for table in tables
        ]
        return pd.concat(series, axis=1, join="inner").T.reset_index(drop=True)


def _one_row_per_item(table: pd.DataFrame) -> bool:
    """Whether the rows are (user, item) pairs (rating, ctr) rather than one row per user that may name
    its target item (next_item): decided by the table alone, so that both arms of a test pair alike."""
    return "item" in table.columns and not table["user"].is_unique
