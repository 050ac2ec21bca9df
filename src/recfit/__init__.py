"""recfit: fine-tune pretrained backbones into recommender systems."""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"
__all__ = ["evaluate", "load_run", "predict", "recommend", "train"]


def __getattr__(name: str) -> Any:
    """`recfit.train`, `load_run`, `evaluate`, `predict`, `recommend`: imported on first use (cheap)."""
    if name in __all__:
        from recfit import api

        return getattr(api, name)
    raise AttributeError(f"module 'recfit' has no attribute {name!r}")
