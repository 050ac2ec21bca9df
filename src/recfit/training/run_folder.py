"""The run folder's own files: metrics.json, written atomically, and the final table."""

from __future__ import annotations

import json
import math
import os
import socket
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from recfit.config.multitask import monitor_key


@dataclass
class RunResult:
    """What a finished run reports: its status, final metrics, folder and whole metrics.json record."""

    status: str
    metrics: dict[str, float | None]
    run_dir: Path
    record: dict[str, Any]


METRICS_FILE = "metrics.json"
PER_USER_FILE = "per_user.parquet"
CHECKPOINT_DIR = "checkpoints"  # best.ckpt (by task.metric) and last.ckpt (for resume)
BEST_CHECKPOINT = "best.ckpt"
LAST_CHECKPOINT = "last.ckpt"


class Status:
    running = "running"
    completed = "completed"
    failed = "failed"
    interrupted = "interrupted"


def replace_atomic(path: Path, write: Callable[[str], None]) -> None:
    """Call `write(temporary_path)` for a file in the same folder, then rename it over `path`.

    Readers see the old file or the new one, never half of one; a crash leaves no partial file.
    """
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(handle)
    try:
        write(temporary)
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)


def write_json_atomic(path: Path, payload: dict[str, Any]) -> None:
    """metrics.json and friends: indented JSON, replaced atomically."""

    def dump(temporary: str) -> None:
        with open(temporary, "w") as stream:
            json.dump(payload, stream, indent=2, default=str)
            stream.write("\n")

    replace_atomic(path, dump)


def write_parquet_atomic(path: Path, columns: dict[str, Any]) -> None:
    """A table of equal-length columns as Parquet, replaced atomically."""
    import pandas as pd

    replace_atomic(path, lambda temporary: pd.DataFrame(columns).to_parquet(temporary, index=False))


def new_record(cfg: DictConfig, run_dir: Path) -> dict[str, Any]:
    """The metrics.json of a run that is starting (status running, no metrics yet)."""
    return {
        "status": Status.running,
        "experiment": cfg.experiment_name,
        "task": cfg.task.name.value,
        "monitor": monitor_key(cfg),
        "mode": cfg.task.mode.value,
        "seed": cfg.seed,
        "metrics": {},
        "error": None,
        "started_at": now_iso(),
        "run_dir": str(run_dir),
        "host": socket.gethostname(),  # with pid: resume refuses a run that is still alive
        "pid": os.getpid(),
    }


def record_failure(cfg: DictConfig, run_dir: Path, error: BaseException) -> None:
    """Mark a run that failed before training started (e.g. an invalid sweep trial)."""
    record = new_record(cfg, run_dir)
    record.update(status=Status.failed, error=describe(error), finished_at=now_iso(), duration_s=0.0)
    write_json_atomic(run_dir / METRICS_FILE, record)


def describe(error: BaseException) -> str:
    """One line for metrics.json: the message alone for user errors, with the type for bugs."""
    from recfit.errors import RecfitError

    message = str(error).strip().splitlines()[0] if str(error).strip() else ""
    return message if isinstance(error, RecfitError) else f"{type(error).__name__}: {message}"


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def clean_metrics(values: dict[str, Any]) -> dict[str, float]:
    """Plain floats (no tensors), NaN kept as None so the JSON stays valid."""
    out = {}
    for name, value in sorted(values.items()):
        number = float(value)
        out[name] = None if math.isnan(number) else number
    return out
