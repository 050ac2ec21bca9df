"""`sweep_summary.csv` at a sweep's root: one row per job, rewritten each time a job ends.

A Hydra callback, so it works the same under every launcher (basic, joblib, submitit) and sweeper
(basic, Optuna). It reads only the job folders' metrics.json and .hydra/overrides.yaml (no torch).
"""

from __future__ import annotations

import fcntl
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import yaml
from hydra.core.utils import JobReturn
from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from recfit.run_folder import OVERRIDES_FILE, Status, read_record_if_any, replace_atomic

log = logging.getLogger(__name__)

SUMMARY_FILE = "sweep_summary.csv"
COLUMNS = ["job", "status", "objective", "value", "duration_s", "overrides", "run_dir", "error"]


def job_folders(sweep_dir: Path) -> list[Path]:
    """The numbered job folders of a sweep, in job order."""
    return sorted(
        (p for p in sweep_dir.iterdir() if p.is_dir() and p.name.isdigit()), key=lambda p: int(p.name)
    )


def _row(folder: Path) -> dict[str, Any]:
    overrides_file = folder / OVERRIDES_FILE
    overrides = yaml.safe_load(overrides_file.read_text()) if overrides_file.is_file() else []
    row: dict[str, Any] = {
        "job": int(folder.name),
        "overrides": " ".join(overrides or []),
        "run_dir": str(folder),
    }
    record = read_record_if_any(folder)
    if not record:
        return {**row, "status": Status.running}
    monitor = record.get("monitor")
    return {
        **row,
        "status": record.get("status"),
        "objective": monitor,
        "value": record.get("metrics", {}).get(monitor),
        "duration_s": record.get("duration_s"),
        "error": record.get("error"),
    }


@dataclass(frozen=True)
class SweepOutcome:
    """How a sweep ended: its summary file, and how many of its jobs did not complete."""

    summary: Path
    failed: int
    total: int


# The sweeps that ended in this process, in order (the multirun's own callback sees the sweep folder;
# `recfit train -m` reads this to exit non-zero when a job failed).
ENDED: list[SweepOutcome] = []


def write_summary(sweep_dir: Path) -> Path:
    """Scan the job folders and (re)write sweep_summary.csv; a lock keeps concurrent jobs in order."""
    path = sweep_dir / SUMMARY_FILE
    with open(sweep_dir / f".{SUMMARY_FILE}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        frame = pd.DataFrame([_row(folder) for folder in job_folders(sweep_dir)], columns=COLUMNS)
        replace_atomic(path, lambda temporary: frame.to_csv(temporary, index=False))
    return path


class SweepSummaryCallback(Callback):
    """Keeps sweep_summary.csv current during a multirun (single runs are left alone)."""

    def on_job_end(self, config: DictConfig, job_return: JobReturn, **kwargs: Any) -> None:
        if config.hydra.mode is not None and config.hydra.mode.name == "MULTIRUN":
            write_summary(Path(config.hydra.sweep.dir))

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        if sweep_dir.is_dir():
            path = write_summary(sweep_dir)
            log.info("sweep summary: %s", path)
            statuses = [_row(folder)["status"] for folder in job_folders(sweep_dir)]
            failed = sum(status != Status.completed for status in statuses)
            ENDED.append(SweepOutcome(path.absolute(), failed, len(statuses)))
