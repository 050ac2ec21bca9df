"""The shared shape of two-tower and matrix-factorisation models: user vector . item vector (+ biases)."""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn
from torch.nn import functional as F


class DotProductRecommender(nn.Module):
    """User tower = ID embedding. Subclasses say how item vectors are made (`encode_items`).

    normalize: L2-normalise both vectors, so scores are cosines (softmax ranking with a temperature).
    biases: add user, item and global biases (rating and ctr); ranking never uses them, so a
        catalogue ranking is a plain matrix product of user and item vectors.
    """

    def __init__(
        self, num_users: int, num_items: int, embedding_dim: int, normalize: bool, biases: bool
    ) -> None:
        super().__init__()
        self.normalize = normalize
        self.user_embedding = nn.Embedding(num_users, embedding_dim)
        nn.init.normal_(self.user_embedding.weight, std=0.1)
        self.biases = biases
        if biases:
            self.user_bias = nn.Embedding(num_users, 1)
            self.item_bias = nn.Embedding(num_items, 1)
            nn.init.zeros_(self.user_bias.weight)
            nn.init.zeros_(self.item_bias.weight)
        self.global_bias = nn.Parameter(torch.zeros(1), requires_grad=biases)

    def set_output_offset(self, value: float) -> None:
        """Start predictions at `value` (the mean training rating, or the base rate's logit)."""
        self.global_bias.data.fill_(value)

    def encode_items(self, items: torch.Tensor, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        """Vectors of `items` (codes); `inputs` is their encoded content, one row per code."""
        raise NotImplementedError

    def encode_users(self, users: torch.Tensor) -> torch.Tensor:
        vectors = self.user_embedding(users)
        return F.normalize(vectors, dim=-1) if self.normalize else vectors

    def _items(self, items: torch.Tensor, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        vectors = self.encode_items(items, inputs)
        return F.normalize(vectors, dim=-1) if self.normalize else vectors

    def batch_item_vectors(self, batch: dict, key: str = "item") -> torch.Tensor:
        """One vector per row of a batch's `key` column; each distinct item is encoded once."""
        if "item_inputs" in batch:
            unique_vectors = self._items(batch["unique_items"], batch["item_inputs"])
            return unique_vectors[batch[f"{key}_index"]]
        return self._items(batch[key], {})

    def forward(self, batch: dict) -> torch.Tensor:
        """Pointwise score of each (user, item) row."""
        users, items = batch["user"], batch["item"]
        score = (self.encode_users(users) * self.batch_item_vectors(batch)).sum(-1)
        if not self.biases:
            return score
        return (
            score + self.user_bias(users).squeeze(-1) + self.item_bias(items).squeeze(-1) + self.global_bias
        )

    def l2_penalty(self, batch: dict) -> torch.Tensor:
        """Mean squared norm of the batch rows' user and item vectors and biases (Surprise/RecBole-style
        regularisation: only the rows a rating touches are pulled towards zero, unlike weight decay)."""
        users, items = batch["user"], batch["item"]
        penalty = self.user_embedding(users).pow(2).sum(-1) + self.batch_item_vectors(batch).pow(2).sum(-1)
        if self.biases:
            penalty = (
                penalty + self.user_bias(users).squeeze(-1) ** 2 + self.item_bias(items).squeeze(-1) ** 2
            )
        return penalty.mean()

    def catalogue_vectors(self, item_batches: Iterable[tuple[torch.Tensor, dict]]) -> torch.Tensor:
        """Vectors of every item, from an iterator of (codes, content) chunks."""
        device = self.global_bias.device
        chunks = []
        for codes, content in item_batches:
            inputs = {k: v.to(device) for k, v in content.items()}
            chunks.append(self._items(codes.to(device), inputs))
        return torch.cat(chunks)
