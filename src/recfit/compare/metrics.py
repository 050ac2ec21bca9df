"""Metric names: which exist, which to show by default, which direction is better, what to pair on."""

from __future__ import annotations

import difflib

import pandas as pd

from recfit.errors import RecfitError
from recfit.tasks.metrics import Metric
from recfit.tasks.registry import known_metrics

# Logged besides the tasks' metrics (recfit.tasks): the training loss, and mse, which older runs and
# other tools report. Each metric's direction and per-row column is stated once, with its definition.
NOT_TASK_METRICS = (Metric("loss", smaller=True), Metric("mse", smaller=True, per_row="squared_error"))


def _definitions() -> dict[str, Metric]:
    """Every metric recfit can name, by name (a ranking metric without its `@k`)."""
    return {**known_metrics(), **{metric.name: metric for metric in NOT_TASK_METRICS}}


def base_name(metric: str) -> str:
    """`test/ndcg@10` -> `ndcg@10`; a multi-task run's `test/ctr/auc` -> `ctr/auc`."""
    return metric.split("/", 1)[-1]


def _task_and_name(metric: str) -> tuple[str, str]:
    """`test/ctr/auc` -> ("ctr", "auc"); `test/auc` -> ("", "auc")."""
    task, _, name = base_name(metric).rpartition("/")
    return task, name


def counterpart(metric: str, stage: str) -> str:
    """`val/ndcg@10`, "test" -> `test/ndcg@10`."""
    return f"{stage}/{base_name(metric)}"


def default_metrics(monitors: pd.Series) -> list[str]:
    """Each monitor metric (val/...) found in the runs, in order, each followed by its test/ counterpart."""
    chosen: list[str] = []
    for monitor in monitors.dropna().unique():
        for metric in (monitor, counterpart(monitor, "test")):
            if metric not in chosen:
                chosen.append(metric)
    return chosen


def resolve_metrics(requested: str, available: list[str]) -> list[str]:
    """Parse `--metric a,b`; a bare name (`ndcg@10`) means its val/ and test/ versions.

    Raises RecfitError naming the closest known metric when one is not reported by any run.
    """
    chosen: list[str] = []
    for name in (part.strip() for part in requested.split(",")):
        if not name:
            continue
        if "/" not in name and name not in available:
            expanded = [f"{stage}/{name}" for stage in ("val", "test") if f"{stage}/{name}" in available]
        else:
            expanded = [name] if name in available else []
        if not expanded:
            raise RecfitError(f"unknown metric '{name}'{_suggestion(name, available)}")
        chosen.extend(metric for metric in expanded if metric not in chosen)
    if not chosen:
        raise RecfitError("--metric needs at least one metric name")
    return chosen


def _suggestion(name: str, available: list[str]) -> str:
    close = difflib.get_close_matches(name, available, n=1)
    if close:
        return f" (did you mean '{close[0]}'?)"
    shown = ", ".join(available[:12]) or "none"
    return f" (the runs report: {shown})"


def metric_direction(metric: str, monitors: pd.Series, modes: pd.Series) -> str:
    """ "max" or "min": the mode of runs that monitor this metric, else a guess from its name."""
    same = modes[monitors.map(base_name, na_action="ignore") == base_name(metric)].dropna()
    if not same.empty:
        return str(same.mode().iloc[0])
    definition = _definitions().get(_task_and_name(metric)[1].split("@", 1)[0])
    return "min" if definition is not None and definition.smaller else "max"


def per_unit_column(metric: str) -> str:
    """The per_user.parquet column that a paired test on `metric` compares.

    Ranking metrics (`ndcg@10`) are stored under their own name; rating and classification metrics
    under the per-row error they average. AUC and F1 are not averages over rows, so they cannot be paired.
    A multi-task run's columns carry the task's prefix: `test/rating/rmse` pairs on `rating/squared_error`.
    """
    task, name = _task_and_name(metric)
    prefix = f"{task}/" if task else ""
    if "@" in name:
        return prefix + name
    definitions = _definitions()
    definition = definitions.get(name)
    if definition is not None and definition.per_row is not None:
        return prefix + definition.per_row
    pairable = ", ".join(
        ["<ranking metric>@k", *(n for n, d in definitions.items() if d.per_row and not d.at_k)]
    )
    raise RecfitError(
        f"{metric} is not an average over users or rows, so it cannot be paired (use {pairable})"
    )
