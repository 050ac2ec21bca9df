"""Turn a comparison table into text: rich (terminal), markdown, csv, latex or json.

csv and json keep raw numbers (one column per mean and per std, blanks as empty / null) so they
load straight back into pandas; the others show numbers with 4 significant digits (`0.2512 ± 0.01`,
`[-0.01234, +0.03]`), and `inf` / `nan` where a run reported such a value.
"""

from __future__ import annotations

import io
import json
import math
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from recfit.compare.table import STD_SUFFIX

FORMATS = ("rich", "markdown", "csv", "latex", "json")
SUFFIX_FORMATS = {".md": "markdown", ".csv": "csv", ".tex": "latex", ".json": "json", ".txt": "rich"}


@dataclass(frozen=True)
class Report:
    """What to show: the raw table plus what the renderers need to know about its columns."""

    frame: pd.DataFrame  # raw values, columns in display order
    metrics: list[str]  # metric columns (in grouped tables each has a "<metric> std" partner)
    title: str
    hidden: list[str] = field(default_factory=list)  # columns only csv and json carry (paths, group keys)
    notes: list[str] = field(default_factory=list)  # lines under the table
    meta: dict[str, Any] = field(default_factory=dict)  # extra top-level fields of the json output


def render(report: Report, fmt: str) -> str:
    """The report in format `fmt` (one of FORMATS), as a string ending in a newline."""
    renderers = {"rich": _rich_text, "markdown": _markdown, "csv": _csv, "latex": _latex, "json": _json}
    return renderers[fmt](report)


def print_rich(report: Report) -> None:
    """Print the report to the terminal, with colour when it is one."""
    from rich.console import Console

    console = Console()
    if not console.is_terminal:  # piped into a file or a pager: no need to squeeze into 80 columns
        console = Console(width=max(console.width, 200))
    console.print(_rich_table(report))
    for note in report.notes:
        console.print(note, highlight=False, soft_wrap=True)


# Every float shows this many significant digits, trailing zeros kept (0.2100, 0.004667, 1234, 1.200e-19).
DIGITS = 4
SIGNIFICANT = f"#.{DIGITS}g"
# format specs of the numeric columns that are not metrics, by column name or "<metric> <name>" suffix
NUMBER_FORMATS = {
    "delta": "+" + SIGNIFICANT,
    "p": SIGNIFICANT,
    "p_holm": SIGNIFICANT,
    "duration_s": SIGNIFICANT,
    "n": ".0f",
    "pairs": ".0f",
    "seed": ".0f",
}
CI = "95% CI"
TESTED_FIELDS = ("delta", "p", "p_holm")  # "<metric> <field>" columns of a significance test


def _number_format(column: str) -> str | None:
    """The format spec of a numeric column: "delta" and "test/ndcg@10 delta" alike."""
    if column in NUMBER_FORMATS:
        return NUMBER_FORMATS[column]
    metric, space, name = column.rpartition(" ")
    return NUMBER_FORMATS.get(name) if space and metric and name in TESTED_FIELDS else None


def display_frame(report: Report) -> tuple[pd.DataFrame, set[str]]:
    """Rounded text cells for the human formats, and the names of right-aligned (numeric) columns."""
    raw = report.frame
    cells: dict[str, pd.Series] = {}
    numeric: set[str] = set()
    for column in raw.columns:
        ending = column.rsplit(" ", 1)[-1]
        if column in report.hidden or column.endswith(STD_SUFFIX) or ending in ("ci_low", "ci_high"):
            continue
        spec = _number_format(column)
        if column in report.metrics:
            cells[column] = _mean_std(raw[column], raw.get(column + STD_SUFFIX))
            numeric.add(column)
        elif spec is not None:
            cells[column] = raw[column].map(lambda value, spec=spec: _number(value, spec))
            numeric.add(column)
        else:
            cells[column] = raw[column].astype("string").fillna("")
        if ending == "delta":
            prefix = column[: -len("delta")]
            cells[prefix + CI] = _interval(raw[prefix + "ci_low"], raw[prefix + "ci_high"])
            numeric.add(prefix + CI)
    return pd.DataFrame(cells, index=raw.index), numeric


def _mean_std(mean: pd.Series, std: pd.Series | None) -> pd.Series:
    """`0.2512 ± 0.01`; the mean alone where there is no std (a single run, n = 1)."""
    text = mean.map(_number)
    if std is None:
        return text
    return text.where(std.isna(), text + " ± " + std.map(_number))


def _number(value: Any, spec: str = SIGNIFICANT) -> str:
    """`value` in `spec`; blank for a missing value, `inf` / `-inf` spelled out."""
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return ""
    return format(float(value), spec).rstrip(".")  # "#" keeps trailing zeros, and a bare "1234."


def _interval(low: pd.Series, high: pd.Series) -> pd.Series:
    spec = "+" + SIGNIFICANT
    text = "[" + low.map(lambda v: _number(v, spec)) + ", " + high.map(lambda v: _number(v, spec)) + "]"
    return text.where(low.notna(), "")


def _rich_table(report: Report) -> Any:
    from rich.table import Table

    cells, numeric = display_frame(report)
    table = Table(title=report.title)
    for column in cells.columns:
        # fold rather than crop: in a narrow terminal every value stays readable, if split
        table.add_column(column, justify="right" if column in numeric else "left", overflow="fold")
    for row in cells.itertuples(index=False):
        table.add_row(*row)
    return table


def _rich_text(report: Report) -> str:
    """The terminal table as plain text (for --output FILE.txt): wide enough not to wrap cells."""
    from rich.console import Console

    console = Console(file=io.StringIO(), width=250, color_system=None, record=True)
    console.print(_rich_table(report))
    for note in report.notes:
        console.print(note, highlight=False, soft_wrap=True)
    return console.export_text()


def _markdown(report: Report) -> str:
    cells, numeric = display_frame(report)
    escape = lambda text: str(text).replace("|", r"\|")  # noqa: E731
    lines = [
        "| " + " | ".join(escape(column) for column in cells.columns) + " |",
        "|" + "|".join("---:" if column in numeric else "---" for column in cells.columns) + "|",
    ]
    lines += ["| " + " | ".join(escape(cell) for cell in row) + " |" for row in cells.itertuples(index=False)]
    return (
        "\n".join([f"**{report.title}**", "", *lines, *(["", *report.notes] if report.notes else [])]) + "\n"
    )


LATEX_SPECIAL = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
    "±": r"$\pm$",
}


def _latex_escape(text: str) -> str:
    return "".join(LATEX_SPECIAL.get(character, character) for character in str(text))


def _latex(report: Report) -> str:
    cells, numeric = display_frame(report)
    alignment = "".join("r" if column in numeric else "l" for column in cells.columns)
    row = lambda values: " & ".join(_latex_escape(value) for value in values) + r" \\"  # noqa: E731
    lines = [
        f"% {_latex_escape(report.title)} (needs \\usepackage{{booktabs}})",
        rf"\begin{{tabular}}{{{alignment}}}",
        r"\toprule",
        row(cells.columns),
        r"\midrule",
        *(row(values) for values in cells.itertuples(index=False)),
        r"\bottomrule",
        r"\end{tabular}",
        *(f"% {_latex_escape(note)}" for note in report.notes),
    ]
    return "\n".join(lines) + "\n"


def _csv(report: Report) -> str:
    return report.frame.to_csv(index=False)


def _json(report: Report) -> str:
    # pandas writes NaN as null and numpy scalars as plain numbers
    rows = json.loads(report.frame.to_json(orient="records", double_precision=15))
    payload = {
        "title": report.title,
        "metrics": report.metrics,
        **report.meta,
        "notes": report.notes,
        "rows": rows,
    }
    return json.dumps(payload, indent=2) + "\n"
