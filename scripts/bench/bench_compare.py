"""How `recfit compare` scales with the number of run folders, against a naive pandas loader.

Writes N synthetic run folders (as `recfit train -m` would: metrics.json, .hydra/config.yaml with
~60 keys, .hydra/overrides.yaml, metrics.csv with 50 rows, per_user.parquet with --users users)
into a temporary folder, then times, in this process, at each N (median of --repeats):

  table             recfit compare DIRS --format json --output FILE
  group_baseline    the same with --group-by optimizer.head_lr --baseline optimizer.head_lr=0.0001
  peer              what a researcher would write instead: json.load every metrics.json,
                    yaml.safe_load every config, pd.read_parquet every per_user.parquet, then
                    pandas.json_normalize of the records (no differing keys, tests or output)

and prints JSON: seconds per N, a linear fit (seconds per run), time(N_max) / time(N_min) (linear
growth gives N_max / N_min, 8 for the default sizes), and recfit / peer time ratios at each N.

usage: .venv/bin/python scripts/bench/bench_compare.py [--sizes 125,250,500,1000] [--repeats 3] [--users 1000]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from recfit.compare.cli import run

HEAD_LRS = (0.0001, 0.0003, 0.001, 0.003, 0.01)
METRICS = [f"{name}@{k}" for k in (10, 20) for name in ("recall", "ndcg", "mrr", "hit", "precision")]
EPOCHS = 10
STEPS_PER_EPOCH = 4  # 4 training-step rows + 1 validation row per epoch: 50 rows


def config(job: int, folder: Path) -> dict:
    """A resolved config shaped like recfit's (about 60 leaf keys); head_lr, dropout and seed vary."""
    seed = job // len(HEAD_LRS) % 5
    return {
        "experiment_name": "bench",
        "seed": seed,
        "test": True,
        "early_stopping_patience": 0,
        "paths": {"output_dir": str(folder.parents[2]), "data_dir": "data"},
        "backbone": {
            "modality": "text",
            "name_or_path": "sentence-transformers/all-MiniLM-L6-v2",
            "model_type": None,
            "tokenizer": None,
            "pretrained": True,
            "pooling": "mean",
            "freeze": "2",
            "max_length": 32,
            "image_size": 224,
            "gradient_checkpointing": False,
            "trust_remote_code": False,
        },
        "dataset": {
            "split": {"val": 0.1, "test": 0.1, "stratify": False, "bootstrap": 0},
            "split_seed": 0,
            "batch_size": 64,
            "eval_batch_size": 256,
            "num_workers": 0,
            "num_users": 1000,
            "num_items": 500,
            "interactions_per_user": 12,
            "preference_strength": 0.9,
            "seed": 0,
        },
        "task": {
            "name": "ranking",
            "metric": "ndcg@10",
            "mode": "max",
            "topk": [10, 20],
            "rating_threshold": 4.0,
        },
        "model": {"name": "two_tower", "embedding_dim": 64, "dropout": (0.0, 0.1, 0.2)[job % 3]},
        "loss": {"name": "cross_entropy", "temperature": 0.05, "logq_correction": True},
        "optimizer": {
            "backbone_lr": 5e-05,
            "head_lr": HEAD_LRS[job % len(HEAD_LRS)],
            "weight_decay": 0.01,
            "extra": {},
        },
        "scheduler": {"warmup_ratio": 0.1},
        "trainer": {
            "accelerator": "auto",
            "devices": "auto",
            "strategy": "auto",
            "num_nodes": 1,
            "max_epochs": EPOCHS,
            "max_steps": -1,
            "precision": "32-true",
            "deterministic": True,
            "gradient_clip_val": 1.0,
            "accumulate_grad_batches": 1,
            "limit_train_batches": 1.0,
            "limit_val_batches": 1.0,
            "limit_test_batches": 1.0,
            "val_check_interval": 1.0,
            "log_every_n_steps": 10,
            "enable_progress_bar": False,
            "num_sanity_val_steps": 0,
        },
        "logger": {"csv": {"name": "", "version": ""}},
    }


def write_run(folder: Path, job: int, users: int, rng: np.random.Generator) -> None:
    """One run folder; every 50th job failed (no metrics, no per_user.parquet)."""
    folder.mkdir(parents=True)
    cfg = config(job, folder)
    failed = job % 50 == 49
    per_user = pd.DataFrame({"user": np.arange(users)})
    for name in METRICS:
        per_user[name] = rng.uniform(0, 0.4, users).astype("float32")
    metrics = {} if failed else {f"test/{name}": float(per_user[name].mean()) for name in METRICS}
    metrics.update({} if failed else {f"val/{name}": float(rng.uniform(0, 0.4)) for name in METRICS})
    summary = {
        "status": "failed" if failed else "completed",
        "experiment": "bench",
        "task": "ranking",
        "monitor": "val/ndcg@10",
        "mode": "max",
        "seed": cfg["seed"],
        "metrics": metrics,
        "error": "RuntimeError: CUDA out of memory" if failed else None,
        "started_at": "2026-01-01T10:00:00+00:00",
        "run_dir": str(folder),
        "data": "synthetic",
        "parameters": {"total": 1_036_223, "trainable": 25_919},
        "best_checkpoint": None if failed else str(folder / "checkpoints" / "best.ckpt"),
        "finished_at": "2026-01-01T10:05:00+00:00",
        "duration_s": float(rng.uniform(100, 300)),
    }
    (folder / "metrics.json").write_text(json.dumps(summary, indent=2))
    (folder / ".hydra").mkdir()
    (folder / ".hydra" / "config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    overrides = [
        f"optimizer.head_lr={cfg['optimizer']['head_lr']}",
        f"model.dropout={cfg['model']['dropout']}",
    ]
    (folder / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump([*overrides, f"seed={cfg['seed']}"]))
    rows = []
    for epoch in range(EPOCHS):
        step = epoch * STEPS_PER_EPOCH
        rows += [{"epoch": epoch, "step": step + i, "train/loss_step": rng.uniform(3, 5)} for i in range(4)]
        rows.append(
            {"epoch": epoch, "step": step + 3, **{f"val/{name}": rng.uniform(0, 0.4) for name in METRICS}}
        )
    pd.DataFrame(rows).to_csv(folder / "metrics.csv", index=False)
    if not failed:
        per_user.to_parquet(folder / "per_user.parquet", index=False)


def write_sweeps(root: Path, sizes: list[int], users: int) -> list[Path]:
    """max(sizes) runs split into sweep folders of min(sizes) jobs: size N reads the first N / min."""
    chunk, rng, sweeps = min(sizes), np.random.default_rng(0), []
    for number in range(max(sizes) // chunk):
        sweep = root / "sweeps" / "bench" / f"2026-01-01_10-00-00_{number:06d}"
        for job in range(chunk):
            write_run(sweep / str(job), number * chunk + job, users, rng)
        sweeps.append(sweep)
    return sweeps


def naive_peer(folders: list[Path]) -> pd.DataFrame:
    """The loader a researcher writes in a notebook: everything into one flat DataFrame."""
    records = []
    for metrics_file in sorted(path for folder in folders for path in folder.rglob("metrics.json")):
        record = json.loads(metrics_file.read_text())
        record["config"] = yaml.safe_load((metrics_file.parent / ".hydra" / "config.yaml").read_text())
        per_user = metrics_file.parent / "per_user.parquet"
        if per_user.exists():
            record["per_user_mean"] = pd.read_parquet(per_user).mean(numeric_only=True).to_dict()
        records.append(record)
    return pd.json_normalize(records)


def median_seconds(action: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        action()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def compare_or_fail(arguments: list[str]) -> None:
    messages = io.StringIO()
    with contextlib.redirect_stderr(messages):  # "wrote FILE", once per call
        code = run(arguments)
    if code != 0:
        raise SystemExit(f"recfit compare failed: {messages.getvalue()}")


def scaling(seconds: dict[int, float]) -> dict:
    sizes = sorted(seconds)
    slope, intercept = np.polyfit(sizes, [seconds[n] for n in sizes], 1)
    return {
        "seconds": {str(n): round(seconds[n], 4) for n in sizes},
        "linear_fit_s_per_run": float(f"{slope:.3g}"),
        "linear_fit_intercept_s": round(float(intercept), 4),
        f"ratio_{sizes[-1]}_over_{sizes[0]}": round(seconds[sizes[-1]] / seconds[sizes[0]], 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--sizes", default="125,250,500,1000", help="numbers of run folders (multiples of the first)"
    )
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--users", type=int, default=1000, help="rows of each per_user.parquet")
    arguments = parser.parse_args()
    sizes = sorted(int(size) for size in arguments.sizes.split(","))
    if any(size % sizes[0] for size in sizes):
        parser.error("every size must be a multiple of the smallest")

    with tempfile.TemporaryDirectory(prefix="bench_compare_") as temporary:
        root = Path(temporary)
        start = time.perf_counter()
        sweeps = write_sweeps(root, sizes, arguments.users)
        print(f"wrote {max(sizes)} run folders in {time.perf_counter() - start:.1f} s", file=sys.stderr)
        output = str(root / "table.json")
        grouped = ["--group-by", "optimizer.head_lr", "--baseline", f"optimizer.head_lr={HEAD_LRS[0]}"]
        grouped += ["--test", "users"]  # the per-user test reads every per_user.parquet: what this measures
        commands = {
            "table": lambda dirs: compare_or_fail([*dirs, "--format", "json", "--output", output]),
            "group_baseline": lambda dirs: compare_or_fail(
                [*dirs, *grouped, "--format", "json", "--output", output]
            ),
            "peer": lambda dirs: naive_peer([Path(folder) for folder in dirs]),
        }
        commands["group_baseline"]([str(sweeps[0])])  # warm-up: imports, file system cache
        seconds: dict[str, dict[int, float]] = {name: {} for name in commands}
        for size in sizes:
            dirs = [str(sweep) for sweep in sweeps[: size // sizes[0]]]
            for name, command in commands.items():
                seconds[name][size] = median_seconds(
                    lambda command=command, dirs=dirs: command(dirs), arguments.repeats
                )
            print(
                f"N={size}: " + ", ".join(f"{n} {s[size]:.2f} s" for n, s in seconds.items()), file=sys.stderr
            )

    report = {
        "command": " ".join(["python", "scripts/bench/bench_compare.py", *sys.argv[1:]]),
        "sizes": sizes,
        "users_per_run": arguments.users,
        "repeats": arguments.repeats,
        **{name: scaling(values) for name, values in seconds.items()},
        "recfit_over_peer": {
            name: {str(size): round(seconds[name][size] / seconds["peer"][size], 3) for size in sizes}
            for name in ("table", "group_baseline")
        },
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
