"""Terminal output shared by the commands: the final metrics table."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console
from rich.table import Table


def print_metrics(metrics: dict[str, float | None], run_dir: Path, status: str, duration_s: float) -> None:
    """A table of val/ and test/ metrics side by side, then the run folder's path."""
    stages = ("val", "test")
    names = sorted({key.split("/", 1)[1] for key in metrics if "/" in key and key.split("/", 1)[0] in stages})
    table = Table(title=f"recfit run {status} in {duration_s:.1f} s")
    table.add_column("metric")
    for stage in stages:
        table.add_column(stage, justify="right")
    for name in names:
        cells = []
        for stage in stages:
            key = f"{stage}/{name}"
            value = metrics.get(key)
            # metrics.json keeps NaN as null: a metric that is undefined (AUC of one class) says so
            cells.append("" if key not in metrics else "NaN" if value is None else f"{value:.4f}")
        table.add_row(name, *cells)
    console = Console()
    console.print(table)
    console.print(f"run folder: {run_dir}", soft_wrap=True, highlight=False)
