"""Training throughput of a run: samples per second over the training batches alone.

Timed from the start of each training epoch to its last batch's end, so batch assembly (padding),
forward, backward and optimizer steps count, while start-up (imports, model loading, tokenization)
and validation do not. It goes into metrics.json, so runs and benchmarks compare like with like.
"""

from __future__ import annotations

import time
from typing import Any

import lightning.pytorch as pl
import torch

# trainer.callback_metrics is what a spawned DDP rank 0 hands back to the launching process
SUMMARY_KEYS = ("throughput/samples", "throughput/seconds")


class TrainThroughput(pl.Callback):
    """Counts training samples and the seconds spent on them."""

    def __init__(self) -> None:
        self.samples = 0
        self.seconds = 0.0
        self._epoch_started = self._last_batch_end = 0.0

    def on_train_epoch_start(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        self._epoch_started = self._last_batch_end = time.perf_counter()

    def on_train_batch_end(
        self, trainer: pl.Trainer, module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        now = time.perf_counter()
        self.seconds += now - self._last_batch_end
        self._last_batch_end = now
        self.samples += len(batch["target"])

    def on_validation_end(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        # validation inside an epoch (val_check_interval < 1) must not count as training time
        self._last_batch_end = time.perf_counter()

    def on_train_end(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        # every rank's samples, over the slowest rank's seconds
        samples = trainer.strategy.reduce(torch.tensor(float(self.samples)), reduce_op="sum")
        seconds = trainer.strategy.reduce(torch.tensor(self.seconds), reduce_op="max")
        trainer.callback_metrics.update(dict(zip(SUMMARY_KEYS, (samples, seconds), strict=True)))

    @staticmethod
    def summary(trainer: pl.Trainer) -> dict[str, float]:
        """Samples, seconds and samples/s of all training batches of all processes of the last fit."""
        samples, seconds = (float(trainer.callback_metrics.get(key, 0.0)) for key in SUMMARY_KEYS)
        rate = samples / seconds if seconds else 0.0
        return {"samples": int(samples), "seconds": round(seconds, 3), "samples_per_s": round(rate, 2)}
