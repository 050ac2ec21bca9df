"""Filters applied before splitting: implicit feedback from ratings, de-duplication, k-core.

The steps run in RecBole's order (duplicates, then the rating threshold, then k-core), so a filtered
data set here has the same interactions as RecBole's with the same settings. After filtering, users
and items are re-coded densely and their texts and images are subset to match.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd

from recfit.data.tables import ITEM, RATING, TIMESTAMP, USER, RecData
from recfit.errors import DataError


def filter_interactions(
    data: RecData,
    *,
    rating_threshold: float | None = None,
    k_core_users: int = 0,
    k_core_items: int = 0,
    deduplicate: bool = False,
) -> tuple[RecData, str]:
    """Filter the interactions, re-code users and items densely, and describe what was kept in one line.

    deduplicate: of repeated (user, item) pairs keep the last by `timestamp` (ties: the later row), or
        the last row when there is no timestamp.
    rating_threshold: keep rows with rating >= threshold (implicit feedback from explicit ratings).
    k_core_users / k_core_items: drop users with fewer than `k_core_users` interactions and items
        with fewer than `k_core_items`, again and again until none is left to drop (one removal can
        push another user or item under its threshold).

    Surviving users and items keep their relative order; `item_text`, `item_images`, `user_text` and
    the `user_features` / `item_features` tables are subset to them, and every other interaction
    column (e.g. `fold_*`) travels with its row. With all defaults the same RecData comes back with
    "no filtering". Nothing left -> DataError naming the filter.
    """
    steps: list[str] = []
    frame = data.interactions
    if deduplicate:
        frame = _deduplicate(frame)
        steps.append("deduplicated (user, item) keeping the last")
    if rating_threshold is not None:
        if RATING not in frame.columns:
            raise DataError(f"{data.name}: rating_threshold needs a '{RATING}' column, and there is none")
        frame = frame[frame[RATING].to_numpy() >= rating_threshold]
        steps.append(f"rating >= {rating_threshold:g}")
        _refuse_empty(frame, data.name, steps[-1])
    if k_core_users > 0 or k_core_items > 0:
        frame = _k_core(frame, k_core_users, k_core_items)
        steps.append(_k_core_name(k_core_users, k_core_items))
        _refuse_empty(frame, data.name, steps[-1])
    if not steps:
        return data, "no filtering"

    filtered = _recode(data, frame.reset_index(drop=True))
    description = (
        f"kept {len(filtered.interactions):,} of {len(data.interactions):,} interactions "
        f"({filtered.num_users:,} of {data.num_users:,} users, {filtered.num_items:,} of {data.num_items:,} "
        f"items): {', '.join(steps)}"
    )
    return filtered, description


def _deduplicate(frame: pd.DataFrame) -> pd.DataFrame:
    """Keep the last of each (user, item) by timestamp (stable, so ties keep the later row), in row order."""
    ordered = frame.sort_values(TIMESTAMP, kind="stable") if TIMESTAMP in frame.columns else frame
    return ordered.drop_duplicates([USER, ITEM], keep="last").sort_index()


def _k_core(frame: pd.DataFrame, min_user: int, min_item: int) -> pd.DataFrame:
    """The largest subset in which every user has >= min_user and every item >= min_item interactions."""
    users, items = frame[USER].to_numpy(), frame[ITEM].to_numpy()
    keep = np.ones(len(frame), dtype=bool)
    while True:
        user_counts = np.bincount(users[keep], minlength=users.max() + 1 if len(users) else 0)
        item_counts = np.bincount(items[keep], minlength=items.max() + 1 if len(items) else 0)
        enough = keep & (user_counts[users] >= min_user) & (item_counts[items] >= min_item)
        if (enough == keep).all():
            return frame[keep]
        keep = enough


def _k_core_name(min_user: int, min_item: int) -> str:
    if min_user == min_item:
        return f"{min_user}-core users/items"
    return ", ".join(f"{k}-core {side}" for k, side in ((min_user, "users"), (min_item, "items")) if k > 0)


def _refuse_empty(frame: pd.DataFrame, name: str, step: str) -> None:
    if frame.empty:
        raise DataError(f"{name}: no interactions left after filtering by {step}")


def _recode(data: RecData, frame: pd.DataFrame) -> RecData:
    """Dense codes for the surviving users and items (old order kept), with their content subset."""
    kept_users = np.unique(frame[USER].to_numpy())  # sorted: the old order
    kept_items = np.unique(frame[ITEM].to_numpy())
    frame = frame.copy()
    frame[USER] = np.searchsorted(kept_users, frame[USER].to_numpy())
    frame[ITEM] = np.searchsorted(kept_items, frame[ITEM].to_numpy())
    changes = {
        "interactions": frame,
        "num_users": len(kept_users),
        "num_items": len(kept_items),
        "item_text": None if data.item_text is None else [data.item_text[i] for i in kept_items],
        "item_images": None if data.item_images is None else data.item_images[kept_items],
        "user_text": None if data.user_text is None else [data.user_text[u] for u in kept_users],
        "user_ids": kept_users if data.user_ids is None else data.user_ids[kept_users],
        "item_ids": kept_items if data.item_ids is None else data.item_ids[kept_items],
        "item_titles": None if data.item_titles is None else [data.item_titles[i] for i in kept_items],
        "user_domain": None if data.user_domain is None else data.user_domain[kept_users],
        "item_domain": None if data.item_domain is None else data.item_domain[kept_items],
    }
    # Side-feature tables (one row per code) are subset the same way, when the data set has them.
    for field, kept in (("user_features", kept_users), ("item_features", kept_items)):
        table = getattr(data, field, None)
        if table is not None:
            changes[field] = table.iloc[kept].reset_index(drop=True)
    return dataclasses.replace(data, **changes)
