"""The run folder's own files: metrics.json, written atomically, and the final table."""

from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any

METRICS_FILE = "metrics.json"
PER_USER_FILE = "per_user.parquet"


class Status:
    running = "running"
    completed = "completed"
    failed = "failed"
    interrupted = "interrupted"


def write_json_atomic(path: Path, payload: dict[str, Any]) -> None:
    """Write JSON to a temporary file in the same folder, then rename it over `path`."""
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w") as stream:
            json.dump(payload, stream, indent=2, sort_keys=False, default=str)
            stream.write("\n")
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)


def write_parquet_atomic(path: Path, columns: dict[str, Any]) -> None:
    """Write a table of equal-length columns to Parquet under a temporary name, then rename it."""
    import pandas as pd

    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(handle)
    try:
        pd.DataFrame(columns).to_parquet(temporary, index=False)
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)


def clean_metrics(values: dict[str, Any]) -> dict[str, float]:
    """Plain floats (no tensors), NaN kept as None so the JSON stays valid."""
    out = {}
    for name, value in sorted(values.items()):
        number = float(value)
        out[name] = None if math.isnan(number) else number
    return out
