"""Evaluation rows split across DDP processes without padding.

Lightning's default for distributed evaluation is torch's DistributedSampler, which repeats rows so
every process gets as many: those repeats would be counted twice in the metrics. Here each process
gets one contiguous, disjoint block of rows (sizes may differ by one): every row is evaluated exactly
once, and the blocks joined in rank order are the single-process order.
"""

from __future__ import annotations

from collections.abc import Iterator

from torch.utils.data import DistributedSampler

from recfit.errors import DataError


class ContiguousShardSampler(DistributedSampler):
    """Rows [size*rank//world, size*(rank+1)//world) of `size`, in order, for process `rank` of `world`.

    A DistributedSampler subclass, so Lightning leaves it in place instead of adding its padded one.
    """

    def __init__(self, size: int, world_size: int, rank: int) -> None:
        if size < world_size:  # a process with no rows would skip evaluation and leave the others waiting
            raise DataError(f"{size} evaluation rows cannot be shared by {world_size} DDP processes")
        super().__init__(range(size), num_replicas=world_size, rank=rank, shuffle=False)
        self.start = size * rank // world_size
        self.stop = size * (rank + 1) // world_size

    def __iter__(self) -> Iterator[int]:
        return iter(range(self.start, self.stop))

    def __len__(self) -> int:
        return self.stop - self.start
