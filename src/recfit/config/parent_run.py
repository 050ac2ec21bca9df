"""The run an `init_from.path` names: its checkpoint, its folder and what it was trained for.

Path logic and JSON only (no torch), so a wrong path is refused before anything heavy loads.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from recfit.errors import ConfigError
from recfit.run_folder import (
    BEST_CHECKPOINT,
    CHECKPOINT_DIR,
    METRICS_FILE,
    Status,
    best_checkpoint,
    last_checkpoint,
    read_record_if_any,
)


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
        checkpoint = best_checkpoint(given)
        if not checkpoint.is_file() and last_checkpoint(given).is_file() and _completed(given):
            checkpoint = last_checkpoint(given)  # checkpoint.keep=last: final weights, not mid-run
        if not checkpoint.is_file():
            raise ConfigError(
                f"init_from.path {path} holds no {CHECKPOINT_DIR}/{BEST_CHECKPOINT} "
                "(give a run folder or a .ckpt file)"
            )
        run_dir: Path | None = given
    elif given.is_file():
        checkpoint = given
        folder = given.parent.parent
        in_run_folder = given.parent.name == CHECKPOINT_DIR and (folder / METRICS_FILE).is_file()
        run_dir = folder if in_run_folder else None
    else:
        raise ConfigError(f"init_from.path does not exist: {path}")
    return ParentRun(checkpoint=checkpoint, run_dir=run_dir, task=_task_of(run_dir))


def _completed(run_dir: Path) -> bool:
    return read_record_if_any(run_dir).get("status") == Status.completed


def _task_of(run_dir: Path | None) -> str | None:
    if run_dir is None:
        return None
    task = read_record_if_any(run_dir).get("task")
    return task if isinstance(task, str) else None
