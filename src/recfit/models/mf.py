"""Matrix factorisation: the item tower is an ID embedding. The no-transfer baseline."""

from __future__ import annotations

import torch
from torch import nn

from recfit.models.dot_product import DotProductRecommender


class MatrixFactorization(DotProductRecommender):
    """score(u, i) = p_u . q_i (+ biases); no content, so it cannot score an item it never saw."""

    def __init__(
        self,
        num_users: int,
        num_items: int,
        embedding_dim: int = 64,
        normalize: bool = False,
        biases: bool = False,
        num_tasks: int = 1,
        **_: object,
    ) -> None:
        super().__init__(num_users, num_items, embedding_dim, normalize, biases, num_tasks)
        self.item_embedding = nn.Embedding(num_items, embedding_dim)
        nn.init.normal_(self.item_embedding.weight, std=0.1)

    def encode_items(self, items: torch.Tensor, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.item_embedding(items)
