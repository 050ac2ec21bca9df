"""Resolvers that fit the Optuna search (conf/hparams_search/optuna.yaml) to the run it searches.

They are registered when the Hydra app is imported, before the sweeper reads its config, and they import
nothing heavy. Each keeps one fact in one place: the direction comes from task.mode, the startup trials
are capped by n_trials, and a learning rate is searched only where the run has a backbone to train.
"""

from __future__ import annotations

from omegaconf import OmegaConf

from recfit.config.schema import Modality, Mode

# Optuna spells directions differently from task.mode.
OPTUNA_DIRECTIONS = {Mode.max: "maximize", Mode.min: "minimize"}


def _enum_value(node: object) -> str:
    """An enum node interpolates as its repr ('Mode.max'); its value is the part after the dot."""
    return str(node).rsplit(".", 1)[-1]


def optuna_direction(mode: object) -> str:
    """task.mode -> Optuna's direction."""
    return OPTUNA_DIRECTIONS[Mode(_enum_value(mode))]


def startup_trials(wanted: int, n_trials: int) -> int:
    """TPE's random start-up trials: as many as asked, never more than the search has trials."""
    return max(1, min(int(wanted), int(n_trials)))


def search_if_backbone(modality: object, space: str, current: object) -> object:
    """`space` (an Optuna sweeper range) when the run has a backbone; else the key's current value,
    which the sweeper treats as a fixed parameter: no search dimension is spent on an unused key."""
    return current if Modality(_enum_value(modality)) == Modality.none else space


def register_optuna_resolvers() -> None:
    """Make the resolvers known to OmegaConf (idempotent)."""
    OmegaConf.register_new_resolver("optuna_direction", optuna_direction, replace=True)
    OmegaConf.register_new_resolver("optuna_startup_trials", startup_trials, replace=True)
    OmegaConf.register_new_resolver("optuna_if_backbone", search_if_backbone, replace=True)
