"""What to do with interactions that cannot be used: refuse the file (one clear line) or skip and count.

`dataset.reader.on_bad_rows=error` (the default) stops at the first kind of bad row with a message naming the
file, the problem and how many rows have it; `skip` drops them, logs the count and records it in the
run's metrics.json and run_info.json.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from recfit.errors import DataError

log = logging.getLogger(__name__)

ERROR, SKIP = "error", "skip"


class BadRows:
    """Collects, per reason, the rows dropped from one data set."""

    def __init__(self, policy: str, source: str) -> None:
        policy = getattr(policy, "value", policy)  # the config's BadRowsPolicy, or its plain string
        if policy not in (ERROR, SKIP):
            raise DataError(f"dataset.reader.on_bad_rows must be {ERROR} or {SKIP} (got '{policy}')")
        self.policy, self.source, self.skipped = policy, source, {}

    def drop(self, frame: pd.DataFrame, bad: pd.Series, reason: str) -> pd.DataFrame:
        """Rows of `frame` where `bad` is False; raise instead when any is bad and the policy is error."""
        count = int(bad.sum())
        if not count:
            return frame
        if self.policy == ERROR:
            raise DataError(
                f"{self.source}: {count:,} rows {reason} (set dataset.reader.on_bad_rows=skip to drop them)"
            )
        log.warning("%s: skipped %d rows %s", self.source, count, reason)
        self.skipped[reason] = self.skipped.get(reason, 0) + count
        return frame[~bad].reset_index(drop=True)

    def numeric(self, frame: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
        """Coerce `columns` to numbers; rows with a missing, non-numeric, NaN or infinite value are bad.

        A NaN or infinite target would only show up later as a diverging loss, blamed on the
        learning rate; it is bad data, and said so here.
        """
        frame = frame.copy()
        for column in columns:
            frame[column] = pd.to_numeric(frame[column], errors="coerce")
        finite = np.isfinite(frame[columns].to_numpy(dtype="float64")).all(axis=1)
        reason = f"with a missing or non-numeric {'/'.join(columns)}, or a NaN or infinite one"
        return self.drop(frame, pd.Series(~finite, index=frame.index), reason)

    def outside(self, frame: pd.DataFrame, column: str, low: float, high: float, what: str) -> pd.DataFrame:
        """Rows whose `column` lies outside [low, high] are bad (`what` says what the range is)."""
        bad = ~frame[column].between(low, high)
        return self.drop(frame, bad, f"with a {column} outside {what}")
