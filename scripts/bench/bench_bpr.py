"""ID-only BPR on MovieLens-100K under RecBole's README protocol: recfit vs RecBole 1.2.1, whole processes.

Each repeat runs, one after the other (alternating which goes first), or with --parallel both at
once (so that on a shared machine both see the same load), as fresh processes:

  recfit    python -m recfit train experiment=ml100k_bpr dataset.reader.path=DIR seed=S dataset.split_seed=S
  recbole   ../shared/peers/recbole/run.sh bpr S     (RecBole's quick start in its own venv)

and times each from launch to exit (imports, data loading, training with early stopping, final
evaluation, writing its files). It prints JSON: every wall time, the median ratio recfit / recbole,
the epochs each trained, and both test NDCG@10 / Recall@10 / MRR@10, with whether recfit's NDCG@10
lies inside RecBole's 3-seed range measured on this machine (0.2705-0.2928) or above it.

usage: .venv/bin/python scripts/bench/bench_bpr.py --ml100k DIR [--seed 2020] [--repeats 1] [--parallel]
       [--recbole ../shared/peers/recbole/run.sh]
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
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pandas as pd

RECBOLE_NDCG10_RANGE = (0.2705, 0.2928)  # RecBole 1.2.1 here, seeds 2022 / 2020 (ENVIRONMENT.md)
METRICS = ("ndcg@10", "recall@10", "mrr@10")
PEER = Path(__file__).resolve().parents[3] / "shared" / "peers" / "recbole" / "run.sh"  # ../shared/peers


def timed(command: list[str]) -> tuple[float, subprocess.CompletedProcess]:
    started = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True)
    wall = time.perf_counter() - started
    if result.returncode != 0:
        sys.exit(f"{command[:4]} failed:\n{result.stderr[-3000:]}")
    return wall, result


def recfit_command(args: argparse.Namespace, output: Path) -> list[str]:
    return [
        sys.executable,
        "-m",
        "recfit",
        "train",
        "experiment=ml100k_bpr",
        f"dataset.reader.path={args.ml100k}",
        f"seed={args.seed}",
        f"dataset.split_seed={args.seed}",
        "trainer.enable_progress_bar=false",
        f"paths.output_dir={output}",
    ]


def recfit_result(wall: float, output: Path) -> dict:
    (path,) = output.glob("runs/*/*/metrics.json")
    record = json.loads(path.read_text())
    curves = pd.read_csv(path.parent / "metrics.csv")
    return {
        "wall_s": round(wall, 2),
        "run_s": record["duration_s"],
        "epochs_trained": int(curves["epoch"].max()) + 1,
        "test": {name: round(record["metrics"][f"test/{name}"], 4) for name in METRICS},
    }


def recbole_result(wall: float, result: subprocess.CompletedProcess) -> dict:
    record = json.loads(result.stdout.strip().splitlines()[-1])
    return {
        "wall_s": round(wall, 2),
        "process_wall_s": round(record["process_wall_s"], 2),
        "epochs_trained": record["epochs_trained"],
        "test": {name: round(record["test_result"][name], 4) for name in METRICS},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ml100k", required=True, help="folder with MovieLens-100K's u.data, u.item, u.user")
    parser.add_argument("--seed", type=int, default=2020, help="seed of both (RecBole's default is 2020)")
    parser.add_argument("--repeats", type=int, default=1, help="interleaved recfit / RecBole pairs")
    parser.add_argument("--parallel", action="store_true", help="run each pair at the same time")
    parser.add_argument("--recbole", default=str(PEER), help="RecBole's run.sh")
    args = parser.parse_args()

    root = Path(tempfile.mkdtemp(prefix="bench_bpr_"))
    load_before = os.getloadavg()[0]
    recfit, recbole = [], []
    for repeat in range(args.repeats):
        output = root / f"recfit_{repeat}"
        commands = {
            "recfit": recfit_command(args, output),
            "recbole": ["bash", args.recbole, "bpr", str(args.seed)],
        }
        if args.parallel:  # both at once: on a shared machine they then see the same load
            with ThreadPoolExecutor(2) as pool:
                walls = dict(zip(commands, pool.map(timed, commands.values()), strict=True))
        else:
            order = list(commands) if repeat % 2 == 0 else list(reversed(commands))
            walls = {name: timed(commands[name]) for name in order}
        recfit.append(recfit_result(walls["recfit"][0], output))
        recbole.append(recbole_result(*walls["recbole"]))
    ratios = [a["wall_s"] / b["wall_s"] for a, b in zip(recfit, recbole, strict=True)]
    ndcg = statistics.median(run["test"]["ndcg@10"] for run in recfit)
    print(
        json.dumps(
            {
                "benchmark": "bpr_ml100k_whole_process",
                "seed": args.seed,
                "repeats": args.repeats,
                "parallel": args.parallel,
                "ratio_recfit_over_recbole_median": round(statistics.median(ratios), 3),
                "ratios": [round(r, 3) for r in ratios],
                "recfit_ndcg@10_in_or_above_recbole_range": ndcg >= RECBOLE_NDCG10_RANGE[0],
                "recbole_ndcg@10_range_here": RECBOLE_NDCG10_RANGE,
                "recfit": recfit,
                "recbole": recbole,
                "load_average_1min": [round(load_before, 2), round(os.getloadavg()[0], 2)],
                "cpus": os.cpu_count(),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
