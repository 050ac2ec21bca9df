"""Warm- and cold-item columns: next_item runs write each test user's target and its training count,
and `recfit compare --cold-items N` reports every test metric over each subset, with the same tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from helpers.compare import compare, compare_json, write_run
from helpers.runs import ONE_EPOCH, SMALL_DATA, train

# 12 test users: the first 5 have cold targets (0..5 training interactions, 5 on the boundary), the
# other 7 warm ones (6 on the boundary); each row's per-user values are known exactly.
COUNTS = np.array([0, 1, 2, 5, 5, 6, 7, 9, 20, 40, 80, 100])
COLD = COUNTS <= 5
# row -> (value of a cold user, value of a warm user); seeds add 0.01 * seed to both
ROWS = {"id": (0.05, 0.40), "text": (0.20, 0.38)}
SEEDS = (1, 2, 3)


def next_item_per_user(row: str, seed: int) -> pd.DataFrame:
    cold, warm = ROWS[row]
    ndcg = np.where(COLD, cold, warm) + 0.01 * seed
    return pd.DataFrame(
        {
            "user": np.arange(len(COUNTS)),
            "item": np.arange(len(COUNTS)) + 100,
            "item_train_count": COUNTS,
            "ndcg@10": ndcg,
            "recall@10": ndcg * 2,
        }
    )


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> Path:
    """Two rows (id, text) x three seeds of next_item runs, written by hand."""
    root = tmp_path_factory.mktemp("morec")
    for row in ROWS:
        for seed in SEEDS:
            per_user = next_item_per_user(row, seed)
            folder = root / f"{row}-{seed}"
            write_run(
                folder,
                seed=seed,
                task="next_item",
                metrics={
                    "val/ndcg@10": 0.3,
                    "test/ndcg@10": float(per_user["ndcg@10"].mean()),
                    "test/recall@10": float(per_user["recall@10"].mean()),
                },
                config={"model": {"item": row}, "seed": seed},
                overrides=[f"seed={seed}"],
                per_user=per_user,
            )
    return root


def groups(payload: dict) -> dict[str, dict]:
    return {row["group"]: row for row in payload["rows"]}


def test_each_test_metric_gets_its_warm_and_cold_means_over_seeds(runs):
    payload = compare_json(
        runs, "--group-by", "model.item", "--metric", "test/ndcg@10,test/recall@10", "--cold-items", "5"
    )
    rows = groups(payload)
    for row, (cold, warm) in ROWS.items():
        shown = rows[f"model.item={row}"]
        seed_mean = 0.01 * np.mean(SEEDS)
        assert shown["test/ndcg@10[cold]"] == pytest.approx(cold + seed_mean)
        assert shown["test/ndcg@10[warm]"] == pytest.approx(warm + seed_mean)
        assert shown["test/recall@10[cold]"] == pytest.approx(2 * (cold + seed_mean))
        assert shown["test/ndcg@10[cold] std"] == pytest.approx(0.01)
        overall = (COLD.sum() * cold + (~COLD).sum() * warm) / len(COUNTS) + seed_mean
        assert shown["test/ndcg@10"] == pytest.approx(overall)
    assert payload["metrics"] == [
        "test/ndcg@10", "test/ndcg@10[warm]", "test/ndcg@10[cold]",
        "test/recall@10", "test/recall@10[warm]", "test/recall@10[cold]",
    ]  # fmt: skip
    assert any(
        "at most 5 training interactions (5 users)" in note and "(7 users)" in note
        for note in payload["notes"]
    )


def test_the_boundary_moves_with_n(runs):
    rows = groups(
        compare_json(runs, "--group-by", "model.item", "--metric", "test/ndcg@10", "--cold-items", "4")
    )
    # users with exactly 5 interactions are warm now: 3 cold users at 0.05 + 0.02, 9 warm ones
    assert rows["model.item=id"]["test/ndcg@10[cold]"] == pytest.approx(0.07)
    expected_warm = (2 * 0.05 + 7 * 0.40) / 9 + 0.02
    assert rows["model.item=id"]["test/ndcg@10[warm]"] == pytest.approx(expected_warm)


def test_the_baseline_tests_cover_the_subsets_paired_by_seed_and_by_user(runs):
    common = [runs, "--group-by", "model.item", "--metric", "test/ndcg@10", "--cold-items", "5"]
    seeds = groups(compare_json(*common, "--baseline", "model.item=id"))["model.item=text"]
    # text - id: +0.15 on cold users, -0.02 on warm ones, the same in every seed
    assert seeds["test/ndcg@10[cold] delta"] == pytest.approx(0.15)
    assert seeds["test/ndcg@10[warm] delta"] == pytest.approx(-0.02)
    assert seeds["method"] == "paired t over seeds"
    users = groups(compare_json(*common, "--baseline", "model.item=id", "--test", "users"))["model.item=text"]
    assert users["test/ndcg@10[cold] delta"] == pytest.approx(0.15)
    assert users["test/ndcg@10[warm] delta"] == pytest.approx(-0.02)
    assert users["pairs"] == len(COUNTS)  # the first metric's: all users; a subset pairs only its own
    assert users["test/ndcg@10[cold] p"] == pytest.approx(0.0, abs=1e-12)


def test_runs_without_training_counts_and_a_negative_n_are_one_line_errors(tmp_path, runs):
    write_run(
        tmp_path / "old",
        metrics={"test/ndcg@10": 0.2},
        config={"seed": 0},
        per_user=pd.DataFrame({"user": [0, 1], "ndcg@10": [0.1, 0.3]}),
    )
    code, _, err = compare(tmp_path / "old", "--metric", "test/ndcg@10", "--cold-items", "5")
    assert code == 2 and err.count("\n") == 1 and err.startswith("recfit: error: --cold-items: no run has")
    assert "has no 'item_train_count' column" in err
    code, _, err = compare(runs, "--metric", "test/ndcg@10", "--cold-items", "-1")
    assert code == 2 and err == "recfit: error: --cold-items must be 0 or more (got -1)\n"


NEXT_ITEM = [
    "backbone=none", "model=mf", "task=next_item", "split=leave_one_out", "loss=cross_entropy",
    *SMALL_DATA, *ONE_EPOCH, "model.embedding_dim=16", "model.user_encoder.name=mean",
    "model.user_encoder.max_history=5", "loss.temperature=1.0",
]  # fmt: skip


def test_a_next_item_run_writes_each_users_target_and_its_training_count(tmp_path):
    from recfit.config import compose
    from recfit.data.sequences import leave_one_out, sequences_from_recdata
    from recfit.training.run import build

    record = train(tmp_path, *NEXT_ITEM)
    per_user = pd.read_parquet(Path(record["run_dir"]) / "per_user.parquet")
    data = build(compose(NEXT_ITEM)).data
    split = leave_one_out(sequences_from_recdata(data))
    full = split.sequences
    # training interactions: every interaction but the validation and test targets
    counts = full.item_counts() - np.bincount(split.targets("val"), minlength=full.num_items)
    counts -= np.bincount(split.targets("test"), minlength=full.num_items)
    users = per_user["user"].to_numpy()
    assert np.array_equal(per_user["item"].to_numpy(), split.targets("test")[users])
    assert np.array_equal(per_user["item_train_count"].to_numpy(), counts[per_user["item"].to_numpy()])
    assert per_user["ndcg@10"].mean() == pytest.approx(record["metrics"]["test/ndcg@10"], abs=1e-6)
    rows = compare_json(tmp_path, "--metric", "test/ndcg@10", "--cold-items", "3")["rows"]
    cold = per_user["item_train_count"] <= 3
    assert rows[0]["test/ndcg@10[cold]"] == pytest.approx(per_user.loc[cold, "ndcg@10"].mean(), nan_ok=True)
    assert rows[0]["test/ndcg@10[warm]"] == pytest.approx(per_user.loc[~cold, "ndcg@10"].mean())
