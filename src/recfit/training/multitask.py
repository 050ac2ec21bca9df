"""Multi-task training (`tasks: [rating, ctr]`): how the tasks' losses are weighed into one.

The recommender gives one output column per task ([B, T], in the order of `tasks`), and batches carry
one target column per task. Each task (recfit.tasks) keeps its own loss and metrics, which RecModule
runs as it does a single task's; this module only weighs the losses.

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
from torch import nn

from recfit.config.schema import TaskName, TaskWeighting


class MultiTaskObjective(nn.Module):
    """Combines the tasks' losses into one."""

    def __init__(
        self, tasks: list[TaskName] | list[str], weighting: TaskWeighting, fixed_weights: list[float]
    ) -> None:
        super().__init__()
        self.task_names = [str(getattr(task, "value", task)) for task in tasks]
        self.weighting = TaskWeighting(weighting)
        self.fixed_weights = list(fixed_weights)
        if self.weighting == TaskWeighting.uncertainty:
            # s_t = 0: every task starts at weight exp(0) = 1, as fixed weights of 1 would
            self.log_variance = nn.Parameter(torch.zeros(len(self.task_names)))

    def weights(self) -> torch.Tensor:
        """[T] the weight of each task's loss now: fixed, or exp(-s_t)."""
        if self.weighting == TaskWeighting.uncertainty:
            return torch.exp(-self.log_variance)
        return torch.tensor(self.fixed_weights)

    def combine(self, parts: list[torch.Tensor]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The total loss of a batch from each task's own loss, and what to log: each task's own
        (unweighted) loss and weight, and, for uncertainty weighting, each learned log-variance s_t."""
        weights = self.weights().to(parts[0].device)
        logs: dict[str, torch.Tensor] = {}
        total = parts[0].new_zeros(())
        for column, (name, part) in enumerate(zip(self.task_names, parts, strict=True)):
            total = total + weights[column] * part
            logs[f"train/{name}/loss"] = part.detach()
            logs[f"train/{name}/weight"] = weights[column].detach()
        if self.weighting == TaskWeighting.uncertainty:
            total = total + self.log_variance.sum()
            for column, name in enumerate(self.task_names):
                logs[f"train/{name}/log_variance"] = self.log_variance[column].detach()
        return total, logs

    def final_weights(self) -> dict[str, float]:
        """Each task's loss weight as it stands (for uncertainty weighting: the learned exp(-s_t))."""
        return {name: float(weight) for name, weight in zip(self.task_names, self.weights(), strict=True)}
