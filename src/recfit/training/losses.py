"""Ranking losses over scores. Each task (recfit.tasks) picks its loss; the pointwise ones are torch's own."""

from __future__ import annotations

import torch
from torch.nn import functional as F


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


def bpr(positive: torch.Tensor, negative: torch.Tensor) -> torch.Tensor:
    """Bayesian personalised ranking: -log sigmoid(positive score - negative score), averaged over rows."""
    return -F.logsigmoid(positive - negative).mean()
