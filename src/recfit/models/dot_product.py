"""The shared shape of two-tower and matrix-factorisation models: user vector . item vector (+ biases)."""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn
from torch.nn import functional as F

from recfit.errors import RecfitError
from recfit.models.user_encoders import UserEncoder, UserEncoderSpec, build_user_encoder


class DotProductRecommender(nn.Module):
    """User tower = ID embedding, or a user encoder over the user's history of item vectors
    (`attach_user_encoder`). Subclasses say how item vectors are made (`encode_items`).

    normalize: L2-normalise both vectors, so scores are cosines (softmax ranking with a temperature).
    biases: add user, item and global biases (rating and ctr); ranking never uses them, so a
        catalogue ranking is a plain matrix product of user and item vectors.
    num_tasks: > 1 for a multi-task run ([B, T] outputs). The user and item vectors are shared; each
        task t has its own head: a diagonal map a_t on the product (score_t = sum_d a_td u_d i_d, with
        a_t = 1 at the start, i.e. the plain dot product) and its own user, item and global biases
        (a rating scale and a click logit need different offsets).
    """

    def __init__(
        self,
        num_users: int,
        num_items: int,
        embedding_dim: int,
        normalize: bool,
        biases: bool,
        num_tasks: int = 1,
    ) -> None:
        super().__init__()
        self.normalize = normalize
        self.user_embedding = nn.Embedding(num_users, embedding_dim)
        nn.init.normal_(self.user_embedding.weight, std=0.1)
        self.biases = biases
        if biases:
            self.user_bias = nn.Embedding(num_users, num_tasks)
            self.item_bias = nn.Embedding(num_items, num_tasks)
            nn.init.zeros_(self.user_bias.weight)
            nn.init.zeros_(self.item_bias.weight)
        self.global_bias = nn.Parameter(torch.zeros(num_tasks), requires_grad=biases)
        self.num_tasks = num_tasks
        if num_tasks > 1:
            self.task_heads = nn.Parameter(torch.ones(num_tasks, embedding_dim))
        self.user_encoder: UserEncoder | None = None
        self.max_history: int | None = None

    def attach_user_encoder(self, spec: UserEncoderSpec) -> None:
        """Make users from their histories with the encoder `spec` names (nothing for `id`).

        Subclasses call it last in their constructor: the encoder's weights are drawn after every
        other module's, so an `id` run draws the random numbers it always drew. The user ID embedding
        is dropped: a history-encoded user has no vector of its own (and DDP wants no unused weights).
        """
        encoder = build_user_encoder(spec, self.user_embedding.embedding_dim)
        if encoder is None:
            return
        self.user_encoder = encoder
        self.max_history = spec.max_history
        del self.user_embedding

    @property
    def encodes_histories(self) -> bool:
        """Whether user vectors come from histories (`encode_histories`) rather than user IDs."""
        return self.user_encoder is not None

    def encode_histories(
        self, items: torch.Tensor, mask: torch.Tensor, item_vectors: torch.Tensor
    ) -> torch.Tensor:
        """[B, d] user vectors from right-padded histories: `items` [B, L] item codes (any value where
        `mask` [B, L] is False) looked up in `item_vectors` [num_items, d], the very vectors that are
        scored, so gradients reach the item tower through both sides."""
        history = item_vectors[items.clamp(min=0)] * mask.unsqueeze(-1).to(item_vectors.dtype)
        vectors = self.user_encoder.encode(history, mask)
        return F.normalize(vectors, dim=-1) if self.normalize else vectors

    def encode_history_positions(
        self, items: torch.Tensor, mask: torch.Tensor, item_vectors: torch.Tensor
    ) -> torch.Tensor:
        """[B, L, d]: position t is the user after the history's items 0..t (what predicts item t + 1),
        as `encode_histories` reads it at each row's last item; positions where `mask` is False are
        meaningless. For training every position at once (`task.next_item_examples=window`)."""
        history = item_vectors[items.clamp(min=0)] * mask.unsqueeze(-1).to(item_vectors.dtype)
        states = self.user_encoder(history, mask)
        return F.normalize(states, dim=-1) if self.normalize else states

    def set_output_offset(self, value: float | list[float]) -> None:
        """Start predictions at `value` (the mean training rating, or the base rate's logit); one per task."""
        self.global_bias.data.copy_(torch.as_tensor(value).expand_as(self.global_bias))

    def encode_items(self, items: torch.Tensor, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        """Vectors of `items` (codes); `inputs` is their encoded content, one row per code."""
        raise NotImplementedError

    def encode_users(self, users: torch.Tensor) -> torch.Tensor:
        if self.user_encoder is not None:  # a user is a history here: there is no vector per user ID
            raise RecfitError(
                f"this model encodes users from their item histories (user encoder "
                f"{type(self.user_encoder).__name__}), not from user IDs: give it a history"
            )
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
        """Pointwise score of each (user, item) row: [B], or [B, num_tasks]."""
        users, items = batch["user"], batch["item"]
        product = self.encode_users(users) * self.batch_item_vectors(batch)
        if self.num_tasks > 1:  # [B, T]: each task's head over the shared product, plus its biases
            score = product @ self.task_heads.T
            return score + self.user_bias(users) + self.item_bias(items) + self.global_bias
        score = product.sum(-1)
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
            penalty = penalty + self.user_bias(users).pow(2).sum(-1) + self.item_bias(items).pow(2).sum(-1)
        return penalty.mean()

    def catalogue_vectors(self, item_batches: Iterable[tuple[torch.Tensor, dict]]) -> torch.Tensor:
        """Vectors of every item, from an iterator of (codes, content) chunks."""
        device = self.global_bias.device
        chunks = []
        for codes, content in item_batches:
            inputs = {k: v.to(device) for k, v in content.items()}
            chunks.append(self._items(codes.to(device), inputs))
        return torch.cat(chunks)
