"""Mixed training batches: each batch takes a fixed share of its rows from each domain (`dataset.mix`).

With shares {a: 0.5, b: 0.5} and batch size 64, every batch holds 32 rows of a and 32 of b. An epoch
lasts until every domain has served all its rows at least once; a domain that runs out first (the
smaller one, or the one with the smaller share) starts a fresh permutation of its rows, so it is
recycled within the epoch. Every batch is full and is `batch_size` consecutive rows of the epoch's
order, and that order is a pure function of (seed, epoch): exact resume (skip `served * batch_size`
rows, recfit.data.resumable) works as for any EpochSampler.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
import torch

from recfit.data.resumable import EpochSampler
from recfit.errors import DataError


def rows_per_batch(shares: Sequence[float], batch_size: int) -> list[int]:
    """Rows of each domain in one batch: round(share * batch_size), the rounding remainder to the
    largest shares, at least one row per domain. Shares need not sum to 1 (they are normalised)."""
    total = float(sum(shares))
    exact = [share / total * batch_size for share in shares]
    counts = [max(1, round(value)) for value in exact]
    while sum(counts) > batch_size and max(counts) > 1:
        shrinkable = [d for d in range(len(counts)) if counts[d] > 1]
        counts[max(shrinkable, key=lambda d: (counts[d] - exact[d], counts[d]))] -= 1
    while sum(counts) < batch_size:
        counts[max(range(len(counts)), key=lambda d: exact[d] - counts[d])] += 1
    return counts


def mix_shares(names: Sequence[str], mix: Mapping[str, float]) -> list[float]:
    """The share of each domain, in `names` order (a missing domain: DataError)."""
    missing = [name for name in names if name not in mix]
    if missing:
        raise DataError(f"dataset.mix has no share for domain {missing[0]}")
    return [float(mix[name]) for name in names]


class DomainMixSampler(EpochSampler):
    """An EpochSampler whose batches draw `rows_per_batch` rows from each domain."""

    def __init__(self, row_domains: np.ndarray, shares: Sequence[float], batch_size: int, seed: int) -> None:
        self.domain_rows = [np.flatnonzero(row_domains == d) for d in range(len(shares))]
        empty = [d for d, rows in enumerate(self.domain_rows) if len(rows) == 0]
        if empty:
            raise DataError(f"domain {empty[0]} has no training rows to mix (filtered away?)")
        self.batch_size = batch_size
        self.per_batch = rows_per_batch(shares, batch_size)
        pairs = zip(self.domain_rows, self.per_batch, strict=True)
        self.batches = max(math.ceil(len(rows) / k) for rows, k in pairs)  # until every domain served all
        super().__init__(self.batches * batch_size, seed)

    def order(self) -> list[int]:
        generator = self.generator()
        streams = []
        for rows, k in zip(self.domain_rows, self.per_batch, strict=True):
            needed = self.batches * k
            rounds = math.ceil(needed / len(rows))  # > 1: the domain is recycled within the epoch
            drawn = [rows[torch.randperm(len(rows), generator=generator).numpy()] for _ in range(rounds)]
            streams.append(np.concatenate(drawn)[:needed].reshape(self.batches, k))
        return np.concatenate(streams, axis=1).reshape(-1).tolist()


def training_mix(
    row_domains: np.ndarray | None, names: Sequence[str] | None, mix: Mapping[str, float] | None
) -> tuple[np.ndarray, list[float]] | None:
    """(each training row's domain, each domain's share) for RecDataModule's `domain_mix`; None when
    batches are not mixed by share (one data set, or an empty `mix`: rows drawn in proportion to size)."""
    if row_domains is None or not mix:
        return None
    return row_domains, mix_shares(names, mix)
