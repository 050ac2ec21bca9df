"""The comparison tables: one row per run, or one per group of runs, as pandas DataFrames.

Values stay raw numbers here (NaN where blank); render.py decides how they look.
"""

from __future__ import annotations

import difflib
import os
import re
from dataclasses import dataclass, field
from functools import reduce
from pathlib import Path

import numpy as np
import pandas as pd

from recfit.compare.discover import Run
from recfit.errors import RecfitError
from recfit.run_folder import Status

COMPLETED = Status.completed
# Fields of metrics.json that --filter and --group-by accept next to the config keys.
SUMMARY_KEYS = ("status", "experiment", "task", "monitor", "mode", "seed")
# Keys that differ between any two runs yet say nothing about how they differ.
IGNORED_PREFIXES = ("paths.", "hydra.")
IGNORED_KEYS = ("seed",)  # shown in its own column
TIMESTAMP = re.compile(r"\d{4}-\d{2}-\d{2}[_T ]\d{2}[-:]\d{2}")
# Columns of the rows themselves; a config key of the same name is left out of the table, not mixed in.
ROW_COLUMNS = ("run", "group", "n", "status", "duration_s", "seed", "seeds", "path")
# Shown when they differ although their values hold timestamps: a parent run's folder is named by one.
TIMESTAMPED_KEYS = ("init_from.path",)
UNSET = "(unset)"  # a group key's value in runs whose config lacks the key
STD_SUFFIX = " std"


@dataclass(frozen=True)
class RunTable:
    """Every run found: `runs` holds summary fields and metrics, `config` the flattened config (text)."""

    # run (the row label), path, status, experiment, task, monitor, mode, seed, duration_s, metrics
    runs: pd.DataFrame
    # same index; one column per dotted config key (text); NaN where a run's config lacks the key
    config: pd.DataFrame
    # same index, one column per metric: "NaN", "inf" or "-inf" where a completed run reported that
    # value (metrics.json writes NaN as null), "" elsewhere; such values are left out of means and tests
    non_finite: pd.DataFrame = field(default_factory=pd.DataFrame)

    @property
    def metric_names(self) -> list[str]:
        return [column for column in self.runs.columns if "/" in column]

    def key_values(self) -> pd.DataFrame:
        """Config keys plus the summary fields, all as text: what --filter and --group-by see."""
        summary = self.runs[list(SUMMARY_KEYS)].astype("string")
        summary["seed"] = self.runs["seed"].astype("Int64").astype("string")
        values = self.config.astype("string")
        return values.combine_first(summary) if len(values.columns) else summary

    def subset(self, mask: pd.Series) -> RunTable:
        return RunTable(runs=self.runs[mask], config=self.config[mask], non_finite=self.non_finite[mask])

    def with_metric_columns(self, metrics: list[str]) -> RunTable:
        """Blank columns for chosen metrics that no run reported (e.g. every run failed)."""
        missing = [metric for metric in metrics if metric not in self.runs.columns]
        runs = self.runs.assign(**dict.fromkeys(missing, float("nan"))) if missing else self.runs
        return RunTable(runs=runs, config=self.config, non_finite=self.non_finite)


def build_run_table(runs: list[Run]) -> RunTable:
    """Lay the runs out as rows. Metrics of runs that did not complete are blanked."""
    summary = pd.DataFrame(
        {
            "run": run_labels([run.path for run in runs]),
            "path": [str(run.path) for run in runs],
            "status": [run.status for run in runs],
            **{
                field: [run.summary.get(field) for run in runs]
                for field in ("experiment", "task", "monitor", "mode", "seed", "duration_s")
            },
        }
    )
    summary["seed"] = pd.to_numeric(summary["seed"], errors="coerce").astype("Int64")
    summary["duration_s"] = pd.to_numeric(summary["duration_s"], errors="coerce")
    reported = [run.summary.get("metrics") for run in runs]
    reported = [values if isinstance(values, dict) else {} for values in reported]
    metrics = pd.DataFrame(reported, index=summary.index, dtype=object)
    metrics = metrics.apply(pd.to_numeric, errors="coerce").sort_index(axis=1).astype(float)
    # a running run may already hold val/ metrics from a past epoch: not comparable with finished ones
    metrics.loc[summary["status"] != COMPLETED, :] = float("nan")
    # NaN (written as null) and inf are results, not blanks: name them rather than average them
    present = (
        pd.DataFrame(
            [{name: True for name in values} for values in reported],
            index=summary.index,
            columns=metrics.columns,
        )
        .fillna(False)
        .astype(bool)
    )
    non_finite = pd.DataFrame("", index=summary.index, columns=metrics.columns)
    completed = (summary["status"] == COMPLETED).to_numpy()[:, None]
    non_finite = non_finite.mask(present & metrics.isna() & completed, "NaN")
    non_finite = non_finite.mask(metrics == np.inf, "inf").mask(metrics == -np.inf, "-inf")
    config = pd.DataFrame([run.config for run in runs], index=summary.index)
    return RunTable(runs=pd.concat([summary, metrics], axis=1), config=config, non_finite=non_finite)


def non_finite_notes(table: RunTable, metrics: list[str]) -> list[str]:
    """One line per metric that a completed run reported as NaN or inf, naming up to three runs."""
    notes = []
    for metric in metrics:
        if metric not in table.non_finite:
            continue
        flags = table.non_finite[metric]
        flagged = flags[flags != ""]
        if flagged.empty:
            continue
        parts = []
        for value, runs in flagged.groupby(flagged, sort=True):
            labels = list(table.runs.loc[runs.index, "run"])
            shown = ", ".join(labels[:3]) + (", ..." if len(labels) > 3 else "")
            meaning = "NaN (undefined)" if value == "NaN" else value
            parts.append(f"{meaning} in {len(labels)} run{'s' if len(labels) > 1 else ''} ({shown})")
        notes.append(f"{metric} is {' and '.join(parts)}: left out of means, std and tests")
    return notes


def run_labels(paths: list[Path]) -> list[str]:
    """Each run's path relative to the deepest folder above all of them (its own name if alone)."""
    if len(paths) == 1:
        return [paths[0].name]
    common = os.path.commonpath(paths)
    return [os.path.relpath(path, common) for path in paths]


def apply_filters(table: RunTable, filters: list[str]) -> RunTable:
    """Keep runs matching every `key=value` (or `key!=value`) filter.

    Values compare as text (`true`, `null`, `tiny_bert`; `(unset)` where a run's config lacks the
    key), and also as numbers when both sides are numbers, so `optimizer.head_lr=1e-3` matches 0.001.
    """
    if not filters:
        return table
    values = table.key_values().fillna(UNSET)
    keep = pd.Series(True, index=values.index)
    for text in filters:
        negate = "!=" in text
        key, separator, wanted = text.partition("!=" if negate else "=")
        key, wanted = key.strip(), wanted.strip()
        if not separator or not key:
            raise RecfitError(f"bad --filter '{text}': expected key=value or key!=value")
        column = values[known_key(key, values.columns, "--filter")]
        matches = _matches(column, wanted)
        keep &= ~matches if negate else matches
    if not keep.any():
        raise RecfitError(f"no run matches --filter {' '.join(filters)}")
    return table.subset(keep)


def _matches(column: pd.Series, wanted: str) -> pd.Series:
    equal = (column == wanted).astype(bool)
    number = pd.to_numeric(pd.Series([wanted]), errors="coerce").iloc[0]
    if pd.notna(number):
        equal |= (pd.to_numeric(column, errors="coerce") == number).fillna(False).astype(bool)
    return equal


def known_key(key: str, known: pd.Index, option: str) -> str:
    """`key` if it is one of `known`, else a RecfitError naming the closest key."""
    if key in known:
        return key
    close = difflib.get_close_matches(key, list(known), n=1)
    hint = f" (did you mean '{close[0]}'?)" if close else ""
    raise RecfitError(f"unknown {option} key '{key}'{hint}")


def differing_keys(config: pd.DataFrame) -> list[str]:
    """Config keys whose value is not the same in every run, minus those that always differ.

    Runs whose config could not be read are left out of the decision, else every key would differ.
    """
    readable = config[config.notna().any(axis=1)]
    candidates = [
        key
        for key in readable.columns
        if not key.startswith(IGNORED_PREFIXES) and key not in IGNORED_KEYS and "timestamp" not in key
    ]
    varying = readable[candidates].nunique(dropna=False) > 1
    keys = list(varying[varying].index)
    return [
        key
        for key in keys
        if key in TIMESTAMPED_KEYS or not readable[key].astype("string").str.contains(TIMESTAMP).any()
    ]


@dataclass(frozen=True)
class Groups:
    """The grouped table and, per group label, the run folders that went into its means."""

    frame: pd.DataFrame  # group, <keys>, n, <metric>, <metric> std, ..., status, duration_s, seeds
    labels: pd.Series  # the group label of each run, aligned with RunTable.runs


def group_runs(table: RunTable, by: list[str], metrics: list[str]) -> Groups:
    """Mean ± sample std (ddof=1) of each metric over the runs sharing the values of `by`.

    Only completed runs enter the means (n counts them); the status column still counts every run.
    """
    values = table.key_values()
    by = list(dict.fromkeys(known_key(key, values.columns, "--group-by") for key in by))
    keys = values[by].fillna(UNSET)
    parts = [key + "=" + keys[key] for key in by]
    label = reduce(lambda left, right: left + "," + right, parts).rename("group")
    runs = table.runs.assign(group=label)
    completed = runs[runs["status"] == COMPLETED].groupby("group")
    everyone = runs.groupby("group")
    frame = keys.drop(columns=[key for key in by if key in ROW_COLUMNS]).groupby(label).first()
    frame["n"] = completed.size().reindex(frame.index, fill_value=0)
    # non-finite values (noted under the table) would turn a mean into inf or NaN
    finite = runs.loc[runs["status"] == COMPLETED, metrics].where(lambda v: np.isfinite(v))
    finite = finite.groupby(runs.loc[finite.index, "group"])
    means, stds = finite.mean(), finite.std(ddof=1)
    for metric in metrics:
        frame[metric] = means[metric]
        frame[metric + STD_SUFFIX] = stds[metric]
    frame["status"] = everyone["status"].agg(_count_statuses)
    frame["duration_s"] = completed["duration_s"].mean()
    frame["seeds"] = everyone["seed"].agg(
        lambda seeds: ",".join(str(s) for s in sorted(seeds.dropna().unique()))
    )
    return Groups(frame=frame.reset_index(), labels=label)


def _count_statuses(statuses: pd.Series) -> str:
    """`2 completed, 1 failed`: no run is silently dropped from a group."""
    return ", ".join(f"{count} {status}" for status, count in statuses.value_counts().items())


def sort_rows(frame: pd.DataFrame, metric: str, ascending: bool) -> pd.DataFrame:
    """Rows by `metric`; blanks (failed or running runs) last; ties keep their order."""
    return frame.sort_values(metric, ascending=ascending, na_position="last", kind="stable")


def best_row(frame: pd.DataFrame, metric: str, ascending: bool) -> pd.DataFrame:
    """The single best row by `metric` (lowest when `ascending`)."""
    scored = frame[frame[metric].notna()]
    if scored.empty:
        raise RecfitError(f"--best: no completed run has a value for {metric}")
    position = scored[metric].idxmin() if ascending else scored[metric].idxmax()
    return frame.loc[[position]]
