"""The Lightning data module: read, filter and split a data set -> batches with each item encoded once."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from enum import Enum
from typing import Any, Protocol

import lightning.pytorch as pl
import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader

from recfit.data.domain_mix import DomainMixSampler, training_mix
from recfit.data.domain_split import domain_of_rows, split_per_domain
from recfit.data.encode import ImageContent, TextContent
from recfit.data.eval_shards import ContiguousShardSampler
from recfit.data.filters import filter_interactions
from recfit.data.length_buckets import LengthBucketSampler, pair_lengths
from recfit.data.next_item_data import NextItemRows, SequencePlan
from recfit.data.resampling import Resampling
from recfit.data.resumable import EpochSampler, ResumableLoader
from recfit.data.seen_pairs import SeenIndex
from recfit.data.sequences import LeaveOneOut, leave_one_out, sequences_from_recdata
from recfit.data.split import Splits
from recfit.data.tables import ITEM, USER, RecData

log = logging.getLogger(__name__)


class BatchInputs(str, Enum):
    """What content a batch carries, decided by the model that will read it."""

    ids = "ids"  # user and item codes only (matrix factorisation)
    item_content = "item_content"  # each distinct item of the batch, encoded once (two-tower)
    pair_text = "pair_text"  # one "user text, item text" sequence per row (cross-encoder)


Content = TextContent | ImageContent


class Catalogue(Protocol):
    """What ranking evaluation needs of the data: every item's content, and the items a split ranks."""

    def item_batches(self, batch_size: int) -> Iterator[tuple[torch.Tensor, dict[str, torch.Tensor]]]: ...

    def ranked_items(self, split: str) -> torch.Tensor | None: ...


FULL_RANKING = "full"  # task.candidates: rank every item; otherwise uniN / popN sampled negatives


class RowDataset(torch.utils.data.Dataset):
    """Row numbers; the collator gathers whole batches from arrays at once."""

    def __init__(self, size: int) -> None:
        self.size = size

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, index: int) -> int:
        return index


class NegativeSampler:
    """Uniform negatives for pairwise losses: items the user never interacted with in training."""

    def __init__(self, train: pd.DataFrame, num_items: int, seed: int) -> None:
        self.num_items = num_items
        self.known = np.unique(train[USER].to_numpy() * num_items + train[ITEM].to_numpy())
        self.rng = np.random.default_rng(seed)

    def __call__(self, users: np.ndarray) -> np.ndarray:
        items = self.rng.integers(0, self.num_items, size=len(users))
        while True:  # redraw the few that hit a known item; users know a small share of the catalogue
            keys = users * self.num_items + items
            position = np.searchsorted(self.known, keys).clip(max=len(self.known) - 1)
            clash = self.known[position] == keys
            if not clash.any():
                return items
            items[clash] = self.rng.integers(0, self.num_items, size=int(clash.sum()))


class InteractionCollator:
    """Builds a training / pointwise-evaluation batch from row numbers of one split."""

    def __init__(
        self,
        frame: pd.DataFrame,
        targets: np.ndarray,
        inputs: BatchInputs,
        items: Content | None,
        users: TextContent | None,
        negatives: NegativeSampler | None = None,
    ) -> None:
        self.users = frame[USER].to_numpy()
        self.items = frame[ITEM].to_numpy()
        self.targets = torch.as_tensor(targets)
        self.inputs = inputs
        self.item_content = items
        self.user_content = users
        self.negatives = negatives

    def __call__(self, rows: list[int]) -> dict[str, torch.Tensor | dict[str, torch.Tensor]]:
        index = np.asarray(rows)
        users, items = self.users[index], self.items[index]
        batch: dict = {
            "user": torch.as_tensor(users),
            "item": torch.as_tensor(items),
            "target": self.targets[index],
        }
        columns = {"item": items}
        if self.negatives is not None:
            columns["negative"] = self.negatives(users)
            batch["negative"] = torch.as_tensor(columns["negative"])
        if self.inputs == BatchInputs.item_content and self.item_content is not None:
            # every distinct item of the batch (positives and negatives) is encoded once
            unique, inverse = np.unique(np.concatenate(list(columns.values())), return_inverse=True)
            batch["unique_items"] = torch.as_tensor(unique)
            batch["item_inputs"] = self.item_content.batch(unique)
            for offset, name in zip(range(0, len(inverse), len(index)), columns, strict=True):
                batch[f"{name}_index"] = torch.as_tensor(inverse[offset : offset + len(index)])
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


def parse_candidates(spec: str) -> tuple[str, int]:
    """'full' -> ("full", 0); 'uni100' -> ("uni", 100); 'pop100' -> ("pop", 100)."""
    if spec == FULL_RANKING:
        return spec, 0
    kind, count = spec[:3], spec[3:]
    if kind not in ("uni", "pop") or not count.isdigit() or int(count) < 1:
        raise ValueError(f"unknown candidates '{spec}' (use full, uniN or popN, e.g. uni100)")
    return kind, int(count)


def sample_candidates(
    targets: list[np.ndarray],
    seen: list[np.ndarray],
    popularity: np.ndarray,
    spec: str,
    seed: int,
) -> list[np.ndarray]:
    """Per user: the held-out items plus N sampled negatives (never seen, never held out).

    uniN draws negatives uniformly, popN in proportion to training popularity. Seeded, so every run
    with the same split seed ranks against the same candidates.
    """
    kind, count = parse_candidates(spec)
    rng = np.random.default_rng(seed)
    out = []
    for target, known in zip(targets, seen, strict=True):
        allowed = np.ones(len(popularity), dtype=bool)
        allowed[target] = False
        allowed[known] = False
        if kind == "pop":
            allowed &= popularity > 0  # an item never trained on has no popularity to be drawn by
        pool = np.flatnonzero(allowed)
        weights = None if kind == "uni" else popularity[pool] / popularity[pool].sum()
        negatives = rng.choice(pool, size=min(count, len(pool)), replace=False, p=weights)
        out.append(np.concatenate([target, np.sort(negatives)]))
    return out


def items_by_user(frame: pd.DataFrame) -> tuple[np.ndarray, list[np.ndarray]]:
    """Users in ascending order and each one's distinct items in order of first appearance.

    The same as `frame.groupby(USER)[ITEM].unique()`, without pandas' per-group Python call (which
    took most of the data path's time at a million interactions).
    """
    pairs = frame[[USER, ITEM]].drop_duplicates()
    users, items = pairs[USER].to_numpy(), pairs[ITEM].to_numpy()
    order = np.argsort(users, kind="stable")
    users, items = users[order], items[order]
    distinct, starts = np.unique(users, return_index=True)
    return distinct, np.split(items, starts[1:])


class RankingCollator:
    """Builds a ranking-evaluation batch: users, their held-out items, and what to exclude or rank."""

    def __init__(
        self,
        eval_frame: pd.DataFrame,
        seen_frame: pd.DataFrame,
        candidates: str = FULL_RANKING,
        popularity: np.ndarray | None = None,
        seed: int = 0,
    ) -> None:
        self.users, self.targets = items_by_user(eval_frame)
        seen = dict(zip(*items_by_user(seen_frame), strict=True))
        self.seen = [seen.get(u, np.empty(0, dtype=np.int64)) for u in self.users]
        self.seen_index = SeenIndex(self.seen)
        self.candidates = None
        if candidates != FULL_RANKING:
            self.candidates = sample_candidates(self.targets, self.seen, popularity, candidates, seed)

    def __len__(self) -> int:
        return len(self.users)

    def __call__(self, rows: list[int]) -> dict[str, torch.Tensor]:
        batch = {
            "user": torch.as_tensor(self.users[rows]),
            "target_items": _padded([self.targets[r] for r in rows]),
        }
        if self.candidates is None:
            batch["seen_pairs"] = self.seen_index.pairs(rows)  # [2, P] (batch row, item): cells to mask
        else:
            batch["candidates"] = _padded([self.candidates[r] for r in rows])
        return batch


@dataclass(frozen=True)
class DataSource:
    """What `setup` reads and how it cuts it: the reader, the filter and the split."""

    read: Callable[[], RecData]  # the data set's reader, its arguments bound
    split: Callable[[RecData], Splits]  # one data set's split (multi-domain data: applied per domain)
    filter: Mapping[str, Any] = field(default_factory=dict)  # filter_interactions keywords (dataset.filter)
    cold_items: bool = False  # the split holds out whole items: they are ranked among themselves


@dataclass(frozen=True)
class Loading:
    """How batches are drawn: sizes, workers, class resampling, length buckets, domain shares, seeds."""

    batch_size: int = 64  # training rows per step
    eval_batch_size: int = 256  # users (ranking) or rows per evaluation step
    num_workers: int = 0  # DataLoader worker processes
    resampling: Resampling = Resampling.none  # training rows drawn towards equal classes
    length_buckets: int = 0  # >0: per-row texts batched by similar length
    mix: Mapping[str, float] | None = None  # multi-domain: each domain's share of a training batch
    seed: int = 0  # the training order (and pairwise negatives)
    candidate_seed: int = 0  # sampled ranking candidates: the split seed, so every run ranks the same ones


def no_content(data: RecData) -> tuple[Content | None, TextContent | None]:
    """Batches of an ID-only model carry no item or user content."""
    return None, None


@dataclass(frozen=True)
class BatchPlan:
    """What the task, loss and model ask of every batch."""

    inputs: BatchInputs  # the content the model reads
    targets: Callable[[pd.DataFrame], np.ndarray]  # a split's interactions -> their training targets
    content: Callable[[RecData], tuple[Content | None, TextContent | None]] = no_content  # item, user
    ranking: bool = False  # evaluate per user by ranking items, not per row
    negatives: bool = False  # one sampled negative item per training row (pairwise losses)
    candidates: str = FULL_RANKING  # ranking: every item, or uniN / popN sampled negatives
    # the model keeps each item's frozen backbone output (all layers, or the first N): batches then need
    # item codes only, unless each row is one text of its own (a user text paired with the item text)
    cached_item_states: bool = False
    sequences: SequencePlan | None = None  # rows are user histories (next-item), not interactions


class RecDataModule(pl.LightningDataModule):
    """Reads, filters and splits the data in `setup`, then serves the three splits.

    Ranking evaluates per user against the whole catalogue (or sampled candidates); pairwise losses get
    one sampled negative item per training row. The model is built from what `setup` found (`data`,
    `splits`), so `build` calls `setup` itself; Lightning's later calls find it done.
    """

    def __init__(self, source: DataSource, loading: Loading, plan: BatchPlan) -> None:
        super().__init__()
        self.source = source
        self.loading = loading
        self.plan = plan
        self.data: RecData | None = None
        self.sequence_split: LeaveOneOut | None = None  # rows are user histories (plan.sequences)
        self.next_item_rows: NextItemRows | None = None  # their examples and loaders

    def setup(self, stage: str | None = None) -> None:
        """Read, filter and split the data; derive targets, content and samplers (once per process)."""
        if self.data is not None:
            return
        data, self.filtered = filter_interactions(self.source.read(), **self.source.filter)
        log.info("%s (%s)", data.summary(), self.filtered)
        if self.plan.sequences is not None:
            # rows are histories: each user's items in time order, leave-one-out (users with < 3 refused
            # first, in one line naming one of them)
            self.sequence_split = leave_one_out(sequences_from_recdata(data))
        splits = split_per_domain(data, self.source.split)  # one data set: split(data)
        if self.sequence_split is not None:
            self.next_item_rows = NextItemRows(self.sequence_split, self.plan.sequences)
            splits = replace(splits, protocol=self.sequence_split.protocol)
        self.splits = splits
        self.targets = {name: self.plan.targets(getattr(splits, name)) for name in ("train", "val", "test")}
        self.item_content, self.user_content = self.plan.content(data)
        # the model reads item states from its cache when every row's text is its item's own text
        one_text_per_item = self.user_content is None
        self.inputs = (
            BatchInputs.ids if self.plan.cached_item_states and one_text_per_item else self.plan.inputs
        )
        self.rows_are_texts = self.plan.inputs == BatchInputs.pair_text and isinstance(
            self.item_content, TextContent
        )
        self.num_items = data.num_items
        self.popularity = np.bincount(splits.train[ITEM].to_numpy(), minlength=data.num_items).astype(
            np.float64
        )
        # one sampler for the whole run: its generator moves on from epoch to epoch
        self.negative_sampler = (
            NegativeSampler(splits.train, data.num_items, self.loading.seed) if self.plan.negatives else None
        )
        # multi-domain: (each training row's domain, each domain's batch share), or None
        self.domain_mix = training_mix(
            domain_of_rows(data, splits.train), data.domain_names, self.loading.mix
        )
        self.data = data

    @property
    def batch_size(self) -> int:
        return self.loading.batch_size

    @property
    def eval_batch_size(self) -> int:
        return self.loading.eval_batch_size

    @property
    def seed(self) -> int:
        return self.loading.seed

    def training_item_counts(self) -> np.ndarray:
        """How often each item is a training target: the training interactions' items, or with
        histories the next items of the training examples (what in-batch negatives are drawn from)."""
        if self.next_item_rows is not None:
            return self.next_item_rows.target_counts(self.num_items)
        return np.bincount(self.splits.train[ITEM].to_numpy(), minlength=self.num_items)

    def _sequence_loader(self, split: str) -> DataLoader:
        """Next-item rows: training examples in a resumable order, or one history per user to evaluate."""
        rows = self.next_item_rows
        if split != "train":
            sampler = self._evaluation_sampler(len(rows.examples[split]))
            return rows.evaluation_loader(split, self.eval_batch_size, self.seed, sampler)
        content = self.item_content if self.inputs == BatchInputs.item_content else None
        workers = self.loading.num_workers
        return rows.train_loader(self.batch_size, self.seed, self.num_items, content, workers)

    def _loader(self, split: str, batch_size: int, inputs: BatchInputs) -> DataLoader:
        frame = getattr(self.splits, split)
        negatives = self.negative_sampler if split == "train" else None
        collate = InteractionCollator(
            frame, self.targets[split], inputs, self.item_content, self.user_content, negatives
        )
        options = {
            "batch_size": batch_size,
            "collate_fn": collate,
            "num_workers": self.loading.num_workers,
            "persistent_workers": self.loading.num_workers > 0,
            # a generator of its own: otherwise each new iterator takes a draw from torch's global RNG,
            # and a resumed run would see shifted dropout masks
            "generator": torch.Generator().manual_seed(self.seed),
            "pin_memory": torch.cuda.is_available(),  # faster host-to-GPU copies; a no-op without CUDA
        }
        if split == "train":
            return ResumableLoader(RowDataset(len(frame)), sampler=self._train_sampler(frame), **options)
        return DataLoader(RowDataset(len(frame)), sampler=self._evaluation_sampler(len(frame)), **options)

    def _evaluation_sampler(self, size: int) -> ContiguousShardSampler | None:
        """Under DDP, each process evaluates its own block of rows, none repeated; else all, in order."""
        trainer = self.trainer
        if trainer is None or trainer.world_size == 1:
            return None
        return ContiguousShardSampler(size, trainer.world_size, trainer.global_rank)

    def _train_sampler(self, frame: pd.DataFrame) -> EpochSampler:
        """Length-bucketed batches for per-row texts (cross-encoder pairs, text classification).

        Two-tower batches are not bucketed: their items double as in-batch negatives, and negatives
        all of one length would make the task easier in a way that depends on text length.
        With `domain_mix`, each batch takes a fixed share of rows from each domain.
        """
        if self.domain_mix is not None:
            return DomainMixSampler(*self.domain_mix, self.batch_size, self.seed)
        if self.loading.length_buckets > 0 and self.rows_are_texts:
            users = None if self.user_content is None else frame[USER].to_numpy()
            lengths = pair_lengths(
                frame[ITEM].to_numpy(),
                self.item_content.lengths(),
                users,
                None if self.user_content is None else self.user_content.lengths(),
            )
            return LengthBucketSampler(
                lengths,
                self.batch_size,
                self.loading.length_buckets,
                self.seed,
                self.targets["train"],
                self.loading.resampling,
            )
        return EpochSampler(len(frame), self.seed, self.targets["train"], self.loading.resampling)

    def train_epoch_rows(self) -> int:
        """Training rows served per epoch (resampling and domain mixing change it): sizes the schedule."""
        if self.next_item_rows is not None:
            return len(self.next_item_rows.examples["train"])
        return len(self._train_sampler(self.splits.train))

    def _ranking_loader(self, split: str) -> DataLoader:
        collate = RankingCollator(
            getattr(self.splits, split),
            self.splits.seen_before(split),
            self.plan.candidates,
            self.popularity,
            self.loading.candidate_seed,
        )
        return DataLoader(
            RowDataset(len(collate)),
            batch_size=self.eval_batch_size,
            sampler=self._evaluation_sampler(len(collate)),
            collate_fn=collate,
            generator=torch.Generator().manual_seed(self.seed),
        )

    def train_dataloader(self) -> DataLoader:
        if self.next_item_rows is not None:
            return self._sequence_loader("train")
        return self._loader("train", self.batch_size, self.inputs)

    def val_dataloader(self) -> DataLoader:
        if self.next_item_rows is not None:
            return self._sequence_loader("val")
        if self.plan.ranking:
            return self._ranking_loader("val")
        return self._loader("val", self.eval_batch_size, self.inputs)

    def test_dataloader(self) -> DataLoader:
        if self.next_item_rows is not None:
            return self._sequence_loader("test")
        if self.plan.ranking:
            return self._ranking_loader("test")
        return self._loader("test", self.eval_batch_size, self.inputs)

    def ranked_items(self, split: str) -> torch.Tensor | None:
        """Item codes a user's ranking is drawn from in `split`; None = the whole catalogue.

        With a cold-item split the held-out items are ranked among themselves: warm items are not
        candidates, since no user's held-out interaction can be with one of them.
        """
        if not self.source.cold_items:
            return None
        return torch.as_tensor(np.sort(getattr(self.splits, split)[ITEM].unique()))

    def item_batches(
        self, batch_size: int, content: bool | None = None
    ) -> Iterator[tuple[torch.Tensor, dict[str, torch.Tensor]]]:
        """The whole catalogue in chunks: (item codes, encoded content), for full-ranking evaluation.

        Content is left out when batches carry ids only (ID models, or a two-tower whose frozen item
        features are already cached): padding every item again at each evaluation would be wasted.
        `content=True` encodes it all the same: to fill (or refill) those caches.
        """
        if content is None:
            content = self.inputs != BatchInputs.ids
        with_content = self.item_content is not None and content
        for start in range(0, self.num_items, batch_size):
            codes = np.arange(start, min(start + batch_size, self.num_items))
            encoded = self.item_content.batch(codes) if with_content else {}
            yield torch.as_tensor(codes), encoded
