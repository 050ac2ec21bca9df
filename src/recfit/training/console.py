"""What a run shows in the terminal: the overridden config keys at the start (the whole config tree
goes to the run folder's config_tree.txt), a rich progress bar with live metrics while it trains
(the final metrics table is recfit.report's). `quiet` turns all of
it off; by default sweeps (-m) and the jobs `recfit sweep resume` runs again are quiet, single runs
are not. The model summary goes to train.log only."""

from __future__ import annotations

import io
import logging
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import lightning.pytorch as pl
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from lightning.pytorch.callbacks import ModelSummary, RichProgressBar
from lightning.pytorch.utilities import rank_zero_only
from omegaconf import DictConfig, OmegaConf
from rich.console import Console
from rich.syntax import Syntax
from rich.tree import Tree

from recfit.run_folder import CONFIG_TREE_FILE, write_text_atomic

# The groups a reader looks for first; the other top-level keys follow in the config's own order.
FIRST = ("experiment_name", "seed", "backbone", "dataset", "split", "task", "model", "loss", "optimizer")


_resuming_sweep = False  # True while `recfit sweep resume` runs a sweep's jobs in this process


@contextmanager
def sweep_jobs() -> Iterator[None]:
    """Runs started inside are a sweep's jobs (`recfit sweep resume` runs each as a single run)."""
    global _resuming_sweep
    before, _resuming_sweep = _resuming_sweep, True
    try:
        yield
    finally:
        _resuming_sweep = before


def is_quiet(cfg: DictConfig) -> bool:
    """`quiet` as set, or, when null, whether this is a job of a sweep (or of a resumed sweep)."""
    if cfg.get("quiet") is not None:
        return bool(cfg.quiet)
    return _resuming_sweep or (HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN)


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


def overridden_keys() -> list[str]:
    """The `key=value` overrides this run was composed with (Hydra's task overrides), in their order."""
    return list(HydraConfig.get().overrides.task) if HydraConfig.initialized() else []


def config_summary(overrides: list[str], run_dir: Path) -> str:
    """What the terminal shows of the config: the keys set on the command line (or by the experiment
    and API overrides), one per line to copy, not the 120-line tree, which is in the run folder."""
    lines = [f"  {override}" for override in overrides] or ["  (none: the defaults of conf/train.yaml)"]
    return "\n".join(["CONFIG: overridden keys", *lines, f"the whole config: {run_dir / CONFIG_TREE_FILE}"])


@rank_zero_only
def show_config(cfg: DictConfig, run_dir: Path, quiet: bool) -> None:
    """Save the whole config tree as plain text in the run folder; print the overridden keys unless quiet."""
    buffer = io.StringIO()
    Console(file=buffer, width=110, color_system=None, force_terminal=False).print(config_tree(cfg))
    write_text_atomic(run_dir / CONFIG_TREE_FILE, buffer.getvalue())
    if not quiet:
        print(config_summary(overridden_keys(), run_dir), flush=True)


def trainer_display(cfg: DictConfig, quiet: bool) -> tuple[list[pl.Callback], dict[str, bool]]:
    """Callbacks and Trainer arguments for the terminal: a rich bar with live metrics unless quiet (or
    `trainer.enable_progress_bar=false`). The model summary is logged, so it lands in train.log only
    (`TrainLogOnly` keeps Lightning's INFO lines off the terminal); left to itself, Lightning would
    print a rich table to the terminal and not log it."""
    summary = ModelSummary(max_depth=1)
    if quiet or not cfg.trainer.enable_progress_bar:
        return [summary], {"enable_progress_bar": False}
    return [RichProgressBar(leave=True), summary], {"enable_progress_bar": True}


# Library chatter that train.log keeps and the terminal does not show (issue 16): Lightning's INFO lines
# (devices, its advert, `Trainer(limit_*=1.0)`, checkpoint restoring, the model summary) and these warnings
NOISY_WARNINGS = (
    "LeafSpec",  # a deprecation inside Lightning's own pytree helper, once per loop
    "module(s) in eval mode",  # frozen backbone layers are in eval mode on purpose
    "exists and is not empty",  # CSVLogger writing into the run folder Hydra just made
    "is not writable",  # torch.as_tensor over a read-only NumPy view: nothing is written to it
    "smaller than the logging interval",  # small data sets log once per epoch anyway
)
# `lightning` itself has a stderr handler ("INFO: ..."), `lightning.pytorch` another when imported first
LIBRARY_LOGGERS = (
    "lightning",
    "lightning.pytorch",
    "lightning.fabric",
    "pytorch_lightning",
    "lightning_fabric",
)


class TrainLogOnly(logging.Filter):
    """On a terminal handler: drops library INFO lines and known harmless warnings (train.log has them)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name.startswith(LIBRARY_LOGGERS) and record.levelno < logging.WARNING:
            return False
        return not (record.name == "py.warnings" and any(n in record.getMessage() for n in NOISY_WARNINGS))


def _is_terminal(handler: logging.Handler) -> bool:
    return isinstance(handler, logging.StreamHandler) and not isinstance(handler, logging.FileHandler)


def quiet_weight_loading() -> None:
    """No weights-loading progress bar from transformers (a run, `eval`, `recommend`, `embed`)."""
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")  # read when transformers is imported
    if "transformers" in sys.modules:  # imported already (the run's modules are): switch its bars off now
        from transformers.utils import logging as transformers_logging

        transformers_logging.disable_progress_bar()


def route_console() -> None:
    """Send library chatter to train.log only: each Lightning line once (Lightning's own stderr handler
    printed a second copy), warnings through logging, no weights-loading progress bar."""
    quiet_weight_loading()
    logging.captureWarnings(True)
    for name in LIBRARY_LOGGERS:
        logger = logging.getLogger(name)
        for handler in [h for h in logger.handlers if _is_terminal(h)]:
            logger.removeHandler(handler)
        logger.propagate = True
    for handler in logging.getLogger().handlers:
        if _is_terminal(handler) and not any(isinstance(f, TrainLogOnly) for f in handler.filters):
            handler.addFilter(TrainLogOnly())


def summary_line(metrics: dict[str, float | None], monitor: str, run_dir: Path) -> str:
    """What a quiet run still prints: its monitored metric (and the test one) and its folder."""
    shown = [monitor, "test/" + monitor.split("/", 1)[-1]]
    values = [f"{k} {metrics[k]:.4f}" for k in dict.fromkeys(shown) if metrics.get(k) is not None]
    return f"{', '.join(values) or 'no metrics'}; run folder: {run_dir}"
