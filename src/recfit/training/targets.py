"""The training targets of a split's interactions: one column per task of the run."""

from __future__ import annotations

import numpy as np
import pandas as pd

from recfit.tasks.base import Task


def targets_of(frame: pd.DataFrame, tasks: list[Task]) -> np.ndarray:
    """One task: its targets (recfit.tasks: e.g. the rating, or rating >= threshold for ctr); several:
    [rows, tasks] float32, one column per task, in the order of the model's outputs."""
    if len(tasks) == 1:
        return tasks[0].targets(frame)
    return np.stack([task.targets(frame) for task in tasks], axis=1).astype(np.float32)
