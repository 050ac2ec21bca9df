"""Ranking metrics against a brute-force NumPy reference and torchmetrics; the in-batch loss by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torchmetrics.retrieval import RetrievalHitRate, RetrievalMRR, RetrievalNormalizedDCG, RetrievalRecall

from recfit.evaluation.ranking import mask_items, ranking_metrics, relevance
from recfit.training.losses import in_batch_softmax


def reference(scores: np.ndarray, target: np.ndarray, k: int) -> dict[str, float]:
    """One user at a time, straight from the definitions."""
    out = {name: [] for name in ("recall", "precision", "hit", "mrr", "ndcg")}
    for row_scores, row_target in zip(scores, target, strict=True):
        order = sorted(range(len(row_scores)), key=lambda i: -row_scores[i])[:k]
        hits = [bool(row_target[i]) for i in order]
        relevant = int(row_target.sum())
        out["recall"].append(sum(hits) / relevant)
        out["precision"].append(sum(hits) / k)
        out["hit"].append(float(any(hits)))
        out["mrr"].append(next((1 / (r + 1) for r, h in enumerate(hits) if h), 0.0))
        dcg = sum(1 / math.log2(r + 2) for r, h in enumerate(hits) if h)
        ideal = sum(1 / math.log2(r + 2) for r in range(min(relevant, k)))
        out["ndcg"].append(dcg / ideal)
    return {name: float(np.mean(values)) for name, values in out.items()}


@pytest.fixture
def random_problem():
    generator = np.random.default_rng(0)
    scores = generator.random((64, 300))  # continuous scores: no ties
    target = generator.random((64, 300)) < 0.03
    target[np.arange(64), generator.integers(0, 300, 64)] = True  # every user has a relevant item
    return scores, target


@pytest.mark.parametrize("k", [1, 5, 10, 20, 300])
def test_ranking_metrics_match_the_definitions(random_problem, k):
    scores, target = random_problem
    ours = ranking_metrics(torch.tensor(scores), torch.tensor(target), [k])
    expected = reference(scores, target, k)
    for name, value in expected.items():
        assert ours[f"{name}@{k}"].mean().item() == pytest.approx(value, abs=1e-6), name


@pytest.mark.parametrize("k", [5, 10])
def test_ranking_metrics_match_torchmetrics(random_problem, k):
    scores, target = random_problem
    ours = ranking_metrics(torch.tensor(scores), torch.tensor(target), [k])
    users = torch.arange(scores.shape[0])[:, None].expand(scores.shape).reshape(-1)
    flat_scores, flat_target = torch.tensor(scores).reshape(-1), torch.tensor(target).reshape(-1)
    peers = {
        "recall": RetrievalRecall(top_k=k),
        "hit": RetrievalHitRate(top_k=k),
        "mrr": RetrievalMRR(top_k=k),
        "ndcg": RetrievalNormalizedDCG(top_k=k),
    }
    for name, metric in peers.items():
        value = metric(flat_scores, flat_target, indexes=users).item()
        assert ours[f"{name}@{k}"].mean().item() == pytest.approx(value, abs=1e-6), name


def test_masking_and_k_beyond_the_catalogue():
    scores = torch.tensor([[0.9, 0.8, 0.1, 0.0]])
    mask_items(scores, torch.tensor([[0, -1]]))  # item 0 was seen in training
    target = relevance(torch.tensor([[2, -1]]), num_items=4)
    values = ranking_metrics(scores, target, [1, 10])
    assert values["hit@1"].item() == 0.0 and values["recall@10"].item() == 1.0
    assert values["mrr@10"].item() == pytest.approx(1 / 2)  # item 1 first, then the relevant item 2
    assert values["precision@10"].item() == pytest.approx(1 / 10)


def test_in_batch_softmax_ignores_other_copies_of_the_positive():
    scores = torch.tensor([[2.0, 1.0, 0.5], [0.3, 1.5, 0.2], [0.1, 0.4, 0.9]])
    items = torch.tensor([7, 8, 7])  # rows 0 and 2 share item 7
    loss = in_batch_softmax(scores, items, temperature=1.0)
    row0 = -torch.log_softmax(torch.tensor([2.0, 1.0]), 0)[0]
    row1 = -torch.log_softmax(scores[1], 0)[1]
    row2 = -torch.log_softmax(torch.tensor([0.4, 0.9]), 0)[1]
    torch.testing.assert_close(loss, (row0 + row1 + row2) / 3)
