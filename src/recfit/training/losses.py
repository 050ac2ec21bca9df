"""Losses, chosen by (task, loss). Which pairs are allowed lives in recfit.config.validate."""

from __future__ import annotations

import torch
from torch.nn import functional as F

from recfit.config.schema import LossName, TaskName


def in_batch_softmax(
    scores: torch.Tensor, items: torch.Tensor, temperature: float, log_frequency: torch.Tensor | None = None
) -> torch.Tensor:
    """Cross-entropy of each row's own item against the other items of the batch.

    scores: [B, B] user-by-item scores; items: [B] item codes. When the same item is some other
    row's positive too, that copy is not a negative for this row and is masked out. With
    `log_frequency` ([num_items], log of each item's share of training interactions) the logits are
    corrected by -log q (Yi et al., RecSys 2019): in-batch negatives are drawn in proportion to
    popularity, and without the correction popular items are pushed down.
    """
    logits = scores / temperature
    if log_frequency is not None:
        logits = logits - log_frequency[items][None, :]
    same_item = items[:, None] == items[None, :]
    own = torch.eye(len(items), dtype=torch.bool, device=items.device)
    logits = logits.masked_fill(same_item & ~own, float("-inf"))
    return F.cross_entropy(logits, torch.arange(len(items), device=items.device))


def task_loss(
    task: TaskName,
    loss: LossName,
    output,
    target: torch.Tensor,
    temperature: float,
    log_frequency: torch.Tensor | None = None,
    class_weights: torch.Tensor | None = None,
) -> torch.Tensor:
    """The training loss of one batch. `output` is the model's: scores or logits, (scores [B, B], items)
    for in-batch softmax, or (positive scores, negative scores) for BPR. `class_weights` (one per class)
    weight cross-entropy per class, and binary cross-entropy through pos_weight = w[1] / w[0]."""
    if loss == LossName.bpr:
        positive, negative = output
        return -F.logsigmoid(positive - negative).mean()
    if task == TaskName.ranking:
        scores, items = output
        return in_batch_softmax(scores, items, temperature, log_frequency)
    if loss == LossName.mse:
        return F.mse_loss(output, target.float())
    if loss == LossName.bce:
        pos_weight = None if class_weights is None else class_weights[1] / class_weights[0]
        return F.binary_cross_entropy_with_logits(output, target.float(), pos_weight=pos_weight)
    return F.cross_entropy(output, target.long(), weight=class_weights)
