"""Full-ranking top-K metrics, vectorised over a chunk of users (no per-user Python loop).

Definitions, per user with R >= 1 relevant (held-out) items and a ranked list of the top K:
- hit@K = 1 if any relevant item is in the top K
- recall@K = (relevant items in top K) / R
- precision@K = (relevant items in top K) / K
- mrr@K = 1 / rank of the first relevant item in the top K (0 if none)
- ndcg@K = DCG@K / IDCG@K, DCG = sum over hits of 1 / log2(rank + 1), IDCG = the same for min(R, K) hits
Masked (already seen) items are scored -inf and never ranked above an unseen item.
"""

from __future__ import annotations

import torch


def mask_items(scores: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
    """Set scores of `items` ([B, M] codes, -1 = padding) to -inf, in place; returns `scores`."""
    rows, cols = (items >= 0).nonzero(as_tuple=True)
    scores[rows, items[rows, cols]] = float("-inf")
    return scores


def relevance(items: torch.Tensor, num_items: int) -> torch.Tensor:
    """[B, M] padded item codes -> [B, num_items] boolean relevance."""
    target = torch.zeros(items.shape[0], num_items, dtype=torch.bool, device=items.device)
    rows, cols = (items >= 0).nonzero(as_tuple=True)
    target[rows, items[rows, cols]] = True
    return target


def ranking_metrics(scores: torch.Tensor, target: torch.Tensor, ks: list[int]) -> dict[str, torch.Tensor]:
    """Per-user values of every ranking metric at every K in `ks`: {"ndcg@10": [B], ...}."""
    max_k = min(max(ks), scores.shape[1])
    top = scores.topk(max_k, dim=1).indices
    hits = target.gather(1, top).float()  # [B, max_k]
    num_relevant = target.sum(dim=1).float()
    ranks = torch.arange(1, max_k + 1, device=scores.device, dtype=torch.float32)
    discounts = 1.0 / torch.log2(ranks + 1.0)
    ideal_cumulative = discounts.cumsum(0)
    out: dict[str, torch.Tensor] = {}
    for k in ks:
        kk = min(k, max_k)
        hits_k = hits[:, :kk]
        found = hits_k.sum(dim=1)
        first = torch.where(hits_k.any(dim=1), hits_k.argmax(dim=1).float() + 1.0, torch.inf)
        ideal = ideal_cumulative[(num_relevant.clamp(max=kk) - 1).clamp(min=0).long()]
        out[f"recall@{k}"] = found / num_relevant.clamp(min=1.0)
        out[f"precision@{k}"] = found / k
        out[f"hit@{k}"] = (found > 0).float()
        out[f"mrr@{k}"] = 1.0 / first
        out[f"ndcg@{k}"] = (hits_k * discounts[:kk]).sum(dim=1) / ideal
    return out
