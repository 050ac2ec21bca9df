"""Run-folder size: this code vs the code before issue 16 (commit f510c12), same jobs, same run.

Each job is a real `recfit train` process, run once with this checkout's sources and once with the
baseline's (`--baseline SRC`, a checkout of f510c12: `git worktree add ../wt-baseline f510c12`),
one after the other, sharing one data folder (token and item-vector caches are content-addressed):

  quickstart       the default run: all-MiniLM-L6-v2 with freeze=2, synthetic data, 4 epochs
  ml100k_frozen    experiment=ml100k_ranking: frozen all-MiniLM-L6-v2, MovieLens-100K (--ml100k DIR)
  text_csv_bert    experiment=text_csv_bert: all-MiniLM-L6-v2 fully fine-tuned as a classifier, on a CSV
                   of --csv-rows Amazon game titles (bench_text_finetune.py's CSV), 1 epoch

It prints JSON: each run folder's total size and its largest files, the ratio baseline / this, and
whether the final metrics are identical (they must be: only what checkpoints hold changed).
Sizes do not depend on machine load; the wall times printed beside them do.

usage: .venv/bin/python scripts/bench/bench_run_folder_size.py --baseline ../wt-baseline/src
       [--ml100k ../shared/data/ml-100k] [--ml100k-epochs 1] [--csv-rows 256]
       [--jobs quickstart,ml100k_frozen,text_csv_bert]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
MB = 1_000_000


def jobs(args: argparse.Namespace, root: Path) -> dict[str, list[str]]:
    csv_path = root / "texts.csv"
    if "text_csv_bert" in args.jobs.split(",") and not csv_path.exists():
        sys.path.insert(0, str(Path(__file__).parent))
        from bench_text_finetune import write_csv

        write_csv(csv_path, args.csv_rows)
    return {
        "quickstart": [],
        "ml100k_frozen": [
            "experiment=ml100k_ranking",
            f"dataset.reader.path={args.ml100k}",
            f"trainer.max_epochs={args.ml100k_epochs}",
        ],
        "text_csv_bert": [
            "experiment=text_csv_bert",
            f"dataset.reader.path={csv_path}",
            "trainer.max_epochs=1",
        ],
    }


def run(sources: Path, overrides: list[str], output: Path, data: Path) -> dict:
    """One `recfit train` with `sources` first on the path; its folder's size, files and metrics."""
    if "reader:" not in (sources.parent / "conf" / "dataset" / "text_csv.yaml").read_text():
        overrides = [o.replace("dataset.reader.", "dataset.", 1) for o in overrides]  # before dataset.reader
    command = [sys.executable, "-m", "recfit", "train", *overrides, "trainer.enable_progress_bar=false",
               f"paths.output_dir={output}", f"paths.data_dir={data}"]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(sources), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    started = time.perf_counter()
    finished = subprocess.run(command, env=env, cwd=sources.parent, capture_output=True, text=True)
    wall = time.perf_counter() - started
    if finished.returncode != 0:
        raise SystemExit(f"{command} failed:\n{finished.stderr[-3000:]}")
    (record_path,) = output.glob("runs/*/*/metrics.json")
    folder = record_path.parent
    files = {str(p.relative_to(folder)): p.stat().st_size for p in folder.rglob("*") if p.is_file()}
    largest = dict(sorted(files.items(), key=lambda item: -item[1])[:4])
    return {
        "size_mb": round(sum(files.values()) / MB, 2),
        "largest_mb": {name: round(size / MB, 2) for name, size in largest.items()},
        "metrics": json.loads(record_path.read_text())["metrics"],
        "wall_s": round(wall, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--baseline", type=Path, required=True, help="src/ of a checkout of f510c12")
    parser.add_argument("--ml100k", type=Path, default=REPO.parent / "shared" / "data" / "ml-100k")
    parser.add_argument("--ml100k-epochs", type=int, default=1, help="size does not depend on it")
    parser.add_argument("--csv-rows", type=int, default=256, help="rows of the text_csv_bert CSV")
    parser.add_argument("--jobs", default="quickstart,ml100k_frozen,text_csv_bert")
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args()
    root = Path(args.workdir or tempfile.mkdtemp(prefix="bench_run_folder_"))
    root.mkdir(parents=True, exist_ok=True)
    data = root / "data"
    results = {}
    for name in args.jobs.split(","):
        overrides = jobs(args, root)[name]
        this = run(REPO / "src", overrides, root / name / "this", data)
        before = run(args.baseline.resolve(), overrides, root / name / "baseline", data)
        results[name] = {
            "overrides": overrides,
            "this": this,
            "baseline": before,
            "ratio_baseline_over_this": round(before["size_mb"] / this["size_mb"], 1),
            "metrics_identical": this["metrics"] == before["metrics"],
        }
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
