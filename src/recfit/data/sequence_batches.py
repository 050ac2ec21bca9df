"""Padded tensors from next-item examples (`recfit.data.sequences`): the only torch in the sequence data."""

from __future__ import annotations

import numpy as np
import torch

from recfit.data.sequences import NextItemExamples, UserSequences, check_max_history

PAD = -1  # item code of a padding position (never a real item)


class NextItemCollator:
    """`collator(indices)` -> the batch of those example rows, right-padded to the batch's longest history.

    Keys (B rows, L = longest history in the batch, at most `max_history`):
    - `user` [B]: user codes
    - `items` [B, L]: history item codes, oldest first, the most recent `max_history` items, PAD after
    - `mask` [B, L]: True on real items
    - `target` [B]: the item the whole history predicts
    - `next_items` [B, L]: per position, the item that follows it (the last real one: `target`), PAD on
      padding: the targets of SASRec's every-position objective, which with causal encoders equals
      training on every prefix of the window at once.
    """

    def __init__(self, sequences: UserSequences, examples: NextItemExamples, max_history: int) -> None:
        check_max_history(max_history)
        self.sequences = sequences
        self.examples = examples
        self.max_history = max_history

    def __call__(self, indices: list[int] | np.ndarray) -> dict[str, torch.Tensor]:
        rows = np.asarray(indices, dtype=np.int64)
        users = self.examples.users[rows]
        ends = self.examples.ends[rows]
        targets = self.examples.targets[rows]
        starts = np.maximum(ends - self.max_history, 0)
        lengths = ends - starts
        columns = np.arange(int(lengths.max()))  # every history has >= 1 item (ends >= 1)
        mask = columns[None, :] < lengths[:, None]
        positions = self.sequences.offsets[users][:, None] + starts[:, None] + columns[None, :]
        items = np.where(mask, self.sequences.items[np.where(mask, positions, 0)], PAD)
        # the item after position t is the history's item t + 1, except after the last one: the target
        next_items = np.full_like(items, PAD)
        next_items[:, :-1] = np.where(mask[:, 1:], items[:, 1:], PAD)
        next_items[np.arange(len(rows)), lengths - 1] = targets
        return {
            "user": torch.from_numpy(users),
            "items": torch.from_numpy(items),
            "mask": torch.from_numpy(mask),
            "target": torch.from_numpy(targets.astype(np.int64)),
            "next_items": torch.from_numpy(next_items),
        }


def history_batch(histories: list[np.ndarray], num_items: int, max_history: int) -> dict[str, torch.Tensor]:
    """The collator's batch for free-standing histories (item codes, oldest first, each non-empty):
    the same tensors an evaluation row with that history gets. `target` and `next_items`' last real
    position are PAD (there is no next item to know)."""
    sequences = UserSequences.from_lists([list(history) for history in histories], num_items)
    if (sequences.lengths == 0).any():
        raise ValueError("every history needs at least one item")
    rows = np.arange(len(histories), dtype=np.int64)
    examples = NextItemExamples(rows, sequences.lengths, np.full(len(rows), PAD, dtype=np.int64))
    return NextItemCollator(sequences, examples, max_history)(rows)
