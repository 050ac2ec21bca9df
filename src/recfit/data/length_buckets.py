"""Length-bucketed training order: each batch holds rows of similar token length, so little padding.

Each epoch draws a random permutation (from (seed, epoch), like EpochSampler), cuts it into windows
of `buckets` batches, sorts each window by length and cuts it into batches, then shuffles the order
of the batches. Every row is still seen exactly once per epoch and which rows meet in a batch stays
random (a row's neighbours are the similar-length rows of a random window), so training stays
unbiased while the padded width of a batch drops to about its rows' own length. The one short batch
(when the batch size does not divide the rows) always comes last, so a batch is always `batch_size`
consecutive rows of the order, and exact resume (skip `served * batch_size` rows) keeps working.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from recfit.data.resampling import Resampling
from recfit.data.resumable import EpochSampler


class LengthBucketSampler(EpochSampler):
    """An EpochSampler whose order groups rows of similar `lengths` into the same batch."""

    def __init__(
        self,
        lengths: np.ndarray,
        batch_size: int,
        buckets: int,
        seed: int,
        labels: Any = None,
        resampling: Resampling | str = Resampling.none,
    ) -> None:
        super().__init__(len(lengths), seed, labels, resampling)
        self.lengths = np.asarray(lengths)
        self.batch_size = batch_size
        self.window = batch_size * buckets

    def order(self) -> list[int]:
        if self.size == 0:
            return []
        generator = self.generator()
        rows = self.shuffled_rows(generator).numpy()
        batches: list[np.ndarray] = []
        for start in range(0, self.size, self.window):
            window = rows[start : start + self.window]
            window = window[np.argsort(self.lengths[window], kind="stable")]
            batches.extend(np.split(window, range(self.batch_size, len(window), self.batch_size)))
        short = [batches.pop()] if len(batches[-1]) < self.batch_size else []
        shuffled = [batches[i] for i in torch.randperm(len(batches), generator=generator).tolist()]
        return np.concatenate(shuffled + short).tolist()


def pair_lengths(
    items: np.ndarray,
    item_lengths: np.ndarray,
    users: np.ndarray | None = None,
    user_lengths: np.ndarray | None = None,
) -> np.ndarray:
    """Token length of each row's sequence: its item text, plus its user text when there is one."""
    lengths = item_lengths[items]
    if users is not None and user_lengths is not None:
        lengths = lengths + user_lengths[users]
    return lengths
