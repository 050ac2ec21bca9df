"""rating: predict the explicit rating of each (user, item) interaction."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from recfit.tasks import metrics
from recfit.tasks.base import Task, TaskShape
from recfit.tasks.names import LossName, TaskName
from recfit.tasks.registry import register

if TYPE_CHECKING:
    import torch
    import torchmetrics


@register
class Rating(Task):
    name = TaskName.rating.value
    shape = TaskShape.pair_score
    losses = (LossName.mse,)
    metric_catalog = metrics.REGRESSION
    multitask = True

    def targets(self, frame: pd.DataFrame) -> np.ndarray:
        return self.ratings(frame)

    def output_offset(self, train_targets: np.ndarray) -> float:
        return float(train_targets.mean())

    def recommender_options(self) -> dict[str, bool]:
        return {"normalize": False, "biases": True}

    def loss_value(self, output: torch.Tensor, target: torch.Tensor, module: Any) -> torch.Tensor:
        from torch.nn import functional as F

        return F.mse_loss(output, target.float())

    def new_metrics(self, num_classes: int) -> torchmetrics.MetricCollection:
        from recfit.evaluation import pointwise

        return pointwise.regression_metrics()

    @property
    def sums_in_float64(self) -> bool:
        return True
