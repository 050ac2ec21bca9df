"""Multi-task runs (`tasks: [rating, ctr]`): which combinations are allowed, and the names they report.

Torch-free, like the rest of `recfit.config`: a bad combination answers in one line before anything
heavy loads. The group `task` stays the primary task: it must be one of `tasks`, and its metric, under
the task's own prefix (`val/ctr/auc`), chooses the best checkpoint.
"""

from __future__ import annotations

from omegaconf import DictConfig

from recfit.config.schema import Resampling, TaskWeighting
from recfit.errors import ConfigError
from recfit.tasks.registry import task_class, task_names

# The tasks that can share a model (`multitask = True` in recfit.tasks: rating, ctr) read their targets
# from the same interaction rows (ctr label = rating >= task.rating_threshold), each trained with its
# default loss. Every model that does them (mf, two_tower, cross_encoder, lr) has multi-task heads.


def task_list(cfg: DictConfig) -> list[str]:
    """The tasks of a multi-task run, in the order of the model's outputs; [] for a single-task run."""
    return list(cfg.get("tasks") or [])


def monitor_key(cfg: DictConfig) -> str:
    """The logged key that chooses the best checkpoint: `val/<metric>`, or `val/<task>/<metric>`."""
    if task_list(cfg):
        return f"val/{cfg.task.name}/{cfg.task.metric}"
    return f"val/{cfg.task.metric}"


def fixed_weights(cfg: DictConfig) -> list[float]:
    """One loss weight per task of `tasks`, from `task_weights` (one key per task, 1.0 unless set)."""
    return [float(cfg.task_weights[task]) for task in task_list(cfg)]


def _changed_weights(cfg: DictConfig) -> dict[str, float]:
    """The task_weights set to something other than the default 1.0."""
    weights = cfg.get("task_weights") or {}
    return {name: float(weight) for name, weight in weights.items() if weight != 1.0}


def check_multitask(cfg: DictConfig) -> None:
    """Raise ConfigError (one line) for a multi-task setting that cannot make a sensible run."""
    tasks = task_list(cfg)
    weights = _changed_weights(cfg)
    weighting = cfg.get("task_weighting", TaskWeighting.fixed)
    if not tasks:
        if weights or weighting != TaskWeighting.fixed:
            key = f"task_weights.{next(iter(weights))}" if weights else "task_weighting"
            raise ConfigError(f"{key} needs several tasks, e.g. tasks=[rating,ctr]")
        return
    names = list(tasks)
    sharing = [name for name in task_names() if task_class(name).multitask]
    for task in tasks:
        if not task_class(task).multitask:
            raise ConfigError(
                f"tasks: '{task}' cannot share a multi-task model; only the pointwise tasks "
                f"{' and '.join(sharing)} can"
            )
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise ConfigError(f"tasks lists '{duplicates[0]}' twice")
    if len(tasks) < 2:
        raise ConfigError(f"tasks needs at least two tasks (got [{names[0]}]); for one, use task={names[0]}")
    primary = cfg.task.name
    if primary not in tasks:
        raise ConfigError(
            f"task '{primary}' (the primary task, which chooses the model) must be one of "
            f"tasks [{', '.join(names)}]"
        )
    if weighting == TaskWeighting.uncertainty and weights:
        raise ConfigError(
            "task_weights are fixed weights, and task_weighting=uncertainty learns them: set one of the two"
        )
    chosen = dict(zip(names, fixed_weights(cfg), strict=True))
    if any(weight < 0 for weight in chosen.values()) or not any(chosen.values()):
        raise ConfigError(f"task_weights must be 0 or more, and not all 0 (got {chosen})")
    dataset = cfg.dataset
    if dataset.get("class_weights") is not None or dataset.get("resampling", Resampling.none) != "none":
        raise ConfigError(
            "dataset.class_weights and dataset.resampling apply to one task's classes; "
            "a multi-task run takes neither"
        )
