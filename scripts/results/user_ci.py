"""Each run's test metrics with a 95% bootstrap CI over its test users, as a markdown table.

    python scripts/results/user_ci.py "label=RUN_OR_EVAL_DIR" ... [--metric test/ndcg@10,test/recall@10]

`recfit compare --test users` gives CIs of *differences* against a baseline; a table of rows measured
on the same users (e.g. RESULTS.md's zero-shot table) also wants each row's own interval. Reads
metrics.json and per_user.parquet only (no torch): the mean over users must equal the run's reported
test metric, else the folder is refused. The CI is the percentile bootstrap of the mean (10,000
resamples of the users, seed 0; every row shares the same resampled users) of
`recfit.compare.significance.bootstrap_mean_cis`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from recfit.compare.significance import bootstrap_mean_cis
from recfit.run_folder import PER_USER_FILE, read_record

TEST_PREFIX = "test/"


def row(folder: Path, metrics: list[str]) -> tuple[list[np.ndarray], list[int]]:
    """Each metric's per-user values, and the users, of one completed run folder."""
    record = read_record(folder)
    if record.get("status") != "completed":
        sys.exit(f"user_ci: error: {folder} is not completed (status {record.get('status')})")
    users = pd.read_parquet(folder / PER_USER_FILE)
    values = []
    for metric in metrics:
        column = users[metric.removeprefix(TEST_PREFIX)].to_numpy(dtype=float)
        reported = record["metrics"][metric]
        if not np.isclose(column.mean(), reported, atol=1e-6):
            sys.exit(f"user_ci: error: {folder}: per-user mean of {metric} is not the reported {reported}")
        values.append(column)
    return values, sorted(users["user"].tolist())


def main() -> None:
    """Print the markdown table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", metavar="LABEL=DIR")
    parser.add_argument("--metric", default="test/ndcg@10,test/recall@10")
    args = parser.parse_args()
    metrics = args.metric.split(",")
    rows, users = [], None
    for spec in args.runs:
        label, _, folder = spec.partition("=")
        values, its_users = row(Path(folder), metrics)
        if users is not None and its_users != users:
            sys.exit(f"user_ci: error: {folder} was tested on other users than the rows before it")
        users = its_users
        rows.append((label, values))
    flat = [values for _, per_metric in rows for values in per_metric]
    bounds = bootstrap_mean_cis(flat).reshape(len(rows), len(metrics), 2)
    print("| | " + " | ".join(f"{m} [95% CI]" for m in metrics) + " |")
    print("|---|" + "---:|" * len(metrics))
    for (label, per_metric), cis in zip(rows, bounds, strict=True):
        cells = [f"{v.mean():.4f} [{lo:.4f}, {hi:.4f}]" for v, (lo, hi) in zip(per_metric, cis, strict=True)]
        print(f"| {label} | " + " | ".join(cells) + " |")
    print(f"\n{len(users or [])} test users; 95% CI: percentile bootstrap of the mean over users (seed 0)")


if __name__ == "__main__":
    main()
