"""Cross-encoder: one backbone pass over "user text [SEP] item text" (or a text alone) -> a head."""

from __future__ import annotations

import torch
from torch import nn

from recfit.models.backbone import Backbone
from recfit.models.frozen_prefix import FrozenPrefixCache


class CrossEncoder(nn.Module):
    """Reads user and item together, so it scores pairs well but cannot rank a whole catalogue fast.

    Multi-task (`num_tasks` > 1): the pooled pair vector is the shared encoding and the head has one
    linear output per task (row t of its weight and bias is task t's head), giving [B, num_tasks].
    """

    def __init__(
        self,
        backbone: Backbone,
        num_outputs: int = 1,
        dropout: float = 0.1,
        num_tasks: int = 1,
        **_: object,
    ) -> None:
        super().__init__()
        self.backbone = backbone
        num_outputs = num_tasks if num_tasks > 1 else num_outputs
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(backbone.hidden_size, num_outputs))
        self.num_outputs = num_outputs
        self.prefix_cache: FrozenPrefixCache | None = None  # set for item-text-only rows, first layers frozen

    def set_output_offset(self, value: float | list[float]) -> None:
        """Start predictions at `value` (the mean training target) instead of 0; one per task."""
        bias = self.head[-1].bias
        bias.data.copy_(torch.as_tensor(value).expand_as(bias))

    def forward(self, batch: dict) -> torch.Tensor:
        """[B] scores (one output) or [B, num_outputs] logits."""
        # inference (recommend, --explain) passes pair inputs only: the full backbone gives the same scores
        if self.prefix_cache is not None and self.prefix_cache.ready and "item" in batch:
            features = self.prefix_cache(batch["item"])  # rows are item texts alone (text classification)
        else:
            features = self.backbone(batch["pair_inputs"])
        output = self.head(features)
        return output.squeeze(-1) if self.num_outputs == 1 else output
