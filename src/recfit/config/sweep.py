"""Expand a command-line sweep into its jobs, exactly as Hydra's basic sweeper will number them, and
compose each job once while the sweep runs in this process."""

from __future__ import annotations

import copy
import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from hydra._internal.config_loader_impl import ConfigLoaderImpl
from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Override
from hydra.core.utils import JobRuntime
from hydra.errors import OverrideParseException
from hydra.types import RunMode
from omegaconf import DictConfig, open_dict

from recfit.config.compose import compose
from recfit.config.launch import EXTERNAL_LAUNCHERS, check_sweep_strategy, started_externally
from recfit.config.validate import validate
from recfit.errors import ConfigError

# A sweep whose jobs come from a search algorithm, not from the command line: it cannot be expanded
# ahead of time; each trial is validated when it starts and recorded as failed if invalid.
SEARCH_SWEEP_PREFIX = "hparams_search="
# Hydra's command line adds this to a multirun's hydra overrides when the config leaves hydra.mode
# unset; every job of the sweep is composed with it (ConfigLoaderImpl.load_sweep_config).
MULTIRUN_MODE = "hydra.mode=MULTIRUN"
# How many composed configs a sweep keeps for its jobs; later jobs of a larger grid are composed
# when they start, as before (a config of this project's tree takes well under 1 MB).
COMPOSED_KEPT = 256


def _parse(arguments: list[str]) -> list[Override]:
    try:
        return OverridesParser.create().parse_overrides(arguments)
    except OverrideParseException as error:
        raise ConfigError(f"cannot parse override: {str(error).splitlines()[0]}") from None


def expand_sweep(arguments: list[str]) -> list[list[str]]:
    """The override list of every job, in job-number order (job i runs overrides[i])."""
    return [job for batch in BasicSweeper.split_arguments(_parse(arguments), None) for job in batch]


def launcher_overrides(arguments: list[str]) -> list[list[str]]:
    """Every job's overrides in the form Hydra's launcher composes them: the command line's hydra
    overrides (with hydra.mode=MULTIRUN last, as Hydra's command line adds it), then the job's own.

    Composing a job from this list gives the very config the launcher will compose for it, so within
    `composed_once` the launcher takes the config validated up front instead of composing it again.
    """
    parsed = _parse(arguments)
    hydra = [override for override in parsed if override.is_hydra_override()]
    swept = [override.input_line for override in hydra if override.is_sweep_override()]
    if swept:
        raise ConfigError(f"sweeping over Hydra's own configuration is not supported: {swept[0]}")
    hydra_lines = [override.input_line for override in hydra]
    if not any(override.get_key_element() == MULTIRUN_MODE.partition("=")[0] for override in hydra):
        hydra_lines.append(MULTIRUN_MODE)
    task = [override for override in parsed if not override.is_hydra_override()]
    return [hydra_lines + job for batch in BasicSweeper.split_arguments(task, None) for job in batch]


def is_search_sweep(arguments: list[str]) -> bool:
    return any(a.startswith(SEARCH_SWEEP_PREFIX) and not a.endswith("=null") for a in arguments)


def check_search_sweep(arguments: list[str]) -> None:
    """Compose a search's fixed overrides: its trials are only known as it runs, but what Hydra acts on
    before the first one (hydra.* callbacks, launcher, sweeper) and every `_target_` are known now."""
    parsed = _parse(arguments)
    compose([override.input_line for override in parsed if not override.is_sweep_override()])


def validate_sweep(arguments: list[str]) -> int:
    """Compose and validate every job; raise ConfigError naming the first bad job. Returns the job count."""
    shown = expand_sweep(arguments)  # the job as the user wrote it, for the error line
    jobs = launcher_overrides(arguments)
    external = started_externally() or any(a in EXTERNAL_LAUNCHERS for a in arguments)
    for number, (overrides, job) in enumerate(zip(shown, jobs, strict=True)):
        try:
            cfg = compose(job)
            validate(cfg)
            check_sweep_strategy(cfg, external)
        except ConfigError as error:
            raise ConfigError(f"sweep job {number} ({' '.join(overrides)}): {error}") from None
    return len(jobs)


_composed: dict[tuple[Any, ...], DictConfig] | None = None  # set while `composed_once` is active


@contextmanager
def composed_once() -> Iterator[None]:
    """While a sweep runs in this process, compose each distinct config once.

    A grid sweep's job is otherwise composed three times (validate_sweep, Hydra's sweeper checking the
    batch, the launcher) and the sweep's own config twice, each a few hundred milliseconds. Here every
    composition of Hydra's config loader is kept under what determines it (config name, overrides, run
    mode, search path, working directory) and later ones get a copy, with the one thing read from the
    environment (hydra.job.env_copy) read again. The job then runs the config that was validated.
    """
    global _composed
    original = ConfigLoaderImpl.load_configuration

    def load_configuration(
        self: ConfigLoaderImpl,
        config_name: str | None,
        overrides: list[str],
        run_mode: RunMode,
        from_shell: bool = True,
        validate_sweep_overrides: bool = True,
    ) -> DictConfig:
        key = (
            config_name,
            tuple(overrides),
            run_mode,
            os.getcwd(),
            tuple((element.provider, element.path) for element in self.get_search_path().get_path()),
        )
        kept = None if _composed is None else _composed.get(key)
        if kept is None:
            cfg = original(self, config_name, overrides, run_mode, from_shell, validate_sweep_overrides)
            if _composed is not None and len(_composed) < COMPOSED_KEPT and _name_is_configured(cfg):
                _composed[key] = copy.deepcopy(cfg)
            return cfg
        if validate_sweep_overrides:  # what the kept one may have skipped: refuse a sweep where Hydra would
            ConfigLoaderImpl.validate_sweep_overrides_legal(
                OverridesParser.create().parse_overrides(list(overrides)), run_mode, from_shell
            )
        cfg = copy.deepcopy(kept)
        with open_dict(cfg.hydra):
            for name in cfg.hydra.job.env_copy:
                cfg.hydra.job.env_set[name] = os.environ[name]
        return cfg

    previous, _composed = _composed, {}
    ConfigLoaderImpl.load_configuration = load_configuration  # type: ignore[method-assign]
    try:
        yield
    finally:
        ConfigLoaderImpl.load_configuration = original  # type: ignore[method-assign]
        _composed = previous


def _name_is_configured(cfg: DictConfig) -> bool:
    """hydra.job.name comes from the config, not from the caller (Hydra's task name), so a copy composed
    through the compose API names the job as the launcher's own composition would."""
    try:
        return cfg.hydra.job.name != JobRuntime().get("name")
    except KeyError:
        return False
