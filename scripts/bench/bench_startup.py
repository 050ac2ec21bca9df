"""How fast the CLI answers before any work: `recfit train --help` and a config error vs `import torch`.

Each command runs as a fresh subprocess (`python -m recfit ...`, the same interpreter), --repeats
times, the three commands interleaved so that a busy machine slows them alike; reported: median wall
seconds, the ratio to `python -c "import torch"` (target <= 1: the CLI answers before torch could
even load), and whether the command imported torch, transformers or lightning at all (from
`python -X importtime`). Prints one JSON object; writes nothing.

usage: python scripts/bench/bench_startup.py [--repeats 5]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time

COMMANDS = {
    "train_help": ["-m", "recfit", "train", "--help"],
    "config_error": ["-m", "recfit", "train", "trainer.max_epochz=1"],
    "import_torch": ["-c", "import torch"],
}
HEAVY = ("torch", "transformers", "lightning", "pytorch_lightning")


def wall_time(arguments: list[str]) -> tuple[float, subprocess.CompletedProcess]:
    """Seconds from start to exit of `python ARGUMENTS`."""
    start = time.perf_counter()
    done = subprocess.run([sys.executable, *arguments], capture_output=True, text=True, check=False)
    return time.perf_counter() - start, done


def heavy_imports(arguments: list[str]) -> list[str]:
    """Top-level heavy packages the command imports, read from -X importtime's report."""
    done = subprocess.run([sys.executable, "-X", "importtime", *arguments], capture_output=True, text=True)
    names = {
        line.rsplit("|", 1)[-1].strip().split(".")[0] for line in done.stderr.splitlines() if "|" in line
    }
    return sorted(names & set(HEAVY))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    for arguments in COMMANDS.values():  # warm the file cache (and .pyc files) once
        wall_time(arguments)
    seconds: dict[str, list[float]] = {name: [] for name in COMMANDS}
    outcome = {}
    for _ in range(args.repeats):
        for name, arguments in COMMANDS.items():
            elapsed, done = wall_time(arguments)
            seconds[name].append(elapsed)
            outcome[name] = {
                "returncode": done.returncode,
                "stderr_last_line": (done.stderr.strip().splitlines() or [""])[-1],
            }
    torch_median = statistics.median(seconds["import_torch"])
    report = {"repeats": args.repeats, "python": sys.version.split()[0], "commands": {}}
    for name, arguments in COMMANDS.items():
        median = statistics.median(seconds[name])
        report["commands"][name] = {
            "command": " ".join(["python", *arguments]),
            "median_s": median,
            "all_s": seconds[name],
            "ratio_to_import_torch": median / torch_median,
            "heavy_imports": heavy_imports(arguments),
            **outcome[name],
        }
    report["target_met"] = all(
        report["commands"][name]["ratio_to_import_torch"] <= 1.0 for name in ("train_help", "config_error")
    )
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
