"""The Lightning data module: split interactions -> batches with each distinct item encoded once."""

from __future__ import annotations

from collections.abc import Iterator
from enum import Enum

import lightning.pytorch as pl
import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader

from recfit.data.encode import ImageContent, TextContent
from recfit.data.split import Splits
from recfit.data.tables import ITEM, USER


class BatchInputs(str, Enum):
    """What content a batch carries, decided by the model that will read it."""

    ids = "ids"  # user and item codes only (matrix factorisation)
    item_content = "item_content"  # each distinct item of the batch, encoded once (two-tower)
    pair_text = "pair_text"  # one "user text, item text" sequence per row (cross-encoder)


Content = TextContent | ImageContent


class RowDataset(torch.utils.data.Dataset):
    """Row numbers; the collator gathers whole batches from arrays at once."""

    def __init__(self, size: int) -> None:
        self.size = size

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, index: int) -> int:
        return index


class InteractionCollator:
    """Builds a training / pointwise-evaluation batch from row numbers of one split."""

    def __init__(
        self,
        frame: pd.DataFrame,
        targets: np.ndarray,
        inputs: BatchInputs,
        items: Content | None,
        users: TextContent | None,
    ) -> None:
        self.users = frame[USER].to_numpy()
        self.items = frame[ITEM].to_numpy()
        self.targets = torch.as_tensor(targets)
        self.inputs = inputs
        self.item_content = items
        self.user_content = users

    def __call__(self, rows: list[int]) -> dict[str, torch.Tensor | dict[str, torch.Tensor]]:
        index = np.asarray(rows)
        users, items = self.users[index], self.items[index]
        batch: dict = {
            "user": torch.as_tensor(users),
            "item": torch.as_tensor(items),
            "target": self.targets[index],
        }
        if self.inputs == BatchInputs.item_content and self.item_content is not None:
            unique, inverse = np.unique(items, return_inverse=True)
            batch["item_inputs"] = self.item_content.batch(unique)
            batch["item_index"] = torch.as_tensor(inverse)
        elif self.inputs == BatchInputs.pair_text:
            batch["pair_inputs"] = self.item_content.pair_batch(self.user_content, users, items)
        return batch


def _padded(groups: list[np.ndarray]) -> torch.Tensor:
    """Ragged lists of item codes -> one tensor padded with -1."""
    width = max((len(g) for g in groups), default=0)
    out = torch.full((len(groups), max(width, 1)), -1, dtype=torch.long)
    for row, group in enumerate(groups):
        out[row, : len(group)] = torch.as_tensor(group)
    return out


class RankingCollator:
    """Builds a ranking-evaluation batch: users, their held-out items, and the items to mask."""

    def __init__(self, eval_frame: pd.DataFrame, seen_frame: pd.DataFrame) -> None:
        targets = eval_frame.groupby(USER)[ITEM].unique()
        seen = seen_frame.groupby(USER)[ITEM].unique()
        self.users = targets.index.to_numpy()
        self.targets = list(targets.to_numpy())
        self.seen = [seen.get(u, np.empty(0, dtype=np.int64)) for u in self.users]

    def __len__(self) -> int:
        return len(self.users)

    def __call__(self, rows: list[int]) -> dict[str, torch.Tensor]:
        return {
            "user": torch.as_tensor(self.users[rows]),
            "target_items": _padded([self.targets[r] for r in rows]),
            "seen_items": _padded([self.seen[r] for r in rows]),
        }


class RecDataModule(pl.LightningDataModule):
    """Serves the three splits. Ranking evaluates per user against the whole catalogue."""

    def __init__(
        self,
        splits: Splits,
        targets: dict[str, np.ndarray],
        num_items: int,
        inputs: BatchInputs,
        ranking: bool,
        item_content: Content | None = None,
        user_content: TextContent | None = None,
        batch_size: int = 64,
        eval_batch_size: int = 256,
        num_workers: int = 0,
    ) -> None:
        super().__init__()
        self.splits = splits
        self.targets = targets
        self.num_items = num_items
        self.inputs = inputs
        self.ranking = ranking
        self.item_content = item_content
        self.user_content = user_content
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size
        self.num_workers = num_workers

    def _loader(self, split: str, shuffle: bool, batch_size: int, inputs: BatchInputs) -> DataLoader:
        frame = getattr(self.splits, split)
        collate = InteractionCollator(
            frame, self.targets[split], inputs, self.item_content, self.user_content
        )
        return DataLoader(
            RowDataset(len(frame)),
            batch_size=batch_size,
            shuffle=shuffle,
            collate_fn=collate,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
        )

    def _ranking_loader(self, split: str) -> DataLoader:
        seen = self.splits.train if split == "val" else pd.concat([self.splits.train, self.splits.val])
        collate = RankingCollator(getattr(self.splits, split), seen)
        return DataLoader(
            RowDataset(len(collate)), batch_size=self.eval_batch_size, shuffle=False, collate_fn=collate
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", True, self.batch_size, self.inputs)

    def val_dataloader(self) -> DataLoader:
        if self.ranking:
            return self._ranking_loader("val")
        return self._loader("val", False, self.eval_batch_size, self.inputs)

    def test_dataloader(self) -> DataLoader:
        if self.ranking:
            return self._ranking_loader("test")
        return self._loader("test", False, self.eval_batch_size, self.inputs)

    def item_batches(self, batch_size: int) -> Iterator[tuple[torch.Tensor, dict[str, torch.Tensor]]]:
        """The whole catalogue in chunks: (item codes, encoded content), for full-ranking evaluation."""
        for start in range(0, self.num_items, batch_size):
            codes = np.arange(start, min(start + batch_size, self.num_items))
            content = self.item_content.batch(codes) if self.item_content is not None else {}
            yield torch.as_tensor(codes), content
