"""The run an `init_from.path` names: its checkpoint, its folder and what it was trained for.

Path logic and JSON only (no torch), so a wrong path is refused before anything heavy loads.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from recfit.errors import ConfigError

BEST_CHECKPOINT = Path("checkpoints") / "best.ckpt"
LAST_CHECKPOINT = Path("checkpoints") / "last.ckpt"  # a run that kept its final weights only (keep=last)
METRICS_FILE = "metrics.json"


@dataclass(frozen=True)
class ParentRun:
    """Where the weights come from."""

    checkpoint: Path
    run_dir: Path | None  # the run folder holding the checkpoint; None for a checkpoint outside one
    task: str | None  # the parent's task (from its metrics.json), when known

    def describe(self) -> dict[str, str | None]:
        """The lineage fields that name the parent, for metrics.json and run_info.json."""
        return {
            "parent_run": str(self.run_dir) if self.run_dir else None,
            "checkpoint": str(self.checkpoint),
            "parent_task": self.task,
        }


def find_parent(path: str) -> ParentRun:
    """A run folder (its checkpoints/best.ckpt, else last.ckpt) or a checkpoint file; ConfigError (one
    line) otherwise."""
    given = Path(path).expanduser().resolve()
    if given.is_dir():
        checkpoint = given / BEST_CHECKPOINT
        if not checkpoint.is_file() and (given / LAST_CHECKPOINT).is_file() and _completed(given):
            checkpoint = given / LAST_CHECKPOINT  # a completed run's final weights, not a mid-run state
        if not checkpoint.is_file():
            raise ConfigError(
                f"init_from.path {path} holds no {BEST_CHECKPOINT} (give a run folder or a .ckpt file)"
            )
        run_dir: Path | None = given
    elif given.is_file():
        checkpoint = given
        folder = given.parent.parent
        run_dir = folder if given.parent.name == "checkpoints" and (folder / METRICS_FILE).is_file() else None
    else:
        raise ConfigError(f"init_from.path does not exist: {path}")
    return ParentRun(checkpoint=checkpoint, run_dir=run_dir, task=_task_of(run_dir))


def _completed(run_dir: Path) -> bool:
    try:
        return json.loads((run_dir / METRICS_FILE).read_text(encoding="utf-8")).get("status") == "completed"
    except (OSError, ValueError, AttributeError):
        return False


def _task_of(run_dir: Path | None) -> str | None:
    if run_dir is None:
        return None
    try:
        task = json.loads((run_dir / METRICS_FILE).read_text(encoding="utf-8")).get("task")
    except (OSError, ValueError, AttributeError):
        return None
    return task if isinstance(task, str) else None
