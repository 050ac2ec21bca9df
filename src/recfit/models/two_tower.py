"""Two-tower: the item tower is a pretrained backbone over item content plus a projection."""

from __future__ import annotations

import torch
from torch import nn

from recfit.models.backbone import Backbone
from recfit.models.dot_product import DotProductRecommender
from recfit.models.frozen_prefix import FrozenPrefixCache
from recfit.models.user_encoders import user_encoder_spec


class TwoTower(DotProductRecommender):
    """Item vector = projection(pool(backbone(item text or image))) [+ an item ID embedding];
    user vector = ID embedding, or a user encoder over the user's history of those item vectors
    (`user_encoder`, task next_item), so a fine-tuned backbone learns from both sides.

    The optional ID embedding starts at zero, so an item never seen in training (cold) is scored
    from its content alone, while warm items can learn what their content does not say.

    When the backbone is entirely frozen its pooled output never changes, so `cache_item_features`
    computes it once per item and training runs only the layers on top.
    """

    def __init__(
        self,
        backbone: Backbone,
        num_users: int,
        num_items: int,
        embedding_dim: int = 64,
        dropout: float = 0.1,
        item_id_embedding: bool = True,
        normalize: bool = False,
        biases: bool = False,
        num_tasks: int = 1,
        user_encoder: object = None,
        **_: object,
    ) -> None:
        super().__init__(num_users, num_items, embedding_dim, normalize, biases, num_tasks)
        self.backbone = backbone
        self.projection = nn.Sequential(nn.Dropout(dropout), nn.Linear(backbone.hidden_size, embedding_dim))
        self.item_embedding = nn.Embedding(num_items, embedding_dim) if item_id_embedding else None
        if self.item_embedding is not None:
            nn.init.zeros_(self.item_embedding.weight)
        self.register_buffer("cached_features", torch.empty(0), persistent=False)
        self.prefix_cache: FrozenPrefixCache | None = None  # set when the first layers are frozen
        self.attach_user_encoder(user_encoder_spec(user_encoder))

    @torch.no_grad()
    def cache_item_features(self, item_batches) -> None:
        """Pool every item through the frozen backbone once (eval mode: no dropout)."""
        was_training = self.backbone.training
        self.backbone.eval()
        device = self.global_bias.device
        features = [
            self.backbone({k: v.to(device) for k, v in content.items()}) for _, content in item_batches
        ]
        self.cached_features = torch.cat(features)
        self.backbone.train(was_training)

    def encode_items(self, items: torch.Tensor, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        if self.cached_features.numel() > 0:
            features = self.cached_features[items]
        elif self.prefix_cache is not None and self.prefix_cache.ready:
            features = self.prefix_cache(items)
        else:
            features = self.backbone(inputs)
        vectors = self.projection(features)
        if self.item_embedding is not None:
            vectors = vectors + self.item_embedding(items)
        return vectors
