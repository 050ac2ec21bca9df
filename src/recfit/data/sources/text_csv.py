"""Any CSV of (text, label) rows: each row becomes an item with a text and a label.

There are no users: every row belongs to one placeholder user, so the same split, batching and
cross-encoder code serves the plain fine-tune-a-classifier case.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd

from recfit.data.tables import ITEM, LABEL, RATING, USER, RecData
from recfit.errors import DataError

log = logging.getLogger(__name__)


def read_text_csv(path: str, text_column: str = "text", label_column: str = "label") -> RecData:
    """Read a CSV; drop rows whose text or label is missing; encode labels as classes.

    `label` holds class codes over the sorted distinct labels; when every label is a number,
    `rating` holds its value as well (for loss=mse).
    """
    file = Path(path).expanduser()
    try:
        frame = pd.read_csv(file, encoding="utf-8")
    except FileNotFoundError:
        raise DataError(f"CSV file not found: {file}") from None
    except UnicodeDecodeError:
        raise DataError(f"{file} is not UTF-8 text ({_first_bad_byte(file)}): re-save it as UTF-8") from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as error:
        raise DataError(f"cannot parse {file}: {str(error).splitlines()[0]}") from None
    for column in (text_column, label_column):
        if column not in frame.columns:
            raise DataError(
                f"{file} has no column '{column}' (columns: {', '.join(map(str, frame.columns))})"
            )
    before = len(frame)
    frame = frame.dropna(subset=[text_column, label_column]).reset_index(drop=True)
    if len(frame) < before:
        log.warning("dropped %d of %d rows with a missing text or label", before - len(frame), before)
    if frame.empty:
        raise DataError(f"{file} has no rows with both a text and a label")

    labels = frame[label_column]
    if pd.api.types.is_numeric_dtype(labels):
        infinite = int((~np.isfinite(labels.to_numpy(dtype="float64"))).sum())
        if infinite:
            raise DataError(f"{file}: {infinite:,} rows with an infinite {label_column} (bad data)")
    classes = sorted(labels.unique(), key=lambda value: (str(type(value)), value))
    interactions = pd.DataFrame(
        {
            USER: np.zeros(len(frame), dtype=np.int64),
            ITEM: np.arange(len(frame), dtype=np.int64),
            LABEL: pd.Index(classes).get_indexer(labels),
        }
    )
    if pd.api.types.is_numeric_dtype(labels):
        interactions[RATING] = labels.astype("float32").to_numpy()
    return RecData(
        name=file.stem,
        interactions=interactions,
        num_users=1,
        num_items=len(frame),
        item_text=frame[text_column].astype(str).tolist(),
        label_names=[str(c) for c in classes],
    )


def _first_bad_byte(file: Path) -> str:
    """Where the first byte that is not UTF-8 sits, as 'line L, byte B' (1-based line, 0-based byte)."""
    data = file.read_bytes()
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as error:
        line = data.count(b"\n", 0, error.start) + 1
        return f"line {line}, byte {error.start}"
    return "position unknown"
