"""Matrix factorisation: the item tower is an ID embedding. The no-transfer baseline."""

from __future__ import annotations

import torch
from torch import nn

from recfit.models.dot_product import DotProductRecommender
from recfit.models.user_encoders import ID, user_encoder_spec


class MatrixFactorization(DotProductRecommender):
    """score(u, i) = p_u . q_i (+ biases); no content, so it cannot score an item it never saw.

    With a user encoder (`user_encoder`, task next_item) p_u encodes the user's history of q_i: ID
    SASRec, GRU4Rec, or a mean of item vectors. The item table then starts at N(0, 0.02), as RecBole
    initialises every sequential model's item embedding.
    """

    def __init__(
        self,
        num_users: int,
        num_items: int,
        embedding_dim: int = 64,
        normalize: bool = False,
        biases: bool = False,
        num_tasks: int = 1,
        user_encoder: object = None,
        **_: object,
    ) -> None:
        super().__init__(num_users, num_items, embedding_dim, normalize, biases, num_tasks)
        spec = user_encoder_spec(user_encoder)
        self.item_embedding = nn.Embedding(num_items, embedding_dim)
        nn.init.normal_(self.item_embedding.weight, std=0.1 if spec.name == ID else 0.02)
        self.attach_user_encoder(spec)

    def encode_items(self, items: torch.Tensor, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.item_embedding(items)
