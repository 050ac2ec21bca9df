"""metrics.csv across a resume: the curves logged before the stop, then those logged after it.

Lightning's CSV logger rewrites metrics.csv whenever its set of columns grows, with only the columns it
has seen itself. Pointed at a file that an earlier process wrote, it fails (`dict contains fields not
in fieldnames`: a run resumed after its training had ended logs validation columns only) or drops
columns. So a resumed run first moves the earlier curves aside, into a hidden file of the run folder
that is kept until it is joined (a second interrupt loses nothing), lets the logger write a fresh
metrics.csv, and joins the two when the run ends, however it ends.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from recfit.run_folder import CURVES_FILE, EARLIER_CURVES_FILE, replace_atomic

STEP = "step"
TRAIN_PREFIX = "train"  # columns logged by training steps (train/loss, ...)


def _read(path: Path) -> pd.DataFrame | None:
    return pd.read_csv(path) if path.is_file() and path.stat().st_size else None


def _write(path: Path, frame: pd.DataFrame) -> None:
    replace_atomic(path, lambda temporary: frame.to_csv(temporary, index=False))


def _joined(earlier: pd.DataFrame, later: pd.DataFrame | None) -> pd.DataFrame:
    """The earlier rows up to the first step trained again after the resume, then the later rows."""
    if later is None or not len(later):
        return earlier
    trained = later[[c for c in later.columns if c.startswith(TRAIN_PREFIX)]].notna().any(axis=1)
    first_new_step = later.loc[trained, STEP].min() if trained.any() else float("inf")
    return pd.concat([earlier[earlier[STEP] < first_new_step], later], ignore_index=True)


def set_aside(run_dir: Path) -> None:
    """Before a resumed run's logger starts: metrics.csv (joined to curves set aside by an earlier
    resume, if that one was stopped too) goes to the hidden file, and metrics.csv goes."""
    current, aside = run_dir / CURVES_FILE, run_dir / EARLIER_CURVES_FILE
    later = _read(current)
    earlier = _read(aside)
    if earlier is None and later is None:
        return
    _write(aside, later if earlier is None else _joined(earlier, later))
    current.unlink(missing_ok=True)


def join(run_dir: Path) -> None:
    """When a run ends: metrics.csv = the curves set aside + those logged since (no-op for a fresh run)."""
    current, aside = run_dir / CURVES_FILE, run_dir / EARLIER_CURVES_FILE
    earlier = _read(aside)
    if earlier is None:
        return
    _write(current, _joined(earlier, _read(current)))
    aside.unlink()
