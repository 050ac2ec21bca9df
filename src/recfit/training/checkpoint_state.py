"""Reading a Lightning checkpoint's weights safely: one place, one error line for a bad file."""

from __future__ import annotations

from pathlib import Path

import torch

from recfit.errors import DataError


def load_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """The `state_dict` of a Lightning checkpoint, read with weights_only=True (no code runs).

    A truncated, foreign or unreadable file is a DataError with torch's first line of explanation.
    """
    try:
        return torch.load(path, map_location="cpu", weights_only=True)["state_dict"]
    except Exception as error:  # torch raises many kinds for a truncated or foreign file
        message = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise DataError(f"cannot load checkpoint {path}: {message}") from None
