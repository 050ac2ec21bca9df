"""`recfit compare` in this process, as text or as its JSON payload; run folders written by hand."""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path

import pandas as pd
import yaml


def compare(*arguments: str | Path) -> tuple[int, str, str]:
    """`recfit compare <arguments>` in this process; returns (exit code, stdout, stderr)."""
    from recfit.compare.cli import run

    out, err = io.StringIO(), io.StringIO()
    saved = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = out, err
    try:
        code = run([str(argument) for argument in arguments])
    finally:
        sys.stdout, sys.stderr = saved
    return code, out.getvalue(), err.getvalue()


def compare_json(*arguments: str | Path) -> dict:
    """The JSON payload of a `recfit compare` that must succeed."""
    code, out, err = compare(*arguments, "--format", "json")
    assert code == 0, err
    return json.loads(out)


def write_run(
    folder: Path,
    *,
    status: str = "completed",
    seed: int = 0,
    metrics: dict | None = None,
    config: dict | None = None,
    overrides: list[str] | None = None,
    per_user: pd.DataFrame | None = None,
    curve: list[float] | None = None,
    monitor: str = "val/ndcg@10",
    mode: str = "max",
    task: str = "ranking",
) -> Path:
    """A run folder as `recfit train` writes it; pass config=None to leave .hydra out (a broken folder)."""
    folder.mkdir(parents=True)
    summary = {
        "status": status,
        "experiment": "exp",
        "task": task,
        "monitor": monitor,
        "mode": mode,
        "seed": seed,
        "metrics": metrics or {},
        "error": "boom" if status == "failed" else None,
        "started_at": "2026-01-01T10:00:00+00:00",
        "run_dir": str(folder),
        "data": "synthetic",
        "parameters": {"total": 10, "trainable": 5},
        "best_checkpoint": None,
    }
    if status != "running":
        summary.update(finished_at="2026-01-01T10:01:00+00:00", duration_s=60.0 + seed)
    (folder / "metrics.json").write_text(json.dumps(summary))
    if config is not None:
        (folder / ".hydra").mkdir()
        (folder / ".hydra" / "config.yaml").write_text(yaml.safe_dump(config))
        (folder / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(overrides or []))
    if curve is not None:
        rows = [
            {"epoch": epoch, "step": 10 * epoch + 9, "train/loss_step": 1.0 / (epoch + 1)}
            for epoch in range(2)
        ]
        rows += [
            {"epoch": epoch, "step": 10 * epoch + 9, monitor: value} for epoch, value in enumerate(curve)
        ]
        pd.DataFrame(rows).to_csv(folder / "metrics.csv", index=False)
    if per_user is not None:
        per_user.to_parquet(folder / "per_user.parquet", index=False)
    return folder
