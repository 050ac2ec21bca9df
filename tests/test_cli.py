"""The `recfit` command as a user runs it: real subprocesses, real exit codes, real stderr."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from helpers.cli import assert_one_line_error, recfit
from helpers.files import REPO, tree_digest, write_reviews_csv
from helpers.imports import modules_loaded_by
from helpers.runs import train

TINY = ["backbone=tiny_bert", "trainer.max_epochs=1", "trainer.enable_progress_bar=false"]


def test_usage_and_help_answer():
    assert "train" in recfit().stdout
    help_text = recfit("train", "--help")
    assert help_text.returncode == 0
    assert (
        "backbone    bert, gpt2, minilm, none, resnet, tiny_bert, tiny_gpt2, tiny_resnet" in help_text.stdout
    )
    assert "_schema" not in help_text.stdout


def test_unknown_command():
    assert_one_line_error(recfit("trian"), "unknown command 'trian'")


@pytest.fixture(scope="module")
def earlier_run(tmp_path_factory) -> Path:
    """A finished run (trained in this process) that the bad commands below must leave byte for byte."""
    outputs = tmp_path_factory.mktemp("outputs")
    train(outputs, *TINY)
    return outputs


@pytest.mark.slow
@pytest.mark.parametrize(
    ("arguments", "expected"),
    [
        (["backbone=bertt"], "unknown option 'bertt' for 'backbone' (did you mean 'bert'?)"),
        (
            ["trainer.max_epoch=1"],
            "unknown config key 'trainer.max_epoch' (did you mean 'trainer.max_epochs'?)",
        ),
        (["loss=mse"], "loss 'mse' does not fit task 'ranking'"),
        (
            ["experiment=ml100k_rating", "dataset.reader.path=/no/such/ml-100k"],
            "dataset.reader.path does not exist",
        ),
        (["experiment=text_csv_bert"], "required config value missing: dataset.reader.path"),
    ],
)
def test_bad_config_exits_with_one_line(earlier_run, arguments, expected):
    before = tree_digest(earlier_run)
    result = recfit("train", *arguments, f"paths.output_dir={earlier_run}")
    assert_one_line_error(result, expected)
    assert result.returncode == 2
    assert tree_digest(earlier_run) == before


@pytest.mark.slow
def test_bad_data_exits_with_one_line_and_records_the_failure(earlier_run, tmp_path):
    before = tree_digest(earlier_run / "runs" / "quickstart")
    csv_file = write_reviews_csv(tmp_path / "reviews.csv")
    result = recfit(
        "train",
        "experiment=text_csv_bert",
        *TINY,
        f"dataset.reader.path={csv_file}",
        "dataset.reader.text_column=body",
        f"paths.output_dir={earlier_run}",
    )
    assert_one_line_error(result, "has no column 'body' (columns: review, sentiment, stars)")
    assert result.returncode == 1
    failed = [json.loads(p.read_text()) for p in earlier_run.glob("runs/text_csv_bert/*/metrics.json")]
    assert [record["status"] for record in failed] == ["failed"]
    assert "has no column 'body'" in failed[0]["error"]
    assert tree_digest(earlier_run / "runs" / "quickstart") == before


@pytest.mark.slow
def test_train_writes_a_complete_run_folder(earlier_run):
    (run,) = list((earlier_run / "runs" / "quickstart").iterdir())
    record = json.loads((run / "metrics.json").read_text())
    assert record["status"] == "completed" and record["error"] is None
    assert record["duration_s"] > 0
    assert set(record["metrics"]) >= {"val/ndcg@10", "test/ndcg@10", "test/recall@20", "test/mrr@10"}
    for name in (
        ".hydra/config.yaml",
        ".hydra/overrides.yaml",
        "metrics.csv",
        "checkpoints/best.ckpt",
        "train.log",
    ):
        assert (run / name).is_file(), name
    assert not (run / "checkpoints" / "last.ckpt").exists()  # checkpoint.keep=best: no stale resume state
    assert "backbone=tiny_bert" in (run / ".hydra" / "overrides.yaml").read_text()
    # one permission for every file (metrics.json and config_tree.txt were private, 0600, the rest 0644)
    modes = {str(p.relative_to(run)): p.stat().st_mode & 0o777 for p in run.rglob("*") if p.is_file()}
    assert set(modes.values()) == {0o644}, modes


SOURCES = REPO / "src" / "recfit"
RUN_FOLDER_NAMES = (
    "metrics.json",
    "metrics.csv",
    "per_user.parquet",
    "best.ckpt",
    "last.ckpt",
    "run_info.json",
)


def test_only_the_run_folder_module_spells_the_run_folder_format():
    """File names and statuses are written once, in recfit/run_folder.py; everything else imports them."""
    spelled = {
        f"{path.relative_to(SOURCES)}: {literal}"
        for path in SOURCES.rglob("*.py")
        if path.name != "run_folder.py"
        for literal in (*RUN_FOLDER_NAMES, "completed", "interrupted", "checkpoints")
        for quote in "\"'"
        if f"{quote}{literal}{quote}" in path.read_text()
    }
    assert not spelled


def test_the_run_folder_module_is_torch_free_and_below_everything():
    packages = ("torch", "lightning", "transformers", "hydra", "omegaconf", "pandas", "recfit.")
    assert modules_loaded_by("import recfit.run_folder", packages) == ["recfit.errors", "recfit.run_folder"]


def test_only_the_launcher_sets_sys_argv():
    """One way into the Hydra app: recfit.apps.launch; no other module rewrites the command line."""
    writers = sorted(
        str(path.relative_to(SOURCES)) for path in SOURCES.rglob("*.py") if "sys.argv = " in path.read_text()
    )
    assert writers == ["apps.py"]


@pytest.mark.slow
def test_a_run_is_composed_once(tmp_path, monkeypatch):
    """recfit.train composed the config three times, `recfit train` twice; now each entry composes once."""
    from hydra._internal.config_loader_impl import ConfigLoaderImpl

    import recfit

    composed = []
    original = ConfigLoaderImpl.load_configuration

    def counting(self, *args, **kwargs):
        composed.append(kwargs.get("overrides", args[1] if len(args) > 1 else None))
        return original(self, *args, **kwargs)

    monkeypatch.setattr(ConfigLoaderImpl, "load_configuration", counting)
    argv = list(sys.argv)
    result = recfit.train(
        ["backbone=none", "model=mf", "trainer.max_epochs=1", f"paths.output_dir={tmp_path}"]
    )
    assert result.status == "completed"
    assert len(composed) == 1, composed
    assert sys.argv == argv
    assert result.run_dir.parent == tmp_path / "runs" / "quickstart"


def test_auto_strategy_on_several_devices_is_known_to_reexecute(capsys):
    """trainer.devices=3 with the default strategy (auto) is Lightning's ddp: it re-runs the command line."""
    from helpers.cli import run_cli
    from recfit.config import compose
    from recfit.config.launch import reexecutes_command_line

    single = run_cli(capsys, "validate", "trainer.devices=3", "trainer.accelerator=cpu")
    assert single.returncode == 0, single.stderr  # a single run may: tests/test_ddp.py runs three ranks
    assert reexecutes_command_line(compose(["trainer.devices=3", "trainer.accelerator=cpu"]))
    sweep = run_cli(capsys, "validate", "-m", "trainer.devices=3", "trainer.accelerator=cpu", "seed=1,2")
    assert_one_line_error(sweep, "trainer.strategy=auto re-runs the command line in every rank")
