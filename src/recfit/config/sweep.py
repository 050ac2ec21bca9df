"""Expand a command-line sweep into its jobs, exactly as Hydra's basic sweeper will number them."""

from __future__ import annotations

from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import OverrideParseException

from recfit.config.compose import compose
from recfit.config.launch import EXTERNAL_LAUNCHERS, check_sweep_strategy, started_externally
from recfit.config.validate import validate
from recfit.errors import ConfigError

# A sweep whose jobs come from a search algorithm, not from the command line: it cannot be expanded
# ahead of time; each trial is validated when it starts and recorded as failed if invalid.
SEARCH_SWEEP_PREFIX = "hparams_search="


def expand_sweep(arguments: list[str]) -> list[list[str]]:
    """The override list of every job, in job-number order (job i runs overrides[i])."""
    try:
        parsed = OverridesParser.create().parse_overrides(arguments)
    except OverrideParseException as error:
        raise ConfigError(f"cannot parse override: {str(error).splitlines()[0]}") from None
    return [job for batch in BasicSweeper.split_arguments(parsed, None) for job in batch]


def is_search_sweep(arguments: list[str]) -> bool:
    return any(a.startswith(SEARCH_SWEEP_PREFIX) and not a.endswith("=null") for a in arguments)


def check_search_sweep(arguments: list[str]) -> None:
    """Compose a search's fixed overrides: its trials are only known as it runs, but what Hydra acts on
    before the first one (hydra.* callbacks, launcher, sweeper) and every `_target_` are known now."""
    try:
        parsed = OverridesParser.create().parse_overrides(arguments)
    except OverrideParseException as error:
        raise ConfigError(f"cannot parse override: {str(error).splitlines()[0]}") from None
    compose([override.input_line for override in parsed if not override.is_sweep_override()])


def validate_sweep(arguments: list[str]) -> int:
    """Compose and validate every job; raise ConfigError naming the first bad job. Returns the job count."""
    jobs = expand_sweep(arguments)
    external = started_externally() or any(a in EXTERNAL_LAUNCHERS for a in arguments)
    for number, overrides in enumerate(jobs):
        try:
            cfg = compose(overrides)
            validate(cfg)
            check_sweep_strategy(cfg, external)
        except ConfigError as error:
            raise ConfigError(f"sweep job {number} ({' '.join(overrides)}): {error}") from None
    return len(jobs)
