"""Which checkpoints a run writes, what they hold, and which of them outlive it (`checkpoint.*`).

While a run can still resume, checkpoints/last.ckpt holds everything a resume needs (weights,
optimizer, schedulers, loops, loader position, random states), written every
`checkpoint_every_n_steps` and on an interrupt. checkpoints/best.ckpt holds the best weights only: it
is what evaluation, `recfit eval` and `init_from` read, and none of them needs an optimizer. Neither
holds frozen pretrained backbone weights unless `checkpoint.save_frozen` says so (see
`recfit.training.frozen_reference`). Once the run has completed, `checkpoint.keep` decides what stays;
a kept last.ckpt is rewritten at the end of training, so it is never a stale mid-run state.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
from lightning.pytorch.callbacks import ModelCheckpoint
from omegaconf import DictConfig

from recfit.config.schema import CheckpointKeep
from recfit.run_folder import BEST_CHECKPOINT, CHECKPOINT_DIR, LAST_CHECKPOINT
from recfit.training.frozen_reference import FrozenWeights
from recfit.training.last_checkpoint import StepCheckpoint
from recfit.training.rng_state import InterruptCheckpoint

log = logging.getLogger(__name__)
KEPT_FILES: dict[CheckpointKeep, tuple[str, ...]] = {
    CheckpointKeep.best: (BEST_CHECKPOINT,),
    CheckpointKeep.last: (LAST_CHECKPOINT,),
    CheckpointKeep.both: (BEST_CHECKPOINT, LAST_CHECKPOINT),
    CheckpointKeep.none: (),
}


class FinalLastCheckpoint(pl.Callback):
    """Rewrite last.ckpt when training ends, so a kept last.ckpt is the final state, not a mid-run one."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        trainer.save_checkpoint(self.path)


def checkpoint_callbacks(
    cfg: DictConfig, run_dir: Path, monitor: str
) -> tuple[ModelCheckpoint, list[pl.Callback]]:
    """(the best-checkpoint callback, every checkpoint callback of the run, that one first)."""
    folder = run_dir / CHECKPOINT_DIR
    best = ModelCheckpoint(
        dirpath=folder,
        filename=Path(BEST_CHECKPOINT).stem,
        monitor=monitor,
        mode=cfg.task.mode.value,
        auto_insert_metric_name=False,
        enable_version_counter=False,
        save_weights_only=True,  # evaluation and init_from read weights; resuming reads last.ckpt
    )
    # last.ckpt, also in mid-epoch, for exact resume (with the loader's position and the RNG states)
    every = cfg.checkpoint_every_n_steps
    last = StepCheckpoint(dirpath=folder, save_top_k=0, save_last=True, every_n_train_steps=every or None)
    last.CHECKPOINT_NAME_LAST = Path(LAST_CHECKPOINT).stem  # the run-folder format's name, not Lightning's
    callbacks: list[pl.Callback] = [best, last, InterruptCheckpoint(str(folder / LAST_CHECKPOINT))]
    if LAST_CHECKPOINT in KEPT_FILES[CheckpointKeep(cfg.checkpoint.keep)]:
        callbacks.append(FinalLastCheckpoint(folder / LAST_CHECKPOINT))
    return best, callbacks


def attach_frozen_policy(
    module: pl.LightningModule, cfg: DictConfig, lineage: dict[str, Any] | None = None
) -> None:
    """Make `module`'s checkpoints hold its frozen pretrained backbone by reference (or not), and the
    init_from `lineage` of a child run."""
    module.frozen_weights = FrozenWeights.of(cfg.backbone, cfg.checkpoint.save_frozen, lineage)


def retain_checkpoints(run_dir: Path, keep: CheckpointKeep | str) -> list[str]:
    """Delete the checkpoints a completed run does not keep; returns the names of those removed."""
    kept = KEPT_FILES[CheckpointKeep(keep)]
    removed = []
    for name in (BEST_CHECKPOINT, LAST_CHECKPOINT):
        path = run_dir / CHECKPOINT_DIR / name
        if name not in kept and path.is_file():
            path.unlink()
            removed.append(name)
    if removed:
        log.info("checkpoint.keep=%s: removed %s", CheckpointKeep(keep).value, ", ".join(removed))
    return removed
