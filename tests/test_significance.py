"""`recfit compare --baseline` p-values are calibrated: seeds of one config are not "different".

The calibration and power tests use real per-user outputs of real training runs (a small matrix
factorisation on the synthetic data, trained once per session); the simulation test checks the
rate of false positives over many independent data sets, which five real seeds cannot give.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from helpers.compare import compare, compare_json
from helpers.runs import train
from recfit.compare.significance import Arm, compare_to_baseline, hierarchical_bootstrap, seed_test

NDCG = "test/ndcg@10"
# A small matrix factorisation that learns within seconds (test/ndcg@10 ~0.3, random ~0.09), and
# the same model stopped after one epoch at a lower learning rate: a real, config-made difference.
TRAINED = [
    "model=mf",
    "backbone=none",
    "model.embedding_dim=16",
    "dataset.reader.num_items=60",
    "optimizer.head_lr=0.05",
    "trainer.max_epochs=3",
    "trainer.enable_progress_bar=false",
    "quiet=true",
    "checkpoint_every_n_steps=0",
]
UNDERTRAINED = [*TRAINED, "optimizer.head_lr=0.005", "trainer.max_epochs=1"]
SPLITS = 40


@pytest.fixture(scope="session")
def seed_runs(tmp_path_factory) -> dict[str, list[Path]]:
    """Five seeds of the trained config and three of the undertrained one: run folders."""
    output = tmp_path_factory.mktemp("seeds")
    folders: dict[str, list[Path]] = {"trained": [], "undertrained": []}
    for name, overrides, seeds in (("trained", TRAINED, range(5)), ("undertrained", UNDERTRAINED, range(3))):
        for seed in seeds:
            record = train(output / name, *overrides, f"seed={seed}")
            folders[name].append(Path(record["run_dir"]))
    return folders


def arm(folders: list[Path]) -> Arm:
    """The runs in `folders` as compare sees them: seeds and metrics.json values."""
    records = [json.loads((folder / "metrics.json").read_text()) for folder in folders]
    return Arm(
        folders=[str(folder) for folder in folders],
        seeds=[record["seed"] for record in records],
        values=pd.DataFrame([record["metrics"] for record in records], dtype=float),
    )


def split_p_values(folders: list[Path], test: str) -> list[float]:
    """p of `test` over SPLITS random 2/3 splits of `folders` (the 2 are the baseline, then the 3)."""
    rng = np.random.default_rng(0)
    p_values = []
    for _ in range(SPLITS):
        order = rng.permutation(len(folders))
        arms = {"a": arm([folders[i] for i in order[:2]]), "b": arm([folders[i] for i in order[2:]])}
        if rng.random() < 0.5:  # either side as the baseline
            arms = {"a": arms["b"], "b": arms["a"]}
        result = compare_to_baseline(arms, "a", [NDCG], test=test, resamples=2000)
        p_values.append(float(result.table.loc["b", f"{NDCG} p"]))
    return p_values


@pytest.mark.slow
def test_seeds_of_one_config_split_two_against_three_are_not_significant(seed_runs):
    trained = seed_runs["trained"]
    values = [arm([folder]).values[NDCG].iloc[0] for folder in trained]
    assert len(set(values)) == 5  # the seeds do differ, so a test that ignores it sees a difference
    p_seeds = split_p_values(trained, "seeds")
    assert np.mean(np.array(p_seeds) > 0.05) >= 0.95, p_seeds
    # the per-user test of seed-averaged values (the former default) calls the same config different
    p_users = split_p_values(trained, "users")
    assert np.mean(np.array(p_users) > 0.05) < 0.95, p_users


@pytest.mark.slow
def test_a_real_difference_stays_significant(seed_runs):
    arms = {"under": arm(seed_runs["undertrained"]), "trained": arm(seed_runs["trained"])}
    result = compare_to_baseline(arms, "under", [NDCG, "test/recall@10"])
    row = result.table.loc["trained"]
    assert row[f"{NDCG} delta"] > 0 and row[f"{NDCG} ci_low"] > 0
    assert row[f"{NDCG} p_holm"] < 0.05 and row[f"{NDCG} sig"] == "*"
    assert row["method"] == "Welch t over seeds"
    assert row["test/recall@10 p"] < 0.05


@pytest.mark.slow
def test_compare_cli_on_real_seed_groups(seed_runs, tmp_path):
    """Through the command line: groups by learning rate, default test, warning for 3 seeds only not."""
    root = seed_runs["trained"][0].parents[3]  # <tmp>/seeds0: trained/ and undertrained/ below
    payload = compare_json(
        root, "--group-by", "optimizer.head_lr", "--baseline", "optimizer.head_lr=0.005", "--metric", NDCG
    )
    rows = {row["group"]: row for row in payload["rows"]}
    assert rows["optimizer.head_lr=0.05"]["n"] == 5 and rows["optimizer.head_lr=0.005"]["n"] == 3
    assert rows["optimizer.head_lr=0.05"][f"{NDCG} sig"] == "*"
    assert payload["test"] == "seeds"
    assert not any(note.startswith("warning: fewer than") for note in payload["notes"])


def test_simulated_seed_variance_keeps_the_false_positive_rate_at_the_level():
    """Many independent null data sets: per-user values = user effect + a shift per seed + noise."""
    rng = np.random.default_rng(1)
    users, sets = 300, 300
    false_seeds = false_users = 0
    for _ in range(sets):
        base = rng.uniform(0.1, 0.5, users)
        runs = [base + rng.normal(0, 0.01) + rng.normal(0, 0.02, users) for _ in range(5)]
        means = [values.mean() for values in runs]
        x, y = means[:2], means[2:]
        false_seeds += stats.ttest_ind(x, y, equal_var=False).pvalue < 0.05
        false_users += stats.ttest_rel(np.mean(runs[:2], axis=0), np.mean(runs[2:], axis=0)).pvalue < 0.05
    assert false_seeds / sets <= 0.08
    assert false_users / sets > 0.5  # what the per-user test did: most "significant"


def test_seed_test_picks_paired_welch_or_pooled_like_scipy():
    def make(values: list[float], seeds: list[int]) -> Arm:
        return Arm(folders=[f"r{s}" for s in seeds], seeds=seeds, values=pd.DataFrame({"m": values}))

    base = make([0.30, 0.32, 0.31], [1, 2, 3])
    paired = seed_test(make([0.33, 0.36, 0.32], [3, 1, 2]), base, "m")  # same seeds, other order
    expected = stats.ttest_rel([0.36, 0.32, 0.33], [0.30, 0.32, 0.31])
    assert paired.method == "paired t over seeds" and paired.p == pytest.approx(expected.pvalue)
    welch = seed_test(make([0.33, 0.36, 0.32, 0.35], [4, 5, 6, 7]), base, "m")
    expected = stats.ttest_ind([0.33, 0.36, 0.32, 0.35], [0.30, 0.32, 0.31], equal_var=False)
    assert welch.method == "Welch t over seeds" and welch.p == pytest.approx(expected.pvalue)
    interval = expected.confidence_interval(0.95)
    assert (welch.low, welch.high) == pytest.approx((interval.low, interval.high))
    pooled = seed_test(make([0.36], [9]), base, "m")
    expected = stats.ttest_ind([0.36], [0.30, 0.32, 0.31], equal_var=True)
    assert pooled.method == "pooled t over seeds" and pooled.p == pytest.approx(expected.pvalue)
    # non-finite values are not results to average: left out
    with_inf = seed_test(make([0.33, np.inf, 0.32, 0.35], [4, 5, 6, 7]), base, "m")
    expected = stats.ttest_ind([0.33, 0.32, 0.35], [0.30, 0.32, 0.31], equal_var=False)
    assert with_inf.p == pytest.approx(expected.pvalue)


def test_hierarchical_bootstrap_counts_seed_variance_as_well_as_users():
    rng = np.random.default_rng(2)
    users = rng.uniform(0.1, 0.5, 400)
    noise = lambda: rng.normal(0, 0.05, 400)  # noqa: E731
    steady = np.array([users + noise() for _ in range(10)])
    shaky = np.array([users + rng.normal(0, 0.03) + noise() for _ in range(10)])
    other = np.array([users + noise() for _ in range(10)])
    narrow = hierarchical_bootstrap(steady, other, resamples=4000, seed=0)
    wide = hierarchical_bootstrap(shaky, other, resamples=4000, seed=0)
    assert np.std(wide) > 2 * np.std(narrow)
    # no seed variance at all: what remains is the paired user bootstrap of the mean difference
    difference = (steady.mean(axis=0) - other.mean(axis=0)).std(ddof=1) / np.sqrt(400)
    assert np.std(hierarchical_bootstrap(steady[:1], other[:1], resamples=4000, seed=0)) == pytest.approx(
        (steady[0] - other[0]).std(ddof=1) / np.sqrt(400), rel=0.1
    )
    # resampling both levels counts per-run noise twice: conservative, never narrower than users alone
    assert np.std(narrow) > 0.9 * difference
    assert np.array_equal(narrow, hierarchical_bootstrap(steady, other, resamples=4000, seed=0))


def test_a_per_user_file_that_is_not_parquet_shows_the_run_unreadable_and_keeps_the_table(tmp_path):
    users = np.arange(50)
    for name, shift in (("base", 0.0), ("good", 0.05), ("torn", 0.1)):
        folder = tmp_path / name
        folder.mkdir()
        values = np.random.default_rng(len(name)).uniform(0, 1, 50) + shift
        metrics = {"val/ndcg@10": float(values.mean()), NDCG: float(values.mean())}
        record = {
            "status": "completed",
            "seed": 0,
            "monitor": "val/ndcg@10",
            "mode": "max",
            "metrics": metrics,
        }
        (folder / "metrics.json").write_text(json.dumps(record))
        pd.DataFrame({"user": users, "ndcg@10": values}).to_parquet(folder / "per_user.parquet")
    (tmp_path / "torn" / "per_user.parquet").write_text("user,ndcg@10\n1,0.5\n")
    for test in ("users", "bootstrap"):
        code, out, err = compare(tmp_path, "--baseline", "base", "--test", test, "--format", "json")
        assert code == 0, err
        payload = json.loads(out)
        rows = {row["run"]: row for row in payload["rows"]}
        assert len(rows) == 3 and rows["torn"][f"{NDCG} sig"] == "unreadable"
        assert rows["torn"][NDCG] is not None  # its metrics.json still shows
        assert rows["good"][f"{NDCG} p"] is not None
        assert any("torn/per_user.parquet is unreadable" in note for note in payload["notes"])
        if test == "bootstrap":  # too few seeds for its intervals: said in one line
            assert sum(note.startswith("warning: fewer than 10 seeds") for note in payload["notes"]) == 1
    code, out, err = compare(tmp_path, "--baseline", "torn", "--test", "users", "--format", "json")
    assert code == 0, err
    rows = {row["run"]: row for row in json.loads(out)["rows"]}
    assert rows["torn"][f"{NDCG} sig"] == "unreadable" and rows["good"][f"{NDCG} p"] is None
