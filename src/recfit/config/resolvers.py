"""The OmegaConf resolvers recfit's configs use, registered on import (torch-free).

They are registered wherever a config is composed or run, so that checking a config resolves it
exactly as the run will.
"""

from __future__ import annotations

from omegaconf import OmegaConf

from recfit.config.schema import Mode

# Optuna spells directions differently from task.mode; the sweep config converts with this resolver,
# so task.mode stays the one place the direction is written.
OPTUNA_DIRECTIONS = {Mode.max: "maximize", Mode.min: "minimize"}


def optuna_direction(mode: object) -> str:
    """task.mode (an enum node, which interpolates as the text 'Mode.max') -> Optuna's direction."""
    return OPTUNA_DIRECTIONS[Mode(str(mode).rsplit(".", 1)[-1])]


OmegaConf.register_new_resolver("optuna_direction", optuna_direction, replace=True)
