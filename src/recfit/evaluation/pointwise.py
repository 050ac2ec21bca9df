"""Pointwise metrics for rating, ctr and text classification, as torchmetrics collections.

torchmetrics keeps the running state and synchronises it across DDP processes; recfit only picks
which metrics a task reports. Names match the tasks' `metric_catalog` (recfit.tasks).
"""

from __future__ import annotations

import pandas as pd
import torch
import torchmetrics
from torchmetrics import classification, regression

# Predicted probabilities are clipped to [CLIP, 1 - CLIP] before the log, in float64 (where 1 - 1e-7 is
# exact; float32 would round it to 1 - 1.19e-7, a clip that differs on the two sides).
LOGLOSS_CLIP = 1e-7
SUM_DTYPE = torch.float64


def binary_log_loss(probabilities: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per-row binary cross-entropy in float64, probabilities clipped to [1e-7, 1 - 1e-7]."""
    dtype = torch.float32 if probabilities.device.type == "mps" else SUM_DTYPE  # MPS has no float64
    p = probabilities.to(dtype).clamp(LOGLOSS_CLIP, 1 - LOGLOSS_CLIP)
    y = target.to(dtype)
    return -(y * p.log() + (1 - y) * (1 - p).log())


class LogLoss(torchmetrics.Metric):
    """Mean binary cross-entropy of predicted probabilities (see binary_log_loss), summed in float64."""

    def __init__(self) -> None:
        super().__init__()
        self.add_state("total", default=torch.tensor(0.0, dtype=SUM_DTYPE), dist_reduce_fx="sum")
        self.add_state("rows", default=torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")

    def update(self, probabilities: torch.Tensor, target: torch.Tensor) -> None:  # type: ignore[override]
        self.total += binary_log_loss(probabilities, target).sum().to(self.total.dtype)
        self.rows += target.numel()

    def compute(self) -> torch.Tensor:
        return self.total / self.rows if self.rows > 0 else torch.tensor(float("nan"), dtype=SUM_DTYPE)


class BinaryAUC(classification.BinaryAUROC):
    """ROC AUC over all rows; NaN (undefined) when the rows hold one class only.

    torchmetrics returns 0.0 there, which reads as a perfectly wrong model; scikit-learn refuses
    and RecBole returns NaN.
    """

    def compute(self) -> torch.Tensor:
        target = torchmetrics.utilities.dim_zero_cat(self.target)
        if target.numel() == 0 or bool(target.min() == target.max()):
            return torch.tensor(float("nan"))
        return super().compute()


class GroupAUC(torchmetrics.Metric):
    """GAUC: each user's AUC, averaged over users.

    `compute()` is RecBole's `gauc`: users weighted by their number of positive rows. `compute_all()`
    adds `gauc_rows`, weighted by the user's number of rows. Users whose rows are all positive or all
    negative have no AUC and are left out (as RecBole does); ties in predictions count half, as in the
    Mann-Whitney statistic. NaN when no user has both classes.
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
        return self.compute_all()["gauc"]

    def compute_all(self) -> dict[str, torch.Tensor]:
        """{"gauc": weighted by positives (RecBole), "gauc_rows": weighted by rows}."""
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
        per_user["negatives"] = per_user["rows"] - per_user["positives"]
        per_user = per_user[(per_user["positives"] > 0) & (per_user["negatives"] > 0)].astype(float)
        if per_user.empty:
            return {name: torch.tensor(float("nan"), dtype=SUM_DTYPE) for name in ("gauc", "gauc_rows")}
        positives, negatives = per_user["positives"], per_user["negatives"]
        auc = (per_user["positive_ranks"] - positives * (positives + 1) / 2) / (positives * negatives)
        return {
            "gauc": torch.tensor(float((auc * positives).sum() / positives.sum()), dtype=SUM_DTYPE),
            "gauc_rows": torch.tensor(
                float((auc * per_user["rows"]).sum() / per_user["rows"].sum()), dtype=SUM_DTYPE
            ),
        }


def regression_metrics() -> torchmetrics.MetricCollection:
    return torchmetrics.MetricCollection(
        {"rmse": regression.MeanSquaredError(squared=False), "mae": regression.MeanAbsoluteError()}
    )


def binary_metrics() -> torchmetrics.MetricCollection:
    return torchmetrics.MetricCollection(
        {
            "auc": BinaryAUC(),
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
        return {
            "target": target,
            "prediction": output,
            "logloss": binary_log_loss(output, target),
            "correct": ((output >= 0.5) == target).float(),
        }
    error = output - target
    return {"target": target, "prediction": output, "squared_error": error**2, "abs_error": error.abs()}
