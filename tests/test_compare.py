"""`recfit compare` on run folders written by the tests (known values) and on two real training runs."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from helpers.compare import compare, compare_json, write_run
from helpers.runs import train
from recfit.compare.plots import use_log_axis
from recfit.compare.significance import bootstrap_mean_cis, holm_adjust

RUN_COMMAND = "import sys; from recfit.compare.cli import run; sys.exit(run(sys.argv[1:]))"
USERS = 200
BASE_NDCG = np.random.default_rng(0).uniform(0.1, 0.5, USERS)  # every run's users share this base
SWEEP = "sweeps/exp/2026-01-01_10-00-00_000000"
# job number -> (head_lr, seed, val/ndcg@10, true effect on per-user test ndcg@10)
JOBS = {
    0: (0.001, 1, 0.20, 0.0),
    1: (0.001, 2, 0.22, 0.0),
    2: (0.01, 1, 0.30, 0.02),
    3: (0.01, 2, 0.34, 0.02),
    4: (0.1, 1, 0.25, 0.001),
    5: (0.1, 2, 0.25, 0.001),
}


def ranking_per_user(job: int, effect: float) -> pd.DataFrame:
    noise = np.random.default_rng(100 + job).normal(0, 0.05, USERS)
    return pd.DataFrame({"user": np.arange(USERS), "ndcg@10": BASE_NDCG + effect + noise})


def sweep_config(lr: float, seed: int, folder: Path, job: int) -> dict:
    return {
        "experiment_name": "exp",
        "seed": seed,
        "run_dir": str(folder),
        "paths": {"output_dir": str(folder), "data_dir": "data"},
        "hydra": {"job": {"num": job}},
        "backbone": {"name_or_path": "tiny", "pretrained": False, "config_overrides": {"hidden_size": 32}},
        "optimizer": {"head_lr": lr, "backbone_lr": 5e-5, "extra": {}},
        "task": {"name": "ranking", "metric": "ndcg@10", "topk": [10, 20]},
        "trainer": {"max_epochs": 2, "deterministic": True},
        "logger": {"csv": {"save_dir": f"/logs/2026-01-0{seed}_10-00-0{job}"}},
    }


@pytest.fixture(scope="module")
def outputs(tmp_path_factory) -> Path:
    """Six completed sweep jobs (3 learning rates x 2 seeds), one failed, one running, one broken run."""
    root = tmp_path_factory.mktemp("outputs")
    (root / SWEEP).mkdir(parents=True)
    (root / SWEEP / "multirun.yaml").write_text("hydra: {}\n")
    (root / SWEEP / "sweep_summary.csv").write_text("job,status\n0,completed\n")
    for job, (lr, seed, val, effect) in JOBS.items():
        folder = root / SWEEP / str(job)
        per_user = ranking_per_user(job, effect)
        write_run(
            folder,
            seed=seed,
            metrics={
                "val/ndcg@10": val,
                "test/ndcg@10": float(per_user["ndcg@10"].mean()),
                "test/recall@10": 0.5,
            },
            config=sweep_config(lr, seed, folder, job),
            overrides=["backbone=tiny_bert", f"optimizer.head_lr={lr}", f"seed={seed}"],
            per_user=per_user,
            curve=[val - 0.05, val],
        )
    runs = root / "runs" / "exp"
    for number, status, seed in ((1, "failed", 3), (2, "running", 4)):
        folder = runs / f"2026-01-02_10-00-00_00000{number}"
        write_run(
            folder,
            status=status,
            seed=seed,
            metrics={"val/ndcg@10": 0.9} if status == "running" else {},
            config=sweep_config(0.001, seed, folder, 0),
            overrides=["backbone=tiny_bert", "optimizer.head_lr=0.001", f"seed={seed}"],
            curve=[0.1] if status == "running" else None,
        )
    write_run(runs / "2026-01-02_10-00-00_000003", seed=5, metrics={"val/ndcg@10": 0.1, "test/ndcg@10": 0.1})
    return root


def rows_by_label(payload: dict, label: str = "run") -> dict[str, dict]:
    return {row[label]: row for row in payload["rows"]}


def test_one_row_per_run_with_only_the_keys_that_differ(outputs):
    rows = compare_json(outputs)["rows"]
    assert len(rows) == 9  # 6 sweep jobs + failed + running + broken; multirun.yaml is no run
    assert list(rows[0]) == [
        "run", "optimizer.head_lr", "val/ndcg@10", "test/ndcg@10", "status", "duration_s", "seed", "path"
    ]  # fmt: skip
    by_label = rows_by_label({"rows": rows})
    job = by_label[f"{SWEEP}/3"]
    assert job["optimizer.head_lr"] == "0.01"
    assert job["val/ndcg@10"] == pytest.approx(0.34)
    assert job["test/ndcg@10"] == pytest.approx(ranking_per_user(3, 0.02)["ndcg@10"].mean())
    assert job["seed"] == 2 and job["duration_s"] == pytest.approx(62.0)


def test_failed_running_and_broken_runs_are_listed_with_blank_metrics(outputs):
    payload = compare_json(outputs)
    rows = rows_by_label(payload)
    assert rows["runs/exp/2026-01-02_10-00-00_000001"]["status"] == "failed"
    running = rows["runs/exp/2026-01-02_10-00-00_000002"]
    assert running["status"] == "running" and running["val/ndcg@10"] is None  # 0.9 mid-run: not shown
    broken = rows["runs/exp/2026-01-02_10-00-00_000003"]
    assert broken["status"] == "completed" and broken["optimizer.head_lr"] is None
    assert broken["val/ndcg@10"] == pytest.approx(0.1)
    assert any("config.yaml missing" in note for note in payload["notes"])


def test_an_unreadable_metrics_json_is_listed_not_dropped(tmp_path):
    write_run(tmp_path / "good", metrics={"val/ndcg@10": 0.3}, config={"seed": 0})
    (tmp_path / "torn").mkdir()
    (tmp_path / "torn" / "metrics.json").write_text('{"status": "comp')
    payload = compare_json(tmp_path)
    assert {row["run"]: row["status"] for row in payload["rows"]} == {
        "good": "completed",
        "torn": "unreadable",
    }
    assert any("metrics.json unreadable" in note for note in payload["notes"])


def test_metric_option_picks_columns_and_rejects_unknown_names(outputs):
    rows = compare_json(outputs, "--metric", "test/recall@10,test/ndcg@10")["rows"]
    assert [column for column in rows[0] if "/" in column] == ["test/recall@10", "test/ndcg@10"]
    rows = compare_json(outputs, "--metric", "ndcg@10")["rows"]  # a bare name: val/ and test/
    assert [column for column in rows[0] if "/" in column] == ["val/ndcg@10", "test/ndcg@10"]
    code, _, err = compare(outputs, "--metric", "test/ndcg@11")
    assert (
        code == 2 and err == "recfit: error: unknown metric 'test/ndcg@11' (did you mean 'test/ndcg@10'?)\n"
    )


def test_sort_follows_the_mode_and_puts_blank_rows_last(outputs):
    rows = compare_json(outputs, "--sort", "val/ndcg@10")["rows"]
    values = [row["val/ndcg@10"] for row in rows]
    assert values[:7] == sorted(values[:7], reverse=True) and values[0] == pytest.approx(0.34)
    assert values[7:] == [None, None]
    rows = compare_json(outputs, "--sort", "val/ndcg@10", "--ascending")["rows"]
    assert rows[0]["val/ndcg@10"] == pytest.approx(0.1) and rows[-1]["val/ndcg@10"] is None


def test_filter_matches_text_numbers_and_status(outputs):
    rows = compare_json(outputs, "--filter", "optimizer.head_lr=1e-2")["rows"]
    assert sorted(row["seed"] for row in rows) == [1, 2]
    assert "optimizer.head_lr" not in rows[0]  # the same in every run left: no longer a differing key
    rows = compare_json(outputs, "--filter", "status=completed", "--filter", "seed=1")["rows"]
    assert len(rows) == 3
    rows = compare_json(outputs, "--filter", "status!=completed")["rows"]
    assert sorted(row["status"] for row in rows) == ["failed", "running"]


def test_group_by_gives_mean_sample_std_and_n(outputs):
    payload = compare_json(outputs, "--group-by", "optimizer.head_lr")
    groups = rows_by_label(payload, "group")
    assert set(groups) == {f"optimizer.head_lr={value}" for value in ("0.001", "0.01", "0.1", "(unset)")}
    low = groups["optimizer.head_lr=0.001"]
    assert low["n"] == 2 and low["status"] == "2 completed, 1 failed, 1 running"
    assert low["val/ndcg@10"] == pytest.approx(0.21)
    assert low["val/ndcg@10 std"] == pytest.approx(np.std([0.20, 0.22], ddof=1))
    assert low["seeds"] == "1,2,3,4"
    assert groups["optimizer.head_lr=0.01"]["val/ndcg@10 std"] == pytest.approx(np.std([0.30, 0.34], ddof=1))
    assert groups["optimizer.head_lr=0.1"]["val/ndcg@10 std"] == pytest.approx(0.0)
    single = groups["optimizer.head_lr=(unset)"]
    assert single["n"] == 1 and single["val/ndcg@10 std"] is None  # n=1: no sample std
    code, out, _ = compare(outputs, "--group-by", "optimizer.head_lr", "--format", "markdown")
    assert code == 0 and "| 0.2100 ± 0.01414 |" in out and "| 0.1000 |" in out


def test_best_picks_the_best_run_or_group(outputs):
    rows = compare_json(outputs, "--best")["rows"]
    assert [row["run"] for row in rows] == [f"{SWEEP}/3"]
    rows = compare_json(outputs, "--best", "--group-by", "optimizer.head_lr")["rows"]
    assert [row["group"] for row in rows] == ["optimizer.head_lr=0.01"]
    rows = compare_json(outputs, "--best", "--sort", "val/ndcg@10", "--ascending")["rows"]
    assert [row["run"] for row in rows] == ["runs/exp/2026-01-02_10-00-00_000003"]


NDCG = "test/ndcg@10"


def significance_of(row: dict, metric: str = NDCG) -> dict:
    """The significance fields of `metric` in a JSON row: {"delta": ..., "p": ..., ...}."""
    return {name: row[f"{metric} {name}"] for name in ("delta", "ci_low", "ci_high", "p", "p_holm", "sig")}


def test_users_test_of_runs_matches_scipy_paired_t_test(outputs):
    payload = compare_json(outputs, "--baseline", outputs / SWEEP / "0", "--metric", NDCG, "--test", "users")
    assert payload["test"] == "users" and payload["paired_on"] == {NDCG: "ndcg@10"}
    rows = rows_by_label(payload)
    base, other = ranking_per_user(0, 0.0)["ndcg@10"], ranking_per_user(2, 0.02)["ndcg@10"]
    expected = stats.ttest_rel(other, base).pvalue
    row = rows[f"{SWEEP}/2"]
    assert significance_of(row)["p"] == pytest.approx(expected, rel=1e-9)
    assert significance_of(row)["delta"] == pytest.approx((other - base).mean())
    assert row["pairs"] == USERS and row["method"] == "paired t over users"
    assert significance_of(rows[f"{SWEEP}/0"])["sig"] == "baseline"
    assert significance_of(rows["runs/exp/2026-01-02_10-00-00_000001"])["p"] is None  # failed: not tested
    compared = [row for row in payload["rows"] if significance_of(row)["p"] is not None]
    assert len(compared) == 5  # the broken run has no per_user.parquet: a note, not an error
    p_holm = holm_adjust([significance_of(row)["p"] for row in compared])
    assert [significance_of(row)["p_holm"] for row in compared] == pytest.approx(list(p_holm))
    assert any(
        "2026-01-02_10-00-00_000003: not compared on test/ndcg@10" in note for note in payload["notes"]
    )
    assert any("seed variance is not counted" in note for note in payload["notes"])
    # the timestamp folder name alone names the run as well
    again = compare_json(outputs, "--baseline", "0", "--metric", NDCG, "--test", "users")
    assert again["baseline"] == f"{SWEEP}/0"


def test_single_runs_cannot_be_tested_on_seeds_and_say_so_in_one_line(outputs):
    payload = compare_json(outputs, "--baseline", outputs / SWEEP / "0", "--metric", NDCG)
    assert payload["test"] == "seeds"
    assert all(significance_of(row)["p"] is None for row in payload["rows"])  # one run on each side
    warnings = [note for note in payload["notes"] if note.startswith("warning: fewer than 3 seeds")]
    assert len(warnings) == 1 and "\n" not in warnings[0]
    assert any("one run on each side: no seed variance" in note for note in payload["notes"])


def test_seed_test_pairs_groups_by_seed_on_each_metric(outputs):
    arguments = [outputs, "--group-by", "optimizer.head_lr", "--baseline", "optimizer.head_lr=0.001"]
    arguments += [
        "--filter",
        "optimizer.head_lr!=(unset)",
        "--metric",
        "val/ndcg@10,test/ndcg@10,test/recall@10",
    ]
    payload = compare_json(*arguments)
    assert payload["tested_metrics"] == [NDCG, "test/recall@10"]  # every test/ metric shown
    groups = rows_by_label(payload, "group")
    base = np.array([ranking_per_user(job, 0.0)["ndcg@10"].mean() for job in (0, 1)])  # seeds 1, 2
    better = np.array([ranking_per_user(job, 0.02)["ndcg@10"].mean() for job in (2, 3)])
    expected = stats.ttest_rel(better, base)
    row = groups["optimizer.head_lr=0.01"]
    assert row["method"] == "paired t over seeds"
    assert significance_of(row)["p"] == pytest.approx(expected.pvalue, rel=1e-9)
    interval = expected.confidence_interval(0.95)
    assert [significance_of(row)["ci_low"], significance_of(row)["ci_high"]] == pytest.approx(
        [interval.low, interval.high]
    )
    assert significance_of(row)["delta"] == pytest.approx((better - base).mean())
    # test/recall@10 is 0.5 in every run: no variance, no p; still a column of its own
    assert significance_of(row, "test/recall@10")["delta"] == pytest.approx(0.0)
    assert "val/ndcg@10 p" not in row  # val/ metrics chose the checkpoint: not tested
    assert sum(note.startswith("warning: fewer than 3 seeds") for note in payload["notes"]) == 1
    assert compare_json(*arguments) == payload


def test_users_test_averages_seeds_per_user_then_pairs(outputs):
    arguments = [outputs, "--group-by", "optimizer.head_lr", "--baseline", "optimizer.head_lr=0.001"]
    payload = compare_json(*arguments, "--filter", "optimizer.head_lr!=(unset)", "--test", "users")
    groups = rows_by_label(payload, "group")
    assert len(groups) == 3  # the broken run, without a config, is filtered out
    base = (ranking_per_user(0, 0.0)["ndcg@10"] + ranking_per_user(1, 0.0)["ndcg@10"]) / 2
    better = (ranking_per_user(2, 0.02)["ndcg@10"] + ranking_per_user(3, 0.02)["ndcg@10"]) / 2
    row = significance_of(groups["optimizer.head_lr=0.01"])
    assert row["p"] == pytest.approx(stats.ttest_rel(better, base).pvalue, rel=1e-9)
    assert row["ci_low"] < 0.02 < row["ci_high"]  # contains the true difference
    assert row["ci_low"] < (better - base).mean() < row["ci_high"]
    assert row["sig"] == "*"
    assert (
        significance_of(groups["optimizer.head_lr=0.1"])["sig"] == ""
    )  # a true effect of 0.001: too small to see
    assert compare_json(*arguments, "--test", "users") == compare_json(
        *arguments, "--test", "users"
    )  # seeded
    code, out, _ = compare(*arguments, "--test", "users", "--format", "csv")
    assert code == 0 and "*" in pd.read_csv(io.StringIO(out))[f"{NDCG} sig"].tolist()


def test_holm_against_a_hand_computed_example():
    # sorted: 0.005*4=0.02, 0.01*3=0.03, 0.03*2=0.06, 0.04*1=0.04 -> running max 0.06
    assert holm_adjust([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    adjusted = holm_adjust([0.5, np.nan, 0.3])
    assert adjusted[0] == pytest.approx(0.6) and np.isnan(adjusted[1]) and adjusted[2] == pytest.approx(0.6)
    assert holm_adjust([0.9, 0.8]) == pytest.approx([1.0, 1.0])  # capped
    assert holm_adjust([]).size == 0


def test_bootstrap_ci_is_deterministic_and_covers_the_mean():
    rng = np.random.default_rng(7)
    noise = rng.normal(0.0, 1.0, 400)
    differences = 0.1 + noise - noise.mean()  # sample mean exactly 0.1
    low, high = bootstrap_mean_cis([differences], resamples=4000, seed=3)[0]
    assert low < 0.1 < high
    standard_error = differences.std(ddof=1) / np.sqrt(400)
    assert high - low == pytest.approx(2 * 1.96 * standard_error, rel=0.1)
    together = bootstrap_mean_cis([differences, rng.normal(size=400), np.array([])], resamples=4000, seed=3)
    assert together[0] == pytest.approx([low, high])  # a CI does not depend on the other rows
    assert np.isnan(together[2]).all()
    assert np.array_equal(bootstrap_mean_cis([differences], resamples=4000, seed=3)[0], [low, high])
    assert not np.allclose(bootstrap_mean_cis([differences], resamples=4000, seed=4)[0], [low, high])
    # over many data sets with a true mean difference of 0.1, about 95% of the intervals hold it
    samples = rng.normal(0.1, 1.0, (300, 200))
    intervals = bootstrap_mean_cis(list(samples), resamples=2000, seed=0)
    coverage = np.mean((intervals[:, 0] < 0.1) & (intervals[:, 1] > 0.1))
    assert 0.90 <= coverage <= 0.99


def test_rating_runs_pair_on_user_item_rows_and_group_by_override_choices(tmp_path):
    rng = np.random.default_rng(1)
    rows = pd.DataFrame({"user": np.repeat(np.arange(50), 4), "item": np.tile(np.arange(4), 50)})
    target = rng.uniform(1, 5, len(rows))
    errors = {"mf": rng.normal(0, 1.0, len(rows)), "two_tower": rng.normal(0, 0.6, len(rows))}
    for model, error in errors.items():
        prediction = target + error
        per_user = rows.assign(
            target=target, prediction=prediction, squared_error=error**2, abs_error=abs(error)
        )
        if model == "two_tower":  # one row fewer and shuffled: the join is on (user, item), not position
            per_user = per_user.iloc[1:].sample(frac=1.0, random_state=0)
        rmse = float(np.sqrt((error**2).mean()))
        write_run(
            tmp_path / model,
            metrics={"val/rmse": rmse, "test/rmse": rmse, "test/mae": float(abs(error).mean())},
            config={"model": {"embedding_dim": 8}, "seed": 0},
            overrides=[f"model={model}", "task=rating"],
            per_user=per_user,
            monitor="val/rmse",
            mode="min",
            task="rating",
        )
    arguments = [tmp_path, "--group-by", "model", "--baseline", "model=mf", "--sort", "test/rmse"]
    payload = compare_json(*arguments, "--test", "users")
    assert [row["group"] for row in payload["rows"]] == ["model=two_tower", "model=mf"]  # lower rmse first
    assert payload["paired_on"] == {"test/rmse": "squared_error"}
    expected = stats.ttest_rel(errors["two_tower"][1:] ** 2, errors["mf"][1:] ** 2).pvalue
    row = payload["rows"][0]
    assert row["pairs"] == len(rows) - 1 and row["test/rmse p"] == pytest.approx(expected, rel=1e-9)
    code, _, err = compare(tmp_path, "--metric", "test/mae", "--baseline", "mf", "--test", "users")
    assert code == 0, err
    (tmp_path / "mf" / "metrics.json").write_text(
        (tmp_path / "mf" / "metrics.json").read_text().replace('"test/mae"', '"test/auc"')
    )
    code, _, err = compare(tmp_path, "--metric", "test/auc", "--baseline", "mf", "--test", "users")
    assert code == 2 and "test/auc: not tested: test/auc is not an average over users" in err
    # the seed test needs no per-user values: any metric (here one run a side: blank, with a note)
    payload = compare_json(tmp_path, "--metric", "test/auc", "--baseline", "mf")
    assert payload["tested_metrics"] == ["test/auc"]


def test_every_output_format_parses_back(outputs, tmp_path):
    arguments = [outputs, "--group-by", "optimizer.head_lr", "--baseline", "optimizer.head_lr=0.001"]
    for suffix in ("json", "csv", "md", "tex", "txt"):
        code, out, err = compare(*arguments, "--output", tmp_path / f"table.{suffix}")
        assert code == 0 and out == "" and err == f"wrote {tmp_path / f'table.{suffix}'}\n"
    assert sorted(path.name for path in tmp_path.iterdir()) == [
        "table.csv", "table.json", "table.md", "table.tex", "table.txt"
    ]  # fmt: skip # no temporary files left behind
    rows = json.loads((tmp_path / "table.json").read_text())["rows"]
    table = pd.read_csv(tmp_path / "table.csv")
    assert len(table) == len(rows) == 4
    assert table["val/ndcg@10"].tolist() == pytest.approx([row["val/ndcg@10"] for row in rows])
    markdown = (tmp_path / "table.md").read_text().splitlines()
    header = next(line for line in markdown if line.startswith("| group |"))
    assert "val/ndcg@10" in header and "test/ndcg@10 p_holm" in header and "test/ndcg@10 95% CI" in header
    assert markdown[markdown.index(header) + 1].startswith("|---|")
    latex = (tmp_path / "table.tex").read_text()
    assert r"\begin{tabular}" in latex and r"\end{tabular}" in latex and r"$\pm$" in latex
    assert r"optimizer.head\_lr=0.001" in latex
    assert "optimizer.head_lr=0.01" in (tmp_path / "table.txt").read_text()
    code, out, _ = compare(outputs, "--format", "csv")
    assert code == 0 and len(pd.read_csv(io.StringIO(out))) == 9


def test_plots_are_png_files_of_the_expected_size(outputs, tmp_path):
    from matplotlib.image import imread

    code, _, err = compare(
        outputs,
        "--group-by",
        "optimizer.head_lr",
        "--plot",
        tmp_path / "bars.png",
        "--plot-curves",
        tmp_path / "curves.png",
        "--plot-param",
        "optimizer.head_lr",
        tmp_path / "lr.png",
    )
    assert code == 0, err
    for name in ("bars.png", "curves.png", "lr.png"):
        assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert imread(tmp_path / name).shape[:2] == (500, 800)
    code, _, err = compare(
        outputs, "--plot", tmp_path / "runs.png", "--plot-param", "seed", tmp_path / "seed.png"
    )
    assert code == 0, err
    assert imread(tmp_path / "runs.png").shape[:2] == (500, 800)
    code, _, err = compare(outputs, "--plot-param", "trainer.deterministic", tmp_path / "x.png")
    assert code == 2 and "has no numeric value" in err


def test_log_axis_for_learning_rates_and_wide_ranges():
    assert use_log_axis("optimizer.head_lr", pd.Series([0.001, 0.002]))
    assert use_log_axis("dataset.batch_size", pd.Series([1.0, 1000.0]))
    assert not use_log_axis("dataset.batch_size", pd.Series([16.0, 256.0]))
    assert not use_log_axis("model.dropout", pd.Series([0.0, 0.5]))


@pytest.mark.parametrize(
    ("arguments", "expected"),
    [
        (["{empty}"], "no run folders (folders with metrics.json) under"),
        (["{missing}"], "no such folder"),
        (["{outputs}", "--metric", "test/nope"], "unknown metric 'test/nope'"),
        (["{outputs}", "--baseline", "no-such-run"], "unknown baseline 'no-such-run'"),
        (["{outputs}", "--group-by", "optimizer.head_lr", "--baseline", "x=1"], "unknown baseline 'x=1'"),
        (["{outputs}", "--filter", "optimizer.head_lr"], "bad --filter 'optimizer.head_lr'"),
        (["{outputs}", "--filter", "optimizer.head_rl=1"], "did you mean 'optimizer.head_lr'"),
        (["{outputs}", "--filter", "seed=99"], "no run matches --filter seed=99"),
        (["{outputs}", "--group-by", "nope"], "unknown --group-by key 'nope'"),
        (["{outputs}", "--format", "xml"], "argument --format: invalid choice"),
        (["{outputs}", "--output", "{missing}/table.json"], "does not exist"),
    ],
)
def test_bad_input_is_one_line_and_exit_code_2(outputs, tmp_path, arguments, expected):
    (tmp_path / "empty").mkdir()
    places = {"outputs": outputs, "empty": tmp_path / "empty", "missing": tmp_path / "missing"}
    code, out, err = compare(*(argument.format(**places) for argument in arguments))
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and err.startswith("recfit: error: ") and expected in err, err


def test_help_documents_every_option():
    code, out, _ = compare("--help")
    assert code == 0
    for option in ("--metric", "--sort", "--ascending", "--filter", "--group-by", "--best", "--baseline"):
        assert option in out
    for option in ("--format", "--output", "--plot ", "--plot-curves", "--plot-param KEY FILE.png"):
        assert option in out


def test_subprocess_exit_codes_and_no_torch_import(outputs, tmp_path):
    command = [sys.executable, "-c", RUN_COMMAND]
    result = subprocess.run([*command, str(outputs), "--format", "json"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert len(json.loads(result.stdout)["rows"]) == 9
    result = subprocess.run([*command, str(tmp_path)], capture_output=True, text=True)
    assert result.returncode == 2 and result.stderr.startswith("recfit: error: no run folders")
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    # a fresh interpreter: compare, with every feature that imports something, loads no heavy library
    # (the torch-free task registry, recfit.tasks, tells it each metric's direction)
    script = (
        "import sys; from recfit.compare.cli import run; "
        "code = run(sys.argv[1:]); heavy = ('torch', 'transformers', 'lightning', 'hydra', 'omegaconf'); "
        "loaded = [m for m in sys.modules if m.split('.')[0] in heavy or "
        "(m.startswith('recfit.') and not m.startswith(('recfit.compare', 'recfit.tasks')) "
        "and m not in ('recfit.errors', 'recfit.run_folder'))]; "
        "print(code, loaded)"
    )
    arguments = [str(outputs), "--group-by", "optimizer.head_lr", "--baseline", "optimizer.head_lr=0.001"]
    arguments += [
        "--plot",
        str(tmp_path / "a.png"),
        "--plot-curves",
        str(tmp_path / "b.png"),
        "--format",
        "latex",
    ]
    result = subprocess.run([sys.executable, "-c", script, *arguments], capture_output=True, text=True)
    assert result.stdout.splitlines()[-1] == "0 []", result.stdout + result.stderr


@pytest.fixture(scope="module")
def two_real_runs(tmp_path_factory) -> Path:
    """Two one-epoch tiny-BERT runs that differ only in their seed (trained in this process)."""
    outputs = tmp_path_factory.mktemp("real")
    for seed in (1, 2):
        train(outputs, "backbone=tiny_bert", "trainer.max_epochs=1", "trainer.enable_progress_bar=false",
              f"seed={seed}")  # fmt: skip
    return outputs


@pytest.mark.slow
def test_compare_two_real_training_runs(two_real_runs, tmp_path):
    folders = sorted((two_real_runs / "runs" / "quickstart").iterdir())
    assert len(folders) == 2
    payload = compare_json(two_real_runs, "--metric", NDCG, "--baseline", folders[0], "--test", "users")
    rows = rows_by_label(payload)
    assert list(rows[folders[1].name]) == [
        "run", NDCG, *(f"{NDCG} {name}" for name in ("delta", "ci_low", "ci_high", "p", "p_holm", "sig")),
        "method", "pairs", "status", "duration_s", "seed", "path"
    ]  # fmt: skip # the config key seed differs, and is shown once, in its own column
    first, second = (pd.read_parquet(folder / "per_user.parquet") for folder in folders)
    paired = first.merge(second, on="user", suffixes=("_base", "_row"))
    row = rows[folders[1].name]
    assert row["pairs"] == len(paired)
    difference = (paired["ndcg@10_row"] - paired["ndcg@10_base"]).mean()
    assert significance_of(row)["delta"] == pytest.approx(difference, abs=1e-6)
    expected = stats.ttest_rel(paired["ndcg@10_row"], paired["ndcg@10_base"]).pvalue
    assert significance_of(row)["p"] == pytest.approx(expected, rel=1e-6, nan_ok=True)
    assert significance_of(rows[folders[0].name])["sig"] == "baseline"
    code, _, err = compare(two_real_runs, "--plot-curves", tmp_path / "curves.png")
    assert code == 0, err


def test_recfit_eval_folders_are_not_extra_seeds_unless_asked_for(tmp_path):
    config = {"model": {"name": "mf"}, "seed": 0}
    for seed, value in ((1, 0.30), (2, 0.32)):
        write_run(tmp_path / "runs" / f"s{seed}", seed=seed, metrics={NDCG: value}, config=config)
    evaluation = write_run(tmp_path / "evals" / "e1", seed=1, metrics={NDCG: 0.30}, config=config)
    record = json.loads((evaluation / "metrics.json").read_text())
    record.update(kind="eval", evaluated_run=str(tmp_path / "runs" / "s1"))
    (evaluation / "metrics.json").write_text(json.dumps(record))
    payload = compare_json(tmp_path, "--group-by", "model.name", "--metric", NDCG)
    (group,) = payload["rows"]
    assert group["n"] == 2 and group[f"{NDCG} std"] == pytest.approx(np.std([0.30, 0.32], ddof=1))
    assert any("1 `recfit eval` folder left out" in note for note in payload["notes"])
    payload = compare_json(tmp_path, "--group-by", "model.name", "--metric", NDCG, "--include-evals")
    assert payload["rows"][0]["n"] == 3
    code, _, err = compare(tmp_path / "evals")
    assert code == 2 and "add --include-evals" in err
    assert len(compare_json(tmp_path / "evals", "--include-evals")["rows"]) == 1


def test_configs_are_compared_after_resolving_interpolations(tmp_path):
    saved = {
        "paths": {"data_dir": "data"},
        "dataset": {"download_dir": "${paths.data_dir}", "k": "${.n}", "n": 3},
    }
    resolved = {"paths": {"data_dir": "data"}, "dataset": {"download_dir": "data", "k": 3, "n": 3}}
    write_run(tmp_path / "train", metrics={NDCG: 0.3}, config={**saved, "lr": 0.1, "env": "${oc.env:HOME}"})
    write_run(tmp_path / "eval", metrics={NDCG: 0.3}, config={**resolved, "lr": 0.2, "env": "${oc.env:HOME}"})
    row = compare_json(tmp_path)["rows"][0]
    assert [key for key in row if "." in key or key in ("lr", "env")] == ["lr"]  # only what really differs
    write_run(tmp_path / "other", metrics={NDCG: 0.3}, config={**saved, "paths": {"data_dir": "elsewhere"}})
    keys = [key for key in compare_json(tmp_path)["rows"][0] if key.startswith("dataset.")]
    assert keys == ["dataset.download_dir"]  # elsewhere vs data: a real difference


def test_nan_and_inf_metrics_are_named_not_averaged_into_inf(tmp_path):
    for name, logloss, auc in (("a", 0.5, 0.7), ("b", float("inf"), None), ("c", 0.7, 0.6)):
        write_run(
            tmp_path / name,
            metrics={"val/logloss": 0.5, "test/logloss": logloss, "test/auc": auc},
            config={"model": {"name": "mf"}},
            monitor="val/logloss",
            mode="min",
            task="ctr",
        )
    metrics = ["--metric", "test/logloss,test/auc"]
    payload = compare_json(tmp_path, "--group-by", "model.name", *metrics)
    group = payload["rows"][0]
    assert group["test/logloss"] == pytest.approx(0.6) and group["test/auc"] == pytest.approx(0.65)
    assert "test/logloss is inf in 1 run (b): left out of means, std and tests" in payload["notes"]
    assert "test/auc is NaN (undefined) in 1 run (b): left out of means, std and tests" in payload["notes"]
    code, out, _ = compare(tmp_path, *metrics, "--format", "markdown")
    assert code == 0 and "| inf |" in out  # the run itself shows its value
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # matplotlib warns about an endless bar
        code, _, err = compare(tmp_path, *metrics, "--plot", tmp_path / "bars.png")  # inf: no bar drawn
    assert code == 0 and (tmp_path / "bars.png").is_file(), err


def test_floats_show_four_significant_digits(tmp_path):
    write_run(tmp_path / "a", metrics={NDCG: 0.004667123, "test/rmse": 1.23456}, config={"x": 1}, seed=1)
    write_run(tmp_path / "b", metrics={NDCG: 0.25, "test/rmse": 0.9}, config={"x": 2}, seed=2)
    code, out, _ = compare(tmp_path, "--metric", f"{NDCG},test/rmse", "--format", "markdown")
    assert code == 0
    assert "| 0.004667 | 1.235 |" in out and "| 0.2500 | 0.9000 |" in out
    assert "| 61.00 |" in out  # duration_s too


def test_per_user_files_with_and_without_the_target_item_still_pair_on_users(tmp_path):
    """A next_item run's per_user.parquet names each user's test target (`item`, one row per user);
    older ones do not. Both are one row per user, so the two arms pair on users alike."""
    rng = np.random.default_rng(3)
    users = np.arange(60)
    values = {"old": rng.uniform(0, 1, 60), "new": rng.uniform(0, 1, 60)}
    for name, value in values.items():
        per_user = pd.DataFrame({"user": users, "ndcg@10": value})
        if name == "new":
            per_user = per_user.assign(item=rng.integers(0, 100, 60)).sample(frac=1.0, random_state=0)
        write_run(
            tmp_path / name,
            metrics={"val/ndcg@10": 0.1, NDCG: float(value.mean())},
            config={"model": {"name": name}, "seed": 0},
            overrides=[f"experiment_name={name}"],
            per_user=per_user,
            task="next_item",
        )
    payload = compare_json(tmp_path, "--baseline", tmp_path / "old", "--metric", NDCG, "--test", "users")
    row = next(row for row in payload["rows"] if significance_of(row)["p"] is not None)
    assert row["pairs"] == 60
    expected = stats.ttest_rel(values["new"], values["old"]).pvalue
    assert significance_of(row)["p"] == pytest.approx(expected, rel=1e-9)


def test_a_running_run_whose_process_is_gone_shows_as_interrupted(tmp_path):
    """SIGKILL (or a scheduler's hard limit) leaves `running` in metrics.json: compare shows such a run
    as interrupted (resume=auto takes it) when its pid is gone from this host, and running otherwise."""
    import socket

    gone = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    owners = {"killed": int(gone.stdout), "alive": os.getpid(), "elsewhere": int(gone.stdout)}
    for name, pid in owners.items():
        write_run(tmp_path / name, status="running", metrics={"val/ndcg@10": 0.1}, config={"seed": 0})
        record = json.loads((tmp_path / name / "metrics.json").read_text())
        host = "another-host" if name == "elsewhere" else socket.gethostname()
        (tmp_path / name / "metrics.json").write_text(json.dumps({**record, "host": host, "pid": pid}))
    payload = compare_json(tmp_path)
    status = {Path(row["path"]).name: row["status"] for row in payload["rows"]}
    assert status == {"killed": "interrupted", "alive": "running", "elsewhere": "running"}
