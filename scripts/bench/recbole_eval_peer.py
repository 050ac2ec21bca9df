"""RecBole 1.2.1's own full-ranking evaluator on a saved score problem (run in RecBole's venv).

Called by bench_ranking.py with the interpreter of the venv that ../shared/peers/recbole/run.sh setup
makes. Loads the problem (.npz: user_vectors, item_vectors, history and positives as (user, item)
pairs sorted by user), turns history and positives into the tensors RecBole's FullSortEvalDataLoader
hands the trainer per batch (not timed, as recfit's padded tensors are not), then times, per user
chunk, what RecBole's Trainer.evaluate does for a model whose full_sort_predict is a dot product:

    scores = user_vectors @ item_vectors.T              # BPR.full_sort_predict
    scores[history_index] = -inf                        # Trainer._full_sort_batch_eval
    collector.eval_batch_collect(scores, None, positive_u, positive_i)   # torch.topk + gather
and at the end
    evaluator.evaluate(collector.get_data_struct())     # recbole.evaluator.metrics (NumPy)

(the catalogue has no padding item 0 here, so `scores[:, 0] = -inf` is left out). Prints one JSON
line: seconds of each repeat, the evaluator's averaged metrics, and per-user values (from the same
metric classes' metric_info) for the value comparison.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch
from recbole.config import Config
from recbole.evaluator import Collector, Evaluator
from recbole.evaluator.register import metrics_dict

METRICS = ["Recall", "NDCG", "MRR", "Hit", "Precision", "MAP"]


def chunk_inputs(pairs: np.ndarray, start: int, stop: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(row within the chunk, item) index tensors of the pairs whose user is in [start, stop)."""
    lo, hi = np.searchsorted(pairs[:, 0], [start, stop])
    part = torch.from_numpy(pairs[lo:hi])
    return part[:, 0] - start, part[:, 1]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("problem")
    parser.add_argument("--user-chunk", type=int, default=1024)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    problem = np.load(args.problem)
    user_vectors = torch.from_numpy(problem["user_vectors"])
    item_vectors = torch.from_numpy(problem["item_vectors"])
    history, positives = problem["history"], problem["positives"]
    users = user_vectors.shape[0]
    config = Config(
        model="BPR",
        dataset="ml-100k",
        config_dict={
            "use_gpu": False,
            "gpu_id": "",
            "metrics": METRICS,
            "topk": [args.k],
            "metric_decimal_place": 12,
            "valid_metric": f"NDCG@{args.k}",
        },
    )
    batches = []
    for start in range(0, users, args.user_chunk):
        stop = min(start + args.user_chunk, users)
        batches.append(
            (start, stop, chunk_inputs(history, start, stop), chunk_inputs(positives, start, stop))
        )
    seconds = []
    for _ in range(args.repeats):
        collector, evaluator = Collector(config), Evaluator(config)
        begin = time.perf_counter()
        for start, stop, history_index, (positive_u, positive_i) in batches:
            scores = user_vectors[start:stop] @ item_vectors.T
            scores[history_index] = -np.inf
            collector.eval_batch_collect(scores, None, positive_u, positive_i)
        struct = collector.get_data_struct()
        result = evaluator.evaluate(struct)
        seconds.append(time.perf_counter() - begin)
    per_user = {}
    for name in METRICS:
        metric = metrics_dict[name.lower()](config)
        pos_index, pos_len = metric.used_info(struct)
        two_arguments = name in ("MAP", "Recall", "NDCG")
        values = metric.metric_info(pos_index, pos_len) if two_arguments else metric.metric_info(pos_index)
        per_user[name.lower()] = values[:, args.k - 1].tolist()
    print(
        json.dumps(
            {
                "all_seconds": seconds,
                "metrics": {key.split("@")[0]: float(value) for key, value in result.items()},
                "per_user": per_user,
                "versions": {
                    "recbole": __import__("recbole").__version__,
                    "torch": torch.__version__,
                    "numpy": np.__version__,
                },  # fmt: skip
            }
        )
    )


if __name__ == "__main__":
    main()
