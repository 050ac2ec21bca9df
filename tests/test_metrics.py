"""Ranking metrics against a brute-force NumPy reference and torchmetrics; the losses by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torchmetrics.retrieval import (
    RetrievalHitRate,
    RetrievalMRR,
    RetrievalNormalizedDCG,
    RetrievalPrecision,
    RetrievalRecall,
)

from recfit.evaluation.pointwise import (
    LOGLOSS_CLIP,
    GroupAUC,
    LogLoss,
    binary_log_loss,
    binary_metrics,
    per_row_values,
)
from recfit.evaluation.ranking import ranking_metrics, top_k_candidates, top_k_items
from recfit.tasks.registry import make_task
from recfit.training.losses import in_batch_softmax


def reference(scores: np.ndarray, target: np.ndarray, k: int) -> dict[str, float]:
    """One user at a time, straight from the definitions in recfit.evaluation.ranking."""
    out = {name: [] for name in ("recall", "precision", "hit", "mrr", "ndcg", "map")}
    for row_scores, row_target in zip(scores, target, strict=True):
        order = sorted(range(len(row_scores)), key=lambda i: (-row_scores[i], i))[:k]
        hits = [bool(row_target[i]) for i in order]
        relevant = int(row_target.sum())
        out["recall"].append(sum(hits) / relevant)
        out["precision"].append(sum(hits) / k)
        out["hit"].append(float(any(hits)))
        out["mrr"].append(next((1 / (r + 1) for r, h in enumerate(hits) if h), 0.0))
        dcg = sum(1 / math.log2(r + 2) for r, h in enumerate(hits) if h)
        ideal = sum(1 / math.log2(r + 2) for r in range(min(relevant, k)))
        out["ndcg"].append(dcg / ideal)
        precisions = [sum(hits[: r + 1]) / (r + 1) for r, h in enumerate(hits) if h]
        out["map"].append(sum(precisions) / min(relevant, k))
    return {name: float(np.mean(values)) for name, values in out.items()}


def as_targets(target: np.ndarray) -> torch.Tensor:
    rows = [np.flatnonzero(t) for t in target]
    width = max(len(r) for r in rows)
    return torch.tensor(np.array([np.pad(r, (0, width - len(r)), constant_values=-1) for r in rows]))


@pytest.fixture
def random_problem():
    generator = np.random.default_rng(0)
    users, items = generator.normal(size=(64, 8)), generator.normal(size=(300, 8))
    target = generator.random((64, 300)) < 0.03
    target[np.arange(64), generator.integers(0, 300, 64)] = True  # every user has a relevant item
    return users, items, target


def no_exclusions(batch: int) -> torch.Tensor:
    return torch.full((batch, 1), -1)


@pytest.mark.parametrize("k", [1, 5, 10, 20, 300, 500])
def test_ranking_metrics_match_the_definitions(random_problem, k):
    users, items, target = random_problem
    top = top_k_items(torch.tensor(users), torch.tensor(items), no_exclusions(64), k)
    ours = ranking_metrics(top, as_targets(target), [k])
    expected = reference(users @ items.T, target, k)
    for name, value in expected.items():
        assert ours[f"{name}@{k}"].mean().item() == pytest.approx(value, abs=1e-6), name


@pytest.mark.parametrize("k", [5, 10])
def test_ranking_metrics_match_torchmetrics(random_problem, k):
    users, items, target = random_problem
    scores = torch.tensor(users @ items.T)
    ours = ranking_metrics(top_k_items(torch.tensor(users), torch.tensor(items), no_exclusions(64), k),
                           as_targets(target), [k])  # fmt: skip
    indexes = torch.arange(64)[:, None].expand(64, 300).reshape(-1)
    # torchmetrics ignores relevant items scored <= 0 (see ENVIRONMENT.md): shift scores positive
    flat_scores, flat_target = (scores - scores.min() + 1).reshape(-1), torch.tensor(target).reshape(-1)
    peers = {
        "recall": RetrievalRecall(top_k=k), "hit": RetrievalHitRate(top_k=k), "mrr": RetrievalMRR(top_k=k),
        "ndcg": RetrievalNormalizedDCG(top_k=k), "precision": RetrievalPrecision(top_k=k),
    }  # fmt: skip
    for name, metric in peers.items():
        value = metric(flat_scores, flat_target, indexes=indexes).item()
        assert ours[f"{name}@{k}"].mean().item() == pytest.approx(value, abs=1e-6), name


def test_chunking_over_items_changes_nothing_and_ties_go_to_the_lower_code():
    generator = np.random.default_rng(1)
    users = torch.tensor(generator.normal(size=(7, 4)))
    items = torch.tensor(generator.normal(size=(50, 4)))
    items[30] = items[3]  # a tie: item 3 must come before item 30
    seen = torch.tensor([[0, 5, -1]] * 7)
    whole = top_k_items(users, items, seen, 20)
    for chunk in (1, 3, 16, 49):
        assert torch.equal(top_k_items(users, items, seen, 20, item_chunk=chunk), whole)
    assert not torch.isin(whole, torch.tensor([0, 5])).any()  # seen items never recommended
    for row in whole.tolist():
        if 30 in row:
            assert 3 in row and row.index(3) < row.index(30)


def test_all_scores_tied_rank_by_code_and_skip_seen_items():
    users, items = torch.zeros(3, 4), torch.zeros(30, 4)  # an untrained model: every score is 0
    seen = torch.tensor([[0, 2, -1], [-1, -1, -1], [1, 3, 4]])
    for chunk in (7, 30):
        top = top_k_items(users, items, seen, 5, item_chunk=chunk)
        assert top.tolist() == [[1, 3, 4, 5, 6], [0, 1, 2, 3, 4], [0, 2, 5, 6, 7]]


def test_fewer_unseen_items_than_k_rank_the_seen_ones_last():
    users, items = torch.ones(1, 1), torch.arange(4.0)[:, None]  # item 3 scores highest
    top = top_k_items(users, items, torch.tensor([[3, 1]]), 4)
    assert top.tolist() == [[2, 0, 1, 3]]  # then the masked ones, lower code first


def padded_history(groups: list[np.ndarray]) -> torch.Tensor:
    width = max(1, max(len(g) for g in groups))
    out = torch.full((len(groups), width), -1)
    for row, group in enumerate(groups):
        out[row, : len(group)] = torch.as_tensor(group)
    return out


def test_seen_pairs_from_the_collator_rank_exactly_as_padded_codes():
    """(row, item) pairs, as the ranking collator hands them over, give the top-k and metrics of the
    padded [B, M] codes (the earlier format) for any item chunking, ties and rows in any order, with
    or without a reused score buffer."""
    from recfit.data.seen_pairs import SeenIndex
    from recfit.evaluation.ranking import ScoreBuffer, SeenPairs

    generator = np.random.default_rng(3)
    buffer = ScoreBuffer()  # reused across batches of other sizes, as the module reuses it
    items = torch.tensor(generator.normal(size=(120, 8)), dtype=torch.float32)
    items[60:70] = items[:10]  # ties across codes
    lengths = np.minimum(generator.zipf(1.6, size=40), 110)  # long-tailed histories, one very wide
    lengths[5] = 0  # a user without history
    history = [np.sort(generator.choice(120, size=n, replace=False)) for n in lengths]
    index = SeenIndex(history)
    targets = as_targets(generator.random((40, 120)) < 0.05)
    for rows in (np.arange(40), generator.permutation(40)[:17]):
        users = torch.tensor(generator.normal(size=(len(rows), 8)), dtype=torch.float32)
        users[0] = 0  # an all-tied row
        pairs = SeenPairs.of(index.pairs(rows))
        padded = padded_history([history[r] for r in rows])
        from_padded = SeenPairs.from_padded(padded)
        assert sorted(zip(pairs.rows.tolist(), pairs.items.tolist(), strict=True)) == sorted(
            zip(from_padded.rows.tolist(), from_padded.items.tolist(), strict=True)
        )
        relevant = targets[torch.as_tensor(rows)]
        for chunk in (7, 64, 120, 65_536):
            expected = top_k_items(users, items, padded, 10, item_chunk=chunk)
            top = top_k_items(users, items, pairs, 10, item_chunk=chunk)
            assert torch.equal(top, expected), chunk
            assert torch.equal(
                top_k_items(users, items, pairs, 10, item_chunk=chunk, buffer=buffer), expected
            )
            got = ranking_metrics(top, relevant, [5, 10])
            for name, value in ranking_metrics(expected, relevant, [5, 10]).items():
                assert torch.equal(got[name], value), name


def test_sampled_candidates_rank_only_their_own_items():
    users = torch.tensor([[1.0], [1.0]])
    items = torch.tensor([[5.0], [4.0], [3.0], [2.0], [1.0]])  # item 0 scores highest
    candidates = torch.tensor([[4, 2, 0], [3, 1, -1]])  # -1 pads the second user's list
    top = top_k_candidates(users, items, candidates, 3)
    assert top[0].tolist() == [0, 2, 4]
    assert top[1, :2].tolist() == [1, 3]


def test_group_auc_weights_users_by_positives_as_recbole_and_by_rows_as_gauc_rows():
    metric = GroupAUC()
    preds = torch.tensor([0.9, 0.1, 0.8, 0.3, 0.7, 0.6, 0.5, 0.2])
    target = torch.tensor([1, 0, 0, 1, 1, 1, 0, 1])
    users = torch.tensor([0, 0, 1, 1, 2, 2, 2, 3])
    metric.update(preds, target, users)
    # user 0: AUC 1 (2 rows, 1 positive); user 1: AUC 0 (2 rows, 1 positive); user 2: AUC 1 (3 rows,
    # 2 positives); user 3 has no negative: no AUC, left out
    values = metric.compute_all()
    assert values["gauc"].item() == pytest.approx((1 * 1 + 0 * 1 + 1 * 2) / 4)
    assert values["gauc_rows"].item() == pytest.approx((1 * 2 + 0 * 2 + 1 * 3) / 7)
    assert metric.compute().item() == values["gauc"].item()


def recbole_gauc(users: np.ndarray, scores: np.ndarray, labels: np.ndarray) -> float:
    """RecBole 1.2's GAUC.metric_info, written from its formula: per user, the positives' ranks in
    descending score order (ties averaged); users without positives or negatives removed;
    pair_num = (n + 1) * P - P * (P + 1) / 2 - sum of positive ranks; AUC = pair_num / (P * N),
    averaged with weights P."""
    from scipy.stats import rankdata

    aucs, weights = [], []
    for user in np.unique(users):
        rows = users == user
        n, positives = int(rows.sum()), int(labels[rows].sum())
        negatives = n - positives
        if positives == 0 or negatives == 0:
            continue
        descending = rankdata(-scores[rows], method="average")
        pair_num = (n + 1) * positives - positives * (positives + 1) / 2 - descending[labels[rows] == 1].sum()
        aucs.append(pair_num / (negatives * positives))
        weights.append(positives)
    return float(np.average(aucs, weights=weights))


def test_gauc_matches_recbole_and_each_user_matches_scikit_learn():
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(3)
    users = rng.integers(0, 30, 600)
    scores = np.round(rng.uniform(0, 1, 600), 2).astype(np.float32)  # rounded: ties happen
    labels = (rng.uniform(0, 1, 600) < 0.2 + 0.6 * scores).astype(np.int64)
    metric = GroupAUC()
    for chunk in np.array_split(np.arange(600), 7):  # batches and users split across them
        metric.update(
            torch.from_numpy(scores[chunk]), torch.from_numpy(labels[chunk]), torch.from_numpy(users[chunk])
        )
    values = metric.compute_all()
    assert values["gauc"].item() == pytest.approx(recbole_gauc(users, scores, labels), abs=1e-9)
    per_user = {
        user: (roc_auc_score(labels[users == user], scores[users == user]), (users == user).sum())
        for user in np.unique(users)
        if 0 < labels[users == user].sum() < (users == user).sum()
    }
    aucs, rows = zip(*per_user.values(), strict=True)
    assert values["gauc_rows"].item() == pytest.approx(np.average(aucs, weights=rows), abs=1e-9)


def test_auc_is_nan_when_the_rows_hold_one_class_and_matches_scikit_learn_otherwise():
    from sklearn.exceptions import UndefinedMetricWarning
    from sklearn.metrics import roc_auc_score

    collection = binary_metrics()
    collection.update(torch.tensor([0.2, 0.9, 0.4]), torch.tensor([1, 1, 1]))
    assert math.isnan(collection.compute()["auc"].item())  # torchmetrics alone says 0.0
    with pytest.warns(UndefinedMetricWarning, match="Only one class"):
        assert math.isnan(roc_auc_score([1, 1, 1], [0.2, 0.9, 0.4]))  # NaN for scikit-learn too
    rng = np.random.default_rng(4)
    probabilities = rng.uniform(0, 1, 500)
    labels = (rng.uniform(0, 1, 500) < probabilities).astype(np.int64)
    collection = binary_metrics()
    collection.update(torch.from_numpy(probabilities).float(), torch.from_numpy(labels))
    assert collection.compute()["auc"].item() == pytest.approx(roc_auc_score(labels, probabilities), abs=1e-6)


def test_logloss_is_float64_with_a_symmetric_clip_and_matches_scikit_learn():
    from sklearn.metrics import log_loss

    rng = np.random.default_rng(5)
    probabilities = np.concatenate([rng.uniform(0, 1, 300), [0.0, 1.0, 1e-9, 1 - 1e-9]])
    labels = np.concatenate([(rng.uniform(0, 1, 300) < probabilities[:300]).astype(np.int64), [1, 0, 1, 0]])
    clipped = np.clip(probabilities, LOGLOSS_CLIP, 1 - LOGLOSS_CLIP)
    expected = log_loss(labels, clipped)
    metric = LogLoss()
    for chunk in np.array_split(np.arange(len(labels)), 3):
        metric.update(torch.from_numpy(probabilities[chunk]), torch.from_numpy(labels[chunk]))
    assert metric.compute().dtype == torch.float64
    assert metric.compute().item() == pytest.approx(expected, rel=1e-12)
    # a sure wrong answer costs the same on both sides: -log(1e-7), not -log(1.19e-7) on one of them
    rows = binary_log_loss(torch.tensor([0.0, 1.0], dtype=torch.float32), torch.tensor([1, 0]))
    assert rows.dtype == torch.float64
    assert rows.tolist() == pytest.approx([-math.log(1e-7)] * 2, rel=1e-9)  # float32: 16.12 vs 15.94
    per_row = per_row_values(torch.from_numpy(probabilities).float(), torch.from_numpy(labels))
    float32_input = np.clip(
        probabilities.astype(np.float32).astype(np.float64), LOGLOSS_CLIP, 1 - LOGLOSS_CLIP
    )
    assert per_row["logloss"].mean().item() == pytest.approx(log_loss(labels, float32_input), rel=1e-9)


def test_in_batch_softmax_ignores_other_copies_of_the_positive():
    scores = torch.tensor([[2.0, 1.0, 0.5], [0.3, 1.5, 0.2], [0.1, 0.4, 0.9]])
    items = torch.tensor([7, 8, 7])  # rows 0 and 2 share item 7
    loss = in_batch_softmax(scores, items, temperature=1.0)
    row0 = -torch.log_softmax(torch.tensor([2.0, 1.0]), 0)[0]
    row1 = -torch.log_softmax(scores[1], 0)[1]
    row2 = -torch.log_softmax(torch.tensor([0.4, 0.9]), 0)[1]
    torch.testing.assert_close(loss, (row0 + row1 + row2) / 3)


def test_logq_correction_subtracts_log_frequency():
    scores = torch.tensor([[1.0, 2.0], [0.5, 0.0]])
    items = torch.tensor([0, 1])
    log_q = torch.log(torch.tensor([0.9, 0.1]))
    expected = in_batch_softmax(scores - log_q[items][None, :], items, 1.0)
    torch.testing.assert_close(in_batch_softmax(scores, items, 1.0, log_q), expected)


def test_bpr_loss():
    positive, negative = torch.tensor([2.0, 0.0]), torch.tensor([1.0, 1.0])
    loss = make_task("ranking", loss="bpr").loss_value((positive, negative), torch.zeros(2), None)
    expected = -(torch.sigmoid(torch.tensor(1.0)).log() + torch.sigmoid(torch.tensor(-1.0)).log()) / 2
    torch.testing.assert_close(loss, expected)


def test_l2_penalty_covers_only_the_batch_rows():
    from recfit.models.mf import MatrixFactorization

    model = MatrixFactorization(num_users=5, num_items=7, embedding_dim=3, biases=True)
    torch.nn.init.normal_(model.user_bias.weight)
    batch = {"user": torch.tensor([0, 2]), "item": torch.tensor([1, 1])}
    expected = (
        model.user_embedding.weight[[0, 2]].pow(2).sum(-1)
        + model.item_embedding.weight[[1, 1]].pow(2).sum(-1)
        + model.user_bias.weight[[0, 2], 0] ** 2
        + model.item_bias.weight[[1, 1], 0] ** 2
    ).mean()
    torch.testing.assert_close(model.l2_penalty(batch), expected)


def test_the_run_summary_prints_an_undefined_metric_as_nan(capsys, tmp_path):
    from recfit.report import print_metrics

    print_metrics({"val/auc": None, "test/auc": 0.75, "val/gauc": 0.5}, tmp_path, "completed", 1.0)
    lines = {line.split()[1]: line for line in capsys.readouterr().out.splitlines() if "auc" in line}
    assert "NaN" in lines["auc"] and "0.7500" in lines["auc"]
    assert "NaN" not in lines["gauc"]  # test/gauc was not reported at all: blank
