"""The task registry: task name -> task class (as fairseq's `register_task`).

Every module of this package that defines a task registers it with `@register`; the built-in ones are
imported on the first look-up, so adding a task is adding its module (and its `conf/task/<name>.yaml`).
A task defined elsewhere (a test, a user's own package) registers the same way once imported.
"""

from __future__ import annotations

import importlib
import pkgutil
from typing import Any

from recfit.tasks.base import Task, TaskClass
from recfit.tasks.metrics import Metric
from recfit.tasks.names import LossName, TaskName

_TASKS: dict[str, TaskClass] = {}
_NOT_TASKS = {"base", "metrics", "names", "registry"}  # the package's own machinery
_loaded = False


def register(cls: TaskClass) -> TaskClass:
    """Class decorator: make `cls` the task named `cls.name`."""
    name = str(getattr(cls.name, "value", cls.name))
    if name in _TASKS and _TASKS[name] is not cls:
        raise ValueError(f"task '{name}' is registered twice ({_TASKS[name].__name__} and {cls.__name__})")
    cls.name = name
    _TASKS[name] = cls
    return cls


def unregister(name: str) -> None:
    """Forget task `name` (a test that defined a task for its own duration)."""
    _TASKS.pop(name, None)


def _load_builtins() -> None:
    global _loaded
    if _loaded:
        return
    _loaded = True
    package = importlib.import_module("recfit.tasks")
    for module in pkgutil.iter_modules(package.__path__):
        if module.name not in _NOT_TASKS:
            importlib.import_module(f"recfit.tasks.{module.name}")


def task_names() -> list[str]:
    """Every registered task: the built-in ones in `TaskName`'s order, then the others as registered."""
    _load_builtins()
    builtin = [name.value for name in TaskName if name.value in _TASKS]
    return builtin + [name for name in _TASKS if name not in builtin]


def task_class(name: TaskName | str) -> TaskClass:
    """The class of task `name` (KeyError for an unknown one)."""
    _load_builtins()
    return _TASKS[str(getattr(name, "value", name))]


def make_task(
    name: TaskName | str, settings: Any = None, loss: LossName | str | None = None, prefix: str = ""
) -> Task:
    """An instance of task `name` for a run: `settings` is `cfg.task`, `loss` the loss (None: its default)."""
    return task_class(name)(settings, loss, prefix)


def tasks_of_run(cfg: Any) -> list[Task]:
    """The tasks a run trains, in the order of the model's outputs.

    One task (`task` with `loss`) unprefixed, or the tasks of `tasks=[...]`, each with its default
    loss and its name as prefix.
    """
    names = list(cfg.get("tasks") or [])
    if not names:
        return [make_task(cfg.task.name, cfg.task, cfg.loss.name)]
    return [make_task(name, cfg.task, None, f"{task_class(name).name}/") for name in names]


def known_metrics() -> dict[str, Metric]:
    """Every metric any registered task may report, by name (a ranking metric without `@k`)."""
    found: dict[str, Metric] = {}
    for name in task_names():
        for metric in task_class(name).metric_catalog:
            found.setdefault(metric.name, metric)
    return found


__all__ = [
    "Task",
    "known_metrics",
    "make_task",
    "register",
    "task_class",
    "task_names",
    "tasks_of_run",
    "unregister",
]
