"""Full-ranking top-10 evaluation: recfit's evaluator vs RecBole's own evaluator vs torchmetrics.

One seeded score problem per size (users x items): user and item vectors (d=64, float32, normal), so
score = user . item; per user a history (masked, never ranked) and held-out positives, drawn with a
popularity skew and per-user counts like MovieLens (about 100 interactions per user, long-tailed,
10% of each user's items held out, at least 1); each user vector leans towards the user's items, as a
trained model's would. Every evaluator gets the same vectors, history and
positives, converted beforehand (not timed) to its own native input format, and ranks users in
chunks of --user-chunk users; timed is scoring (the matrix product), masking, top-k and metrics:

  recfit       recfit.evaluation.ranking.top_k_items + ranking_metrics per user chunk (the code the
               Lightning module runs), history as (row, item) index pairs from the ranking collator's
               SeenIndex (recfit.data.seen_pairs), positives as padded [B, T] codes, the score
               matrix's memory reused from chunk to chunk (recfit.evaluation.ranking.ScoreBuffer)
  recbole      RecBole 1.2.1's own code, run in its own venv (../shared/peers/recbole/run.sh setup)
               by recbole_eval_peer.py on the same arrays saved to a temporary .npz: per chunk the
               score matrix with the history set to -inf (the lines of Trainer._full_sort_batch_eval),
               then Collector.eval_batch_collect (torch.topk, positive matrix, gather) and at the end
               Evaluator.evaluate (recbole.evaluator.metrics: NumPy Recall/NDCG/MRR/Hit/Precision/MAP)
  torchmetrics RetrievalRecall/NormalizedDCG/MRR/HitRate/Precision(top_k=10, empty_target_action=
               "skip") over the flattened (user, item) rows that are not history; scores are shifted
               to be > 0 because torchmetrics ignores relevant items scored <= 0; the flat arrays are
               built per chunk inside the timing (torchmetrics needs them; building them is cheap)

Values: the user-averaged metrics of each peer, and the max absolute difference from recfit's.
Output: one JSON object on stdout. Nothing is written outside a temporary folder.

usage: python scripts/bench/bench_ranking.py [--sizes 943x1682,6040x3706,50000x20000] [--repeats 3]
       [--user-chunk 1024] [--torchmetrics-max-cells 2e8] [--recbole-python PATH]

Issue 16's re-measurement on a quiet machine: `--sizes 6040x3706,50000x20000 --torchmetrics-max-cells 0`
takes about 8 minutes with the default 3 repeats (50,000 x 20,000: about 1 min per recfit run and
1.5 min per RecBole run when idle); `--repeats 1` takes about 3.
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

from recfit.data.seen_pairs import SeenIndex
from recfit.evaluation.ranking import ScoreBuffer, SeenPairs, ranking_metrics, top_k_items

K = 10
DIM = 64
SIGNAL = 2.0  # weight of the items a user interacted with in its vector
METRICS = ("recall", "ndcg", "mrr", "hit", "precision", "map")
PEER_SCRIPT = Path(__file__).with_name("recbole_eval_peer.py")
DEFAULT_RECBOLE_PYTHON = (
    Path(os.environ.get("RECBOLE_VENV", Path.home() / ".venvs" / "recbole")) / "bin/python"
)


def make_problem(users: int, items: int, seed: int = 0) -> dict[str, np.ndarray]:
    """Vectors, history pairs and held-out pairs (both sorted by user), MovieLens-like counts."""
    rng = np.random.default_rng(seed)
    user_vectors = rng.standard_normal((users, DIM), dtype=np.float32)
    item_vectors = rng.standard_normal((items, DIM), dtype=np.float32)
    # per-user counts: lognormal around ~100, at least 20 (the MovieLens minimum), at most half the catalogue
    counts = np.clip(rng.lognormal(np.log(60), 0.9, users).astype(np.int64) + 20, 20, items // 2)
    popularity = 1.0 / np.arange(1, items + 1) ** 0.8
    popularity = rng.permutation(popularity / popularity.sum())
    owner = np.repeat(np.arange(users), counts)
    pairs = np.sort(owner * items + rng.choice(items, owner.size, p=popularity))
    pairs = pairs[np.concatenate([[True], pairs[1:] != pairs[:-1]])]  # distinct, sorted by user
    owner, item = pairs // items, pairs % items
    # a random 10% of each user's items (at least one) is held out
    order = np.argsort(owner + rng.random(owner.size))  # by user, then in random order
    owner, item = owner[order], item[order]
    first = np.searchsorted(owner, np.arange(users))
    rank_in_user = np.arange(owner.size) - first[owner]
    size = np.bincount(owner, minlength=users)
    held = rank_in_user < np.maximum(1, size // 10)[owner]
    history = np.stack([owner[~held], item[~held]], axis=1)
    positives = np.stack([owner[held], item[held]], axis=1)
    # like a trained model: a user's vector leans towards all of its items, the history included (so an
    # unmasked history would crowd the top 10) and the held-out ones (so the metrics are not near 0)
    taste = torch.zeros(users, DIM).index_add_(
        0, torch.from_numpy(owner), torch.from_numpy(item_vectors[item])
    )
    user_vectors += SIGNAL * taste.numpy() / np.sqrt(size)[:, None].astype(np.float32)
    return {
        "user_vectors": user_vectors,
        "item_vectors": item_vectors,
        "history": history,
        "positives": positives,
    }


def padded(pairs: np.ndarray, users: int) -> torch.Tensor:
    """(user, item) pairs sorted by user -> [users, max count] item codes, -1 = padding."""
    counts = np.bincount(pairs[:, 0], minlength=users)
    out = np.full((users, max(int(counts.max()), 1)), -1, dtype=np.int64)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    out[pairs[:, 0], np.arange(len(pairs)) - starts[pairs[:, 0]]] = pairs[:, 1]
    return torch.from_numpy(out)


def recfit_eval(problem: dict, chunk: int) -> tuple[float, dict[str, np.ndarray]]:
    """recfit's evaluator as the Lightning module runs it, one user chunk at a time."""
    users = problem["user_vectors"].shape[0]
    user_vectors = torch.from_numpy(problem["user_vectors"])
    item_vectors = torch.from_numpy(problem["item_vectors"])
    targets = padded(problem["positives"], users)
    # what the data module's collator gives each batch (built beforehand, as a DataLoader would):
    # the history as (row, item) pairs, the targets trimmed to the widest row in the batch
    history = problem["history"]
    starts = np.searchsorted(history[:, 0], np.arange(users + 1))
    index = SeenIndex([history[starts[u] : starts[u + 1], 1] for u in range(users)])
    batches = [
        (
            SeenPairs.of(index.pairs(np.arange(s, min(s + chunk, users)))),
            targets[s : s + chunk, : int((targets[s : s + chunk] >= 0).sum(1).max())],
        )
        for s in range(0, users, chunk)
    ]
    start_time = time.perf_counter()
    buffer = ScoreBuffer()  # the Lightning module keeps one per evaluation epoch
    parts: dict[str, list[torch.Tensor]] = {name: [] for name in METRICS}
    for (seen, relevant), start in zip(batches, range(0, users, chunk), strict=True):
        top = top_k_items(user_vectors[start : start + chunk], item_vectors, seen, K, buffer=buffer)
        values = ranking_metrics(top, relevant, [K])
        for name in METRICS:
            parts[name].append(values[f"{name}@{K}"])
    seconds = time.perf_counter() - start_time
    return seconds, {name: torch.cat(parts[name]).numpy() for name in METRICS}


def torchmetrics_eval(problem: dict, chunk: int) -> tuple[float, dict[str, float]]:
    """torchmetrics' retrieval metrics over every (user, non-history item) row."""
    from torchmetrics.retrieval import (
        RetrievalHitRate,
        RetrievalMRR,
        RetrievalNormalizedDCG,
        RetrievalPrecision,
        RetrievalRecall,
    )

    users, items = problem["user_vectors"].shape[0], problem["item_vectors"].shape[0]
    user_vectors = torch.from_numpy(problem["user_vectors"])
    item_vectors = torch.from_numpy(problem["item_vectors"])
    history = torch.from_numpy(problem["history"])
    positives = torch.from_numpy(problem["positives"])
    options = {"top_k": K, "empty_target_action": "skip"}
    metrics = {
        "recall": RetrievalRecall(**options),
        "ndcg": RetrievalNormalizedDCG(**options),
        "mrr": RetrievalMRR(**options),
        "hit": RetrievalHitRate(**options),
        "precision": RetrievalPrecision(**options),
    }
    start_time = time.perf_counter()
    for start in range(0, users, chunk):
        stop = min(start + chunk, users)
        scores = user_vectors[start:stop] @ item_vectors.T
        seen = torch.zeros_like(scores, dtype=torch.bool)
        rows = history[(history[:, 0] >= start) & (history[:, 0] < stop)]
        seen[rows[:, 0] - start, rows[:, 1]] = True
        relevant = torch.zeros_like(scores, dtype=torch.bool)
        rows = positives[(positives[:, 0] >= start) & (positives[:, 0] < stop)]
        relevant[rows[:, 0] - start, rows[:, 1]] = True
        keep = ~seen
        indexes = torch.arange(start, stop)[:, None].expand(-1, items)[keep]
        shifted = scores - scores.min() + 1.0  # torchmetrics drops relevant items scored <= 0
        for metric in metrics.values():
            metric.update(shifted[keep], relevant[keep], indexes=indexes)
    values = {name: metric.compute().item() for name, metric in metrics.items()}
    return time.perf_counter() - start_time, values


def recbole_eval(problem_file: Path, chunk: int, repeats: int, python: Path) -> dict:
    """RecBole's own collector and evaluator in its own venv, on the saved problem, `repeats` times in
    one process (as recfit's repeats run in this one)."""
    command = [str(python), str(PEER_SCRIPT), str(problem_file), "--user-chunk", str(chunk), "--k", str(K)]
    out = subprocess.run(
        [*command, "--repeats", str(repeats)],
        capture_output=True,
        text=True,
        check=False,
    )
    if out.returncode != 0:
        raise RuntimeError(f"RecBole peer failed: {out.stderr.strip().splitlines()[-1:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="943x1682,6040x3706,50000x20000")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--user-chunk", type=int, default=1024)
    parser.add_argument(
        "--torchmetrics-max-cells",
        type=float,
        default=1e8,
        help="skip torchmetrics above users x items cells (its states hold every row: ~13 bytes a cell)",
    )
    parser.add_argument(
        "--torchmetrics-repeat-cells", type=float, default=2e6, help="above: torchmetrics runs once"
    )
    parser.add_argument("--recbole-python", type=Path, default=DEFAULT_RECBOLE_PYTHON)
    args = parser.parse_args()
    torch.manual_seed(0)
    report: dict = {
        "k": K,
        "user_chunk": args.user_chunk,
        "repeats": args.repeats,
        "torch_threads": torch.get_num_threads(),
        "versions": {"torch": torch.__version__, "numpy": np.__version__},
        "sizes": [],
    }
    recbole_available = args.recbole_python.exists()
    if not recbole_available:
        report["recbole_skipped"] = f"{args.recbole_python} missing: run ../shared/peers/recbole/run.sh setup"
    with tempfile.TemporaryDirectory(prefix="bench_ranking_") as folder:
        for size in args.sizes.split(","):
            users, items = (int(part) for part in size.split("x"))
            size_started = time.perf_counter()
            problem = make_problem(users, items)
            problem_file = Path(folder) / f"problem_{users}x{items}.npz"
            np.savez(problem_file, **problem)
            row: dict = {
                "users": users,
                "items": items,
                "history_pairs": len(problem["history"]),
                "held_out_pairs": len(problem["positives"]),
            }
            runs = [recfit_eval(problem, args.user_chunk) for _ in range(args.repeats)]
            recfit_seconds = statistics.median(seconds for seconds, _ in runs)
            per_user = runs[0][1]
            recfit_means = {name: float(values.mean()) for name, values in per_user.items()}
            row["recfit"] = {
                "seconds": recfit_seconds,
                "all_seconds": [s for s, _ in runs],
                "metrics": recfit_means,
            }
            if recbole_available:
                peer = recbole_eval(problem_file, args.user_chunk, args.repeats, args.recbole_python)
                seconds = peer["all_seconds"]
                per_user_diff = max(
                    float(np.abs(np.asarray(peer["per_user"][name]) - per_user[name]).max())
                    for name in METRICS
                )
                row["recbole"] = {
                    "seconds": statistics.median(seconds),
                    "all_seconds": seconds,
                    "metrics": peer["metrics"],
                    "ratio_recbole_over_recfit": statistics.median(seconds) / recfit_seconds,
                    "max_abs_diff_mean": max(abs(peer["metrics"][n] - recfit_means[n]) for n in METRICS),
                    "max_abs_diff_per_user": per_user_diff,
                    "versions": peer["versions"],
                }
            if users * items <= args.torchmetrics_max_cells:
                # torchmetrics takes minutes on a busy 2-core machine: one run above the cell count
                repeats = args.repeats if users * items <= args.torchmetrics_repeat_cells else 1
                tm_runs = [torchmetrics_eval(problem, args.user_chunk) for _ in range(repeats)]
                tm_seconds = statistics.median(seconds for seconds, _ in tm_runs)
                tm_values = tm_runs[0][1]
                row["torchmetrics"] = {
                    "seconds": tm_seconds,
                    "all_seconds": [s for s, _ in tm_runs],
                    "metrics": tm_values,
                    "ratio_torchmetrics_over_recfit": tm_seconds / recfit_seconds,
                    "max_abs_diff_mean": max(abs(v - recfit_means[n]) for n, v in tm_values.items()),
                }
            elif args.torchmetrics_max_cells <= 0:
                row["torchmetrics"] = {"skipped": "--torchmetrics-max-cells 0"}
            else:
                row["torchmetrics"] = {
                    "skipped": f"{users}x{items} = {users * items:.2e} (user, item) rows: torchmetrics keeps "
                    f"every row's score, target and int64 user index (~{users * items * 13 / 2**30:.0f} GiB "
                    "before its own sort copies), more than this shared 23 GiB machine can hold"
                }
            row["wall_s"] = round(time.perf_counter() - size_started, 1)  # all of this size, peers included
            print(json.dumps(row), file=sys.stderr)
            report["sizes"].append(row)
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
