"""Loggers and the terminal: every logger writes what it should (read back through each tool's own
reader), the config tree is printed and saved, sweeps are quiet, and a bad logger choice is one line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from helpers.cli import assert_one_line_error, run_cli
from helpers.files import REPO
from helpers.runs import train as run_training

TINY = [
    "backbone=tiny_bert",
    "trainer.max_epochs=1",
    "dataset.reader.num_users=40",
    "dataset.reader.num_items=60",
    "trainer.log_every_n_steps=2",
]
ALL_LOGGERS = "logger=[csv,tensorboard,mlflow,wandb]"
# a logger of the user's own, added on the command line: any Lightning logger class taking save_dir
OWN_LOGGER = ["+logger.mine._target_=lightning.pytorch.loggers.CSVLogger", "+logger.mine.name=mine"]


def train(*arguments: str, home: Path) -> subprocess.CompletedProcess:
    """`recfit train` in a fresh process; W&B keeps its caches under `home`, not the user's."""
    wandb_dirs = {f"WANDB_{key}_DIR": str(home / key.lower()) for key in ("CACHE", "CONFIG", "DATA")}
    env = {**os.environ, **wandb_dirs}
    return subprocess.run(
        [sys.executable, "-m", "recfit", "train", *arguments],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=env,
        timeout=600,
    )


@pytest.fixture(scope="module")
def logged_run(tmp_path_factory) -> tuple[Path, Path, subprocess.CompletedProcess]:
    """One single run with all four loggers: (outputs folder, run folder, the finished process)."""
    outputs = tmp_path_factory.mktemp("outputs")
    result = train(*TINY, ALL_LOGGERS, *OWN_LOGGER, f"paths.output_dir={outputs}", home=outputs.parent)
    assert result.returncode == 0, result.stderr[-3000:]
    (run_dir,) = (outputs / "runs" / "quickstart").iterdir()
    return outputs, run_dir, result


def final_metrics(run_dir: Path) -> dict[str, float]:
    record = json.loads((run_dir / "metrics.json").read_text())
    assert record["status"] == "completed"
    return record["metrics"]


@pytest.mark.slow
def test_mlflow_database_holds_run_params_metrics_and_config(logged_run, tmp_path):
    from mlflow.tracking import MlflowClient

    outputs, run_dir, _ = logged_run
    client = MlflowClient(tracking_uri=f"sqlite:///{outputs / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("quickstart")
    (run,) = client.search_runs([experiment.experiment_id])
    assert run.info.status == "FINISHED"
    assert run.info.run_name == run_dir.name
    assert run.data.tags["run_dir"] == str(run_dir.resolve())

    # params: the whole resolved config, flattened to the keys one overrides on the command line
    params = run.data.params
    assert params["model.embedding_dim"] == "64"
    assert params["backbone.model_type"] == "bert"
    assert params["trainer.max_epochs"] == "1"
    assert params["dataset.reader.num_users"] == "40"
    assert len(params) > 80

    # metrics: curves with history, and the final val/test values of metrics.json ('@' is not allowed)
    assert len(client.get_metric_history(run.info.run_id, "train/loss_step")) >= 2
    for name, value in final_metrics(run_dir).items():
        assert run.data.metrics[name.replace("@", "_at_")] == pytest.approx(value, rel=1e-6), name

    # the composed config and its tree as artifacts
    assert {f.path for f in client.list_artifacts(run.info.run_id, "config")} == {
        "config/config.yaml",
        "config/config_tree.txt",
    }
    local = client.download_artifacts(run.info.run_id, "config/config.yaml", str(tmp_path))
    config = yaml.safe_load(Path(local).read_text())
    assert config["model"]["embedding_dim"] == 64
    assert config["logger"]["mlflow"]["tracking_uri"] == f"sqlite:///{outputs}/mlflow.db"


@pytest.mark.slow
def test_tensorboard_event_files_hold_curves_and_final_metrics(logged_run):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    _, run_dir, _ = logged_run
    events = EventAccumulator(str(run_dir / "tensorboard"))
    events.Reload()
    scalars = set(events.Tags()["scalars"])
    assert {"train/loss_step", "train/loss_epoch", "val/ndcg@10", "test/ndcg@10"} <= scalars
    assert len(events.Scalars("train/loss_step")) >= 2
    for name, value in final_metrics(run_dir).items():
        assert events.Scalars(name)[-1].value == pytest.approx(value, rel=1e-6), name
    hparams = yaml.safe_load((run_dir / "tensorboard" / "hparams.yaml").read_text())
    assert hparams["model.embedding_dim"] == 64


@pytest.mark.slow
def test_wandb_offline_run_is_recorded_in_the_run_folder(logged_run):
    _, run_dir, _ = logged_run
    (offline,) = (run_dir / "wandb").glob("offline-run-*")
    assert len(list(offline.glob("run-*.wandb"))) == 1
    # read the run back with wandb's own reader of its transaction log
    inspect = subprocess.run(
        [str(Path(sys.executable).parent / "wandb"), "leet", "inspect", "--summary", "--json", str(offline)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert inspect.returncode == 0, inspect.stderr
    recorded = json.loads(inspect.stdout)
    assert (recorded["state"], recorded["exit_code"]) == ("finished", 0)
    assert (recorded["project"], recorded["name"]) == ("quickstart", run_dir.name)
    assert recorded["config"]["model.embedding_dim"] == 64
    for name, value in final_metrics(run_dir).items():
        assert recorded["summary"][name] == pytest.approx(value, rel=1e-6), name


@pytest.mark.slow
def test_csv_curves_stay_in_the_run_folder(logged_run):
    _, run_dir, _ = logged_run
    header = (run_dir / "metrics.csv").read_text().splitlines()[0].split(",")
    assert {"step", "epoch", "train/loss_step", "val/ndcg@10", "test/ndcg@10"} <= set(header)
    assert not (run_dir / "hparams.yaml").exists()  # the config lives in .hydra/, not twice


@pytest.mark.slow
def test_a_logger_of_ones_own_writes_into_the_run_folder(logged_run):
    _, run_dir, _ = logged_run
    (curves,) = (run_dir / "mine").glob("version_*/metrics.csv")
    assert curves.read_text() == (run_dir / "metrics.csv").read_text()


@pytest.mark.slow
def test_terminal_shows_overridden_keys_progress_bar_and_metrics_table(logged_run):
    _, run_dir, result = logged_run
    tree = (run_dir / "config_tree.txt").read_text()
    assert tree.startswith("CONFIG")
    assert "embedding_dim: 64" in tree and "├── logger" in tree
    assert "\x1b[" not in tree  # plain text, no colour codes
    # the terminal shows the overridden keys, the whole tree is in the run folder
    lines = result.stdout.splitlines()
    assert lines[0] == "CONFIG: overridden keys"
    end = lines.index(f"the whole config: {run_dir / 'config_tree.txt'}")
    overrides = [line.strip() for line in lines[1:end]]
    assert overrides == [*TINY, ALL_LOGGERS, *OWN_LOGGER, f"paths.output_dir={run_dir.parents[2]}"]
    assert "├── logger" not in result.stdout and "embedding_dim: 64" not in result.stdout
    assert "Epoch 0/0" in result.stdout  # the rich progress bar
    assert "recfit run completed" in result.stdout
    assert f"run folder: {run_dir}" in result.stdout
    ndcg = final_metrics(run_dir)["test/ndcg@10"]
    rows = [line for line in result.stdout.splitlines() if line.split()[1:2] == ["ndcg@10"]]
    assert len(rows) == 1 and f"{ndcg:.4f}" in rows[0]


NOISE = (
    "GPU available",  # Lightning's INFO lines, printed twice before (its handler and Hydra's)
    "litlogger",  # Lightning's advert
    "Trainer(limit_train_batches=1.0)",
    "LeafSpec",  # a deprecation inside Lightning
    "exists and is not empty",  # CSVLogger's "previous log files will be deleted"
    "Restoring states from the checkpoint",
    "Loading weights",  # transformers' progress bar
)


@pytest.mark.slow
def test_library_chatter_goes_to_train_log_not_the_terminal(logged_run):
    _, run_dir, result = logged_run
    terminal = result.stdout + result.stderr
    for noise in NOISE:
        assert noise not in terminal, noise
    log = (run_dir / "train.log").read_text()
    for kept in ("GPU available", "Trainer(limit_train_batches=1.0)", "LeafSpec"):
        assert kept in log, kept
    assert log.count("GPU available") == 1  # once, not twice
    lines = [line.split("] ", 2)[-1] for line in result.stdout.splitlines() if "][INFO]" in line]
    assert len(lines) == len(set(lines))  # recfit's own INFO lines, each once


@pytest.mark.slow
def test_sweep_jobs_are_quiet_but_keep_their_config_tree(tmp_path):
    result = train("-m", "seed=7", *TINY, f"paths.output_dir={tmp_path}", home=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    (job,) = [p for p in (tmp_path / "sweeps" / "quickstart").glob("*/0") if p.is_dir()]
    assert json.loads((job / "metrics.json").read_text())["status"] == "completed"
    assert (job / "config_tree.txt").read_text().startswith("CONFIG")
    output = result.stdout + result.stderr
    for shown in ("Epoch 0", "CONFIG", "recfit run completed", "━"):
        assert shown not in output, shown
    ndcg = json.loads((job / "metrics.json").read_text())["metrics"]["val/ndcg@10"]
    assert f"val/ndcg@10 {ndcg:.4f}" in output and f"run folder: {job}" in output  # quiet: one line


@pytest.mark.slow
def test_quiet_setting():
    from recfit.config import compose
    from recfit.training.console import is_quiet

    assert is_quiet(compose(["quiet=true"])) is True
    assert is_quiet(compose(["quiet=false"])) is False
    assert is_quiet(compose([])) is False  # a single run outside a sweep


BAD_LOGGERS = [
    (["logger=mlfow"], "unknown option 'mlfow' for 'logger' (did you mean 'mlflow'?)"),
    (["logger=[csv,mlfow]"], "unknown option 'mlfow' for 'logger' (did you mean 'mlflow'?); available: csv"),
    (["logger.csv.nmae=x"], "unknown config key 'logger.csv.nmae' (did you mean 'logger.csv.name'?)"),
    (
        ["logger=[csv,mlflow]", "logger.mlflow.tracking_urii=x"],
        "unknown config key 'logger.mlflow.tracking_urii' (did you mean 'logger.mlflow.tracking_uri'?)",
    ),
    (["logger=wandb", "logger.wandb.offline=maybe"], "logger.wandb.offline: Value 'maybe' is not a valid"),
    (["quiet=sometimes"], "quiet: Value 'sometimes' is not a valid bool"),
]


@pytest.mark.slow
def test_metrics_csv_is_written_whatever_the_loggers(tmp_path):
    """compare's curves read metrics.csv: a run with logger=tensorboard alone still writes it."""
    record = run_training(tmp_path, *TINY, "logger=tensorboard", "trainer.enable_progress_bar=false")
    run_dir = Path(record["run_dir"])
    curves = pd.read_csv(run_dir / "metrics.csv")
    assert "train/loss_step" in curves and curves["val/ndcg@10"].notna().any()
    assert list((run_dir / "tensorboard").rglob("events.out.tfevents.*"))


@pytest.mark.parametrize(("arguments", "expected"), BAD_LOGGERS, ids=[a[-1] for a, _ in BAD_LOGGERS])
def test_bad_logger_choice_is_one_line(arguments, expected, capsys):
    assert_one_line_error(run_cli(capsys, "validate", *arguments), expected)


def test_missing_logger_package_is_one_line(tmp_path):
    """An install without the `loggers` extra: a None in sys.modules makes `import mlflow` fail."""
    program = "import sys; sys.modules['mlflow'] = None; from recfit.cli import main; main(sys.argv[1:])"
    result = subprocess.run(
        [sys.executable, "-c", program, "train", "logger=[csv,mlflow]", f"paths.output_dir={tmp_path}"],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
    )
    assert_one_line_error(result, "logger=mlflow needs the mlflow package: pip install 'recfit[loggers]'")
    assert not any(tmp_path.iterdir())
