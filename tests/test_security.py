"""A run folder is data, not code: nothing in a config or a run folder makes recfit call code it does not
allow, load configs from elsewhere or write outside `paths.output_dir`.

Each attack here worked before its fix (a file written by `shutil.copyfile` named in a crafted
overrides.yaml, a run folder written outside the output folder). Most cases call the config checks in
process; a few run `python -m recfit` to prove the commands refuse before anything runs.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from omegaconf import OmegaConf

from helpers.cli import assert_one_line_error, recfit, run_cli
from helpers.files import REPO, tree_digest
from recfit.config import compose, validate
from recfit.config.rerun import saved_overrides
from recfit.config.targets import ALLOW_VARIABLE, ALLOWED_TARGETS, check_targets
from recfit.config.yaml_guard import check_yaml_file
from recfit.errors import ConfigError

NOT_ALLOWED = "not a callable recfit allows"


def copy_attack(target: Path) -> str:
    """A value that, built by Hydra, copies a file: proof that foreign code ran (YAML flow style, so
    that `${oc.create:...}` reads it as the same dict)."""
    return f"{{_target_: shutil.copyfile, src: {REPO / 'pyproject.toml'}, dst: {target}}}"


def refused(overrides: list[str], expected: str) -> str:
    with pytest.raises(ConfigError) as caught:
        validate(compose(overrides))
    message = str(caught.value)
    assert expected in message and "\n" not in message, message
    return message


@pytest.mark.parametrize(
    ("override", "where"),
    [
        # a `_target_` nested in the VALUE of an Any-typed key: Hydra builds it with the Trainer
        ("trainer.limit_test_batches={attack}", "trainer.limit_test_batches._target_"),
        ("+optimizer.extra.x={attack}", "optimizer.extra.x._target_"),
        ("+backbone.config_overrides.a=[{attack}]", "backbone.config_overrides.a[0]._target_"),
        # Hydra instantiates its callbacks before recfit's own code starts
        ("+hydra.callbacks.x={attack}", "hydra.callbacks.x._target_"),
        # only resolving the interpolation shows the dict
        ("trainer.limit_val_batches='${{oc.create:\"{attack}\"}}'", "trainer.limit_val_batches._target_"),
    ],
)
def test_a_target_anywhere_in_the_config_is_refused(tmp_path, override, where):
    written = tmp_path / "copied"
    message = refused([override.format(attack=copy_attack(written))], NOT_ALLOWED)
    assert message.startswith(f"refusing {where}='shutil.copyfile'")
    assert not written.exists()


@pytest.mark.parametrize(
    "name",
    [
        "recfit.run_folder.os.system",  # recfit's prefix, os's function
        "torch.optim.os.system",
        "os.system",
        "torch.optim",  # a module, not one of the callables
        "builtins.eval",
    ],
)
def test_a_target_is_judged_by_its_whole_name_not_its_prefix(name):
    refused([f"optimizer._target_={name}"], f"refusing optimizer._target_='{name}': {NOT_ALLOWED}")


def test_logging_config_calls_only_logging_classes():
    refused(["+hydra.job_logging.handlers.x={class:os.system}"], "not a logging class recfit allows")
    formatter = {"()": "builtins.exec"}
    from_a_file = OmegaConf.create({"hydra": {"hydra_logging": {"formatters": {"x": formatter}}}})
    with pytest.raises(ConfigError, match="refusing hydra.hydra_logging.formatters.x.\\(\\)='builtins.exec'"):
        check_targets(from_a_file)  # `()` cannot be written as an override, but a config file can hold it
    refused(["hydra.job_logging.handlers.console.stream=ext://os.system"], "ext://sys.stdout or stderr")


def test_every_shipped_target_is_allowed_and_shipped_configs_compose():
    """The allow-list and conf/ agree: every `_target_` recfit ships is one of its names."""
    shipped = set()
    for file in (REPO / "conf").rglob("*.yaml"):
        text = file.read_text()
        shipped.update(line.split(":", 1)[1].split("#")[0].strip() for line in text.splitlines()
                       if line.strip().startswith("_target_:"))  # fmt: skip
    assert shipped and shipped <= ALLOWED_TARGETS, shipped - ALLOWED_TARGETS
    validate(compose(["hparams_search=optuna"]))
    validate(compose(["dataset=[synthetic,movielens_100k]"]))
    validate(compose(["+logger.mine._target_=lightning.pytorch.loggers.CSVLogger", "+logger.mine.name=mine"]))


def test_code_of_your_own_is_allowed_by_the_environment_only(monkeypatch):
    own = "+logger.mine._target_=my_package.MyLogger"
    refused([own], NOT_ALLOWED)
    monkeypatch.setenv(ALLOW_VARIABLE, "my_package.MyLogger, other.Thing")
    validate(compose([own]))


@pytest.mark.parametrize("option", ["../../../../../../tmp/evil", "/tmp/evil", "[csv,../../x]"])
def test_a_group_option_is_a_name_not_a_path(option):
    group = "logger" if option.startswith("[") else "experiment"
    refused([f"{group}={option}"], f"an option of '{group}' is a name, not a path")


@pytest.mark.parametrize(
    ("override", "key"),
    [
        ("experiment_name=../../x", "experiment_name"),
        ("experiment_name=/tmp/x", "experiment_name"),
        ("logger.csv.name=../../x", "logger.csv.name"),
        ("hydra.job.name=../x", "hydra.job.name"),
    ],
)
def test_names_cannot_escape_the_output_folder(override, key):
    refused([override], f"{key} '{override.split('=', 1)[1]}' would write outside paths.output_dir")


def test_nested_experiment_names_stay_allowed():
    assert compose(["experiment_name=ml100k/rating"]).experiment_name == "ml100k/rating"


def write_run_folder(folder: Path, overrides: list[str], completed: bool = False) -> Path:
    (folder / ".hydra").mkdir(parents=True)
    (folder / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(overrides))
    if completed:  # what eval / recommend / embed look at before composing
        (folder / "metrics.json").write_text(json.dumps({"status": "completed", "metrics": {}}))
        (folder / "checkpoints").mkdir()
        (folder / "checkpoints" / "best.ckpt").write_bytes(b"")
    return folder


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ("trainer.limit_test_batches={attack}", "points trainer.limit_test_batches._target_ at untrusted"),
        ("dataset.filter={{a:[{attack}]}}", "points dataset.filter.a[0]._target_ at untrusted code"),
        ("+hydra.callbacks.x={attack}", "sets Hydra's own hydra.callbacks.x"),
        ("hydra/launcher=joblib", "sets Hydra's own hydra/launcher"),
        ("--config-dir=/tmp", "holds '--config-dir=/tmp', which is not a key=value override"),
        ("-m", "holds '-m', which is not a key=value override"),
    ],
)
def test_saved_overrides_are_refused_by_what_they_would_do(tmp_path, override, expected):
    run = write_run_folder(tmp_path / "run", [override.format(attack=copy_attack(tmp_path / "copied"))])
    with pytest.raises(ConfigError, match="refusing to rerun") as caught:
        saved_overrides(run)
    assert expected in str(caught.value)


def test_a_run_folder_cannot_turn_on_remote_code(tmp_path, monkeypatch):
    run = write_run_folder(
        tmp_path / "run", ["backbone.name_or_path=./model", "backbone.trust_remote_code=true"]
    )
    with pytest.raises(ConfigError, match="turns on backbone.trust_remote_code"):
        saved_overrides(run)
    monkeypatch.setenv("RECFIT_TRUST_REMOTE_CODE", "1")  # the user's word, not the folder's
    assert "backbone.trust_remote_code=true" in saved_overrides(run)


def test_every_allowed_name_is_one_callable_object():
    """Each allowed name is `<module>.<attribute>` and names a callable (a typo in the list would
    otherwise only surface when a run reaches it)."""
    import importlib

    for name in sorted(ALLOWED_TARGETS):
        module, _, attribute = name.rpartition(".")
        assert callable(getattr(importlib.import_module(module), attribute)), name


def test_a_sweep_folder_is_checked_like_a_run_folder(tmp_path):
    from recfit.training.sweep_resume import pending_jobs

    overrides = ["seed=1,2", "+hydra.job.env_set.LD_PRELOAD=/tmp/evil.so"]
    (tmp_path / "multirun.yaml").write_text(yaml.safe_dump({"hydra": {"overrides": {"task": overrides}}}))
    with pytest.raises(ConfigError, match="sets Hydra's own hydra.job.env_set.LD_PRELOAD"):
        pending_jobs(tmp_path)
    overrides[1] = f"trainer.limit_val_batches={copy_attack(tmp_path / 'copied')}"
    (tmp_path / "multirun.yaml").write_text(yaml.safe_dump({"hydra": {"overrides": {"task": overrides}}}))
    with pytest.raises(ConfigError, match="points trainer.limit_val_batches._target_ at untrusted code"):
        pending_jobs(tmp_path)


def test_saved_experiment_name_cannot_escape(tmp_path):
    run = write_run_folder(tmp_path / "run", ["experiment_name=../../../escaped"])
    with pytest.raises(ConfigError, match="would write outside paths.output_dir"):
        validate(compose(saved_overrides(run)))


def test_an_alias_bomb_is_refused_without_expanding(tmp_path):
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 12)]
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text("\n".join(lines) + "\n")
    with pytest.raises(ConfigError, match="expands .* to more than"):
        check_yaml_file(bomb)
    loop = tmp_path / "loop.yaml"
    loop.write_text("a: &a [*a]\n")
    with pytest.raises(ConfigError, match="expands"):
        check_yaml_file(loop)
    fine = tmp_path / "fine.yaml"
    fine.write_text("base: &b {x: 1}\nother: *b\n")
    assert "base" in check_yaml_file(fine)


@pytest.mark.parametrize(
    "command",
    [
        ["rerun", "{run}"],
        ["eval", "{run}"],
        ["recommend", "{run}", "--user", "1"],
        ["embed", "{run}", "--items"],
        ["predict", "{run}", "--input", "{rows}"],
        ["validate", "{attack}"],
        ["train", "{attack}"],
    ],
)
def test_commands_refuse_foreign_code_before_anything_runs(tmp_path, capsys, command):
    """The original attack: a crafted run folder made `rerun` and `eval` copy a file."""
    written, outputs = tmp_path / "copied", tmp_path / "outputs"
    attack = f"trainer.limit_test_batches={copy_attack(written)}"
    run = write_run_folder(tmp_path / "run", [f"paths.output_dir={outputs}", attack], completed=True)
    before = tree_digest(run)
    rows = tmp_path / "rows.csv"
    rows.write_text("user,item\n1,1\n")
    arguments = [a.format(run=run, attack=attack, rows=rows) for a in command]
    from_command_line = command[0] in ("validate", "train")
    if from_command_line:
        arguments.append(f"paths.output_dir={outputs}")
    result = run_cli(capsys, *arguments)
    assert_one_line_error(result, NOT_ALLOWED if from_command_line else "untrusted code")
    assert result.returncode == 2
    assert not written.exists() and not outputs.exists()
    assert tree_digest(run) == before


def test_rerun_of_a_crafted_folder_is_refused_on_the_command_line(tmp_path):
    written = tmp_path / "copied"
    run = write_run_folder(tmp_path / "run", [f"paths.output_dir={tmp_path}", f"+x={copy_attack(written)}"])
    result = recfit("rerun", str(run), cwd=tmp_path, timeout=120)
    assert_one_line_error(result, "points x._target_ at untrusted code 'shutil.copyfile'")
    assert result.returncode == 2 and not written.exists()


def test_an_alias_bomb_through_config_path_is_refused_quickly(tmp_path):
    folder = tmp_path / "configs"
    folder.mkdir()
    lines = ["defaults: [train, _self_]", "a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 12)]
    (folder / "bomb.yaml").write_text("\n".join(lines) + "\n")
    result = recfit("train", "--config-path", str(folder), "--config-name", "bomb", cwd=tmp_path, timeout=60)
    assert_one_line_error(result, "expands (through YAML aliases) to more than")
    assert result.returncode == 2
