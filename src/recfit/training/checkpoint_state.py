"""Reading a Lightning checkpoint's weights safely: one place, one error line for a bad file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from recfit.errors import DataError
from recfit.training.frozen_reference import restore_into

# A checkpoint's copy of the validation metrics logged just before it was written: the best
# checkpoint's are the run's validation metrics, so the run need not validate it a second time
VALIDATION_METRICS_KEY = "recfit_validation_metrics"
VALIDATION_PREFIX = "val/"


def validation_metrics_of(checkpoint: dict[str, Any], logged: dict[str, Any]) -> None:
    """Store in `checkpoint` the validation entries of `logged` (a trainer's callback_metrics)."""
    checkpoint[VALIDATION_METRICS_KEY] = {
        name: float(value) for name, value in logged.items() if name.startswith(VALIDATION_PREFIX)
    }


def stored_validation_metrics(path: str | Path) -> dict[str, float] | None:
    """The validation metrics a checkpoint holds (None for one written without them)."""
    stored = read_checkpoint(path, mmap=True).get(VALIDATION_METRICS_KEY)  # the weights are not read
    return dict(stored) if stored else None


def read_checkpoint(path: str | Path, mmap: bool = False) -> dict[str, Any]:
    """A whole Lightning checkpoint, read with weights_only=True (no code runs); `mmap`: its tensors are
    mapped from the file, not read, for a caller that wants the rest.

    A truncated, foreign or unreadable file is a DataError with torch's first line of explanation.
    """
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
        checkpoint["state_dict"]  # noqa: B018 - a foreign file fails here, with the same one line
    except Exception as error:  # torch raises many kinds for a truncated or foreign file
        message = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise DataError(f"cannot load checkpoint {path}: {message}") from None
    return checkpoint


def load_state_dict(path: str | Path, module: nn.Module | None = None) -> dict[str, torch.Tensor]:
    """The `state_dict` of a Lightning checkpoint, read with weights_only=True (no code runs).

    Given the RecModule the checkpoint is loaded into (built from the run's config), frozen weights
    that the checkpoint holds by reference are filled in from it, after checking their hash. Without
    one, the state dict holds the saved tensors only.
    """
    checkpoint = read_checkpoint(path)
    if module is not None:
        restore_into(module, checkpoint, f"checkpoint {path}")
    return checkpoint["state_dict"]
