"""The training target of each interaction, per task."""

from __future__ import annotations

import numpy as np
import pandas as pd

from recfit.config.schema import LossName, TaskName
from recfit.data.tables import LABEL, RATING
from recfit.errors import DataError


def targets_for(frame: pd.DataFrame, task: TaskName, loss: LossName, rating_threshold: float) -> np.ndarray:
    """rating: the rating; ctr: rating >= threshold; text classification: the class code, or the
    numeric label for loss=mse; ranking: no target (the item itself is the target)."""
    if task == TaskName.ranking:
        return np.zeros(len(frame), dtype=np.float32)
    if task == TaskName.text_classification and loss == LossName.cross_entropy:
        return frame[LABEL].to_numpy(dtype=np.int64)
    if RATING not in frame.columns:
        what = "numeric labels" if task == TaskName.text_classification else "ratings"
        raise DataError(
            f"task '{task.value}' with loss '{loss.value}' needs {what}, and this data set has none"
        )
    ratings = frame[RATING].to_numpy(dtype=np.float32)
    if task == TaskName.ctr:
        return (ratings >= rating_threshold).astype(np.float32)
    return ratings


def multitask_targets(frame: pd.DataFrame, tasks: list[TaskName], rating_threshold: float) -> np.ndarray:
    """[rows, tasks] float32: one target column per task of a multi-task run, each with its own loss."""
    from recfit.config.multitask import LOSS_OF_TASK

    columns = [targets_for(frame, task, LOSS_OF_TASK[task], rating_threshold) for task in tasks]
    return np.stack(columns, axis=1).astype(np.float32)
