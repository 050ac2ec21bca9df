"""Pointwise metrics for rating, ctr and text classification, as torchmetrics collections.

torchmetrics keeps the running state and synchronises it across DDP processes; recfit only picks
which metrics a task reports. Names match `recfit.config.validate.metric_names`.
"""

from __future__ import annotations

import pandas as pd
import torch
import torchmetrics
from torchmetrics import classification, regression


class LogLoss(torchmetrics.MeanMetric):
    """Mean binary cross-entropy of predicted probabilities."""

    def update(self, probabilities: torch.Tensor, target: torch.Tensor) -> None:  # type: ignore[override]
        p = probabilities.clamp(1e-7, 1 - 1e-7)
        super().update(-(target * p.log() + (1 - target) * (1 - p).log()))


class GroupAUC(torchmetrics.Metric):
    """GAUC: each user's AUC, averaged with weights = the user's number of rows.

    Users whose rows are all positive or all negative have no AUC and are left out (the usual
    definition); ties in predictions count half, as in the Mann-Whitney statistic.
    """

    def __init__(self) -> None:
        super().__init__()
        for name in ("preds", "target", "users"):
            self.add_state(name, default=[], dist_reduce_fx="cat")

    def update(self, preds: torch.Tensor, target: torch.Tensor, users: torch.Tensor) -> None:  # type: ignore[override]
        self.preds.append(preds.detach().float())
        self.target.append(target.detach().long())
        self.users.append(users.detach().long())

    def compute(self) -> torch.Tensor:
        frame = pd.DataFrame(
            {
                "user": torchmetrics.utilities.dim_zero_cat(self.users).cpu().numpy(),
                "pred": torchmetrics.utilities.dim_zero_cat(self.preds).cpu().numpy(),
                "target": torchmetrics.utilities.dim_zero_cat(self.target).cpu().numpy(),
            }
        )
        frame["rank"] = frame.groupby("user")["pred"].rank(method="average")
        frame["positive_rank"] = frame["rank"] * frame["target"]
        per_user = frame.groupby("user").agg(
            rows=("target", "size"), positives=("target", "sum"), positive_ranks=("positive_rank", "sum")
        )
        negatives = per_user["rows"] - per_user["positives"]
        per_user = per_user[(per_user["positives"] > 0) & (negatives > 0)]
        positives, negatives = per_user["positives"], negatives[per_user.index]
        auc = (per_user["positive_ranks"] - positives * (positives + 1) / 2) / (positives * negatives)
        if per_user.empty:
            return torch.tensor(float("nan"))
        return torch.tensor(float((auc * per_user["rows"]).sum() / per_user["rows"].sum()))


def regression_metrics() -> torchmetrics.MetricCollection:
    return torchmetrics.MetricCollection(
        {"rmse": regression.MeanSquaredError(squared=False), "mae": regression.MeanAbsoluteError()}
    )


def binary_metrics() -> torchmetrics.MetricCollection:
    return torchmetrics.MetricCollection(
        {
            "auc": classification.BinaryAUROC(),
            "logloss": LogLoss(),
            "accuracy": classification.BinaryAccuracy(),
            "f1": classification.BinaryF1Score(),
        }
    )


def multiclass_metrics(num_classes: int) -> torchmetrics.MetricCollection:
    """Accuracy (micro) and F1 (macro over classes) for `num_classes` >= 2."""
    return torchmetrics.MetricCollection(
        {
            "accuracy": classification.MulticlassAccuracy(num_classes=num_classes, average="micro"),
            "f1": classification.MulticlassF1Score(num_classes=num_classes, average="macro"),
        }
    )


def per_row_values(output: torch.Tensor, target: torch.Tensor) -> dict[str, torch.Tensor]:
    """Per-row errors for paired tests: squared and absolute error (regression), log loss and
    correctness (probabilities vs 0/1 labels), correctness (class logits)."""
    if output.ndim == 2:
        return {
            "target": target,
            "prediction": output.argmax(-1),
            "correct": (output.argmax(-1) == target).float(),
        }
    if not target.is_floating_point():
        p = output.clamp(1e-7, 1 - 1e-7)
        logloss = -(target * p.log() + (1 - target) * (1 - p).log())
        return {
            "target": target,
            "prediction": output,
            "logloss": logloss,
            "correct": ((p >= 0.5) == target).float(),
        }
    error = output - target
    return {"target": target, "prediction": output, "squared_error": error**2, "abs_error": error.abs()}
