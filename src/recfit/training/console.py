"""What a run shows in the terminal: the composed config as a tree at the start, a rich progress bar
with live metrics while it trains (the final metrics table is recfit.report's). `quiet` turns all of
it off; by default sweeps (-m) are quiet and single runs are not."""

from __future__ import annotations

import io
from pathlib import Path

import lightning.pytorch as pl
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from lightning.pytorch.callbacks import RichProgressBar
from lightning.pytorch.utilities import rank_zero_only
from omegaconf import DictConfig, OmegaConf
from rich.console import Console
from rich.syntax import Syntax
from rich.tree import Tree

from recfit.run_folder import CONFIG_TREE_FILE, write_text_atomic

# The groups a reader looks for first; the other top-level keys follow in the config's own order.
FIRST = ("experiment_name", "seed", "backbone", "dataset", "split", "task", "model", "loss", "optimizer")


def is_quiet(cfg: DictConfig) -> bool:
    """`quiet` as set, or, when null, whether this is a job of a sweep."""
    if cfg.get("quiet") is not None:
        return bool(cfg.quiet)
    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


def config_tree(cfg: DictConfig) -> Tree:
    """The resolved config, one branch per top-level key (the layout of lightning-hydra-template)."""
    tree = Tree("CONFIG", guide_style="dim")
    keys = [key for key in FIRST if key in cfg] + [key for key in cfg if key not in FIRST]
    for key in keys:
        branch = tree.add(str(key), guide_style="dim")
        value = cfg[key]
        if isinstance(value, DictConfig):
            text = OmegaConf.to_yaml(value, resolve=True).rstrip()
        else:
            text = str(value)
        branch.add(Syntax(text, "yaml", theme="ansi_dark", background_color="default"))
    return tree


@rank_zero_only
def show_config(cfg: DictConfig, run_dir: Path, quiet: bool) -> None:
    """Save the config tree as plain text in the run folder; print it too unless quiet."""
    tree = config_tree(cfg)
    buffer = io.StringIO()
    Console(file=buffer, width=110, color_system=None, force_terminal=False).print(tree)
    text = buffer.getvalue()
    write_text_atomic(run_dir / CONFIG_TREE_FILE, text)
    if not quiet:
        Console().print(tree)


def trainer_display(cfg: DictConfig, quiet: bool) -> tuple[list[pl.Callback], dict[str, bool]]:
    """Callbacks and Trainer arguments for the terminal: a rich bar with live metrics, or, when quiet,
    neither a bar nor the model summary."""
    if quiet:
        return [], {"enable_progress_bar": False, "enable_model_summary": False}
    if not cfg.trainer.enable_progress_bar:
        return [], {"enable_progress_bar": False}
    return [RichProgressBar(leave=True)], {"enable_progress_bar": True}
