"""What a run's metrics.json says about the config that made it (the rest of the record is the run's)."""

from __future__ import annotations

from typing import Any

from omegaconf import DictConfig

from recfit.config.multitask import monitor_key


def run_identity(cfg: DictConfig) -> dict[str, Any]:
    """experiment, task, monitor, mode and seed: the fields `recfit compare` and resume read back."""
    return {
        "experiment": cfg.experiment_name,
        "task": str(cfg.task.name),
        "monitor": monitor_key(cfg),
        "mode": cfg.task.mode.value,
        "seed": cfg.seed,
    }
