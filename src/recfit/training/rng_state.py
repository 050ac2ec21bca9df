"""Checkpoint the global random states (torch, NumPy, Python), so a resumed run draws what the
uninterrupted one would have: the same dropout masks, the same sampled negatives.

Lightning does not store them; its own collector keeps a NumPy array, which `weights_only=True`
refuses to load, so NumPy's state is stored as lists here.
"""

from __future__ import annotations

import random
from typing import Any

import lightning.pytorch as pl
import numpy as np
import torch

from recfit.training.last_checkpoint import validation_follows


def collect_rng_states() -> dict[str, Any]:
    numpy_state = np.random.get_state(legacy=False)
    numpy_state["state"] = {
        "key": numpy_state["state"]["key"].tolist(),
        "pos": int(numpy_state["state"]["pos"]),
    }
    version, state, gauss = random.getstate()
    return {"torch": torch.get_rng_state(), "numpy": numpy_state, "python": [version, list(state), gauss]}


def set_rng_states(states: dict[str, Any]) -> None:
    torch.set_rng_state(states["torch"])
    numpy_state = dict(states["numpy"])
    numpy_state["state"] = {
        "key": np.asarray(numpy_state["state"]["key"], dtype=np.uint32),
        "pos": numpy_state["state"]["pos"],
    }
    np.random.set_state(numpy_state)
    version, state, gauss = states["python"]
    random.setstate((version, tuple(state), gauss))


class RNGStateCallback(pl.Callback):
    """Saves the random states with every checkpoint and restores them just before the first batch
    of a resumed run (after anything that draws randomness while the run starts up)."""

    def __init__(self) -> None:
        self._pending: dict[str, Any] | None = None

    def state_dict(self) -> dict[str, Any]:
        return collect_rng_states()

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._pending = state_dict

    def on_train_batch_start(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any, index: int
    ) -> None:
        if self._pending is not None:
            set_rng_states(self._pending)
            self._pending = None


class InterruptCheckpoint(pl.Callback):
    """On SIGTERM (a cluster preempting the job) or Ctrl-C, write last.ckpt before the run stops.

    Lightning stops at the end of the current batch and raises; the checkpoint then holds a finished
    step, so `resume=auto` continues exactly. Other exceptions (a diverged loss) save nothing: the last
    good checkpoint stays the last one.
    """

    def __init__(self, path: str) -> None:
        self.path = path

    def on_exception(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException
    ) -> None:
        from lightning.pytorch.utilities.exceptions import SIGTERMException

        # not on a step a validation follows: resumed from there, Lightning would skip that validation
        stopped = isinstance(exception, (KeyboardInterrupt, SIGTERMException))
        if stopped and trainer.training and not validation_follows(trainer):
            trainer.save_checkpoint(self.path)
