"""A training DataLoader that can continue an epoch exactly where a killed run stopped.

Lightning 2.6 restores a mid-epoch checkpoint's batch counters but does not skip the batches already
consumed; it does, however, save and restore the `state_dict` of any train DataLoader that has one
(Lightning's `_Stateful` protocol). So the order of each epoch is a pure function of (seed, epoch),
and the loader's state says which epoch and how many batches were served, plus the state of the
negative sampler's generator. With `num_workers=0` (the default) a resumed run then sees exactly the
batches, in exactly the order, of the run that was never stopped.

The batches served are skipped as batches of row indices, after everything that decides which rows
a process gets: under DDP, Lightning wraps the sampler in a `DistributedSamplerWrapper` that deals the
epoch's rows out to the processes, so skipping rows of the epoch's order (before that deal) would
hand each process other rows than the run left alone, and the wrapper knows nothing of an offset.
Skipped batches are never loaded, collated or given negatives, so no random state moves for them.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator
from typing import Any

import torch
from torch.utils.data import DataLoader, Sampler

from recfit.data.resampling import Resampling, class_rows, resampled_rows, resampled_size


class EpochSampler(Sampler[int]):
    """Shuffles `size` rows with a permutation fixed by (seed, epoch).

    With `labels` and a `resampling` other than none, each epoch's rows are first resampled towards
    balanced classes (recfit.data.resampling), with the same (seed, epoch) generator.
    """

    def __init__(
        self, size: int, seed: int, labels: Any = None, resampling: Resampling | str = Resampling.none
    ) -> None:
        self.seed, self.epoch = seed, 0
        self.resampling = Resampling(resampling)
        self.groups = class_rows(labels) if self.resampling != Resampling.none else None
        self.size = size if self.groups is None else resampled_size(labels, self.resampling)

    def set_epoch(self, epoch: int) -> None:  # Lightning calls this before every epoch
        self.epoch = epoch

    def __len__(self) -> int:
        return self.size

    def generator(self) -> torch.Generator:
        """The random stream of the current epoch: a pure function of (seed, epoch)."""
        return torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)

    def order(self) -> list[int]:
        """Every row once (or this epoch's resampled rows), in this epoch's order."""
        return self.shuffled_rows(self.generator()).tolist()

    def shuffled_rows(self, generator: torch.Generator) -> torch.Tensor:
        """This epoch's rows, resampled towards balanced classes if asked, in a random order."""
        order = torch.randperm(self.size, generator=generator)
        if self.groups is not None:
            return torch.as_tensor(resampled_rows(self.groups, self.resampling, generator))[order]
        return order

    def __iter__(self) -> Iterator[int]:
        # a generator, so the order is drawn when iteration starts, after set_epoch
        yield from self.order()


class SkipFirstBatches:
    """The batches of row indices of `batches`, but the first `count` (the length stays the full one:
    Lightning itself discounts the batches a resumed epoch has already served)."""

    def __init__(self, batches: Iterable[list[int]], count: int) -> None:
        self.batches, self.count = batches, count

    def __len__(self) -> int:
        return len(self.batches)  # type: ignore[arg-type]

    def __iter__(self) -> Iterator[list[int]]:
        return itertools.islice(iter(self.batches), self.count, None)


class ResumableLoader(DataLoader):
    """DataLoader over an EpochSampler whose position and collate randomness are checkpointed."""

    def __init__(self, *arguments: Any, **keywords: Any) -> None:
        super().__init__(*arguments, **keywords)
        self._epoch = self._served = self._skip = 0

    @property
    def _index_sampler(self) -> Any:
        # what torch's loader iterators draw index batches from (single indices without batching)
        batches = super()._index_sampler
        return SkipFirstBatches(batches, self._skip) if self._skip else batches

    def __iter__(self) -> Iterator[Any]:
        batches = super().__iter__()  # without the batches a resumed epoch has served (_index_sampler)
        skipped, self._skip = self._skip, 0

        def counted() -> Iterator[Any]:
            self._epoch, self._served = self.sampler.epoch, skipped
            for batch in batches:
                self._served += 1
                yield batch

        return counted()

    def _negative_rng(self) -> Any:
        negatives = getattr(self.collate_fn, "negatives", None)
        return None if negatives is None else negatives.rng

    def state_dict(self) -> dict[str, Any]:
        rng = self._negative_rng()
        # plain ints and strings only, so checkpoints load with weights_only=True
        return {
            "epoch": self._epoch,
            "batches": self._served,
            "negative_rng": None if rng is None else rng.bit_generator.state,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        epoch, served = state["epoch"], state["batches"]
        if served >= len(self):  # the checkpoint was taken on an epoch's last batch
            epoch, served = epoch + 1, 0
        self.sampler.set_epoch(epoch)  # under DDP, Lightning's wrapper passes it on to the EpochSampler
        self._skip = served
        rng = self._negative_rng()
        if rng is not None and state["negative_rng"] is not None:
            rng.bit_generator.state = state["negative_rng"]
