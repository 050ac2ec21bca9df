"""The OmegaConf resolvers recfit's configs use, registered on import (torch-free).

They are registered wherever a config is composed or run, so that checking a config resolves it
exactly as the run will. The Optuna ones fit the search (conf/hparams_search/optuna.yaml) to the run:
the direction comes from task.mode, the start-up trials are capped by n_trials, and a learning rate is
searched only where the run has a backbone to train.
"""

from __future__ import annotations

from omegaconf import OmegaConf

from recfit.config.schema import Modality, Mode

# Optuna spells directions differently from task.mode; the sweep config converts with a resolver,
# so task.mode stays the one place the direction is written.
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


OmegaConf.register_new_resolver("optuna_direction", optuna_direction, replace=True)
OmegaConf.register_new_resolver("optuna_startup_trials", startup_trials, replace=True)
OmegaConf.register_new_resolver("optuna_if_backbone", search_if_backbone, replace=True)
