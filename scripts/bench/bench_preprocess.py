"""Peak memory and time of recfit's data path on 100k / 300k / 1M synthetic interactions vs plain pandas.

For each size, a synthetic interaction file in RecBole's atomic format (user_id:token, item_id:token,
rating:float, timestamp:float; about 165 interactions per user as in MovieLens-1M, sqrt(20 x size)
items, popularity-skewed; 1M interactions: 6,060 users x 4,472 items) is written to a temporary
folder. Then, each in a fresh child process:

  recfit  everything `recfit train` does before the model (run.build() up to the model): compose the
          config (dataset=recbole, split=ratio 0.8/0.1/0.1 per user, task=ranking, model=mf, loss=bpr,
          as in experiment=ml100k_bpr), read_recbole_atomic, filter_interactions, the split,
          targets_for each split, RecDataModule, and its train/val/test dataloaders (the ranking
          collators group every user's held-out and seen items)
  peer    what one would write by hand: pandas read_csv of the same file, factorize the ids, shuffle,
          sort by user, a groupby cumcount per-user 0.8/0.1/0.1 split, and each user's seen items
          (a groupby of the training rows)

Reported per child: wall seconds of the work (imports excluded, reported apart), peak resident
memory (VmHWM from /proc/self/status: includes the interpreter and its imports, the number an OOM
killer sees), and the peak minus the resident memory after imports (what the data path adds).
Ratios recfit / peer, and how each grows from the smallest size to the largest. Target: recfit's
peak under 2 GiB at 1M. Prints one JSON object; writes only to a temporary folder.

usage: python scripts/bench/bench_preprocess.py [--sizes 100000,300000,1000000] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

GIB = 2**30


def memory_kib(field: str) -> int:
    """A VmXXX line of /proc/self/status, in KiB (Linux)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def write_interactions(folder: Path, size: int, seed: int = 0) -> Path:
    """<folder>/bench/bench.inter with `size` distinct (user, item) rows, MovieLens-1M proportions."""
    rng = np.random.default_rng(seed)
    users, items = max(size // 165, 50), max(int((20 * size) ** 0.5), 50)  # 1M: 6,060 x 4,472 (ML-1M)
    if users * items < 3 * size:
        raise ValueError(f"{size} interactions are too few for distinct (user, item) rows")
    popularity = 1.0 / np.arange(1, items + 1) ** 0.8
    user_activity = rng.lognormal(0.0, 1.0, users)
    pairs = np.empty(0, dtype=np.int64)
    while len(pairs) < size:  # draw, deduplicate, top up
        extra = int((size - len(pairs)) * 1.2) + 100
        user = rng.choice(users, extra, p=user_activity / user_activity.sum())
        item = rng.choice(items, extra, p=popularity / popularity.sum())
        pairs = np.unique(np.concatenate([pairs, user * items + item]))
    pairs = rng.permutation(pairs)[:size]
    user, item = pairs // items, pairs % items
    ratings = rng.integers(1, 6, size)
    timestamps = 874_724_710 + rng.integers(0, 200_000_000, size)
    path = folder / "bench"
    path.mkdir(parents=True, exist_ok=True)
    file = path / "bench.inter"
    with file.open("w") as out:
        out.write("user_id:token\titem_id:token\trating:float\ttimestamp:float\n")
        # ids as RecBole data sets have them: strings, not 0..n-1
        np.savetxt(out, np.stack([user + 1, item + 1, ratings, timestamps], 1), fmt="%d", delimiter="\t")
    return file


def run_recfit(file: Path) -> dict:
    """recfit's data path, as run.build() runs it before building the model."""
    from recfit.config import compose, validate
    from recfit.data.configured import data_source, loading
    from recfit.data.datamodule import RecDataModule
    from recfit.training.run import batch_plan

    after_imports = memory_kib("VmRSS")
    start = time.perf_counter()
    overrides = ["backbone=none", "dataset=recbole", f"dataset.reader.path={file.parent}", "split=ratio",
                 "task=ranking", "model=mf", "loss=bpr", "optimizer=adam", "scheduler=constant"]  # fmt: skip
    cfg = compose(overrides)
    validate(cfg)
    datamodule = RecDataModule(data_source(cfg), loading(cfg), batch_plan(cfg, None, None))
    datamodule.setup()
    splits = datamodule.splits
    loaders = [datamodule.train_dataloader(), datamodule.val_dataloader(), datamodule.test_dataloader()]
    seconds = time.perf_counter() - start
    return {
        "seconds": seconds,
        "after_imports_kib": after_imports,
        "rows": {name: len(getattr(splits, name)) for name in ("train", "val", "test")},
        "eval_users": [len(loader.dataset) for loader in loaders[1:]],
    }


def run_peer(file: Path) -> dict:
    """The same file split by hand with pandas: read, code the ids, per-user 0.8/0.1/0.1 random split."""
    import pandas as pd

    after_imports = memory_kib("VmRSS")
    start = time.perf_counter()
    frame = pd.read_csv(file, sep="\t")
    frame.columns = [column.split(":")[0] for column in frame.columns]
    frame["user"], _ = pd.factorize(frame["user_id"])
    frame["item"], _ = pd.factorize(frame["item_id"])
    frame = frame.sample(frac=1.0, random_state=0).sort_values("user", kind="stable")
    position = frame.groupby("user").cumcount()
    count = frame.groupby("user")["user"].transform("size")
    share = position / count
    train, val, test = frame[share < 0.8], frame[(share >= 0.8) & (share < 0.9)], frame[share >= 0.9]
    seen = train.groupby("user")["item"].unique()
    seconds = time.perf_counter() - start
    return {
        "seconds": seconds,
        "after_imports_kib": after_imports,
        "rows": {"train": len(train), "val": len(val), "test": len(test)},
        "seen_users": len(seen),
    }


def child(which: str, file: Path) -> None:
    """One measurement in this (fresh) process; prints one JSON line."""
    result = run_recfit(file) if which == "recfit" else run_peer(file)
    result["peak_kib"] = memory_kib("VmHWM")
    print(json.dumps(result))


def measure(which: str, file: Path) -> dict:
    """Run `which` in a fresh interpreter and return what it printed (plus its import time)."""
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, __file__, "--child", which, str(file)], capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"{which} failed: {done.stderr.strip()[-2000:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    result["process_seconds"] = time.perf_counter() - start
    return result


def summary(runs: list[dict]) -> dict:
    """Medians over repeats; memory from the run with the median time (peaks vary little)."""
    seconds = statistics.median(run["seconds"] for run in runs)
    peak = statistics.median(run["peak_kib"] for run in runs) * 1024
    added = statistics.median(run["peak_kib"] - run["after_imports_kib"] for run in runs) * 1024
    return {
        "seconds": seconds,
        "all_seconds": [run["seconds"] for run in runs],
        "process_seconds": statistics.median(run["process_seconds"] for run in runs),
        "peak_rss_gib": peak / GIB,
        "added_by_data_path_gib": added / GIB,
        "rows": runs[0]["rows"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100000,300000,1000000")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--child", nargs=2, metavar=("WHICH", "FILE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child[0], Path(args.child[1]))
        return
    report: dict = {"repeats": args.repeats, "sizes": []}
    with tempfile.TemporaryDirectory(prefix="bench_preprocess_") as folder:
        for size in (int(part) for part in args.sizes.split(",")):
            file = write_interactions(Path(folder) / str(size), size)
            runs: dict[str, list[dict]] = {"recfit": [], "peer": []}
            for _ in range(args.repeats):  # interleaved, so that load from other jobs hits both
                for which in runs:
                    runs[which].append(measure(which, file))
            row = {"interactions": size, "file_mib": file.stat().st_size / 2**20}
            row.update({which: summary(results) for which, results in runs.items()})
            row["time_ratio_recfit_over_peer"] = row["recfit"]["seconds"] / row["peer"]["seconds"]
            row["peak_ratio_recfit_over_peer"] = row["recfit"]["peak_rss_gib"] / row["peer"]["peak_rss_gib"]
            print(json.dumps(row), file=sys.stderr)
            report["sizes"].append(row)
    first, last = report["sizes"][0], report["sizes"][-1]
    factor = last["interactions"] / first["interactions"]
    report["growth_smallest_to_largest"] = {
        "interactions": factor,
        **{
            f"{which}_{what}": last[which][what] / first[which][what]
            for which in ("recfit", "peer")
            for what in ("seconds", "added_by_data_path_gib")
        },
    }
    report["target_peak_under_2_gib"] = last["recfit"]["peak_rss_gib"] < 2.0
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
