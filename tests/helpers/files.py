"""Small files the tests write, and a digest that proves a folder was left untouched."""

from __future__ import annotations

import csv
import hashlib
import random
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SHARED_DATA = REPO.parent / "shared" / "data"


def write_reviews_csv(path: Path, rows: int = 60, missing: bool = True) -> Path:
    """A small sentiment CSV with two classes (and, optionally, rows missing a text or a label)."""
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


def tree_digest(folder: Path, ignore: tuple[str, ...] = ()) -> str:
    """A hash of every file's path and bytes under `folder` (but files named in `ignore`): proves
    nothing there changed."""
    digest = hashlib.sha256()
    for file in sorted(p for p in folder.rglob("*") if p.is_file() and p.name not in ignore):
        digest.update(str(file.relative_to(folder)).encode())
        digest.update(file.read_bytes())
    return digest.hexdigest()
