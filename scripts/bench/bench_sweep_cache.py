"""An 8-job head learning-rate sweep with a frozen backbone: the shared item vector cache vs none.

Every sweep is a real `recfit train -m` process (Hydra's basic launcher: the jobs run one after the
other in one process, so imports are paid once per sweep), over --lrs, with the frozen
all-MiniLM-L6-v2 item tower of --experiment on MovieLens-100K's 1,682 item texts:

  cached     backbone.cache_vectors=true, an EMPTY cache folder: job 0 encodes and stores the
             vectors (a miss), jobs 1-7 read them (hits)
  uncached   backbone.cache_vectors=false: every job encodes the 1,682 items again
  warm       (--warm) backbone.cache_vectors=true over the cache the cached sweep filled: all 8 jobs
             hit, as a second sweep over the same catalogue and backbone does

Each of --rounds rounds runs the sweeps back to back, cached and uncached in alternating order (the
load of a shared machine drifts: interleaving gives both sides the same), the warm one last. The
token cache is filled beforehand (a sweep outside the timing), so every timed sweep reads it.

It prints JSON: every sweep's wall time, its jobs' durations and cache statuses (from metrics.json),
what the sweep spent outside its jobs (start-up, imports, Hydra composing and validating the jobs),
each round's ratio uncached / cached (and uncached / warm), their medians, and whether every job's
metrics are identical in all sweeps (they must be: the cache returns the very bits it stored).

usage: .venv/bin/python scripts/bench/bench_sweep_cache.py --ml100k DIR [--rounds 1] [--warm] [--first cached]
       (--data DIR --experiment games_cold_transfer: the same sweep over Amazon Games' 16,859 titles)
       [--epochs 1] [--limit-train-batches 40] [--lrs 1e-4,...] [--experiment ml100k_ranking]
       [--workdir DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

LRS = "1e-4,3e-4,1e-3,2e-3,3e-3,5e-3,1e-2,3e-2"


def sweep(args: argparse.Namespace, root: Path, name: str, cache: bool, data: Path) -> dict:
    """One `recfit train -m` over the learning rates; its wall time and every job's record."""
    output = root / name / "outputs"
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
    load = os.getloadavg()[0]
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
    in_jobs = sum(job["duration_s"] for job in jobs)
    return {
        "wall_s": round(wall, 2),
        "outside_jobs_s": round(wall - in_jobs, 2),  # start-up, imports, composing every job twice
        "load_average_1min": [round(load, 2), round(os.getloadavg()[0], 2)],
        "jobs": jobs,
        "metrics": [r["metrics"] for r in records],
    }


def prepare_token_cache(args: argparse.Namespace, root: Path, data: Path) -> None:
    """Tokenize the catalogue once (a 1-job sweep, not timed): every timed sweep then reads the tokens."""
    one = argparse.Namespace(**{**vars(args), "lrs": args.lrs.split(",")[0], "limit_train_batches": "1"})
    sweep(one, root, "prepare", cache=False, data=data)


def summary(result: dict) -> dict:
    """A sweep's result without its metrics (compared separately)."""
    return {key: value for key, value in result.items() if key != "metrics"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--ml100k", "--data", dest="ml100k", required=True,
        help="the experiment's data folder (MovieLens-100K's u.data, u.item, u.user by default)",
    )  # fmt: skip
    parser.add_argument("--experiment", default="ml100k_ranking", help="a frozen-backbone experiment")
    parser.add_argument("--lrs", default=LRS, help="comma-separated optimizer.head_lr values (8 jobs)")
    parser.add_argument("--epochs", type=int, default=1, help="trainer.max_epochs of every job")
    parser.add_argument("--limit-train-batches", default="40", help="trainer.limit_train_batches")
    parser.add_argument("--rounds", type=int, default=1, help="cached/uncached pairs, order alternating")
    parser.add_argument("--first", choices=("cached", "uncached"), default="cached", help="round 0's first")
    parser.add_argument("--warm", action="store_true", help="also a sweep over the filled cache, per round")
    parser.add_argument("--workdir", default=None, help="where the sweeps write (default: a temporary one)")
    args = parser.parse_args()

    root = Path(args.workdir or tempfile.mkdtemp(prefix="bench_sweep_cache_"))
    tokens = root / "tokens"
    prepare_token_cache(args, root, tokens)
    rounds, metrics = [], []
    for number in range(args.rounds):
        # every sweep gets its own data folder holding the prepared tokens: the cached one starts with
        # no item vectors, the warm one with those the cached one stored
        data = {name: root / f"round{number}" / name / "data" for name in ("cached", "uncached")}
        for folder in data.values():
            shutil.copytree(tokens, folder)
        order = (
            ("cached", "uncached")
            if (number + (args.first == "uncached")) % 2 == 0
            else ("uncached", "cached")
        )
        here = root / f"round{number}"
        done = {name: sweep(args, here, name, name == "cached", data[name]) for name in order}
        if args.warm:
            done["warm"] = sweep(args, here, "warm", True, data["cached"])
        metrics.extend(result["metrics"] for result in done.values())
        uncached = done["uncached"]["wall_s"]
        rounds.append(
            {
                "order": [*order, *(["warm"] if args.warm else [])],
                "ratio_uncached_over_cached": round(uncached / done["cached"]["wall_s"], 2),
                **(
                    {"ratio_uncached_over_warm": round(uncached / done["warm"]["wall_s"], 2)}
                    if args.warm
                    else {}
                ),
                **{name: summary(result) for name, result in done.items()},
            }
        )

    def median_of(key: str) -> float | None:
        values = [r[key] for r in rounds if key in r]
        return round(statistics.median(values), 2) if values else None

    hits = [j["duration_s"] for r in rounds for j in r["cached"]["jobs"] if j["item_vector_cache"] == "hit"]
    encoding = [j["duration_s"] for r in rounds for j in r["uncached"]["jobs"]]
    print(
        json.dumps(
            {
                "benchmark": "sweep_item_vector_cache",
                "experiment": args.experiment,
                "jobs": len(args.lrs.split(",")),
                "head_lrs": args.lrs,
                "epochs": args.epochs,
                "limit_train_batches": args.limit_train_batches,
                "rounds": args.rounds,
                "median_ratio_uncached_over_cached": median_of("ratio_uncached_over_cached"),
                "median_ratio_uncached_over_warm": median_of("ratio_uncached_over_warm"),
                "mean_job_s_cache_hit": round(statistics.mean(hits), 2) if hits else None,
                "mean_job_s_uncached": round(statistics.mean(encoding), 2),
                "metrics_identical": all(m == metrics[0] for m in metrics),
                "all_completed": all(
                    j["status"] == "completed" for r in rounds for name in r["order"] for j in r[name]["jobs"]
                ),
                "per_round": rounds,
                "cpus": os.cpu_count(),
                "workdir": str(root),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
