"""The default Optuna search fits the run: no backbone_lr dimension without a backbone, and no more
random start-up trials than trials. Checked on the sweeper config as Hydra composes it and as the
hydra-optuna-sweeper plugin parses it."""

from __future__ import annotations

import pytest
from hydra import compose, initialize_config_dir
from hydra_plugins.hydra_optuna_sweeper._impl import create_params_from_overrides
from omegaconf import OmegaConf

import recfit.apps  # noqa: F401  (registers the schemas and the resolvers, as `recfit train -m` does)
from recfit.config import conf_dir


def sweeper(*overrides: str):
    with initialize_config_dir(config_dir=str(conf_dir()), version_base="1.3"):
        cfg = compose("train", overrides=["hparams_search=optuna", *overrides], return_hydra_config=True)
    return cfg.hydra.sweeper


def search_space(*overrides: str) -> tuple[set[str], dict]:
    """(searched keys, fixed keys -> values) exactly as the plugin splits hydra.sweeper.params."""
    params = sweeper(*overrides).params
    searched, fixed = create_params_from_overrides([f"{key}={value}" for key, value in params.items()])
    return set(searched), fixed


def test_backbone_lr_is_searched_only_with_a_backbone():
    searched, fixed = search_space("backbone=tiny_bert")
    assert searched == {"optimizer.head_lr", "optimizer.backbone_lr"} and not fixed
    searched, fixed = search_space("backbone=none", "model=mf")
    assert searched == {"optimizer.head_lr"}
    assert list(fixed) == ["optimizer.backbone_lr"]
    assert float(fixed["optimizer.backbone_lr"]) == 5e-5  # the run's own value, unchanged


@pytest.mark.parametrize(("n_trials", "startup"), [(2, 2), (1, 1), (5, 5), (20, 5)])
def test_startup_trials_never_exceed_the_trials(n_trials, startup):
    sampler = sweeper(f"hydra.sweeper.n_trials={n_trials}").sampler
    assert OmegaConf.to_container(sampler, resolve=True)["n_startup_trials"] == startup


def test_direction_follows_task_mode():
    assert sweeper().direction == "maximize"  # ranking: ndcg@10, mode max
    assert sweeper("task=rating", "loss=mse").direction == "minimize"
