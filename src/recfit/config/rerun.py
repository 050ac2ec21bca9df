"""Rebuild the overrides of a finished run from its folder, refusing anything that could run foreign code.

A run folder is data: its `.hydra/overrides.yaml` may have been written by anyone. What Hydra itself
wrote there is a list of `key=value` task overrides, so anything else is refused: a command-line flag
(`--config-dir=...` would load configs from elsewhere and skip validation), a `hydra.*` or `hydra/`
override (Hydra's callbacks, launchers, logging: Hydra acts on them before recfit's checks run), and a
`_target_` anywhere in a key or a value that is not an allowed callable (recfit.config.targets). The
composed config is checked again as a whole by `compose`, which also covers interpolations. Nor may a
folder turn on `backbone.trust_remote_code` (it runs the Python files of the model folder it names)
unless the user allows that in the environment (RECFIT_TRUST_REMOTE_CODE=1).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import HydraException

from recfit.config.moved_keys import move_reader_keys
from recfit.config.targets import TARGET_KEY, allowed_targets
from recfit.config.yaml_guard import check_yaml_file
from recfit.errors import ConfigError

OVERRIDES_FILE = Path(".hydra") / "overrides.yaml"
# Set to 1 to let a run folder's overrides turn on backbone.trust_remote_code.
TRUST_REMOTE_CODE_VARIABLE = "RECFIT_TRUST_REMOTE_CODE"
REMOTE_CODE_KEY = "backbone.trust_remote_code"
# Where the original run wrote: a rerun always writes a new folder of its own.
PLACE_KEYS = ("hydra.run.dir", "hydra.sweep.dir", "hydra.sweep.subdir")


def _key(override: str) -> str:
    return override.partition("=")[0].lstrip("+~")


def saved_overrides(run_dir: Path) -> list[str]:
    """The command-line overrides a run was made with (its .hydra/overrides.yaml), checked for safety."""
    file = run_dir / OVERRIDES_FILE
    if not file.is_file():
        raise ConfigError(f"{run_dir} is not a run folder (no {OVERRIDES_FILE})")
    try:
        overrides = yaml.safe_load(check_yaml_file(file))
    except yaml.YAMLError as error:
        raise ConfigError(f"cannot read {file}: {str(error).splitlines()[0]}") from None
    return checked_overrides(overrides, file)


def checked_overrides(overrides: Any, file: Path) -> list[str]:
    """`overrides` read from `file` (a run or sweep folder), refused in one line if any could run code
    or act on Hydra itself; the original run's place keys are left out."""
    if not isinstance(overrides, list) or not all(isinstance(o, str) for o in overrides):
        raise ConfigError(f"{file} is not a list of overrides")
    kept = []
    for override in overrides:
        key = _key(override)
        if key in PLACE_KEYS:
            continue
        if override.startswith("-") or "=" not in override:
            raise ConfigError(
                f"refusing to rerun: {file} holds '{override}', which is not a key=value override"
            )
        if key.startswith("hydra"):
            raise ConfigError(
                f"refusing to rerun: {file} sets Hydra's own {key} (Hydra never saves those there; "
                "give it on the command line if you mean it)"
            )
        turns_on = override.partition("=")[2].strip().lower() not in ("false", "null", "0", "")
        if key == REMOTE_CODE_KEY and turns_on and os.environ.get(TRUST_REMOTE_CODE_VARIABLE) != "1":
            raise ConfigError(
                f"refusing to rerun: {file} turns on {REMOTE_CODE_KEY}, which runs the model folder's "
                f"own code; set {TRUST_REMOTE_CODE_VARIABLE}=1 if you trust it"
            )
        for where, name in _targets(override, file):
            if not (isinstance(name, str) and name in allowed_targets()):
                raise ConfigError(f"refusing to rerun: {file} points {where} at untrusted code '{name}'")
        kept.append(override)
    return move_reader_keys(kept)  # a run from before `dataset.reader` says `dataset.path=...`


def _targets(override: str, file: Path) -> list[tuple[str, Any]]:
    """(where, name) of every `_target_` the override sets, in its key or anywhere inside its value."""
    try:
        (parsed,) = OverridesParser.create().parse_overrides([override])
    except HydraException as error:
        raise ConfigError(f"cannot read {file}: {str(error).splitlines()[0]}") from None
    key = _key(override)
    found: list[tuple[str, Any]] = []
    if key.split(".")[-1] == TARGET_KEY:
        found.append((key, parsed.value()))
    _collect(parsed.value(), key, found)
    return found


def _collect(value: Any, where: str, found: list[tuple[str, Any]]) -> None:
    if isinstance(value, dict):
        for name, item in value.items():
            if name == TARGET_KEY:
                found.append((f"{where}.{name}", item))
            _collect(item, f"{where}.{name}", found)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _collect(item, f"{where}[{index}]", found)
