"""per_user.parquet: the test split's per-user (ranking) or per-row values, from every DDP process once.

Each process evaluates its own block of test rows (data/eval_shards.py); the blocks are gathered to
every process, joined in rank order (= the single-process order), and written by global rank 0 alone.
A callback, so it runs inside the processes that hold the rows: with `ddp_spawn` those are the spawned
workers, not the process that called `trainer.test`.
"""

from __future__ import annotations

from pathlib import Path

import lightning.pytorch as pl
import numpy as np
import torch

from recfit.run_folder import write_parquet_atomic

Table = dict[str, np.ndarray]


def gather_tables(table: Table, world_size: int) -> Table:
    """Every process's table joined in rank order (collective: all processes must call it)."""
    if world_size == 1:
        return table
    tables: list[Table | None] = [None] * world_size
    torch.distributed.all_gather_object(tables, table)
    filled = [part for part in tables if part]  # a process with no rows sends {}
    if not filled:
        return {}
    return {key: np.concatenate([part[key] for part in filled]) for key in filled[0]}


class PerUserWriter(pl.Callback):
    """Writes the test split's per-user table to `path` at the end of `trainer.test`, on rank 0 only."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def on_test_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        table = gather_tables(pl_module.per_user_table(), trainer.world_size)
        if trainer.is_global_zero:
            write_parquet_atomic(self.path, table)
