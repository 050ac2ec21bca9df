"""User encoders: a user is the sequence of item vectors they touched, not an ID.

Every encoder maps a batch of item-vector histories `[B, L, d]` with a mask `[B, L]` (True = a real
item) to one vector per position, `[B, L, d]`: position t summarises the items 0..t and is the user
vector that predicts item t + 1 (SASRec's next-item objective, every prefix at once). `last` picks the
vector at each row's last real item, the user vector used for scoring. The output has the item
vectors' size d, because it is scored against those same item vectors by dot product.

Histories are right-padded (RecBole's layout): the real items come first, padding after. Every
encoder is causal, so a position never depends on a later item or on the padding, and the result at
the real positions does not depend on how far a batch is padded.

| name          | what                                                                        |
|---------------|-----------------------------------------------------------------------------|
| `id`          | no encoder: the recommender keeps its ID embedding (today's two-tower)      |
| `mean`        | mean of the item vectors so far (no parameters)                             |
| `gru`         | GRU4Rec-style: dropout, GRU, linear back to d (RecBole's GRU4Rec)           |
| `transformer` | SASRec: learned positions, layer norm + dropout on the input, causal        |
|               | post-LN transformer layers (RecBole's SASRec / TransformerEncoder)          |

The transformer follows RecBole 1.2's SASRec (recbole/model/sequential_recommender/sasrec.py and
recbole/model/layers.py): input = dropout(LayerNorm(item + position)); each layer is multi-head
self-attention (dropout on the attention probabilities, then on its output, residual, LayerNorm)
followed by a feed-forward d -> inner_size -> d (activation, dropout on the output, residual,
LayerNorm), with no dropout inside the feed-forward; weights ~ N(0, 0.02), biases 0, LayerNorm 1/0.
Defaults are RecBole's: 2 layers, 2 heads, inner size 256, dropouts 0.5, gelu, eps 1e-12 (RecBole's
hidden size 64 is the item vector size here). One difference: RecBole adds -10000 to masked attention
scores, we exclude them exactly (the same up to exp(-10000)).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from recfit.config.schema import UserEncoderName
from recfit.errors import ConfigError

ID, MEAN, GRU, TRANSFORMER = (name.value for name in UserEncoderName)
USER_ENCODERS = tuple(name.value for name in UserEncoderName)
ACTIVATIONS = {"gelu": F.gelu, "relu": F.relu}  # F.gelu is the exact (erf) form, as RecBole's


@dataclass(frozen=True)
class UserEncoderSpec:
    """What `build_user_encoder` needs; `model.user_encoder` (recfit.config.schema.UserEncoderConfig)
    sets the fields it names, the others keep these defaults.

    `None` means the encoder's own default (SASRec's for `transformer`, GRU4Rec's for `gru`).
    """

    name: str = ID
    max_history: int = 50  # the most recent items a user is represented by (SASRec's max length)
    num_layers: int | None = None  # transformer: 2, gru: 1
    num_heads: int = 2  # transformer attention heads (must divide the item vector size)
    inner_size: int = 256  # transformer feed-forward width
    dropout: float | None = None  # transformer: 0.5 (hidden), gru: 0.3 (on the input)
    attention_dropout: float = 0.5  # transformer: on the attention probabilities
    activation: str = "gelu"  # transformer feed-forward: gelu | relu
    layer_norm_eps: float = 1e-12
    initializer_range: float = 0.02  # transformer: std of the normal weight initialisation
    gru_hidden_size: int = 128  # gru: state size (GRU4Rec's hidden_size)


def user_encoder_spec(config: Mapping[str, Any] | UserEncoderSpec | None) -> UserEncoderSpec:
    """The spec of a `model.user_encoder` config (a mapping; None: the `id` default). An enum name is
    taken by its value; a null field keeps the spec's default where the spec has no null."""
    if config is None:
        return UserEncoderSpec()
    if isinstance(config, UserEncoderSpec):
        return config
    known = {field.name: field for field in fields(UserEncoderSpec)}
    values: dict[str, Any] = {}
    for key, value in dict(config).items():
        if key not in known:
            raise ConfigError(f"unknown user encoder setting '{key}' (known: {', '.join(known)})")
        if value is None and known[key].default is not None:
            continue
        values[key] = getattr(value, "value", value)
    return UserEncoderSpec(**values)


def check_max_history(max_history: int) -> int:
    """`max_history` as given, or a ConfigError when it is not a positive number of items."""
    if isinstance(max_history, bool) or not isinstance(max_history, int) or max_history <= 0:
        raise ConfigError(f"max_history must be a positive number of items, got {max_history!r}")
    return max_history


def history_lengths(mask: torch.Tensor) -> torch.Tensor:
    """[B] number of real items per row of a right-padded mask; a ValueError for any other layout.

    Callers' padding is a programming matter, not user input: a left-padded or holed mask would
    silently mean other positions, so it is refused loudly.
    """
    lengths = mask.sum(dim=1)
    expected = torch.arange(mask.shape[1], device=mask.device)[None, :] < lengths[:, None]
    if not torch.equal(expected, mask.bool()):
        raise ValueError("user encoder histories must be right-padded: real items first, padding after")
    return lengths


class UserEncoder(nn.Module):
    """Base class: `forward(items [B, L, d], mask [B, L]) -> [B, L, d]`, causal per position."""

    def forward(self, items: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:  # pragma: no cover
        raise NotImplementedError

    @staticmethod
    def last(states: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """[B, d]: each row's state at its last real item (rows need at least one item)."""
        lengths = history_lengths(mask)
        if bool((lengths == 0).any()):
            raise ValueError("a user encoder needs at least one item in every history")
        index = (lengths - 1).view(-1, 1, 1).expand(-1, 1, states.shape[-1])
        return states.gather(1, index).squeeze(1)

    def encode(self, items: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """[B, d] user vectors: the state after each row's whole history."""
        return self.last(self(items, mask), mask)


class MeanEncoder(UserEncoder):
    """Position t = mean of the item vectors 0..t (padding contributes nothing)."""

    def forward(self, items: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        history_lengths(mask)
        weights = mask.to(items.dtype).unsqueeze(-1)
        totals = (items * weights).cumsum(dim=1)
        counts = weights.cumsum(dim=1).clamp(min=1.0)
        return totals / counts


class GRUEncoder(UserEncoder):
    """GRU4Rec as RecBole builds it: dropout on the inputs, a bias-free GRU, a linear map back to d."""

    def __init__(self, dim: int, hidden_size: int = 128, num_layers: int = 1, dropout: float = 0.3) -> None:
        super().__init__()
        self.input_dropout = nn.Dropout(dropout)
        self.gru = nn.GRU(dim, hidden_size, num_layers=num_layers, bias=False, batch_first=True)
        self.output = nn.Linear(hidden_size, dim)
        for name, weight in self.gru.named_parameters():
            if name.startswith("weight"):
                nn.init.xavier_uniform_(weight)

    def forward(self, items: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        history_lengths(mask)
        # a GRU only reads forward, so the padding after a row's items never reaches its real positions
        items = items.masked_fill(~mask.bool().unsqueeze(-1), 0.0)
        states, _ = self.gru(self.input_dropout(items))
        return self.output(states)


class _SelfAttention(nn.Module):
    """Multi-head self-attention, then dropout, residual and LayerNorm (post-LN, as BERT and RecBole)."""

    def __init__(
        self, dim: int, num_heads: int, dropout: float, attention_dropout: float, eps: float
    ) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.query, self.key, self.value = (nn.Linear(dim, dim) for _ in range(3))
        self.dense = nn.Linear(dim, dim)
        self.attention_dropout = attention_dropout
        self.dropout = nn.Dropout(dropout)
        self.norm = nn.LayerNorm(dim, eps=eps)

    def forward(self, hidden: torch.Tensor, allowed: torch.Tensor) -> torch.Tensor:
        batch, length, dim = hidden.shape

        def heads(projection: nn.Linear) -> torch.Tensor:
            return (
                projection(hidden).view(batch, length, self.num_heads, dim // self.num_heads).transpose(1, 2)
            )

        context = F.scaled_dot_product_attention(
            heads(self.query),
            heads(self.key),
            heads(self.value),
            attn_mask=allowed,
            dropout_p=self.attention_dropout if self.training else 0.0,
        )
        context = context.transpose(1, 2).reshape(batch, length, dim)
        return self.norm(hidden + self.dropout(self.dense(context)))


class _FeedForward(nn.Module):
    """d -> inner -> d with the activation between, dropout on the output, residual and LayerNorm."""

    def __init__(self, dim: int, inner_size: int, dropout: float, activation: str, eps: float) -> None:
        super().__init__()
        self.inner = nn.Linear(dim, inner_size)
        self.outer = nn.Linear(inner_size, dim)
        self.activation = ACTIVATIONS[activation]
        self.dropout = nn.Dropout(dropout)
        self.norm = nn.LayerNorm(dim, eps=eps)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.norm(hidden + self.dropout(self.outer(self.activation(self.inner(hidden)))))


class _TransformerLayer(nn.Module):
    def __init__(
        self,
        dim: int,
        num_heads: int,
        inner_size: int,
        dropout: float,
        attention_dropout: float,
        activation: str,
        eps: float,
    ) -> None:
        super().__init__()
        self.attention = _SelfAttention(dim, num_heads, dropout, attention_dropout, eps)
        self.feed_forward = _FeedForward(dim, inner_size, dropout, activation, eps)

    def forward(self, hidden: torch.Tensor, allowed: torch.Tensor) -> torch.Tensor:
        return self.feed_forward(self.attention(hidden, allowed))


class SASRecEncoder(UserEncoder):
    """SASRec (Kang & McAuley, ICDM 2018) in RecBole's form; see the module docstring for the layout.

    Position t attends to the real items 0..t only. A padding position attends to the real items
    before it and to itself (so its softmax is never empty); nothing real ever attends to padding.
    """

    def __init__(
        self,
        dim: int,
        max_history: int = 50,
        num_layers: int = 2,
        num_heads: int = 2,
        inner_size: int = 256,
        dropout: float = 0.5,
        attention_dropout: float = 0.5,
        activation: str = "gelu",
        layer_norm_eps: float = 1e-12,
        initializer_range: float = 0.02,
    ) -> None:
        super().__init__()
        self.max_history = check_max_history(max_history)
        if num_heads <= 0 or dim % num_heads:
            raise ConfigError(f"num_heads={num_heads} must divide the item vector size {dim}")
        if num_layers <= 0:
            raise ConfigError(f"a transformer user encoder needs num_layers >= 1, got {num_layers}")
        if activation not in ACTIVATIONS:
            raise ConfigError(f"unknown activation '{activation}' (choose from {', '.join(ACTIVATIONS)})")
        self.positions = nn.Embedding(max_history, dim)
        self.input_norm = nn.LayerNorm(dim, eps=layer_norm_eps)
        self.input_dropout = nn.Dropout(dropout)
        self.layers = nn.ModuleList(
            _TransformerLayer(
                dim, num_heads, inner_size, dropout, attention_dropout, activation, layer_norm_eps
            )
            for _ in range(num_layers)
        )
        self._initialize(initializer_range)

    def _initialize(self, std: float) -> None:
        for module in self.modules():
            if isinstance(module, nn.Linear | nn.Embedding):
                nn.init.normal_(module.weight, mean=0.0, std=std)
            if isinstance(module, nn.Linear) and module.bias is not None:
                nn.init.zeros_(module.bias)
            elif isinstance(module, nn.LayerNorm):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)

    def forward(self, items: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        length = items.shape[1]
        if length > self.max_history:
            raise ValueError(f"history of {length} positions is longer than max_history={self.max_history}")
        history_lengths(mask)
        real = mask.bool()
        positions = torch.arange(length, device=items.device)
        hidden = items.masked_fill(~real.unsqueeze(-1), 0.0) + self.positions(positions)[None]
        hidden = self.input_dropout(self.input_norm(hidden))
        causal = positions[None, :] <= positions[:, None]  # [L, L]: query row may see key column
        allowed = causal[None] & (real[:, None, :] | torch.eye(length, dtype=torch.bool, device=items.device))
        allowed = allowed.unsqueeze(1)  # [B, 1, L, L], broadcast over heads
        for layer in self.layers:
            hidden = layer(hidden, allowed)
        return hidden


def build_user_encoder(spec: UserEncoderSpec, dim: int) -> UserEncoder | None:
    """The encoder `spec.name` over item vectors of size `dim`; None for `id` (the ID embedding stays).

    Bad settings (unknown name, max_history <= 0, heads not dividing `dim`) are ConfigErrors.
    """
    if spec.name not in USER_ENCODERS:
        raise ConfigError(f"unknown user encoder '{spec.name}' (choose from {', '.join(USER_ENCODERS)})")
    check_max_history(spec.max_history)
    if spec.name == ID:
        return None
    if spec.name == MEAN:
        return MeanEncoder()
    if spec.name == GRU:
        return GRUEncoder(
            dim,
            hidden_size=spec.gru_hidden_size,
            num_layers=1 if spec.num_layers is None else spec.num_layers,
            dropout=0.3 if spec.dropout is None else spec.dropout,
        )
    return SASRecEncoder(
        dim,
        max_history=spec.max_history,
        num_layers=2 if spec.num_layers is None else spec.num_layers,
        num_heads=spec.num_heads,
        inner_size=spec.inner_size,
        dropout=0.5 if spec.dropout is None else spec.dropout,
        attention_dropout=spec.attention_dropout,
        activation=spec.activation,
        layer_norm_eps=spec.layer_norm_eps,
        initializer_range=spec.initializer_range,
    )
