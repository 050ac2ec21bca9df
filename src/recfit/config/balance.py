"""Checks on `dataset.class_weights` and `dataset.resampling` (imbalanced labels), before anything loads.

Both only make sense for a loss over classes: task=ctr with loss=bce (two classes: not clicked,
clicked) and task=text_classification with loss=cross_entropy (one class per distinct label).
"""

from __future__ import annotations

from numbers import Real

from omegaconf import DictConfig, ListConfig

from recfit.config.schema import Resampling
from recfit.errors import ConfigError
from recfit.tasks.registry import make_task, task_class, task_names

BALANCED = "balanced"


def _class_losses() -> str:
    """ "task=ctr with loss=bce or task=text_classification with loss=cross_entropy": every pair whose
    loss is over classes."""
    pairs = [
        f"task={name} with loss={loss.value}"
        for name in task_names()
        for loss in task_class(name).losses
        if make_task(name, loss=loss).over_classes()
    ]
    return " or ".join(pairs)


def check_balance(cfg: DictConfig) -> None:
    """Raise ConfigError (one line) for class weights or resampling that cannot apply to this run."""
    weights, resampling = cfg.dataset.get("class_weights"), cfg.dataset.get("resampling", Resampling.none)
    active = {"class_weights": weights is not None, "resampling": resampling != Resampling.none}
    used = [key for key, on in active.items() if on]
    if not used:
        return
    task = make_task(cfg.task.name, cfg.task, cfg.loss.name)
    if cfg.loss.name not in task.losses or not task.over_classes():
        raise ConfigError(
            f"dataset.{used[0]} needs class labels: {_class_losses()} "
            f"(this run has task '{task.name}' with loss '{task.loss.value}')"
        )
    if weights is None or weights == BALANCED:
        return
    if not isinstance(weights, ListConfig | list) or not weights:
        raise ConfigError(
            f"dataset.class_weights must be null, balanced or a list of numbers (got {weights})"
        )
    if not all(isinstance(w, Real) and not isinstance(w, bool) and w > 0 for w in weights):
        raise ConfigError(f"dataset.class_weights must all be positive numbers (got {list(weights)})")
    names = task.class_names
    if names is not None and len(weights) != len(names):
        raise ConfigError(
            f"dataset.class_weights for task={task.name} takes {len(names)} weights [{', '.join(names)}] "
            f"(got {len(weights)})"
        )
