"""Shared fixtures. Every test runs offline: no hub look-ups."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


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


def write_reviews_csv(path: Path, rows: int = 60, missing: bool = True) -> Path:
    """A small sentiment CSV with two classes (and, optionally, rows missing a text or a label)."""
    import csv
    import random

    rng = random.Random(0)
    good = ["great movie, loved it", "wonderful acting", "a delight", "brilliant and moving"]
    bad = ["boring and too long", "terrible plot", "hated every minute", "a waste of time"]
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["review", "sentiment", "stars"])
        for i in range(rows):
            label = "pos" if i % 2 else "neg"
            writer.writerow([f"{rng.choice(good if label == 'pos' else bad)} #{i}", label, 5 if i % 2 else 1])
        if missing:
            writer.writerow(["", "pos", 5])
            writer.writerow(["no label here", "", ""])
    return path


def tree_digest(folder: Path) -> str:
    """A hash of every file's path and bytes under `folder`: proves nothing there changed."""
    digest = hashlib.sha256()
    for file in sorted(p for p in folder.rglob("*") if p.is_file()):
        digest.update(str(file.relative_to(folder)).encode())
        digest.update(file.read_bytes())
    return digest.hexdigest()
