"""Put a run's trained weights into a freshly built model, on its own catalogue or on another one.

On the run's own catalogue every weight loads, strictly. On another catalogue (zero-shot transfer
through content) user and item codes mean different people and things, so:

- cross_encoder: everything transfers (backbone and head read text only).
- two_tower: the backbone and projection transfer. The item ID embedding is set to zero, so every
  item of the new catalogue is scored from its content alone, exactly as a cold item is in training.
  The user ID embedding cannot transfer: each new user's vector is folded in as the mean of the item
  vectors of the items they interacted with in the new data's train and validation splits (a
  content-based user; a user with no such history gets the zero vector and a tie over all items).
  User and item biases (rating, ctr) are zeroed; the global bias is kept.
- mf, lr, popularity: they know users and items by ID only; transfer is refused in one line.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from recfit.data.tables import ITEM, USER
from recfit.errors import ConfigError, DataError
from recfit.training.frozen_reference import BACKBONE_PREFIX

# Parameters of a two-tower model that name users or items by code.
ID_PARAMETERS = (
    "recommender.user_embedding.weight",
    "recommender.item_embedding.weight",
    "recommender.user_bias.weight",
    "recommender.item_bias.weight",
)
CONTENT_MODELS = ("two_tower", "cross_encoder")


def _check_fit(path: Path, module: torch.nn.Module, state: dict[str, Any], skip: tuple[str, ...]) -> None:
    """Refuse, in one line, a checkpoint whose weights do not fit this model."""
    for name, tensor in module.state_dict().items():
        if name in skip:
            continue
        if name not in state or state[name].shape != tensor.shape:
            found = "missing" if name not in state else tuple(state[name].shape)
            raise DataError(
                f"checkpoint {path} does not fit this model: {name} is {found}, needs {tuple(tensor.shape)}"
            )


def refresh_cached_features(built: Any) -> None:
    """Frozen backbone layers' outputs are cached when a model is built: recompute them after its
    backbone weights changed (a fully frozen two-tower's item vectors, a `freeze: N` prefix's states)."""
    recommender, datamodule = built.module.recommender, built.datamodule
    prefix = getattr(recommender, "prefix_cache", None)
    vectors = getattr(recommender, "cached_features", torch.empty(0)).numel() > 0
    if not vectors and not (prefix is not None and prefix.ready):
        return
    batches = datamodule.item_batches(datamodule.eval_batch_size, content=True)
    if vectors:
        recommender.cached_features = torch.empty(0)
        recommender.cache_item_features(batches)
    else:
        prefix.fill(batches)


def changes_backbone(module: torch.nn.Module, state: dict[str, Any]) -> bool:
    """True when `state` holds frozen backbone weights other than those `module` was built with.

    Only frozen layers are cached (item vectors, a frozen prefix's states). A frozen pretrained
    backbone comes back from its verified reference identical, and `build(cfg, checkpoint)` put the
    frozen weights a checkpoint holds (taken from a parent run) in place before caching, so the cached
    features are already the right ones; this is the safety net for a module built otherwise.
    """
    frozen = {name: p for name, p in module.named_parameters() if not p.requires_grad}
    return any(
        name.startswith(BACKBONE_PREFIX) and name in frozen and not torch.equal(frozen[name], tensor)
        for name, tensor in state.items()
    )


def load_weights(
    built: Any, state: dict[str, Any], path: Path, same_catalogue: bool, model: str
) -> str | None:
    """Load `state` into `built.module`; returns None on the own catalogue, else what transferred."""
    module = built.module
    stale_vectors = changes_backbone(module, state)
    if same_catalogue:
        _check_fit(path, module, state, ())
        module.load_state_dict(state, strict=False)  # metric states are not saved; all weights are checked
        if stale_vectors:
            refresh_cached_features(built)
        return None
    if model not in CONTENT_MODELS:
        raise ConfigError(
            f"a {model} model knows users and items by ID only: it cannot be evaluated on another "
            "data set (use two_tower or cross_encoder for zero-shot transfer)"
        )
    if model == "cross_encoder":
        _check_fit(path, module, state, ())
        module.load_state_dict(state, strict=False)
        return "cross_encoder: all weights transfer (it reads text only)"
    _check_fit(path, module, state, ID_PARAMETERS)
    content_only = {k: v for k, v in state.items() if k not in ID_PARAMETERS}
    module.load_state_dict(content_only, strict=False)
    if stale_vectors:
        refresh_cached_features(built)
    recommender = module.recommender
    with torch.no_grad():
        for name in ("item_embedding", "user_bias", "item_bias"):
            layer = getattr(recommender, name, None)
            if layer is not None:
                layer.weight.zero_()
        if recommender.encodes_histories:  # users are their histories in the new data: nothing to fold
            from recfit.inference.history import ZERO_SHOT

            return ZERO_SHOT
        recommender.user_embedding.weight.copy_(fold_in_users(built))
    return (
        "two_tower: backbone and projection transferred; item ID embedding zeroed (content only); "
        "user vectors folded in as the mean of their train+val item vectors"
    )


@torch.no_grad()
def fold_in_users(built: Any) -> torch.Tensor:
    """[num_users, dim]: each user's mean item vector over their train and validation interactions."""
    recommender, datamodule = built.module.recommender, built.datamodule
    was_training = recommender.training
    recommender.eval()
    items = recommender.catalogue_vectors(datamodule.item_batches(datamodule.eval_batch_size))
    recommender.train(was_training)
    history = pd.concat([datamodule.splits.train, datamodule.splits.val])
    users = torch.from_numpy(np.array(history[USER], dtype=np.int64))  # a copy: writable, no warning
    codes = torch.from_numpy(np.array(history[ITEM], dtype=np.int64))
    num_users = recommender.user_embedding.num_embeddings
    sums = torch.zeros(num_users, items.shape[1]).index_add_(0, users, items[codes])
    counts = torch.bincount(users, minlength=num_users).clamp(min=1)
    return sums / counts[:, None]
