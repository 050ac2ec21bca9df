"""An 8-job head learning-rate sweep with a frozen backbone: the shared item vector cache vs none.

Both sweeps are real `recfit train -m` processes (Hydra's basic launcher: the jobs run one after the
other in one process, so imports are paid once per sweep), over --lrs, with the frozen
all-MiniLM-L6-v2 item tower of --experiment on MovieLens-100K's 1,682 item texts:

  cached     backbone.cache_vectors=true, an EMPTY cache folder: job 0 encodes and stores the
             vectors (a miss), jobs 1-7 read them (hits)
  uncached   backbone.cache_vectors=false: every job encodes the 1,682 items again

It prints JSON: each sweep's wall time, the ratio uncached / cached, every job's duration and cache
status (from its metrics.json), the mean job time with and without encoding, and whether every job's
metrics are identical in both sweeps (they must be: the cache returns the very bits it stored).

usage: .venv/bin/python scripts/bench/bench_sweep_cache.py --ml100k DIR [--epochs 1]
       [--limit-train-batches 40] [--lrs 1e-4,...] [--experiment ml100k_ranking] [--workdir DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

LRS = "1e-4,3e-4,1e-3,2e-3,3e-3,5e-3,1e-2,3e-2"


def sweep(args: argparse.Namespace, root: Path, name: str, cache: bool) -> dict:
    """One `recfit train -m` over the learning rates; its wall time and every job's record."""
    output, data = root / name / "outputs", root / name / "data"
    command = [
        sys.executable,
        "-m",
        "recfit",
        "train",
        "-m",
        f"experiment={args.experiment}",
        f"dataset.reader.path={args.ml100k}",
        f"optimizer.head_lr={args.lrs}",
        f"backbone.cache_vectors={str(cache).lower()}",
        f"trainer.max_epochs={args.epochs}",
        f"trainer.limit_train_batches={args.limit_train_batches}",
        "trainer.enable_progress_bar=false",
        f"paths.output_dir={output}",
        f"paths.data_dir={data}",
    ]
    started = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True)
    wall = time.perf_counter() - started
    if result.returncode != 0:
        sys.exit(f"{name} sweep failed:\n{result.stderr[-3000:]}")
    records = sorted(
        (json.loads(path.read_text()) for path in output.glob("sweeps/*/*/*/metrics.json")),
        key=lambda record: int(Path(record["run_dir"]).name),
    )
    jobs = [
        {
            "job": int(Path(r["run_dir"]).name),
            "status": r["status"],
            "item_vector_cache": r.get("item_vector_cache"),
            "duration_s": r["duration_s"],
        }
        for r in records
    ]
    return {"wall_s": round(wall, 2), "jobs": jobs, "metrics": [r["metrics"] for r in records]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ml100k", required=True, help="folder with MovieLens-100K's u.data, u.item, u.user")
    parser.add_argument("--experiment", default="ml100k_ranking", help="a frozen-backbone experiment")
    parser.add_argument("--lrs", default=LRS, help="comma-separated optimizer.head_lr values (8 jobs)")
    parser.add_argument("--epochs", type=int, default=1, help="trainer.max_epochs of every job")
    parser.add_argument("--limit-train-batches", default="40", help="trainer.limit_train_batches")
    parser.add_argument("--workdir", default=None, help="where the sweeps write (default: a temporary one)")
    args = parser.parse_args()

    root = Path(args.workdir or tempfile.mkdtemp(prefix="bench_sweep_cache_"))
    load_before = os.getloadavg()[0]
    cached = sweep(args, root, "cached", cache=True)
    uncached = sweep(args, root, "uncached", cache=False)
    load_after = os.getloadavg()[0]

    hits = [job["duration_s"] for job in cached["jobs"] if job["item_vector_cache"] == "hit"]
    encoding = [job["duration_s"] for job in uncached["jobs"]]
    print(
        json.dumps(
            {
                "benchmark": "sweep_item_vector_cache",
                "experiment": args.experiment,
                "jobs": len(cached["jobs"]),
                "head_lrs": args.lrs,
                "epochs": args.epochs,
                "limit_train_batches": args.limit_train_batches,
                "cached_wall_s": cached["wall_s"],
                "uncached_wall_s": uncached["wall_s"],
                "ratio_uncached_over_cached": round(uncached["wall_s"] / cached["wall_s"], 2),
                "mean_job_s_cache_hit": round(statistics.mean(hits), 2) if hits else None,
                "mean_job_s_uncached": round(statistics.mean(encoding), 2),
                "cache_statuses": [job["item_vector_cache"] for job in cached["jobs"]],
                "all_completed": all(j["status"] == "completed" for j in cached["jobs"] + uncached["jobs"]),
                "metrics_identical": cached["metrics"] == uncached["metrics"],
                "cached_jobs": cached["jobs"],
                "uncached_jobs": uncached["jobs"],
                "load_average_1min": [round(load_before, 2), round(load_after, 2)],
                "cpus": os.cpu_count(),
                "workdir": str(root),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
