"""Expand a command-line sweep into its jobs, exactly as Hydra's basic sweeper will number them, and
compose each job once while the sweep runs in this process."""

from __future__ import annotations

import copy
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from hydra._internal import config_loader_impl
from hydra._internal.config_loader_impl import ConfigLoaderImpl
from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra._internal.defaults_list import DefaultsList, Overrides
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
# Within `composed_once`: per config structure (the primary config, the config group choices, the
# search path), its defaults list and the config composed from it before any value override applies.
_skeletons: dict[tuple[Any, ...], tuple[DefaultsList, DictConfig]] = {}
_pending = threading.local()  # between create_defaults_list and composing, within one composition


@contextmanager
def composed_once() -> Iterator[None]:
    """While a sweep runs in this process, compose each distinct config once, and a config that differs
    from one composed before only in values (not in config group choices) from that one.

    A grid sweep's job is otherwise composed three times (validate_sweep, Hydra's sweeper checking the
    batch, the launcher) and the sweep's own config twice, each a few hundred milliseconds. Here every
    composition of Hydra's config loader is kept under what determines it (config name, overrides, run
    mode, search path, working directory) and later ones get a copy, with the one thing read from the
    environment (hydra.job.env_copy) read again. The job then runs the config that was validated.

    Most of a composition is building and merging the defaults list (reading every YAML file it
    names), which depends on the group choices only; value overrides (optimizer.head_lr=0.1) are
    applied to the merged config afterwards. Hydra's own code still does every step of each
    composition but those two: it gets a copy of the merged config of the same structure, then applies
    this job's value overrides and records them, as for any composition.
    """
    global _composed
    original = ConfigLoaderImpl.load_configuration
    create_defaults_list = config_loader_impl.create_defaults_list
    compose_from_defaults = ConfigLoaderImpl._compose_config_from_defaults_list

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

    def defaults_of_structure(
        repo: Any,
        config_name: str | None,
        overrides_list: list[Override],
        prepend_hydra: bool,
        skip_missing: bool,
    ) -> DefaultsList:
        structure = _structure(repo, config_name, overrides_list, prepend_hydra, skip_missing)
        skeleton = None if structure is None else _skeletons.get(structure)
        _pending.structure, _pending.skeleton = structure, skeleton
        if skeleton is None:
            _pending.defaults = create_defaults_list(
                repo=repo,
                config_name=config_name,
                overrides_list=overrides_list,
                prepend_hydra=prepend_hydra,
                skip_missing=skip_missing,
            )
            return _pending.defaults
        kept_defaults = skeleton[0]
        return DefaultsList(  # the group choices' defaults, this composition's value overrides
            defaults=kept_defaults.defaults,
            defaults_tree=kept_defaults.defaults_tree,
            config_overrides=Overrides(repo=repo, overrides_list=overrides_list).config_overrides,
            overrides=kept_defaults.overrides,
        )

    def compose_from_kept(self: ConfigLoaderImpl, defaults: list[Any], repo: Any) -> DictConfig:
        structure, skeleton = getattr(_pending, "structure", None), getattr(_pending, "skeleton", None)
        _pending.structure = _pending.skeleton = None
        if skeleton is not None:
            return copy.deepcopy(skeleton[1])
        cfg = compose_from_defaults(self, defaults, repo)
        if structure is not None and len(_skeletons) < COMPOSED_KEPT:
            _skeletons[structure] = (_pending.defaults, copy.deepcopy(cfg))
        return cfg

    previous, _composed = _composed, {}
    ConfigLoaderImpl.load_configuration = load_configuration  # type: ignore[method-assign]
    config_loader_impl.create_defaults_list = defaults_of_structure
    ConfigLoaderImpl._compose_config_from_defaults_list = compose_from_kept  # type: ignore[method-assign]
    try:
        yield
    finally:
        ConfigLoaderImpl.load_configuration = original  # type: ignore[method-assign]
        config_loader_impl.create_defaults_list = create_defaults_list
        ConfigLoaderImpl._compose_config_from_defaults_list = compose_from_defaults  # type: ignore[method-assign]
        _composed = previous
        _skeletons.clear()


def _structure(
    repo: Any, config_name: str | None, overrides: list[Override], prepend_hydra: bool, skip_missing: bool
) -> tuple[Any, ...] | None:
    """What a composition's defaults list depends on: its primary config, the overrides that choose
    config group options (in order), the repository's sources and the working directory. None for a
    sweep's own config (its swept overrides are not applied) or overrides Hydra will refuse."""
    if any(override.is_sweep_override() for override in overrides):
        return None
    try:
        values = {
            id(override) for override in Overrides(repo=repo, overrides_list=overrides).config_overrides
        }
    except Exception:  # an invalid group override: Hydra's own composition says what is wrong
        return None
    return (
        config_name,
        tuple(override.input_line for override in overrides if id(override) not in values),
        prepend_hydra,
        skip_missing,
        tuple((source.provider, source.path) for source in repo.get_sources()),
        os.getcwd(),
    )


def _name_is_configured(cfg: DictConfig) -> bool:
    """hydra.job.name comes from the config, not from the caller (Hydra's task name), so a copy composed
    through the compose API names the job as the launcher's own composition would."""
    try:
        return cfg.hydra.job.name != JobRuntime().get("name")
    except KeyError:
        return False
