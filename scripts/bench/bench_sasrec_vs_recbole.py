"""ID SASRec, recfit vs RecBole 1.2.1: same data, split, epoch budget, seeds and threads; whole processes.

For each seed, one after the other (alternating which goes first; with --parallel both at once, so
that on a shared machine both see the same load), as fresh processes with
OMP_NUM_THREADS = MKL_NUM_THREADS = --threads:

  recfit   python -m recfit train experiment=ml100k_sasrec dataset.reader.path=ML100K seed=S
           trainer.max_epochs=E
  recbole  RECBOLE_PYTHON scripts/bench/recbole_sasrec_peer.py --model SASRec --dataset ml-100k
           --set train_neg_sample_args=None --set valid_metric=NDCG@10 --set seed=S --set epochs=E
           (../shared/peers/recbole/run.py, RecBole's quick start, with its timing instrumentation)

Both: leave-one-out in time order, every prefix of a user's history a training row, full-softmax
cross-entropy, hidden 64, 2 layers, 2 heads, dropout 0.5, max length 50, Adam 1e-3, batch 2048,
full ranking over all items with the history not masked, early stopping on validation NDCG@10 with
patience 10, the best validation epoch tested. --epochs 0 lets both run to early stopping (up to
300 epochs); otherwise both train exactly --epochs epochs (fewer only if early stopping ends one).

Each side reports test NDCG@10 / Recall@10 / MRR@10 / Hit@10, epochs, seconds per training epoch,
train samples/s (training rows over training seconds: RecBole's timed `_train_epoch`, recfit's
`train_throughput` in metrics.json), full-ranking evaluation seconds (RecBole: median of its
timed `Trainer.evaluate` calls; recfit: median of --eval-repeats Lightning test loops over the
loaded best checkpoint, as `recfit eval` runs them, in a separate process) and whole-process
seconds (launch to exit). The summary gives mean +- std over seeds, whether recfit's mean test
NDCG@10 and Recall@10 lie within +-5% of RecBole's, and the ratios recfit / RecBole.

--games DIR adds the speed pair on Amazon Games (LLMRank's Games-6k; 16,859 items, 50,546 users):
both sides train the first --games-batches batches of 2048 rows for one epoch (seed = the first
seed) and evaluate all users with full ranking (4,096 users per evaluation batch on both sides).
RecBole reads the files as one .inter rebuilt from Games-6k.test.inter with the sequence position
as timestamp (its own augmentation and leave-one-out split; checked row by row against the files).

--recbole-results FILE takes RecBole's runs from JSON lines that ../shared/peers/recbole/run.py's or
the wrapper's --out wrote earlier, for the data set, seeds and budget asked, instead of running them
again (RecBole's SASRec takes minutes per epoch on 2 cores); the output says which side ran live.

usage: PYTHONPATH=src .venv/bin/python scripts/bench/bench_sasrec_vs_recbole.py --ml100k DIR
       [--seeds 2020 2021 2022] [--epochs 20] [--threads 1] [--games DIR --games-batches 20]
       [--recbole-python ~/.venvs/recbole/bin/python] [--recbole-results FILE] [--only ml100k|games]
       [--parallel] [--eval-repeats 3] [--recfit-override KEY=VALUE]
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

HERE = Path(__file__).resolve().parent
WRAPPER = HERE / "recbole_sasrec_peer.py"
RECBOLE_PYTHON = Path.home() / ".venvs" / "recbole" / "bin" / "python"  # run.sh setup's venv
METRICS = ("ndcg@10", "recall@10", "mrr@10", "hit@10")
PARITY_METRICS = ("ndcg@10", "recall@10")  # the issue's +-5% criterion
TOLERANCE = 0.05
RECBOLE_SEQUENTIAL = [
    "--model",
    "SASRec",
    "--set",
    "train_neg_sample_args=None",
    "--set",
    "valid_metric=NDCG@10",
]
RECBOLE_EPOCHS_DEFAULT = 300  # overall.yaml `epochs`, ended by stopping_step 10
RECBOLE_DATASETS = {"ml100k": "ml-100k", "games": "games-6k"}  # RecBole's dataset names
GAMES_EVAL_BATCH = 4096  # RecBole's eval_batch_size: users per full-ranking batch (sequential models)


def timed(command: list[str], env: dict[str, str]) -> tuple[float, str]:
    """Wall seconds from launch to exit, and stdout; a failure stops the benchmark with its stderr."""
    started = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - started
    if result.returncode != 0:
        sys.exit(f"{' '.join(command[:6])} ... failed:\n{result.stderr[-3000:]}")
    return wall, result.stdout


def recfit_command(dataset: str, args: argparse.Namespace, seed: int, output: Path) -> list[str]:
    common = [
        f"seed={seed}",
        "trainer.enable_progress_bar=false",
        f"paths.output_dir={output}",
    ]
    if dataset == "ml100k":
        budget = [f"trainer.max_epochs={args.epochs}"] if args.epochs else []
        overrides = ["experiment=ml100k_sasrec", f"dataset.reader.path={args.ml100k}", *budget]
    else:
        overrides = [
            *args.games_recfit,
            f"dataset.reader.path={args.games}",
            "trainer.max_epochs=1",
            f"trainer.limit_train_batches={args.games_batches}",
            f"dataset.eval_batch_size={GAMES_EVAL_BATCH}",
        ]
    return [sys.executable, "-m", "recfit", "train", *overrides, *common, *args.recfit_override]


def recbole_command(dataset: str, args: argparse.Namespace, seed: int, root: Path) -> list[str]:
    command = [str(args.recbole_python), str(WRAPPER), "--tag", f"sasrec_{dataset}_seed{seed}"]
    command += [*RECBOLE_SEQUENTIAL, "--set", f"seed={seed}", "--workdir-root", str(root)]
    if dataset == "ml100k":
        epochs = args.epochs or RECBOLE_EPOCHS_DEFAULT
        return [*command, "--dataset", "ml-100k", "--set", f"epochs={epochs}"]
    return [
        *command,
        "--games",
        str(args.games),
        "--check-games",
        "--set",
        "epochs=1",
        "--max-train-batches",
        str(args.games_batches),
    ]


def recfit_eval_seconds(run_dir: Path, repeats: int, env: dict[str, str]) -> dict:
    """Median seconds of `repeats` test loops over the run's best checkpoint, in a fresh process."""
    command = [sys.executable, __file__, "--time-eval", str(run_dir), "--eval-repeats", str(repeats)]
    _, stdout = timed(command, env)
    return json.loads(stdout.strip().splitlines()[-1])


def time_eval(run_dir: str, repeats: int) -> None:
    """(Inner process.) Load a run and time Lightning's test loop over it, as `recfit eval` does."""
    from hydra.utils import instantiate

    import recfit

    loaded = recfit.load_run(run_dir)
    seconds, metrics = [], {}
    with tempfile.TemporaryDirectory() as scratch:
        trainer = instantiate(
            loaded.cfg.trainer,
            devices=1,
            strategy="auto",
            num_nodes=1,
            logger=False,
            callbacks=[],
            enable_checkpointing=False,
            enable_progress_bar=False,
            enable_model_summary=False,
            default_root_dir=scratch,
        )
        for _ in range(repeats):
            started = time.perf_counter()
            (metrics,) = trainer.test(loaded.module, datamodule=loaded.datamodule, verbose=False)
            seconds.append(time.perf_counter() - started)
    print(
        json.dumps(
            {
                "eval_s": [round(s, 3) for s in seconds],
                "eval_median_s": round(statistics.median(seconds), 3),
                "test": {name: round(float(metrics[f"test/{name}"]), 4) for name in METRICS},
            }
        )
    )


def recfit_result(wall: float, output: Path, eval_timing: dict) -> dict:
    (path,) = output.glob("runs/*/*/metrics.json")
    record = json.loads(path.read_text())
    curves = pd.read_csv(path.parent / "metrics.csv")
    # epochs with a training loss: the final validate/test rows are logged under the next epoch number
    epochs = curves.loc[curves["train/loss_epoch"].notna(), "epoch"].nunique()
    throughput = record.get("train_throughput") or {}
    seconds = throughput.get("seconds")
    return {
        "wall_s": round(wall, 2),
        "run_s": record["duration_s"],
        "epochs_trained": epochs,
        "train_epoch_mean_s": round(seconds / epochs, 2) if seconds and epochs else None,
        "train_rows": throughput.get("samples"),
        "train_samples_per_s": throughput.get("samples_per_s"),
        "eval_median_s": eval_timing["eval_median_s"],
        "eval_s": eval_timing["eval_s"],
        "test": {name: round(record["metrics"][f"test/{name}"], 4) for name in METRICS},
        "test_again_when_timing_eval": eval_timing["test"],
        "protocol": record.get("protocol"),
        "run_dir": str(path.parent),
    }


def recbole_result(wall: float | None, record: dict, rows_per_epoch: int | None) -> dict:
    evals = [*_as_list(record.get("valid_eval_s")), *_as_list(record.get("test_eval_s"))]
    rows = record.get("rows_trained") or (rows_per_epoch or 0) * record["epochs_trained"]
    return {
        "wall_s": round(wall, 2) if wall is not None else None,
        "process_wall_s": round(record["process_wall_s"], 2),
        "epochs_trained": record["epochs_trained"],
        "train_epoch_mean_s": round(record["train_epoch_mean_s"], 2),
        "train_rows": rows,
        "train_samples_per_s": round(rows / record["train_total_s"], 2) if rows else None,
        "eval_median_s": round(statistics.median(evals), 3) if evals else None,
        "valid_eval_median_s": _round(record.get("valid_eval_median_s"), 3),
        "test_eval_s": _round(record.get("test_eval_s"), 3),
        "test": {name: round(record["test_result"][name], 4) for name in METRICS},
        "torch_threads": record.get("torch_threads"),
        "versions": record.get("versions"),
        "games_rows_checked": record.get("games_rows_checked"),
    }


def _as_list(value) -> list[float]:
    if value is None:
        return []
    return list(value) if isinstance(value, list) else [value]


def _round(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)


def ml100k_rows_per_epoch(folder: Path) -> int:
    """RecBole's SASRec training rows on ML-100K: each user's prefixes but the last two (n - 3)."""
    users, interactions = set(), 0
    for line in (folder / "u.data").read_text(encoding="latin-1").splitlines():
        if line.strip():
            users.add(line.split("\t")[0])
            interactions += 1
    return interactions - 3 * len(users)


def stored_recbole(args: argparse.Namespace, dataset: str, seed: int) -> dict | None:
    """An earlier RecBole SASRec JSON line for this data set, seed and budget (--recbole-results)."""
    if args.recbole_results is None:
        return None
    epochs = (args.epochs or RECBOLE_EPOCHS_DEFAULT) if dataset == "ml100k" else 1
    batches = None if dataset == "ml100k" else args.games_batches
    for line in args.recbole_results.read_text().splitlines():
        record = json.loads(line)
        overrides = record.get("overrides", {})
        if (
            record.get("model") == "SASRec"
            and record.get("dataset") == RECBOLE_DATASETS[dataset]
            and overrides.get("seed", 2020) == seed
            and overrides.get("epochs", RECBOLE_EPOCHS_DEFAULT) == epochs
            and record.get("max_train_batches") == batches
            and overrides.get("valid_metric") == "NDCG@10"
            and "train_neg_sample_args" in overrides
            and overrides["train_neg_sample_args"] is None
        ):
            return record
    return None


def summary(runs: list[dict]) -> dict:
    """Mean and sample std over seeds of the test metrics and timings."""
    out = {}
    for name in METRICS:
        values = [run["test"][name] for run in runs]
        out[name] = {"mean": round(statistics.mean(values), 4), "std": _std(values)}
    for key in ("train_samples_per_s", "train_epoch_mean_s", "eval_median_s", "wall_s", "epochs_trained"):
        values = [run[key] for run in runs if run.get(key) is not None]
        out[key] = {"mean": round(statistics.mean(values), 3), "std": _std(values)} if values else None
    return out


def _std(values: list[float]) -> float | None:
    return round(statistics.stdev(values), 4) if len(values) > 1 else None


def ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 3) if a and b else None


def speed_ratios(recfit: dict, recbole: dict) -> dict:
    """recfit / RecBole of the means: samples/s above 1 and seconds below 1 mean recfit is faster."""

    def mean(side: dict, key: str) -> float | None:
        return (side.get(key) or {}).get("mean")

    return {
        "train_samples_per_s_recfit_over_recbole": ratio(
            mean(recfit, "train_samples_per_s"), mean(recbole, "train_samples_per_s")
        ),
        "eval_s_recfit_over_recbole": ratio(mean(recfit, "eval_median_s"), mean(recbole, "eval_median_s")),
        "whole_process_s_recfit_over_recbole": ratio(mean(recfit, "wall_s"), mean(recbole, "wall_s")),
    }


def run_pair(dataset: str, args: argparse.Namespace, seed: int, index: int, root: Path, env: dict) -> tuple:
    """One recfit and one RecBole process (alternating order), or RecBole's stored line."""
    output = root / f"recfit_{dataset}_{seed}"
    stored = stored_recbole(args, dataset, seed)
    commands = {"recfit": recfit_command(dataset, args, seed, output)}
    if stored is None:
        commands["recbole"] = recbole_command(dataset, args, seed, root / "recbole")
    if args.parallel and len(commands) == 2:  # both at once: on a shared machine they see the same load
        with ThreadPoolExecutor(2) as pool:
            done = dict(zip(commands, pool.map(lambda c: timed(c, env), commands.values()), strict=True))
    else:
        order = list(commands) if index % 2 == 0 else list(reversed(commands))
        done = {name: timed(commands[name], env) for name in order}
    wall, _ = done["recfit"]
    recfit = recfit_result(wall, output, recfit_eval_seconds(output_run(output), args.eval_repeats, env))
    if stored is None:
        wall, stdout = done["recbole"]
        recbole = recbole_result(wall, json.loads(stdout.strip().splitlines()[-1]), args.ml100k_rows)
        recbole["source"] = "live"
    else:
        recbole = recbole_result(stored["process_wall_s"], stored, args.ml100k_rows)
        recbole["source"] = f"{args.recbole_results} (process_wall_s as wall_s)"
    return recfit, recbole


def output_run(output: Path) -> Path:
    (path,) = output.glob("runs/*/*/metrics.json")
    return path.parent


def compare(dataset: str, args: argparse.Namespace, seeds: list[int], root: Path, env: dict) -> dict:
    recfit, recbole = [], []
    for index, seed in enumerate(seeds):
        ours, peer = run_pair(dataset, args, seed, index, root, env)
        recfit.append({"seed": seed, **ours})
        recbole.append({"seed": seed, **peer})
    ours, peer = summary(recfit), summary(recbole)
    result = {
        "seeds": seeds,
        "recfit_mean": ours,
        "recbole_mean": peer,
        "ratios": speed_ratios(ours, peer),
        "recfit": recfit,
        "recbole": recbole,
    }
    if dataset == "ml100k":
        result["recfit_within_5pct_of_recbole"] = {
            name: {
                "relative_difference": round(ours[name]["mean"] / peer[name]["mean"] - 1, 4),
                "within": abs(ours[name]["mean"] / peer[name]["mean"] - 1) <= TOLERANCE,
            }
            for name in PARITY_METRICS
        }
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--ml100k", type=Path, default=Path("/work/shared/data/ml-100k"), help="u.data's folder"
    )
    parser.add_argument(
        "--games", type=Path, default=None, help="Games-6k files' folder (adds the Games pair)"
    )
    parser.add_argument("--seeds", type=int, nargs="+", default=[2020, 2021, 2022], help="seeds of both")
    parser.add_argument("--epochs", type=int, default=20, help="fixed epoch budget; 0 = early stopping only")
    parser.add_argument("--threads", type=int, default=1, help="OMP/MKL threads of every process")
    parser.add_argument("--eval-repeats", type=int, default=3, help="recfit test loops timed per run")
    parser.add_argument("--games-batches", type=int, default=20, help="training batches on Games")
    parser.add_argument(
        "--games-recfit",
        nargs="+",
        default=["experiment=ml100k_sasrec", "dataset=amazon_games", "experiment_name=games_sasrec_id"],
        help="recfit overrides that make the Games ID SASRec run (reader path and budget are added)",
    )
    parser.add_argument(
        "--recfit-override", action="append", default=[], help="one more recfit override (repeatable)"
    )
    parser.add_argument("--parallel", action="store_true", help="run each recfit / RecBole pair at once")
    parser.add_argument("--only", choices=("ml100k", "games"), default=None, help="one of the two pairs")
    parser.add_argument("--recbole-python", type=Path, default=RECBOLE_PYTHON, help="RecBole venv's python")
    parser.add_argument("--recbole-results", type=Path, default=None, help="reuse RecBole runs' JSON lines")
    parser.add_argument("--time-eval", default=None, help=argparse.SUPPRESS)  # the inner timing process
    args = parser.parse_args()
    if args.time_eval:
        time_eval(args.time_eval, args.eval_repeats)
        return
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "MKL_NUM_THREADS": str(args.threads)}
    args.ml100k_rows = ml100k_rows_per_epoch(args.ml100k)
    root = Path(tempfile.mkdtemp(prefix="bench_sasrec_"))
    load_before, started = os.getloadavg(), time.perf_counter()
    report: dict = {
        "benchmark": "sasrec_recfit_vs_recbole",
        "ml100k_epochs": args.epochs or f"early stopping (RecBole up to {RECBOLE_EPOCHS_DEFAULT})",
        "threads": args.threads,
    }
    if args.only != "games":
        report["ml100k"] = compare("ml100k", args, args.seeds, root, env)
    if args.games is not None and args.only != "ml100k":
        report["games"] = compare("games", args, args.seeds[:1], root, env)
        report["games"]["budget"] = f"1 epoch, first {args.games_batches} batches of 2048 rows"
    report.update(
        load_average_before=[round(x, 2) for x in load_before],
        load_average_after=[round(x, 2) for x in os.getloadavg()],
        cpus=os.cpu_count(),
        bench_wall_s=round(time.perf_counter() - started, 1),
        work_dir=str(root),
    )
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
