"""What Lightning writes into a run folder (checkpoints, metrics.csv), written as the run folder's own
files are: to a temporary file beside the real one, then renamed over it.

Lightning's own writes are not atomic for a local run folder. Its checkpoint "transaction" writes to
the system's temporary folder and then *copies* the file over the old one when the run folder is on
another file system (a full disk then leaves a truncated last.ckpt where a good one was), and its CSV
logger appends to metrics.csv in place, or rewrites it in place when its columns grow. Here a write
that fails (a full disk: one DiskFullError line naming the file) leaves the earlier file as it was.
"""

from __future__ import annotations

import csv
import io
import os
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import torch
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO
from lightning.pytorch.loggers import CSVLogger
from lightning.pytorch.loggers.csv_logs import ExperimentWriter
from lightning.pytorch.loggers.logger import rank_zero_experiment

from recfit.run_folder import replace_atomic, write_bytes_atomic, writing


class AtomicCheckpointIO(TorchCheckpointIO):
    """Checkpoints serialized in memory, then written beside their final name and renamed over it."""

    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: Any, storage_options: Any | None = None
    ) -> None:
        """Write `checkpoint` to `path`; an existing file there survives a write that fails."""
        if storage_options is not None:
            raise TypeError(f"{type(self).__name__} takes no storage_options")
        path = Path(path)
        with writing(path.parent):
            path.parent.mkdir(parents=True, exist_ok=True)
        buffer = io.BytesIO()
        torch.save(checkpoint, buffer)
        write_bytes_atomic(path, buffer.getvalue())


def use_atomic_checkpoints(trainer: pl.Trainer) -> None:
    """Give `trainer` AtomicCheckpointIO where it would write checkpoints with Lightning's TorchCheckpointIO
    (a strategy with a checkpoint IO of its own, XLA's say, keeps it)."""
    if type(trainer.strategy.checkpoint_io) is TorchCheckpointIO:
        trainer.strategy.checkpoint_io = AtomicCheckpointIO()


class AtomicCSVWriter(ExperimentWriter):
    """Lightning's metrics.csv writer, replacing the whole file at each save instead of appending."""

    def save(self) -> None:
        """Write the rows on disk plus the new ones, under the header of every column seen so far."""
        if not self.metrics:
            return
        self._record_new_keys()
        path = Path(self.metrics_file_path)
        rows: list[dict[str, Any]] = []
        if path.is_file():
            with open(path, newline="", encoding="utf-8") as file:
                rows = list(csv.DictReader(file))

        def write(temporary: str) -> None:
            with open(temporary, "w", newline="", encoding="utf-8") as file:
                writer = csv.DictWriter(file, fieldnames=self.metrics_keys)
                writer.writeheader()
                writer.writerows(rows)
                writer.writerows(self.metrics)

        replace_atomic(path, write)
        self.metrics = []


class AtomicCSVLogger(CSVLogger):
    """Lightning's CSVLogger with `AtomicCSVWriter` (on rank 0, as Lightning's own writer)."""

    @property
    @rank_zero_experiment
    def experiment(self) -> AtomicCSVWriter:
        """The writer, made on first use (Lightning's own property, with the atomic writer)."""
        if self._experiment is None:
            os.makedirs(self.root_dir, exist_ok=True)
            self._experiment = AtomicCSVWriter(log_dir=self.log_dir)
        return self._experiment
