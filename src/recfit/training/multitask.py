"""Multi-task training (`tasks: [rating, ctr]`): one loss per task, their weighting, per-task metrics.

The recommender gives one output column per task ([B, T], in the order of `tasks`), and batches carry
one target column per task. Each task keeps its own loss (recfit.config.multitask.LOSS_OF_TASK) and its
own metrics, logged as `val/<task>/<metric>` and `test/<task>/<metric>`.

Weighting:
- fixed: total = sum_t w_t * L_t, with w_t from `task_weights`.
- uncertainty: total = sum_t exp(-s_t) * L_t + s_t, with one learned s_t = log(sigma_t^2) per task
  (Kendall, Gal and Cipolla, "Multi-Task Learning Using Uncertainty to Weigh Losses for Scene Geometry
  and Semantics", CVPR 2018, eq. 7 with s = log sigma^2). The paper's 1/2 on the regression term is
  dropped, the common simplification that treats every task alike; the + s_t term keeps the learned
  weights exp(-s_t) from collapsing to 0. The s_t are parameters of this module, so they are trained
  by the run's optimizer (head learning rate, no weight decay: they are 1-d) and saved in checkpoints.
"""

from __future__ import annotations

import torch
import torchmetrics
from torch import nn

from recfit.config.multitask import LOSS_OF_TASK
from recfit.config.schema import TaskName, TaskWeighting
from recfit.evaluation import pointwise
from recfit.evaluation.pointwise import per_row_values
from recfit.training.losses import task_loss

STAGES = ("val", "test")


def _task_metrics(task: TaskName) -> torchmetrics.MetricCollection:
    return pointwise.regression_metrics() if task == TaskName.rating else pointwise.binary_metrics()


class MultiTaskObjective(nn.Module):
    """Combines the tasks' losses into one and keeps each task's evaluation metrics."""

    def __init__(
        self, tasks: list[TaskName], weighting: TaskWeighting, fixed_weights: list[float], temperature: float
    ) -> None:
        super().__init__()
        self.tasks = [TaskName(task) for task in tasks]
        self.weighting = TaskWeighting(weighting)
        self.fixed_weights = list(fixed_weights)
        self.temperature = temperature
        if self.weighting == TaskWeighting.uncertainty:
            # s_t = 0: every task starts at weight exp(0) = 1, as fixed weights of 1 would
            self.log_variance = nn.Parameter(torch.zeros(len(self.tasks)))
        self.metrics = nn.ModuleDict(
            {
                stage: nn.ModuleDict({task.value: _task_metrics(task) for task in self.tasks})
                for stage in STAGES
            }
        )
        # GAUC needs each row's user as well, so it sits beside the collections (as in RecModule)
        self.group_auc = nn.ModuleDict({stage: pointwise.GroupAUC() for stage in STAGES})

    # ---- training -------------------------------------------------------------------------------
    def weights(self) -> torch.Tensor:
        """[T] the weight of each task's loss now: fixed, or exp(-s_t)."""
        if self.weighting == TaskWeighting.uncertainty:
            return torch.exp(-self.log_variance)
        return torch.tensor(self.fixed_weights)

    def loss(
        self, output: torch.Tensor, target: torch.Tensor
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The total loss of a batch and what to log: each task's own (unweighted) loss and weight,
        and, for uncertainty weighting, each learned log-variance s_t."""
        weights = self.weights().to(output.device)
        logs: dict[str, torch.Tensor] = {}
        total = output.new_zeros(())
        for column, task in enumerate(self.tasks):
            part = task_loss(task, LOSS_OF_TASK[task], output[:, column], target[:, column], self.temperature)
            total = total + weights[column] * part
            logs[f"train/{task.value}/loss"] = part.detach()
            logs[f"train/{task.value}/weight"] = weights[column].detach()
        if self.weighting == TaskWeighting.uncertainty:
            total = total + self.log_variance.sum()
            for column, task in enumerate(self.tasks):
                logs[f"train/{task.value}/log_variance"] = self.log_variance[column].detach()
        return total, logs

    def final_weights(self) -> dict[str, float]:
        """Each task's loss weight as it stands (for uncertainty weighting: the learned exp(-s_t))."""
        return {task.value: float(weight) for task, weight in zip(self.tasks, self.weights(), strict=True)}

    # ---- evaluation -----------------------------------------------------------------------------
    def set_sum_dtype(self, stage: str, dtype: torch.dtype) -> None:
        """Sums in float64 (as RecModule's for single-task rating runs): every task's totals then do not
        depend on how rows fall into batches and DDP processes (log loss included)."""
        for task in self.tasks:
            self.metrics[stage][task.value].set_dtype(dtype)

    def update(
        self,
        stage: str,
        output: torch.Tensor,
        target: torch.Tensor,
        users: torch.Tensor,
        sum_dtype: torch.dtype,
    ) -> dict[str, torch.Tensor]:
        """Add a batch to every task's metrics; returns its per-row values, columns `<task>/<value>`."""
        rows: dict[str, torch.Tensor] = {}
        for column, task in enumerate(self.tasks):
            prediction, truth = output[:, column], target[:, column]
            metrics = self.metrics[stage][task.value]
            if task == TaskName.ctr:
                prediction, truth = torch.sigmoid(prediction), truth.long()
                self.group_auc[stage].update(prediction, truth, users)
                metrics.update(prediction.to(sum_dtype), truth)
            else:
                metrics.update(prediction.to(sum_dtype), truth.to(sum_dtype))
            rows.update({f"{task.value}/{k}": v for k, v in per_row_values(prediction, truth).items()})
        return rows

    def compute(self, stage: str) -> dict[str, torch.Tensor]:
        """`<task>/<metric>` for every task, then reset for the next epoch."""
        values: dict[str, torch.Tensor] = {}
        for task in self.tasks:
            collection = self.metrics[stage][task.value]
            values.update({f"{task.value}/{k}": v for k, v in collection.compute().items()})
            collection.reset()
            if task == TaskName.ctr:
                grouped = self.group_auc[stage].compute_all()  # gauc (RecBole) and gauc_rows
                values.update({f"{task.value}/{name}": value for name, value in grouped.items()})
                self.group_auc[stage].reset()
        return values
