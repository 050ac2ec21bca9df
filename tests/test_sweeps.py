"""Real sweeps: basic, joblib, Optuna and submitit_local, with failing jobs and resume.

The launchers that start processes of their own (joblib, submitit_local) and `recfit sweep resume` run
as real subprocesses; a sweep whose jobs run in its own process runs in this one (no second start-up).
"""

from __future__ import annotations

import gc
import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
import yaml
from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.override_parser.overrides_parser import OverridesParser

from helpers.cli import assert_one_line_error, recfit, run_cli
from helpers.files import write_reviews_csv

TINY = [
    "backbone=tiny_bert",
    "trainer.max_epochs=1",
    "trainer.enable_progress_bar=false",
    "dataset.reader.num_users=40",
]


def only_sweep(outputs: Path) -> Path:
    (sweep,) = list(outputs.glob("sweeps/*/*"))
    return sweep


def summary(sweep: Path) -> pd.DataFrame:
    return pd.read_csv(sweep / "sweep_summary.csv")


@pytest.mark.slow
def test_failed_jobs_are_recorded_and_resumed(tmp_path, capsys):
    good = write_reviews_csv(tmp_path / "good.csv", rows=40)
    broken = tmp_path / "broken.csv"
    broken.write_bytes("text,label\ncaf\xe9,pos\n".encode("latin-1"))
    outputs = tmp_path / "outputs"
    result = run_cli(
        capsys, "train", "-m", "experiment=text_csv_bert", *TINY[:3], "dataset.reader.text_column=review",
        "dataset.reader.label_column=sentiment", f"dataset.reader.path={good},{broken}", "seed=1,2",
        f"paths.output_dir={outputs}",
    )  # fmt: skip
    sweep = only_sweep(outputs)
    # the sweep went on past its failed jobs, then says so: exit 1 and one line naming the summary
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("recfit: error: 2 of 4 jobs failed; summary: "), result.stderr[-2000:]
    assert last.endswith(f"{sweep.name}/sweep_summary.csv") and result.returncode == 1
    table = summary(sweep)
    assert table["job"].tolist() == [0, 1, 2, 3]
    assert table["status"].tolist() == ["completed", "completed", "failed", "failed"]
    assert table["error"].iloc[2].endswith("is not UTF-8 text (line 2, byte 14): re-save it as UTF-8")
    assert table["objective"].iloc[0] == "val/accuracy" and table["value"].iloc[:2].notna().all()
    finished = (sweep / "0" / "metrics.json").read_bytes()

    shutil.copy(good, broken)  # the fix
    resumed = recfit("sweep", "resume", str(sweep))
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "re-running [2, 3]" in resumed.stdout
    table = summary(sweep)
    assert table["status"].tolist() == ["completed"] * 4
    assert (sweep / "0" / "metrics.json").read_bytes() == finished  # finished jobs untouched
    attempts = sorted(p.name.split("-")[0] for p in (sweep / ".attempts").iterdir())
    assert attempts == ["2", "3"]  # the failed attempts are kept, not deleted
    assert json.loads((sweep / "2" / "metrics.json").read_text())["seed"] == 1
    assert recfit("sweep", "resume", str(sweep)).stdout.count("re-running []") == 1

    # compare reads the sweep: 4 runs (the superseded attempts in .attempts/ are not runs of the sweep)
    table = recfit(
        "compare", str(sweep), "--group-by", "seed", "--format", "csv", "--output", str(tmp_path / "t.csv")
    )
    assert table.returncode == 0, table.stderr
    grouped = pd.read_csv(tmp_path / "t.csv")
    assert grouped["n"].tolist() == [2, 2]


def test_a_sweep_with_an_invalid_job_is_refused_before_it_starts(tmp_path, capsys):
    result = run_cli(capsys, "train", "-m", *TINY, "loss=cross_entropy,mse", f"paths.output_dir={tmp_path}")
    assert_one_line_error(result, "sweep job 1 (")  # named as the user wrote it
    assert "loss=mse trainer.max_epochs=1" not in result.stderr and "hydra.mode" not in result.stderr
    assert "loss 'mse' does not fit task 'ranking'" in result.stderr
    assert not (tmp_path / "sweeps").exists()


class Compositions:
    """Counts the configs Hydra's config loader really builds from their defaults lists (the YAML files
    read and merged: most of a composition); the loader itself runs."""

    def __init__(self, monkeypatch) -> None:
        from hydra._internal.config_loader_impl import ConfigLoaderImpl

        self.count = 0
        compose_for_real = ConfigLoaderImpl._compose_config_from_defaults_list

        def counted(loader, *arguments, **keywords):
            self.count += 1
            return compose_for_real(loader, *arguments, **keywords)

        monkeypatch.setattr(ConfigLoaderImpl, "_compose_config_from_defaults_list", counted)


def test_a_sweep_composes_each_config_once_and_runs_the_config_it_validated(tmp_path, monkeypatch):
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.types import RunMode
    from omegaconf import OmegaConf

    from recfit.config.compose import compose, conf_dir
    from recfit.config.sweep import MULTIRUN_MODE, composed_once, launcher_overrides, validate_sweep

    arguments = ["model=mf", "backbone=none", "optimizer=adam,adamw", "optimizer.head_lr=0.1,0.2",
                 "hydra.job.env_copy=[RECFIT_TEST_ENV]", f"paths.output_dir={tmp_path}"]  # fmt: skip
    monkeypatch.setenv("RECFIT_TEST_ENV", "read when validated")

    def as_hydra_launches(jobs: int) -> list[str]:
        """What Hydra's command line does with `recfit train -m ARGUMENTS`: compose the sweep's config,
        then (its sweeper checking the batch, its launcher running each job) every job's, twice."""
        with initialize_config_dir(config_dir=str(conf_dir()), version_base="1.3"):
            hydra = GlobalHydra.instance().hydra
            master = hydra.compose_config("train", [*arguments, MULTIRUN_MODE], run_mode=RunMode.MULTIRUN)
            task = master.hydra.overrides.task
            (batch,) = BasicSweeper.split_arguments(OverridesParser.create().parse_overrides(task), None)
            assert len(batch) == jobs
            for job in batch:
                hydra.config_loader.load_sweep_config(master, job)  # the sweeper's check
            return [OmegaConf.to_yaml(hydra.config_loader.load_sweep_config(master, job)) for job in batch]

    fresh = as_hydra_launches(4)  # as before: no config kept
    compositions = Compositions(monkeypatch)
    with composed_once():
        assert validate_sweep(arguments) == 4
        # the defaults list of each optimizer merged once; the other job of each takes its own head_lr
        assert compositions.count == 2
        monkeypatch.setenv("RECFIT_TEST_ENV", "read again when the job starts")
        launched = as_hydra_launches(4)
        assert compositions.count == 2 + 1  # and then only the sweep's own config
    # the very configs Hydra composes without the kept ones, but for the environment read as each job starts
    again = "read again when the job starts"
    assert [text.replace(again, "read when validated") for text in launched] == fresh
    assert all(f"RECFIT_TEST_ENV: {again}" in text for text in launched)
    assert "torch.optim.AdamW" in launched[3] and "head_lr: 0.2" in launched[3]
    jobs = launcher_overrides(arguments)
    assert jobs[1][:2] == ["hydra.job.env_copy=[RECFIT_TEST_ENV]", MULTIRUN_MODE]
    compose(jobs[1])
    assert compositions.count == 3 + 1  # outside a sweep nothing is kept


def test_a_sweep_over_hydras_own_config_is_refused_in_one_line(tmp_path, capsys):
    swept = "hydra.job.chdir=false,true"
    result = run_cli(
        capsys, "train", "-m", "model=mf", "backbone=none", swept, f"paths.output_dir={tmp_path}"
    )
    assert_one_line_error(result, f"sweeping over Hydra's own configuration is not supported: {swept}")
    assert not (tmp_path / "sweeps").exists()


@pytest.mark.slow
def test_joblib_runs_jobs_in_parallel_with_the_same_results(tmp_path, capsys):
    parallel = recfit("train", "-m", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2", *TINY, "seed=1,2",
                      f"paths.output_dir={tmp_path / 'parallel'}")  # fmt: skip
    assert parallel.returncode == 0, parallel.stderr[-2000:]
    serial = run_cli(capsys, "train", "-m", *TINY, "seed=1,2", f"paths.output_dir={tmp_path / 'serial'}")
    assert serial.returncode == 0, serial.stderr[-2000:]
    a, b = summary(only_sweep(tmp_path / "parallel")), summary(only_sweep(tmp_path / "serial"))
    assert a["status"].tolist() == ["completed", "completed"]
    assert a["value"].tolist() == b["value"].tolist()  # same seeds, same numbers, whatever the launcher


@pytest.mark.slow
def test_submitit_local_launcher(tmp_path):
    result = recfit(
        "train", "-m", "hydra/launcher=submitit_local", *TINY, "seed=1,2", f"paths.output_dir={tmp_path}"
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert summary(only_sweep(tmp_path))["status"].tolist() == ["completed", "completed"]


@pytest.mark.slow
def test_optuna_search_records_failed_trials_and_goes_on(tmp_path, capsys):
    # a negative temperature is refused by validation: with this sampler seed, trials 0 and 2 draw it
    result = run_cli(
        capsys, "train", "-m", "hparams_search=optuna", "hydra.sweeper.sampler.seed=2",
        "hydra.sweeper.n_trials=3", "loss.temperature=choice(-1.0,0.05)", *TINY,
        f"paths.output_dir={tmp_path}",
    )  # fmt: skip
    sweep = only_sweep(tmp_path)
    table = summary(sweep)
    assert len(table) == 3
    failed = (table["status"] == "failed").sum()
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith(f"recfit: error: {failed} of 3 jobs failed; summary: "), result.stderr[-2000:]
    assert result.returncode == 1
    assert set(table["status"]) == {"completed", "failed"}
    assert (
        table.loc[table["status"] == "failed", "error"]
        .str.contains("loss.temperature must be positive")
        .all()
    )
    results = yaml.safe_load((sweep / "optimization_results.yaml").read_text())
    assert results["best_value"] == pytest.approx(table["value"].max())
    assert table["objective"].unique().tolist() == ["val/ndcg@10"]  # the objective is task.metric


def test_a_data_set_is_read_once_per_sweep_and_each_job_gets_its_own_copy(tmp_path, caplog):
    from omegaconf import OmegaConf

    from recfit.data.read_once import read_once, reads_kept
    from recfit.data.sources.text_csv import read_text_csv

    def assert_same(data, kept):
        pd.testing.assert_frame_equal(data.interactions, kept.interactions)
        assert (data.num_users, data.num_items, data.item_text, data.label_names, data.skipped_rows) == (
            kept.num_users, kept.num_items, kept.item_text, kept.label_names, kept.skipped_rows
        )  # fmt: skip

    csv = write_reviews_csv(tmp_path / "reviews.csv", rows=8)  # two rows without a text or a label
    reader = OmegaConf.create({"_target_": "recfit.data.sources.text_csv.read_text_csv", "path": str(csv),
                               "text_column": "review", "label_column": "sentiment"})  # fmt: skip
    reads = []

    def read():
        reads.append(1)
        return read_text_csv(str(csv), text_column="review", label_column="sentiment")

    read_twice = read_once(read, reader)
    dropped = "dropped 2 of 10 rows with a missing text or label"
    with reads_kept():
        first, second = read_twice(), read_twice()
        assert len(reads) == 1
        assert caplog.text.count(dropped) == 2  # each job's log says what its data lost
        assert second is not first and second.interactions is not first.interactions
        assert_same(second, first)
        second.interactions.drop(index=0, inplace=True)  # one job's changes never reach the next
        second.item_text.append("more")
        assert_same(read_twice(), first)
        assert len(reads) == 1

        write_reviews_csv(csv, rows=6)  # the file changed between two jobs: read again
        assert len(read_twice().interactions) == 6 and len(reads) == 2
    read_twice()
    assert len(reads) == 3  # outside a sweep nothing is kept


@pytest.mark.slow
def test_identical_jobs_of_a_sweep_give_identical_metrics(tmp_path, capsys, monkeypatch, ml100k_dir):
    import recfit.data.sources.movielens as movielens

    reads = []
    read_for_real = movielens.read_movielens_100k

    def counted(*arguments, **keywords):
        reads.append(1)
        return read_for_real(*arguments, **keywords)

    monkeypatch.setattr(movielens, "read_movielens_100k", counted)
    compositions = Compositions(monkeypatch)
    result = run_cli(
        capsys, "train", "-m", "experiment=ml100k_bpr", f"dataset.reader.path={ml100k_dir}", "seed=3,3",
        "trainer.max_epochs=1", "trainer.limit_train_batches=3", "trainer.enable_progress_bar=false",
        f"paths.output_dir={tmp_path}",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    assert compositions.count == 1 + 1  # two jobs of one config: composed once, and the sweep's own
    assert len(reads) == 1  # job 1 trains on a copy of what job 0 read
    sweep = only_sweep(tmp_path)
    first, second = (json.loads((sweep / job / "metrics.json").read_text()) for job in ("0", "1"))
    assert first["metrics"] == second["metrics"] and first["data_sha256"] == second["data_sha256"]
    assert gc.isenabled() and gc.get_freeze_count() == 0  # the collector as the sweep found it


def test_a_sweep_leaves_what_its_imports_made_out_of_full_garbage_collections():
    from recfit import heavy_imports

    assert gc.get_freeze_count() == 0
    with heavy_imports.imports_out_of_garbage_collection():
        heavy_imports.freeze_imports()  # what the first job calls once torch and Lightning are imported
        frozen = gc.get_freeze_count()
        assert frozen > 10_000
        made_since = [{} for _ in range(5_000)]  # tracked objects a second freeze would take
        heavy_imports.freeze_imports()
        # once per sweep (the count may fall: frozen objects are still freed when no longer referenced)
        assert gc.get_freeze_count() <= frozen and made_since
    assert gc.get_freeze_count() == 0  # handed back when the sweep ends
    heavy_imports.freeze_imports()
    assert gc.get_freeze_count() == 0  # never outside a sweep (a notebook's objects are its own)
