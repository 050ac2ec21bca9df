"""Each ranked user's seen items as one flat array, handed to a batch as (row, item) index pairs.

Full ranking masks the items a user has already seen. Padded [users, widest history] codes make the
masking touch every padding cell, and with long-tailed histories the widest user of a batch has
several times the mean; (row, item) pairs are exactly the cells to mask (see
`recfit.evaluation.ranking.SeenPairs`).
"""

from __future__ import annotations

import numpy as np
import torch


class SeenIndex:
    """Ragged item lists stored flat (CSR: offsets + items), gathered per batch without a Python loop."""

    def __init__(self, groups: list[np.ndarray]) -> None:
        lengths = np.fromiter((len(g) for g in groups), dtype=np.int64, count=len(groups))
        self.offsets = np.concatenate([[0], np.cumsum(lengths)])
        flat = [np.asarray(g, dtype=np.int64) for g in groups]
        self.items = np.concatenate(flat) if flat else np.empty(0, dtype=np.int64)

    def pairs(self, rows: np.ndarray) -> torch.Tensor:
        """[2, P] (batch row, item code) of the listed rows' items, batch rows in the order given."""
        rows = np.asarray(rows, dtype=np.int64)
        starts = self.offsets[rows]
        lengths = self.offsets[rows + 1] - starts
        batch_rows = np.repeat(np.arange(len(rows)), lengths)
        # position of each pair in the flat array: its row's start + its rank within the row
        within = np.arange(int(lengths.sum())) - np.repeat(np.cumsum(lengths) - lengths, lengths)
        items = self.items[np.repeat(starts, lengths) + within]
        return torch.from_numpy(np.stack([batch_rows, items]))
