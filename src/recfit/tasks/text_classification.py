"""text_classification: predict the label of a labelled text row (dataset=text_csv).

With loss=cross_entropy the labels are classes (one logit each); with loss=mse they are numbers.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from recfit.errors import DataError
from recfit.tasks import metrics
from recfit.tasks.base import Task, TaskShape
from recfit.tasks.names import LossName, TaskName
from recfit.tasks.registry import register

if TYPE_CHECKING:
    import torch
    import torchmetrics

    from recfit.data.tables import RecData

LABEL_COLUMN = "label"  # recfit.data.tables.LABEL: the class code of each row


@register
class TextClassification(Task):
    name = TaskName.text_classification.value
    shape = TaskShape.row_label
    losses = (LossName.cross_entropy, LossName.mse)
    metric_catalog = (*metrics.CLASSIFICATION, *metrics.REGRESSION)
    multi_domain = False
    labelled_text = True

    @property
    def regression(self) -> bool:
        return self.loss == LossName.mse

    def metrics(self) -> list[metrics.Metric]:
        return list(metrics.REGRESSION if self.regression else metrics.CLASSIFICATION)

    def over_classes(self) -> bool:
        return not self.regression

    def targets(self, frame: pd.DataFrame) -> np.ndarray:
        if self.regression:
            return self.ratings(frame, "numeric labels")
        return frame[LABEL_COLUMN].to_numpy(dtype=np.int64)

    def num_outputs(self, data: RecData) -> int:
        if self.regression:
            return 1
        classes = len(data.label_names or [])
        if classes < 2:
            raise DataError(
                f"text classification needs at least 2 distinct labels; '{data.name}' has {classes}"
            )
        return classes

    def output_offset(self, train_targets: np.ndarray) -> float:
        return float(train_targets.mean()) if self.regression else 0.0

    def loss_value(self, output: torch.Tensor, target: torch.Tensor, module: Any) -> torch.Tensor:
        from torch.nn import functional as F

        if self.regression:
            return F.mse_loss(output, target.float())
        return F.cross_entropy(output, target.long(), weight=module.class_weights)

    def new_metrics(self, num_classes: int) -> torchmetrics.MetricCollection:
        from recfit.evaluation import pointwise

        if self.regression:
            return pointwise.regression_metrics()
        return pointwise.multiclass_metrics(num_classes)

    @property
    def sums_in_float64(self) -> bool:
        return self.regression
