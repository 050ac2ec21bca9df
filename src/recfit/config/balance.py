"""Checks on `dataset.class_weights` and `dataset.resampling` (imbalanced labels), before anything loads.

Both only make sense for a loss over classes: task=ctr with loss=bce (two classes: not clicked,
clicked) and task=text_classification with loss=cross_entropy (one class per distinct label).
"""

from __future__ import annotations

from numbers import Real

from omegaconf import DictConfig, ListConfig

from recfit.config.schema import LossName, Resampling, TaskName
from recfit.errors import ConfigError

BALANCED = "balanced"
CLASS_LOSSES = {TaskName.ctr: LossName.bce, TaskName.text_classification: LossName.cross_entropy}


def check_balance(cfg: DictConfig) -> None:
    """Raise ConfigError (one line) for class weights or resampling that cannot apply to this run."""
    weights, resampling = cfg.dataset.get("class_weights"), cfg.dataset.get("resampling", Resampling.none)
    active = {"class_weights": weights is not None, "resampling": resampling != Resampling.none}
    used = [key for key, on in active.items() if on]
    if not used:
        return
    task, loss = cfg.task.name, cfg.loss.name
    if CLASS_LOSSES.get(task) != loss:
        raise ConfigError(
            f"dataset.{used[0]} needs class labels: task=ctr with loss=bce or task=text_classification "
            f"with loss=cross_entropy (this run has task '{task.value}' with loss '{loss.value}')"
        )
    if weights is None or weights == BALANCED:
        return
    if not isinstance(weights, ListConfig | list) or not weights:
        raise ConfigError(
            f"dataset.class_weights must be null, balanced or a list of numbers (got {weights})"
        )
    if not all(isinstance(w, Real) and not isinstance(w, bool) and w > 0 for w in weights):
        raise ConfigError(f"dataset.class_weights must all be positive numbers (got {list(weights)})")
    if task == TaskName.ctr and len(weights) != 2:
        raise ConfigError(
            f"dataset.class_weights for task=ctr takes 2 weights [not clicked, clicked] (got {len(weights)})"
        )
