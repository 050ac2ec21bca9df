"""`recfit compare DIR... [options]`: argument parsing and the order of the steps.

`run(argv)` returns the exit code: 0, or 2 with one line `recfit: error: ...` on stderr when the
input is wrong (no runs, unknown metric, bad filter, unknown baseline).
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from recfit.compare import metrics as metric_names
from recfit.compare import plots
from recfit.compare.buckets import with_buckets
from recfit.compare.discover import is_evaluation, load_runs
from recfit.compare.render import FORMATS, SUFFIX_FORMATS, Report, print_rich, render
from recfit.compare.significance import (
    ALPHA,
    DEFAULT_TEST,
    METRIC_FIELDS,
    RESAMPLES,
    ROW_FIELDS,
    TESTS,
    Arm,
    compare_to_baseline,
)
from recfit.compare.significance import column as significance_column
from recfit.compare.table import (
    COMPLETED,
    ROW_COLUMNS,
    STD_SUFFIX,
    UNSET,
    RunTable,
    apply_filters,
    best_row,
    build_run_table,
    differing_keys,
    group_runs,
    known_key,
    non_finite_notes,
    sort_rows,
)
from recfit.errors import RecfitError
from recfit.run_folder import write_text_atomic

DESCRIPTION = """\
Compare finished runs: one row per run folder (any folder holding metrics.json, found at any depth
under DIR: single runs and sweeps), showing only the config keys that differ between the runs, the
chosen metrics, status, duration_s and seed. Failed, interrupted and running runs are listed with
blank metrics and left out of means, tests and plots of metrics; a metric that is NaN or inf is
named in a note and left out of means and tests. Folders written by `recfit eval` are left out
unless --include-evals. Nothing is trained, instantiated or executed: only JSON, YAML, CSV and
Parquet files are read."""

EPILOG = """\
keys (--filter, --group-by, --plot-param):
  any flattened config key (optimizer.head_lr, backbone.name_or_path, dataset.split_seed), any group
  choice from the overrides (backbone, model, task), or a metrics.json field (status, experiment,
  task, monitor, mode, seed)

--baseline RUN_OR_GROUP:
  without --group-by: a run folder (its path, or its label from the 'run' column, or the label's
  last part, e.g. the timestamp folder name)
  with --group-by: a group label exactly as the 'group' column shows it: key=value pairs in
  --group-by order, joined by commas, e.g. 'model.name=mf' or 'backbone=tiny_bert,optimizer.head_lr=0.001'
  ('(unset)' stands for runs whose config lacks the key)
  Every other row is tested against the baseline on every test/ metric shown; for each metric M the
  columns are 'M delta' (row mean - baseline mean), 'M ci_low', 'M ci_high' (95% CI of the delta),
  'M p', 'M p_holm' (Holm-adjusted over all rows and metrics tested) and 'M sig' ('*' when
  p_holm < 0.05). The runs of a row are its seeds: compare groups of seeds with --group-by.

--test (what varies between the replicates that p and the CI account for):
  seeds      (default) t-test on one value per run (its metrics.json value): paired by seed when both
             rows ran the same seeds, else Welch's; pooled variance when a row has a single run; t
             CI. Any metric. A row with fewer than 3 seeds gets a one-line warning; one run on each
             side cannot be tested.
  bootstrap  hierarchical bootstrap: each row's seeds resampled, then the test users (paired): seed
             and user variance. Needs 10-20 seeds per row: with fewer its CI is too narrow (warned).
  users      paired t-test over users of seed-averaged per-user values (per_user.parquet: ndcg@10 for
             test/ndcg@10, squared_error for test/rmse, abs_error for test/mae, logloss for
             test/logloss, correct for test/accuracy) and a paired bootstrap CI over users. Ignores
             seed variance: whether these trained models differ on these users, not their configs.

examples:
  recfit compare outputs/runs/quickstart
  recfit compare outputs/sweeps --group-by optimizer.head_lr --sort test/ndcg@10
  recfit compare outputs --filter status=completed --filter model.name=mf --metric test/rmse,test/mae
  recfit compare outputs/sweeps --group-by backbone --baseline backbone=tiny_bert --format markdown
  recfit compare outputs --group-by optimizer.head_lr --plot bars.png --plot-curves curves.png \\
      --plot-param optimizer.head_lr lr.png
  recfit compare outputs --format json --output table.json
"""


class _Parser(argparse.ArgumentParser):
    """argparse prints its usage and exits on bad input; recfit reports one line and exits 2 instead."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise RecfitError(message)


def build_parser() -> argparse.ArgumentParser:
    """The `recfit compare` argument parser (its --help is the command's documentation)."""
    parser = _Parser(
        prog="recfit compare",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("folders", nargs="+", metavar="DIR", type=Path, help="folders to search for runs")
    parser.add_argument(
        "--metric",
        metavar="M[,M...]",
        help="metrics to show, e.g. test/ndcg@10,test/recall@10 (a bare name like ndcg@10 means its val/ "
        "and test/ versions; default: each run's monitor metric and its test/ counterpart)",
    )
    parser.add_argument(
        "--sort", metavar="METRIC", help="sort rows by METRIC, best first (direction from the runs' mode)"
    )
    parser.add_argument(
        "--ascending", action="store_true", help="sort lowest first (and let --best pick the lowest)"
    )
    parser.add_argument(
        "--filter",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="keep runs whose KEY equals VALUE (KEY!=VALUE: differs); repeatable, all must hold; "
        "values compare as text or as numbers (1e-3 matches 0.001); '(unset)' matches a missing key",
    )
    parser.add_argument(
        "--group-by",
        metavar="KEY[,KEY...]",
        help="one row per distinct value of these keys: mean ± sample std over the other runs "
        "(typically seeds), with n = completed runs",
    )
    parser.add_argument(
        "--best", action="store_true", help="show only the best row by --sort (or the first metric)"
    )
    parser.add_argument(
        "--baseline",
        metavar="RUN_OR_GROUP",
        help="pair every other row with this run or group on per-user test values (see below)",
    )
    parser.add_argument(
        "--format",
        choices=FORMATS,
        help="output format (default: rich in the terminal; with --output, from the file suffix: "
        ".md .csv .tex .json, else rich as plain text)",
    )
    parser.add_argument("--output", metavar="FILE", type=Path, help="write the table to FILE (atomically)")
    parser.add_argument(
        "--plot",
        metavar="FILE.png",
        type=Path,
        help="bar chart of the first metric per row (± std per group)",
    )
    parser.add_argument(
        "--plot-curves",
        metavar="FILE.png",
        type=Path,
        help="learning curves: the first metric's val/ version against epoch, from each run's metrics.csv",
    )
    parser.add_argument(
        "--plot-param",
        nargs=2,
        metavar=("KEY", "FILE.png"),
        help="the first metric against the numeric config KEY, one dot per run (log x-axis for *lr* keys "
        "or values spanning > 2 orders of magnitude)",
    )
    parser.add_argument(
        "--test",
        choices=TESTS,
        default=DEFAULT_TEST,
        help=f"significance test of --baseline (see below; default {DEFAULT_TEST})",
    )
    parser.add_argument(
        "--cold-items",
        type=int,
        metavar="N",
        help="next_item runs: also show each test/ metric M over warm and cold items, as M[warm] and "
        "M[cold]: the test users whose target item has more than / at most N training interactions "
        "(per_user.parquet); --baseline tests them too",
    )
    parser.add_argument(
        "--include-evals",
        action="store_true",
        help="also list folders written by `recfit eval` (left out by default: they re-test a run, "
        "they are not another training run of its group)",
    )
    parser.add_argument(
        "--bootstrap-resamples", type=int, default=RESAMPLES, metavar="N", help=f"default {RESAMPLES}"
    )
    parser.add_argument("--bootstrap-seed", type=int, default=0, metavar="N", help="default 0")
    return parser


def run(argv: list[str]) -> int:
    """`recfit compare` with these arguments; returns the exit code."""
    try:
        compare(build_parser().parse_args(argv))
    except RecfitError as error:
        message = " ".join(str(error).split())  # one line, whatever the message holds
        print(f"recfit: error: {message}", file=sys.stderr)
        return 2
    except SystemExit as exit_request:  # --help
        return exit_request.code if isinstance(exit_request.code, int) else 0
    return 0


def compare(arguments: argparse.Namespace) -> None:
    """Read, filter, tabulate, test, plot and print, in that order."""
    if arguments.bootstrap_resamples < 1:
        raise RecfitError("--bootstrap-resamples must be at least 1")
    runs = load_runs(arguments.folders)
    evaluations = [run for run in runs if is_evaluation(run)]
    if evaluations and not arguments.include_evals:
        runs = [run for run in runs if not is_evaluation(run)]
        if not runs:
            raise RecfitError(
                f"only `recfit eval` folders ({len(evaluations)}) under "
                f"{', '.join(map(str, arguments.folders))}: add --include-evals to compare them"
            )
    table = apply_filters(build_run_table(runs), arguments.filter)
    chosen = _choose_metrics(table, arguments)
    table = table.with_metric_columns(chosen)
    bucket_notes: list[str] = []
    if arguments.cold_items is not None:
        with_subsets, chosen, bucket_notes = with_buckets(
            table.runs, chosen, arguments.cold_items, table.runs["status"] == COMPLETED
        )
        table = RunTable(runs=with_subsets, config=table.config, non_finite=table.non_finite)
    order_metric = _resolve_one(arguments.sort, table, "--sort") if arguments.sort else chosen[0]
    ascending = arguments.ascending or _direction(order_metric, table) == "min"
    group_by = [key.strip() for key in (arguments.group_by or "").split(",") if key.strip()]
    view = _rows(table, group_by, chosen)

    shown = set(table.runs["path"])
    notes = [
        f"{broken.path}: {'; '.join(broken.problems)}"
        for broken in runs
        if broken.problems and str(broken.path) in shown
    ]
    notes += non_finite_notes(table, chosen)
    notes += bucket_notes
    if evaluations and not arguments.include_evals:
        notes.append(
            f"{_count(len(evaluations), '`recfit eval` folder')} left out (--include-evals shows them)"
        )
    meta: dict = {"group_by": group_by, "sort": arguments.sort and order_metric, "ascending": ascending}
    frame = view.frame
    if arguments.baseline:
        frame = _against_baseline(frame, view, table, chosen, arguments, notes, meta)
    if group_by:
        notes.append("mean ± sample std (ddof=1) over the completed runs of each group; n = completed runs")

    if arguments.sort:
        frame = sort_rows(frame, order_metric, ascending)
    if arguments.best:
        best = best_row(frame, order_metric, ascending)[view.label]
        frame = frame[frame[view.label].isin([*best, meta.get("baseline")])]
    frame = frame[_column_order(frame, view, chosen)]

    title = f"recfit compare: {_count(len(table.runs), 'run')}"
    if group_by:
        title += f" in {_count(len(view.frame), 'group')}"
    if arguments.sort:
        title += f", sorted by {order_metric} ({'lowest' if ascending else 'highest'} first)"
    report = Report(frame, chosen, title, hidden=[*view.hidden, "path"], notes=notes, meta=meta)
    _plots(arguments, report, view, table, group_by)
    _write(report, arguments)


def _against_baseline(
    frame: pd.DataFrame,
    view: Rows,
    table: RunTable,
    chosen: list[str],
    arguments: argparse.Namespace,
    notes: list[str],
    meta: dict,
) -> pd.DataFrame:
    """`frame` with the significance columns joined on; explains them in `notes` and `meta`."""
    baseline = _resolve_baseline(arguments.baseline, view, table)
    tested = _tested_metrics(chosen, table)
    significance = compare_to_baseline(
        view.arms(table),
        baseline,
        tested,
        arguments.test,
        arguments.bootstrap_resamples,
        arguments.bootstrap_seed,
        arguments.cold_items,
    )
    metrics = significance.metrics
    compared = sum(int(significance.table[significance_column(m, "p")].notna().sum()) for m in metrics)
    notes += [
        f"vs baseline {baseline}, on {', '.join(metrics)}: {_explain_test(significance, arguments)}; "
        f"p_holm: Holm over {compared} tests; * = p_holm < {ALPHA}",
        *significance.warnings,
    ]
    meta.update(
        baseline=baseline, test=significance.test, tested_metrics=metrics, paired_on=significance.paired_on
    )
    columns = significance.table
    if significance.test == "seeds":
        columns = columns.drop(columns=["pairs"])
    return frame.join(columns, on=view.label)


def _explain_test(significance: Any, arguments: argparse.Namespace) -> str:
    """What delta, the CI and p are, in words, for the note under the table."""
    resampling = f"{arguments.bootstrap_resamples} resamples, seed {arguments.bootstrap_seed}"
    if significance.test == "seeds":
        return (
            "delta = row - baseline, mean over seeds of each run's value; p and 95% CI: t-test over "
            "seeds (method column), conditional on the test users"
        )
    units = ", ".join(f"'{column}' ({metric})" for metric, column in significance.paired_on.items())
    if significance.test == "bootstrap":
        return (
            f"delta = row - baseline, mean over seeds and users of per_user.parquet {units}; p and 95% CI: "
            f"hierarchical bootstrap, seeds then users ({resampling})"
        )
    return (
        f"delta = row - baseline, mean over users of seed-averaged per_user.parquet {units}; p: paired "
        f"t-test over users; 95% CI: paired bootstrap over users ({resampling}); seed variance is not "
        "counted: this tests these trained models, not their configs"
    )


@dataclass(frozen=True)
class Rows:
    """The table's rows (runs or groups) and how each run maps onto them."""

    frame: pd.DataFrame
    label: str  # the column naming each row: "run" or "group"
    keys: list[str]  # config keys shown (differing keys) or grouped by
    row_of_run: pd.Series  # per run (aligned with RunTable.runs): the label of its row
    hidden: list[str]  # columns only csv and json show

    def arms(self, table: RunTable) -> dict[str, Arm]:
        """Row label -> its completed runs (none for a failed or running run): folders, seeds, metrics."""
        completed = table.runs[table.runs["status"] == COMPLETED]
        rows = self.row_of_run[completed.index]
        metrics = table.metric_names
        arms = {}
        for label in self.frame[self.label]:
            runs = completed[rows == label]
            arms[label] = Arm(
                folders=list(runs["path"]),
                seeds=[None if pd.isna(seed) else int(seed) for seed in runs["seed"]],
                values=runs[metrics].reset_index(drop=True),
            )
        return arms


def _rows(table: RunTable, group_by: list[str], chosen: list[str]) -> Rows:
    reserved = {*ROW_COLUMNS, *ROW_FIELDS}
    if group_by:
        groups = group_runs(table, group_by, chosen)
        clashing = [key for key in group_by if key in ROW_FIELDS]  # still in the group label
        keys = [key for key in group_by if key not in reserved]
        return Rows(groups.frame.drop(columns=clashing), "group", keys, groups.labels, hidden=keys)
    keys = [key for key in differing_keys(table.config) if key not in reserved]
    columns = [*chosen, "status", "duration_s", "seed", "path"]
    frame = pd.concat([table.runs[["run"]], table.config[keys], table.runs[columns]], axis=1)
    return Rows(frame, "run", keys, table.runs["run"], hidden=[])


def _column_order(frame: pd.DataFrame, view: Rows, chosen: list[str]) -> list[str]:
    """Label, keys, n, metrics (each with its std), significance, then status, duration and seed."""
    metrics = [column for metric in chosen for column in (metric, metric + STD_SUFFIX)]
    tests = [significance_column(metric, name) for metric in chosen for name in METRIC_FIELDS]
    wanted = [view.label, *view.keys, "n", *metrics, *tests, *ROW_FIELDS]
    wanted += ["status", "duration_s", "seed", "seeds", "path"]
    return [column for column in dict.fromkeys(wanted) if column in frame.columns]


def _choose_metrics(table: RunTable, arguments: argparse.Namespace) -> list[str]:
    available = table.metric_names
    if arguments.metric:
        chosen = metric_names.resolve_metrics(arguments.metric, available)
    else:
        defaults = metric_names.default_metrics(table.runs["monitor"])
        chosen = [metric for metric in defaults if metric in available] or defaults
    if arguments.sort:
        chosen += [m for m in [_resolve_one(arguments.sort, table, "--sort")] if m not in chosen]
    if not chosen:
        raise RecfitError("no metric to show: the runs name no monitor metric; pick some with --metric")
    return chosen


def _resolve_one(name: str, table: RunTable, option: str) -> str:
    resolved = metric_names.resolve_metrics(name, table.metric_names)
    if len(resolved) > 1:
        raise RecfitError(f"{option} takes one metric: {' or '.join(resolved)}")
    return resolved[0]


def _direction(metric: str, table: RunTable) -> str:
    return metric_names.metric_direction(metric, table.runs["monitor"], table.runs["mode"])


def _resolve_baseline(text: str, view: Rows, table: RunTable) -> str:
    """The row label that --baseline names (see the --help epilog for the accepted forms)."""
    labels = list(view.frame[view.label])
    if text in labels:
        return text
    if view.label == "group":
        tidy = ",".join(part.strip() for part in text.split(","))
        if tidy in labels:
            return tidy
        shown = ", ".join(f"'{label}'" for label in labels[:5]) + (", ..." if len(labels) > 5 else "")
        raise RecfitError(f"unknown baseline '{text}': with --group-by, give a group label: {shown}")
    path = Path(text)
    if path.is_dir():
        match = table.runs.loc[table.runs["path"] == str(path.resolve()), "run"]
        if len(match):
            return str(match.iloc[0])
    endings = [label for label in labels if label.endswith("/" + text.strip("/"))]
    if len(endings) == 1:
        return endings[0]
    raise RecfitError(
        f"unknown baseline '{text}': not a run folder in the table (give its path or its 'run' label)"
    )


def _tested_metrics(chosen: list[str], table: RunTable) -> list[str]:
    """Every test/ metric shown, else the test/ versions of the metrics shown (val/ metrics chose the
    checkpoint, so they are not tested)."""
    tests = [metric for metric in chosen if metric.startswith("test/")]
    if tests:
        return tests
    fallback = [metric_names.counterpart(metric, "test") for metric in chosen]
    fallback = [metric for metric in dict.fromkeys(fallback) if metric in table.metric_names]
    if fallback:
        return fallback
    raise RecfitError("--baseline tests test/ metrics: choose a test/ metric with --metric")


def _plots(
    arguments: argparse.Namespace, report: Report, view: Rows, table: RunTable, group_by: list[str]
) -> None:
    metric, frame = report.metrics[0], report.frame
    shown_runs = view.row_of_run.isin(frame[view.label])
    if arguments.plot:
        errors = frame.get(metric + STD_SUFFIX)
        plots.bar_chart(
            frame[view.label], frame[metric], errors, metric, arguments.plot, report.meta.get("baseline")
        )
        _wrote(arguments.plot)
    if arguments.plot_curves:
        val_metric = metric_names.counterpart(metric, "val")
        curves = [
            (view.row_of_run[index], curve)
            for index, folder in table.runs["path"][shown_runs].items()
            if (curve := plots.read_curve(folder, val_metric)) is not None
        ]
        if not curves:
            raise RecfitError(f"--plot-curves: no run shown has {val_metric} in its metrics.csv")
        plots.learning_curves(curves, val_metric, arguments.plot_curves)
        _wrote(arguments.plot_curves)
    if arguments.plot_param:
        key, path = arguments.plot_param
        values = table.key_values()
        key = known_key(key, values.columns, "--plot-param")
        others = [other for other in group_by if other != key]
        series = "all runs"
        if others:  # a line per combination of the other --group-by keys
            series = values[others].fillna(UNSET).apply(lambda column: column.name + "=" + column)
            series = series.agg(",".join, axis=1)
        points = pd.DataFrame({"x": pd.to_numeric(values[key], errors="coerce"), "y": table.runs[metric]})
        points = points.assign(series=series)[shown_runs & (table.runs["status"] == COMPLETED)].dropna()
        if points.empty:
            raise RecfitError(f"--plot-param: '{key}' has no numeric value in a completed run shown")
        plots.parameter_plot(points, key, metric, Path(path))
        _wrote(Path(path))


def _write(report: Report, arguments: argparse.Namespace) -> None:
    output: Path | None = arguments.output
    fmt = arguments.format or (SUFFIX_FORMATS.get(output.suffix.lower(), "rich") if output else "rich")
    if output:
        write_text_atomic(output, render(report, fmt))
        _wrote(output)
    elif fmt == "rich":
        print_rich(report)
    else:
        sys.stdout.write(render(report, fmt))


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}" + ("" if number == 1 else "s")


def _wrote(path: Path) -> None:
    # stderr, so that stdout stays exactly the table (e.g. JSON piped into jq)
    print(f"wrote {path}", file=sys.stderr)
