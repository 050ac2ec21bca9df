"""Logistic / linear regression over IDs and side features: the classic CTR baseline (RecBole's LR).

logit = bias + w[user] + w[item] + sum over categorical features of w[value]
        + sum over numeric features (min-max scaled) of beta * x
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch
from torch import nn


def _encode(features: pd.DataFrame | None, rows: int) -> tuple[torch.Tensor, list[int], torch.Tensor]:
    """Categorical columns -> codes [rows, C] with their cardinalities; numeric -> [rows, N] in [0, 1]."""
    if features is None:
        return torch.zeros(rows, 0, dtype=torch.long), [], torch.zeros(rows, 0)
    categorical = [c for c in features.columns if not pd.api.types.is_numeric_dtype(features[c])]
    numeric = [c for c in features.columns if c not in categorical]
    codes = [pd.factorize(features[c], use_na_sentinel=False)[0] for c in categorical]
    cardinalities = [int(c.max()) + 1 if len(c) else 1 for c in codes]
    values = features[numeric].astype("float32").to_numpy() if numeric else np.zeros((rows, 0), np.float32)
    low, high = values.min(axis=0, initial=0.0), values.max(axis=0, initial=1.0)
    scaled = (values - low) / np.where(high > low, high - low, 1.0)
    stacked = np.stack(codes, axis=1) if codes else np.zeros((rows, 0), dtype=np.int64)
    return (
        torch.as_tensor(stacked, dtype=torch.long),
        cardinalities,
        torch.as_tensor(scaled, dtype=torch.float32),
    )


class _SideWeights(nn.Module):
    """First-order weights of one entity's (user's or item's) side features."""

    def __init__(self, features: pd.DataFrame | None, rows: int) -> None:
        super().__init__()
        codes, cardinalities, numeric = _encode(features, rows)
        self.register_buffer("codes", codes)
        self.register_buffer("numeric", numeric)
        self.categorical = nn.ModuleList(nn.Embedding(n, 1) for n in cardinalities)
        self.linear = nn.Linear(numeric.shape[1], 1, bias=False)
        for table in self.categorical:
            nn.init.zeros_(table.weight)
        nn.init.zeros_(self.linear.weight)

    def forward(self, index: torch.Tensor) -> torch.Tensor:
        total = self.linear(self.numeric[index]).squeeze(-1)
        for column, table in enumerate(self.categorical):
            total = total + table(self.codes[index, column]).squeeze(-1)
        return total


class FeatureLinear(nn.Module):
    """ID + side-feature logistic regression; scores pairs, so it serves rating and ctr, not ranking."""

    def __init__(
        self,
        num_users: int,
        num_items: int,
        user_features: pd.DataFrame | None = None,
        item_features: pd.DataFrame | None = None,
        **_: object,
    ) -> None:
        super().__init__()
        self.user_weight = nn.Embedding(num_users, 1)
        self.item_weight = nn.Embedding(num_items, 1)
        nn.init.zeros_(self.user_weight.weight)
        nn.init.zeros_(self.item_weight.weight)
        self.user_side = _SideWeights(user_features, num_users)
        self.item_side = _SideWeights(item_features, num_items)
        self.bias = nn.Parameter(torch.zeros(1))

    def set_output_offset(self, value: float) -> None:
        """Start at the mean target (rating) or the base rate's logit (ctr)."""
        self.bias.data.fill_(value)

    def forward(self, batch: dict) -> torch.Tensor:
        users, items = batch["user"], batch["item"]
        return (
            self.bias
            + self.user_weight(users).squeeze(-1)
            + self.item_weight(items).squeeze(-1)
            + self.user_side(users)
            + self.item_side(items)
        )
