"""Resampling training rows towards balanced classes, drawn afresh (and reproducibly) each epoch.

`oversample` keeps every row and tops each smaller class up to the largest class's count with rows
drawn with replacement; `undersample` draws, without replacement, as many rows of each class as the
smallest class has. Every epoch therefore has the same length and exactly balanced label counts, and
its rows are a pure function of (seed, epoch): a resumed run draws the epoch it was stopped in again.
"""

from __future__ import annotations

import numpy as np
import torch

from recfit.config.schema import Resampling

__all__ = ["Resampling", "class_rows", "resampled_rows", "resampled_size"]


def class_rows(labels: np.ndarray) -> list[np.ndarray]:
    """The row numbers of each class present in `labels` (classes in sorted order)."""
    labels = np.asarray(labels)
    return [np.flatnonzero(labels == value) for value in np.unique(labels)]


def resampled_size(labels: np.ndarray, method: Resampling | str) -> int:
    """Rows per epoch after resampling."""
    method = Resampling(method)
    counts = [len(rows) for rows in class_rows(labels)]
    if method == Resampling.oversample:
        return max(counts) * len(counts)
    if method == Resampling.undersample:
        return min(counts) * len(counts)
    return len(labels)


def resampled_rows(
    groups: list[np.ndarray], method: Resampling | str, generator: torch.Generator
) -> np.ndarray:
    """One epoch's rows (unshuffled): every class brought to the same count, drawn with `generator`."""
    method = Resampling(method)
    target = (max if method == Resampling.oversample else min)(len(rows) for rows in groups)
    chosen = []
    for rows in groups:
        if method == Resampling.oversample:
            extra = torch.randint(len(rows), (target - len(rows),), generator=generator).numpy()
            chosen.append(np.concatenate([rows, rows[extra]]))
        else:
            chosen.append(rows[torch.randperm(len(rows), generator=generator)[:target].numpy()])
    return np.concatenate(chosen)
