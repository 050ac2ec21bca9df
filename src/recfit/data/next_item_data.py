"""Next-item rows: a leave-one-out split of user histories cut into examples, and the loaders serving them.

`RecDataModule.setup` reads the data and makes the split (it owns the data); `NextItemRows` turns that
split into rows as its `SequencePlan` says and serves them: training rows in a resumable order, with
the sampled negatives and batch items the loss asks for, and one evaluation row per user.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import DataLoader, Sampler

from recfit.data.encode import ImageContent, TextContent
from recfit.data.resumable import EpochSampler, ResumableLoader
from recfit.data.sequence_batches import NextItemCollator
from recfit.data.sequences import (
    LeaveOneOut,
    NextItemExamples,
    evaluation_examples,
    prefix_examples,
    window_examples,
)
from recfit.tasks.names import HistoryExamples, Negatives

EVALUATED = ("val", "test")  # the splits with one row per user


@dataclass(frozen=True)
class SequencePlan:
    """How a next-item task cuts user histories into rows (recfit.tasks.next_item)."""

    max_history: int = 50  # the most recent items a history row carries
    negatives: Negatives = Negatives.full  # full | sampled | in_batch
    num_negatives: int = 0  # sampled: items drawn per training batch
    examples: HistoryExamples = HistoryExamples.prefixes  # training rows: prefixes | window

    @property
    def encodes_batch_items(self) -> bool:
        """Each training batch's distinct items are encoded (not the whole catalogue at each step)."""
        return self.negatives != Negatives.full


class FrequencyNegatives:
    """`count` items per batch, drawn with replacement in proportion to `counts` (training frequency).

    Its generator (`rng`) moves on from batch to batch and is checkpointed by ResumableLoader, so a
    resumed run draws the negatives the uninterrupted run drew.
    """

    def __init__(self, counts: np.ndarray, count: int, seed: int) -> None:
        self.probabilities = counts / counts.sum()
        self.count = count
        self.rng = np.random.default_rng(seed)

    def __call__(self) -> np.ndarray:
        return self.rng.choice(len(self.probabilities), size=self.count, p=self.probabilities)


class SequenceTrainingCollator:
    """A next-item training batch (NextItemCollator's keys), plus the sampled `negatives` [S] and, when
    only the batch's items are encoded, its distinct items (`unique_items`) and their content.

    With `every_position` (window rows) `target` is [B, L]: each position's next item, PAD on padding,
    as the loss reads it; in-batch negatives are then the rows' own last targets, given as `negatives`
    [B] (the batch's positions share them, as sampled ones are shared).
    """

    def __init__(
        self,
        rows: NextItemCollator,
        negatives: FrequencyNegatives | None,
        batch_items: bool,
        content: TextContent | ImageContent | None,
        every_position: bool = False,
        in_batch: bool = False,
    ) -> None:
        self.rows = rows
        self.negatives = negatives
        self.batch_items = batch_items
        self.content = content
        self.every_position = every_position
        self.in_batch = in_batch

    def __call__(self, indices: list[int]) -> dict[str, torch.Tensor | dict[str, torch.Tensor]]:
        batch: dict = self.rows(indices)
        # every position's next item is a history item or the row's target: these codes cover them all
        codes = [batch["items"][batch["mask"]].numpy(), batch["target"].numpy()]
        if self.negatives is not None:
            codes.append(self.negatives())
            batch["negatives"] = torch.as_tensor(codes[-1])
        if self.every_position:
            if self.in_batch:
                batch["negatives"] = batch["target"]
            batch["target"] = batch["next_items"]
        if self.batch_items:
            unique = np.unique(np.concatenate(codes))
            batch["unique_items"] = torch.as_tensor(unique)
            if self.content is not None:
                batch["item_inputs"] = self.content.batch(unique)
        return batch


def training_examples(split: LeaveOneOut, plan: SequencePlan) -> NextItemExamples:
    """The training rows: every prefix of each training sequence (RecBole's augmentation), or one row
    per user whose every position is trained (SASRec's window, with the collator's `next_items`)."""
    if plan.examples == HistoryExamples.window:
        return window_examples(split.train)
    return prefix_examples(split.train, plan.max_history)


class NextItemRows:
    """The examples of a leave-one-out split (`examples[split]`) and the loaders that serve them."""

    def __init__(self, split: LeaveOneOut, plan: SequencePlan) -> None:
        self.split = split
        self.plan = plan
        self.examples = {
            "train": training_examples(split, plan),
            **{which: evaluation_examples(split, which, plan.max_history) for which in EVALUATED},
        }

    def target_counts(self, num_items: int) -> np.ndarray:
        """[num_items] how often each item is a training row's target: what in-batch negatives are
        drawn from, and the proposal of sampled ones. With window rows: each row's last target only
        (the in-batch negatives are those), not every position's."""
        return np.bincount(self.examples["train"].targets, minlength=num_items)

    def _collator(self, split: str) -> NextItemCollator:
        history = self.split.train if split == "train" else self.split.history(split)
        return NextItemCollator(history, self.examples[split], self.plan.max_history)

    def train_loader(
        self,
        batch_size: int,
        seed: int,
        num_items: int,
        content: TextContent | ImageContent | None,
        num_workers: int = 0,
    ) -> ResumableLoader:
        """Training rows in a resumable, seeded order; `content`: the items' content when a batch's
        items are encoded from it (a fine-tuned backbone), else None."""
        examples, plan = self.examples["train"], self.plan
        negatives = None
        if plan.negatives == Negatives.sampled:
            counts = self.target_counts(num_items).clip(min=1)  # every item can be drawn
            negatives = FrequencyNegatives(counts.astype(np.float64), plan.num_negatives, seed)
        return ResumableLoader(
            examples,
            sampler=EpochSampler(len(examples), seed),
            batch_size=batch_size,
            collate_fn=SequenceTrainingCollator(
                self._collator("train"),
                negatives,
                plan.encodes_batch_items,
                content,
                every_position=plan.examples == HistoryExamples.window,
                in_batch=plan.negatives == Negatives.in_batch,
            ),
            num_workers=num_workers,
            persistent_workers=num_workers > 0,
            generator=torch.Generator().manual_seed(seed),
            pin_memory=torch.cuda.is_available(),
        )

    def evaluation_loader(
        self, split: str, batch_size: int, seed: int, sampler: Sampler | None = None
    ) -> DataLoader:
        """One row per user with a `split` target, in user order (`sampler`: this process's share)."""
        examples = self.examples[split]
        return DataLoader(
            examples,
            batch_size=batch_size,
            sampler=sampler,
            collate_fn=self._collator(split),
            generator=torch.Generator().manual_seed(seed),
        )
