"""checkpoints/last.ckpt for exact resume: every N training steps, but never on a step that a
validation follows.

Lightning counts a step as done once its checkpoint is written, so a run resumed from a checkpoint of
the step just before a validation (an epoch's last step, say) goes straight on to the next one and the
validation never happens: a run stopped during that validation would end with another best checkpoint
than the run left alone. Such a step's last.ckpt is written right after the validation instead, where
Lightning itself checkpoints the end of an epoch.
"""

from __future__ import annotations

from typing import Any

import lightning.pytorch as pl
from lightning.pytorch.callbacks import ModelCheckpoint


def validation_follows(trainer: pl.Trainer) -> bool:
    """Whether Lightning validates right after the current training batch (asked as it will be)."""
    epoch_loop = trainer.fit_loop.epoch_loop
    return bool(trainer.fit_loop._data_fetcher is not None) and epoch_loop._should_check_val_fx(
        trainer.fit_loop._data_fetcher
    )


class StepCheckpoint(ModelCheckpoint):
    """last.ckpt every `every_n_train_steps` steps; on a step a validation follows, after the validation."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._after_validation = False

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        every = self._every_n_train_steps
        if every and trainer.global_step % every == 0 and validation_follows(trainer):
            self._after_validation = True
            return
        super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        super().on_validation_end(trainer, pl_module)
        if self._after_validation and not trainer.sanity_checking and trainer.state.fn == "fit":
            self._after_validation = False
            self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))
