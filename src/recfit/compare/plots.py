"""PNG figures: a bar chart of a metric, learning curves, a metric against a hyperparameter.

Figures are drawn on matplotlib's Agg canvas directly (no pyplot), so nothing here opens a window
or touches the global backend of a notebook that imports recfit. Every figure is FIGURE_INCHES at
DPI: 800 x 500 pixels.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from recfit.run_folder import CURVES_FILE, atomic_path

FIGURE_INCHES = (8.0, 5.0)
DPI = 100
MAX_LABEL = 40  # characters of a tick label; the end of a run path is the part that tells runs apart
MAX_LEGEND = 12  # more lines than this and a legend hides the plot


def _figure():  # -> (Figure, Axes); matplotlib is imported only when a plot is asked for
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=FIGURE_INCHES, dpi=DPI, layout="constrained")
    FigureCanvasAgg(figure)
    return figure, figure.add_subplot()


def _save(figure, path: Path) -> None:
    with atomic_path(path) as temporary:
        figure.savefig(temporary, format="png", dpi=DPI)


def _short(label: str) -> str:
    return label if len(label) <= MAX_LABEL else "…" + label[-(MAX_LABEL - 1) :]


def bar_chart(
    labels: pd.Series,
    values: pd.Series,
    errors: pd.Series | None,
    metric: str,
    path: Path,
    baseline: str | None = None,
) -> None:
    """One horizontal bar per row (run or group), with ± std error bars for groups.

    Rows without a finite value (failed or running runs, NaN or inf metrics, named in the table's
    notes) are left out of the chart, not drawn as zero or as an endless bar.
    """
    shown = pd.Series(np.isfinite(values.to_numpy(dtype=float)), index=values.index)
    labels, values = labels[shown], values[shown]
    figure, axes = _figure()
    positions = np.arange(len(values))
    colours = ["tab:gray" if label == baseline else "tab:blue" for label in labels]
    xerr = None if errors is None else errors[shown].fillna(0).to_numpy()
    axes.barh(positions, values.to_numpy(), xerr=xerr, color=colours, capsize=3)
    axes.set_yticks(positions, [_short(label) for label in labels], fontsize=8)
    axes.invert_yaxis()  # first row of the table on top
    axes.set_xlabel(metric + (" (mean ± std)" if errors is not None else ""))
    axes.set_title(f"{metric}, {len(values)} {'groups' if errors is not None else 'runs'}")
    _save(figure, path)


def read_curve(run_folder: str, metric: str) -> pd.Series | None:
    """Per-epoch values of `metric` from a run's metrics.csv (last value logged in each epoch).

    Lightning's CSV log is sparse: each row holds only what was logged at that step.
    """
    path = Path(run_folder) / CURVES_FILE
    if not path.is_file():
        return None
    log = pd.read_csv(path)
    if metric not in log.columns or "epoch" not in log.columns:
        return None
    values = log[["epoch", metric]].dropna()
    trained = log.filter(like="train/").notna().any(axis=1)
    if trained.any():
        # runs written before December 2026 validated the best checkpoint once more after fit, logged
        # one epoch past the last trained one: a repeat of an earlier value, not a point of the curve
        values = values[values["epoch"].isin(log.loc[trained, "epoch"])]
    return values.groupby("epoch")[metric].last() if not values.empty else None


def learning_curves(curves: list[tuple[str, pd.Series]], metric: str, path: Path) -> None:
    """One line per run (value against epoch); runs sharing a label (a group's seeds) share a colour."""
    figure, axes = _figure()
    labels = list(dict.fromkeys(label for label, _ in curves))
    colours = {label: f"C{index % 10}" for index, label in enumerate(labels)}
    named: set[str] = set()
    for label, curve in curves:
        legend = None if label in named else _short(label)
        named.add(label)
        axes.plot(curve.index, curve.to_numpy(), marker="o", color=colours[label], label=legend, alpha=0.8)
    from matplotlib.ticker import MaxNLocator

    axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes.set_xlabel("epoch")
    axes.set_ylabel(metric)
    axes.set_title(f"learning curves: {metric}")
    if 0 < len(labels) <= MAX_LEGEND:
        axes.legend(fontsize=8)
    _save(figure, path)


def use_log_axis(key: str, values: pd.Series) -> bool:
    """Log scale for learning rates and for any positive values spanning more than 2 orders of magnitude."""
    positive = values[values > 0]
    if "lr" in key.lower():
        return not positive.empty
    return len(positive) == len(values) and not positive.empty and positive.max() / positive.min() > 100


def parameter_plot(points: pd.DataFrame, key: str, metric: str, path: Path) -> None:
    """`metric` against the numeric hyperparameter `key`: one dot per run, and per series a line
    through the mean at each value.

    `points` has columns x, y and series (runs in the same series share a colour and a line).
    """
    figure, axes = _figure()
    for index, (series, runs) in enumerate(points.groupby("series", sort=True)):
        colour = f"C{index % 10}"
        axes.scatter(runs["x"], runs["y"], color=colour, alpha=0.5, s=18)
        means = runs.groupby("x")["y"].agg(["mean", "std"])
        axes.errorbar(
            means.index,
            means["mean"],
            yerr=means["std"],
            color=colour,
            marker="o",
            capsize=3,
            label=_short(str(series)),
        )
    if use_log_axis(key, points["x"]):
        axes.set_xscale("log")
    axes.set_xlabel(key)
    axes.set_ylabel(metric)
    axes.set_title(f"{metric} against {key}")
    if points["series"].nunique() <= MAX_LEGEND:
        axes.legend(fontsize=8)
    _save(figure, path)
