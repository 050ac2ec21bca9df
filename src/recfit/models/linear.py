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
    """First-order weights of one entity's (user's or item's) side features; `outputs` per feature."""

    def __init__(self, features: pd.DataFrame | None, rows: int, outputs: int = 1) -> None:
        super().__init__()
        codes, cardinalities, numeric = _encode(features, rows)
        self.register_buffer("codes", codes)
        self.register_buffer("numeric", numeric)
        self.outputs = outputs
        self.categorical = nn.ModuleList(nn.Embedding(n, outputs) for n in cardinalities)
        self.linear = nn.Linear(numeric.shape[1], outputs, bias=False)
        for table in self.categorical:
            nn.init.zeros_(table.weight)
        nn.init.zeros_(self.linear.weight)

    def forward(self, index: torch.Tensor) -> torch.Tensor:
        """[B] weights summed over features, or [B, outputs] when there are several outputs."""
        squeeze = (lambda x: x.squeeze(-1)) if self.outputs == 1 else (lambda x: x)
        total = squeeze(self.linear(self.numeric[index]))
        for column, table in enumerate(self.categorical):
            total = total + squeeze(table(self.codes[index, column]))
        return total


class FeatureLinear(nn.Module):
    """ID + side-feature logistic regression; scores pairs, so it serves rating and ctr, not ranking.

    Multi-task (`num_tasks` > 1): nothing is shared but the inputs; every weight has one column per
    task (each task is its own linear model over the same features), giving [B, num_tasks].
    """

    def __init__(
        self,
        num_users: int,
        num_items: int,
        user_features: pd.DataFrame | None = None,
        item_features: pd.DataFrame | None = None,
        num_tasks: int = 1,
        **_: object,
    ) -> None:
        super().__init__()
        self.user_weight = nn.Embedding(num_users, num_tasks)
        self.item_weight = nn.Embedding(num_items, num_tasks)
        nn.init.zeros_(self.user_weight.weight)
        nn.init.zeros_(self.item_weight.weight)
        self.user_side = _SideWeights(user_features, num_users, num_tasks)
        self.item_side = _SideWeights(item_features, num_items, num_tasks)
        self.bias = nn.Parameter(torch.zeros(num_tasks))
        self.num_tasks = num_tasks

    def set_output_offset(self, value: float | list[float]) -> None:
        """Start at the mean target (rating) or the base rate's logit (ctr); one per task."""
        self.bias.data.copy_(torch.as_tensor(value).expand_as(self.bias))

    def forward(self, batch: dict) -> torch.Tensor:
        """[B] scores, or [B, num_tasks]."""
        users, items = batch["user"], batch["item"]
        squeeze = (lambda x: x.squeeze(-1)) if self.num_tasks == 1 else (lambda x: x)
        return (
            self.bias
            + squeeze(self.user_weight(users))
            + squeeze(self.item_weight(items))
            + self.user_side(users)
            + self.item_side(items)
        )
