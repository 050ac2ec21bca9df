"""`recfit eval`, `recommend`, `embed`, `predict`: argument parsing and terminal output.

Each command returns its exit code: 0, or 2 with one line `recfit: error: ...` on stderr for bad
input (a missing or failed run, no checkpoint, an unknown user, k < 1, a model that cannot do it).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from recfit.errors import RecfitError

EXPLAINED = 3  # top history items compared across recommended items (the same ones: a note says why)


class _Parser(argparse.ArgumentParser):
    """argparse that reports a bad argument as a RecfitError (one line) instead of its usage block."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise RecfitError(f"{self.prog}: {message}")


def _fail(error: RecfitError) -> int:
    print(f"recfit: error: {error}", file=sys.stderr)
    return 2


def _run_dir_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_dir", type=Path, metavar="RUN_DIR", help="a completed training run folder")


def eval_command(arguments: list[str]) -> int:
    """`recfit eval RUN_DIR [key=value ...]`."""
    parser = _Parser(
        prog="recfit eval",
        usage="recfit eval RUN_DIR [key=value ...]",
        description="Test a run's best checkpoint (or on another data set / split) into a new folder.",
    )
    _run_dir_argument(parser)
    try:
        options, overrides = parser.parse_known_args(arguments)
        bad = [o for o in overrides if o.startswith("-") or "=" not in o]
        if bad:
            shown = " ".join(bad)
            raise RecfitError(f"recfit eval: unrecognized arguments: {shown} (overrides are key=value)")
        from recfit.inference.evaluate import evaluate

        result = evaluate(options.run_dir, overrides)
    except RecfitError as error:
        return _fail(error)
    from recfit.report import print_metrics

    if result.record.get("transfer"):
        print(f"transfer: {result.record['transfer']}")
    print_metrics(result.metrics, result.eval_dir, result.status, result.record["duration_s"])
    return 0


def _recommend_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="recfit recommend", description="A user's top-k unseen items.")
    _run_dir_argument(parser)
    who = parser.add_mutually_exclusive_group(required=True)
    who.add_argument("--user", help="the user's id as the data set's files spell it")
    who.add_argument(
        "--history",
        metavar="ID,ID,...",
        help="a user not in training, as the item ids they touched, oldest first (a run whose "
        "model.user_encoder reads histories)",
    )
    parser.add_argument("--k", type=int, default=10, help="how many items (default 10)")
    parser.add_argument("--explain", action="store_true", help="what drove each score")
    parser.add_argument("--format", choices=("table", "json"), default="table")
    return parser


def recommend_command(arguments: list[str]) -> int:
    """`recfit recommend RUN_DIR (--user ID | --history ID,ID,...) [--k 10] [--explain] [--format ...]`."""
    try:
        options = _recommend_parser().parse_args(arguments)
        if options.k < 1:
            raise RecfitError(f"--k must be at least 1, got {options.k}")
        from recfit.inference.history import check_explainable, parse_history

        history = None if options.history is None else parse_history(options.history)
        from recfit.inference.checkpoint import load_run, read_record

        read_record(options.run_dir)  # a bad folder is refused before torch is imported
        loaded = load_run(options.run_dir)
        from recfit.inference.recommend import recommend, user_code

        if options.explain:
            check_explainable(loaded, history)
        items = recommend(loaded, options.user, options.k, history)
        explanations = None
        if options.explain:
            from recfit.inference.explain import explain

            code = user_code(loaded.data, options.user)
            explanations = explain(loaded, code, [item.item_code for item in items])
    except RecfitError as error:
        return _fail(error)
    who = options.user if options.history is None else f"history {options.history}"
    if options.format == "json":
        print(json.dumps(_as_json(who, items, explanations), indent=2))
    else:
        _print_table(who, items, explanations)
    return 0


def _as_json(user: str, items: list[Any], explanations: list[Any] | None) -> dict[str, Any]:
    rows = [item.as_dict() for item in items]
    for row, explanation in zip(rows, explanations or [], strict=False):
        row["explanation"] = {
            "method": explanation.method,
            "contributions": [vars(c) for c in explanation.contributions],
            "remainder": explanation.remainder,
            **explanation.extra,
        }
    return {"user": user, "items": rows}


def _print_table(user: str, items: list[Any], explanations: list[Any] | None) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    if explanations:
        _print_explained(console, user, items, explanations)
        return
    table = Table(title=f"top {len(items)} for user {user} (seen items excluded)")
    for column, justify in (("rank", "right"), ("item", "left"), ("score", "right"), ("title", "left")):
        table.add_column(column, justify=justify)
    for item in items:
        table.add_row(str(item.rank), item.item_id, f"{item.score:.4f}", item.title or "")
    console.print(table)


def _print_explained(console: Any, user: str, items: list[Any], explanations: list[Any]) -> None:
    """Each item, then its largest terms, the rest and the remainder: the printed values add up."""
    from recfit.inference.explain import DECIMALS, printed_terms, shared_top

    tokens = explanations[0].method.startswith("integrated gradients")
    other = "tokens" if tokens else "history items"
    say = {"soft_wrap": True, "highlight": False, "markup": False}
    title = f"top {len(items)} for user {user} (seen items excluded)"
    console.print(f"{title}; each score is the sum of the terms below it", **say)
    for item, explanation in zip(items, explanations, strict=True):
        console.print(f"{item.rank:>3}. {item.title or item.item_id} (item {item.item_id})", **say)
        for label, value in printed_terms(explanation, other):
            console.print(f"       {value}  {label}", **say)
        console.print(f"       ={item.score:.{DECIMALS}f}  score", **say)
    console.print(f"explanation: {explanations[0].method}", **say)
    common = shared_top(explanations, EXPLAINED)
    if common and not tokens:
        cosine = [e.extra.get("mean_cosine_to_other_items") for e in explanations]
        alike = sum(cosine) / len(cosine) if None not in cosine else float("nan")
        console.print(
            f"note: every item's top {EXPLAINED} are the same history items: the recommended items are "
            f"alike in the model's space (mean cosine between them {alike:.2f}), so the same part of the "
            "history explains them all",
            **say,
        )


def embed_command(arguments: list[str]) -> int:
    """`recfit embed RUN_DIR --items [--output FILE]`."""
    parser = _Parser(prog="recfit embed", description="Export item vectors to Parquet.")
    _run_dir_argument(parser)
    parser.add_argument("--items", action="store_true", required=True, help="export item vectors")
    parser.add_argument("--output", type=Path, help="Parquet file (default RUN_DIR/embeddings/items.parquet)")
    try:
        options = parser.parse_args(arguments)
        from recfit.inference.checkpoint import load_run, read_record

        read_record(options.run_dir)
        from recfit.inference.embed import default_output, export_item_vectors

        loaded = load_run(options.run_dir)
        path = export_item_vectors(loaded, options.output or default_output(options.run_dir))
    except RecfitError as error:
        return _fail(error)
    print(f"{loaded.data.num_items:,} item vectors written to {path}")
    return 0


def predict_command(arguments: list[str]) -> int:
    """`recfit predict RUN_DIR --input FILE.csv [--output FILE.csv] [--text-column C] [--label-column C]`."""
    parser = _Parser(
        prog="recfit predict",
        description="Predict every row of a CSV with a trained run (text_classification, rating, ctr); "
        "with the run's label column present, also print accuracy / F1 (per class, confusion matrix) "
        "or the task's metrics. Without --output the rows go to stdout as CSV and the report to stderr.",
    )
    _run_dir_argument(parser)
    parser.add_argument("--input", required=True, type=Path, help="CSV: the run's text column, or user,item")
    parser.add_argument("--output", type=Path, help="write the rows with their predictions here (CSV)")
    parser.add_argument("--text-column", help="text column (default: the run's dataset.reader.text_column)")
    parser.add_argument(
        "--label-column", help="label column (default: the run's dataset.reader.label_column)"
    )
    try:
        options = parser.parse_args(arguments)
        from recfit.inference.predict import predict

        predictions = predict(
            options.run_dir, options.input, options.output, options.text_column, options.label_column
        )
    except RecfitError as error:
        return _fail(error)
    report = sys.stdout
    if predictions.output is None:
        predictions.frame.to_csv(sys.stdout, index=False)
        report = sys.stderr
    else:
        print(f"{len(predictions.frame):,} predictions written to {predictions.output}", file=report)
    _print_report(predictions, report)
    return 0


def _print_report(predictions: Any, stream: Any) -> None:
    """The metrics line, then (classes) the per-class report and the confusion matrix."""
    if not predictions.metrics:
        return
    report = predictions.report
    shown = {"f1": "macro-F1"} if report is not None else {}  # F1 over classes is their mean
    values = "  ".join(f"{shown.get(name, name)} {value:.4f}" for name, value in predictions.metrics.items())
    print(f"{values}  ({predictions.labelled_rows:,} labelled rows)", file=stream)
    if report is None:
        return
    width = max(len("class"), *(len(name) for name in report.classes))
    print(f"{'class':<{width}}  precision  recall      f1  support", file=stream)
    for name, p, r, f, s in zip(
        report.classes, report.precision, report.recall, report.f1, report.support, strict=True
    ):
        print(f"{name:<{width}}  {p:9.4f}  {r:6.4f}  {f:6.4f}  {s:7d}", file=stream)
    print("confusion matrix (rows: true label, columns: predicted)", file=stream)
    cell = max(width, *(len(str(v)) for row in report.confusion for v in row))
    print(" " * width + "".join(f"  {name:>{cell}}" for name in report.classes), file=stream)
    for name, row in zip(report.classes, report.confusion, strict=True):
        print(f"{name:<{width}}" + "".join(f"  {v:>{cell}}" for v in row), file=stream)
