"""Several data sets as one: each domain read by its own reader, ids namespaced, tables concatenated.

Users and items of domain `d` become `"<d>:<raw id>"` and hold consecutive codes (domain 0's first),
so an item of one domain is never confused with an item of another, even when their raw ids agree.
`RecData.user_domain` / `item_domain` record each code's domain for the split, the sampler, the
in-batch mask and the per-domain metrics.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from recfit.data.configured import read_dataset
from recfit.data.filters import filter_interactions
from recfit.data.tables import ITEM, USER, RecData
from recfit.errors import DataError

log = logging.getLogger(__name__)


def read_domains(domains: Mapping[str, Any]) -> RecData:
    """Read every domain (its own reader and filter), then join them into one RecData.

    `domains`: domain name -> that data set's config (`reader`, `filter`, ...). What some domain lacks
    (a `rating` column, item text or images, features) is left out for all: a task or backbone that
    needs it then refuses the data set.
    """
    if len(domains) < 2:
        raise DataError(f"multi-domain data needs two or more domains, got {len(domains)}")
    parts: dict[str, RecData] = {}
    for name, cfg in domains.items():
        data, filtered = filter_interactions(read_dataset(cfg), **cfg.filter)
        log.info("domain %s: %s (%s)", name, data.summary(), filtered)
        parts[name] = data
    return join_domains(parts)


def _namespaced(name: str, raw: np.ndarray | None, size: int) -> np.ndarray:
    ids = np.arange(size) if raw is None else raw
    return np.asarray([f"{name}:{value}" for value in ids], dtype=object)


def _all_or_none(parts: dict[str, RecData], field: str, what: str) -> bool:
    """Whether every domain has `field`; when only some do it is left out, and said so in the log
    (a backbone that needs it then refuses the data set in one line)."""
    lacking = [name for name, data in parts.items() if getattr(data, field) is None]
    if lacking and len(lacking) < len(parts):
        log.info("%s left out: domain %s has none", what, ", ".join(lacking))
    return not lacking


def join_domains(parts: dict[str, RecData]) -> RecData:
    """One RecData of all `parts` (name -> data), domain after domain, ids as "<domain>:<raw id>"."""
    names = list(parts)
    shared = set.intersection(*(set(data.interactions.columns) for data in parts.values()))
    for name, data in parts.items():
        dropped = sorted(set(data.interactions.columns) - shared)
        if dropped:
            log.info("domain %s: column(s) %s dropped: not every domain has them", name, ", ".join(dropped))
    frames, user_offset, item_offset = [], 0, 0
    for data in parts.values():
        frame = data.interactions[[c for c in data.interactions.columns if c in shared]].copy()
        frame[USER] = frame[USER].to_numpy() + user_offset
        frame[ITEM] = frame[ITEM].to_numpy() + item_offset
        frames.append(frame)
        user_offset += data.num_users
        item_offset += data.num_items
    with_text = _all_or_none(parts, "item_text", "item text")
    with_images = _all_or_none(parts, "item_images", "item images")
    if with_images and len({data.item_images.shape[1:] for data in parts.values()}) > 1:
        raise DataError("the domains' item images differ in size: set the same image_size in each")
    with_item_features = _all_or_none(parts, "item_features", "item features")
    with_user_features = _all_or_none(parts, "user_features", "user features")
    if any(data.label_names is not None for data in parts.values()):
        raise DataError("multi-domain training does not take labelled text data (text classification)")
    values = list(parts.values())
    titles = (
        [t for data in values for t in (data.item_titles or data.item_text or [""] * data.num_items)]
        if any(data.item_titles is not None for data in values)
        else None
    )
    skipped = {
        f"{name}: {reason}": n for name, data in parts.items() for reason, n in data.skipped_rows.items()
    }
    return RecData(
        name="+".join(names),
        interactions=pd.concat(frames, ignore_index=True),
        num_users=user_offset,
        num_items=item_offset,
        item_text=[t for data in values for t in data.item_text] if with_text else None,
        item_images=np.concatenate([data.item_images for data in values]) if with_images else None,
        # user text helps cross-encoders only; a domain without it is no reason to refuse the others
        user_text=(
            [t for data in values for t in data.user_text]
            if all(data.user_text is not None for data in values)
            else None
        ),
        user_features=(
            pd.concat([data.user_features for data in values], ignore_index=True)
            if with_user_features
            else None
        ),
        item_features=(
            pd.concat([data.item_features for data in values], ignore_index=True)
            if with_item_features
            else None
        ),
        skipped_rows=skipped,
        user_ids=np.concatenate([_namespaced(n, d.user_ids, d.num_users) for n, d in parts.items()]),
        item_ids=np.concatenate([_namespaced(n, d.item_ids, d.num_items) for n, d in parts.items()]),
        item_titles=titles,
        domain_names=names,
        user_domain=np.repeat(np.arange(len(names)), [data.num_users for data in values]),
        item_domain=np.repeat(np.arange(len(names)), [data.num_items for data in values]),
    )
