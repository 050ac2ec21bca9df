"""ctr: predict whether a user liked (clicked) an item: label 1 when rating >= task.rating_threshold."""

from __future__ import annotations

import math
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
    from torch import nn


@register
class Ctr(Task):
    name = TaskName.ctr.value
    shape = TaskShape.pair_score
    losses = (LossName.bce,)
    metric_catalog = metrics.BINARY
    multitask = True
    class_names = ("not clicked", "clicked")

    def over_classes(self) -> bool:
        return True

    def targets(self, frame: pd.DataFrame) -> np.ndarray:
        return (self.ratings(frame) >= self.settings.rating_threshold).astype(np.float32)

    def output_offset(self, train_targets: np.ndarray) -> float:
        """The logit of the training base rate."""
        rate = float(np.clip(train_targets.mean(), 1e-4, 1 - 1e-4))
        return math.log(rate / (1 - rate))

    def recommender_options(self) -> dict[str, bool]:
        return {"normalize": False, "biases": True}

    def loss_value(self, output: torch.Tensor, target: torch.Tensor, module: Any) -> torch.Tensor:
        """Binary cross-entropy on logits; class weights enter as pos_weight = w[1] / w[0]."""
        from torch.nn import functional as F

        weights = module.class_weights
        pos_weight = None if weights is None else weights[1] / weights[0]
        return F.binary_cross_entropy_with_logits(output, target.float(), pos_weight=pos_weight)

    def new_metrics(self, num_classes: int) -> torchmetrics.MetricCollection:
        from recfit.evaluation import pointwise

        return pointwise.binary_metrics()

    def new_row_user_metric(self) -> nn.Module:
        from recfit.evaluation import pointwise

        return pointwise.GroupAUC()

    def prediction(self, output: torch.Tensor) -> torch.Tensor:
        import torch

        return torch.sigmoid(output)

    def truth(self, target: torch.Tensor) -> torch.Tensor:
        return target.long()

    def compute(
        self, metrics: torchmetrics.MetricCollection, row_user_metric: Any
    ) -> dict[str, torch.Tensor]:
        values = super().compute(metrics, row_user_metric)
        values.update(row_user_metric.compute_all())  # gauc (RecBole) and gauc_rows
        row_user_metric.reset()
        return values
