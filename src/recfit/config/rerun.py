"""Rebuild the overrides of a finished run from its folder, refusing anything that could run foreign code."""

from __future__ import annotations

from pathlib import Path

import yaml

from recfit.errors import ConfigError

OVERRIDES_FILE = Path(".hydra") / "overrides.yaml"
# The only code a rerun may name through a `_target_` override: recfit's own and the libraries it wraps.
TRUSTED_TARGETS = ("recfit.", "torch.optim.", "transformers.", "lightning.pytorch.", "optuna.samplers.")
# Where the original run wrote: a rerun always writes a new folder of its own.
PLACE_KEYS = ("hydra.run.dir", "hydra.sweep.dir", "hydra.sweep.subdir")


def saved_overrides(run_dir: Path) -> list[str]:
    """The command-line overrides a run was made with (its .hydra/overrides.yaml), checked for safety."""
    file = run_dir / OVERRIDES_FILE
    if not file.is_file():
        raise ConfigError(f"{run_dir} is not a run folder (no {OVERRIDES_FILE})")
    try:
        overrides = yaml.safe_load(file.read_text())
    except yaml.YAMLError as error:
        raise ConfigError(f"cannot read {file}: {str(error).splitlines()[0]}") from None
    if not isinstance(overrides, list) or not all(isinstance(o, str) for o in overrides):
        raise ConfigError(f"{file} is not a list of overrides")
    for override in overrides:
        key, _, value = override.partition("=")
        if key.lstrip("+~").endswith("_target_") and not value.startswith(TRUSTED_TARGETS):
            raise ConfigError(f"refusing to rerun: {file} points {key} at untrusted code '{value}'")
    return [o for o in overrides if o.partition("=")[0].lstrip("+~") not in PLACE_KEYS]
