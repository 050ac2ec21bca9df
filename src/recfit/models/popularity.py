"""Most-popular baseline: every user gets the items with the most training interactions."""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn


class Popularity(nn.Module):
    """Scores item i by its training interaction count; nothing to train.

    Shaped like the dot-product models (1-d user and item vectors) so the same full-ranking
    evaluation serves it.
    """

    def __init__(self, num_items: int, **_: object) -> None:
        super().__init__()
        self.register_buffer("counts", torch.zeros(num_items))

    def fit_counts(self, items: torch.Tensor) -> None:
        """Count each item's training interactions."""
        self.counts = torch.bincount(items, minlength=len(self.counts)).float()

    def set_output_offset(self, value: float) -> None:
        """Popularity has no output offset to set."""

    def encode_users(self, users: torch.Tensor) -> torch.Tensor:
        return torch.ones(len(users), 1, device=self.counts.device)

    def catalogue_vectors(self, item_batches: Iterable[tuple[torch.Tensor, dict]]) -> torch.Tensor:
        return self.counts[:, None]
