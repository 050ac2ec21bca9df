"""Shared fixtures. Every test runs offline: no hub look-ups."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from helpers.files import SHARED_DATA

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


@pytest.fixture(scope="session")
def ml100k_dir() -> Path:
    """The raw MovieLens-100K files (never committed; present on developer machines and in CI)."""
    folder = SHARED_DATA / "ml-100k"
    if not (folder / "u.data").is_file():
        pytest.skip(f"MovieLens-100K not found at {folder}")
    return folder


@pytest.fixture(scope="session")
def amazon_games_dir() -> Path:
    """The LLMRank Games-6k files (never committed; present on developer machines and in CI)."""
    folder = SHARED_DATA / "amazon-games"
    if not (folder / "Games-6k.item").is_file():
        pytest.skip(f"Amazon Games-6k not found at {folder}")
    return folder


@pytest.fixture(autouse=True)
def _clear_hydra():
    """Each test composes or launches Hydra afresh."""
    from hydra.core.global_hydra import GlobalHydra

    GlobalHydra.instance().clear()
    yield
    GlobalHydra.instance().clear()
