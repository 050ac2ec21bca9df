"""Partially frozen BERT-style backbones: run the frozen embeddings and first N layers once per item.

With `backbone.freeze: N` the embeddings and the first N transformer layers never change, so their
output for an item's text never changes either. `FrozenPrefixCache` computes those token states once
per item (eval mode: the frozen layers apply no dropout, as with a fully frozen backbone) and keeps
them in memory, packed without padding; a training step then gathers its items' states, pads them
to the batch's longest item and runs only the trainable layers. Padding positions are masked out of
attention, so a token's state does not depend on how far its sequence was padded: the result equals
running the whole backbone, to float rounding.

It applies to encoders built as `embeddings` + `encoder.layer` (BERT, RoBERTa, MiniLM, ...) reading
one text per item. GPT-2 (causal masks, `h` layers), image backbones and cross-encoder pairs of
user and item text (one sequence per pair, not per item) keep running the whole backbone.
"""

from __future__ import annotations

import re

import torch
from torch import nn
from transformers.masking_utils import create_bidirectional_mask

from recfit.models.backbone import Backbone


def frozen_prefix_layers(backbone: Backbone | None, freeze: str) -> int:
    """N when `freeze: N` froze the embeddings and N layers of a BERT-style encoder, else 0."""
    if backbone is None or not re.fullmatch(r"\d+", freeze) or int(freeze) == 0:
        return 0
    model = backbone.model
    encoder = getattr(model, "encoder", None)
    if not hasattr(model, "embeddings") or not isinstance(getattr(encoder, "layer", None), nn.ModuleList):
        return 0
    if model.config.is_decoder:
        return 0
    count = min(int(freeze), len(encoder.layer))
    frozen = [model.embeddings, *encoder.layer[:count]]
    if any(p.requires_grad for module in frozen for p in module.parameters()):
        return 0
    return count


def _attention_mask(backbone: Backbone, states: torch.Tensor, mask: torch.Tensor) -> torch.Tensor | None:
    return create_bidirectional_mask(config=backbone.model.config, inputs_embeds=states, attention_mask=mask)


def run_layers(
    backbone: Backbone, states: torch.Tensor, mask: torch.Tensor, layers: list[nn.Module]
) -> torch.Tensor:
    """Token states after `layers`, each attending only to the unmasked tokens."""
    attention = _attention_mask(backbone, states, mask)
    for layer in layers:
        states = layer(states, attention)
    return states


class FrozenPrefixCache(nn.Module):
    """Per-item token states after the frozen layers, and the trainable rest of the backbone."""

    def __init__(self, backbone: Backbone, frozen_layers: int) -> None:
        super().__init__()
        self.frozen_layers = frozen_layers
        self.register_buffer("states", torch.empty(0), persistent=False)  # [all tokens, hidden]
        self.register_buffer("offsets", torch.empty(0, dtype=torch.long), persistent=False)
        self.register_buffer("lengths", torch.empty(0, dtype=torch.long), persistent=False)
        self._backbone = [backbone]  # a plain list: the backbone stays registered only in its owner

    @property
    def ready(self) -> bool:
        return self.lengths.numel() > 0

    @torch.no_grad()
    def fill(self, item_batches) -> None:
        """Run the embeddings and the frozen layers once over every item's text."""
        backbone = self._backbone[0]
        model = backbone.model
        was_training = model.training
        model.eval()
        device = self.states.device
        packed, lengths = [], []
        for _, content in item_batches:
            inputs = {k: v.to(device) for k, v in content.items()}
            mask = inputs["attention_mask"]
            states = model.embeddings(
                input_ids=inputs["input_ids"], token_type_ids=inputs.get("token_type_ids")
            )
            states = run_layers(backbone, states, mask, list(model.encoder.layer[: self.frozen_layers]))
            packed.append(states[mask.bool()])  # right padding: each row's real tokens, in order
            lengths.append(mask.sum(dim=1))
        model.train(was_training)
        self.lengths = torch.cat(lengths)
        self.offsets = torch.cat([self.lengths.new_zeros(1), self.lengths.cumsum(0)[:-1]])
        self.states = torch.cat(packed)

    def forward(self, items: torch.Tensor) -> torch.Tensor:
        """Pooled backbone output for `items`, running only the layers after the frozen ones."""
        backbone = self._backbone[0]
        lengths = self.lengths[items]
        width = int(lengths.max())
        positions = torch.arange(width, device=lengths.device)
        mask = (positions < lengths[:, None]).long()
        index = (self.offsets[items][:, None] + positions).clamp(max=len(self.states) - 1)
        states = self.states[index] * mask.unsqueeze(-1).to(self.states.dtype)
        layers = list(backbone.model.encoder.layer[self.frozen_layers :])
        return backbone.pool(run_layers(backbone, states, mask, layers), mask)


def attach_prefix_cache(recommender: nn.Module, freeze: str, one_text_per_item: bool) -> bool:
    """Give a two-tower or cross-encoder a FrozenPrefixCache when `freeze: N` allows one (not filled yet).

    `one_text_per_item`: false when a cross-encoder reads user text too (one sequence per pair).
    """
    if not hasattr(recommender, "prefix_cache") or not one_text_per_item:
        return False
    layers = frozen_prefix_layers(recommender.backbone, freeze)
    if layers == 0:
        return False
    recommender.prefix_cache = FrozenPrefixCache(recommender.backbone, layers)
    return True
