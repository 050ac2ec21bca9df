"""The split of multi-domain data: the configured split within each domain, then concatenated.

So a cold-item split holds out a share of each domain's items, a per-user ratio split cuts each
domain's users as it would alone, and the protocol line names every domain with its own protocol.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np
import pandas as pd

from recfit.data.split import Splits
from recfit.data.tables import USER, RecData


def split_per_domain(data: RecData, split: Callable[[RecData], Splits]) -> Splits:
    """`split(data)` for one data set; for multi-domain data, `split` within each domain, joined."""
    if data.domain_names is None:
        return split(data)
    row_domain = data.user_domain[data.interactions[USER].to_numpy()]
    parts = []
    for code, name in enumerate(data.domain_names):
        rows = data.interactions[row_domain == code].reset_index(drop=True)
        parts.append((name, split(dataclasses.replace(data, name=name, interactions=rows))))
    joined = {
        part: pd.concat([getattr(splits, part) for _, splits in parts], ignore_index=True)
        for part in ("train", "val", "test")
    }
    held_back = [splits.held_back for _, splits in parts if splits.held_back is not None]
    protocol = "per domain: " + "; ".join(f"{name}: {splits.protocol}" for name, splits in parts)
    return Splits(
        **joined, protocol=protocol, held_back=pd.concat(held_back, ignore_index=True) if held_back else None
    )


def domain_of_rows(data: RecData, frame: pd.DataFrame) -> np.ndarray | None:
    """The domain code of each row of `frame` (by its user); None for one data set."""
    if data.user_domain is None:
        return None
    return data.user_domain[frame[USER].to_numpy()]
