"""Load a finished run back: its config, its record, the model with the best weights, and its data.

The model is rebuilt by `recfit.training.run.build` from the run's own overrides (plus any new ones), so
loading never duplicates how a run is assembled; the weights come from `checkpoints/best.ckpt`, read
with `weights_only=True`. On another catalogue (a different data set or filter) only the parts that
do not name users or items by ID are loaded (see `recfit.inference.transfer`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from recfit import run_folder
from recfit.errors import ConfigError, RecfitError
from recfit.run_folder import BEST_CHECKPOINT, CHECKPOINT_DIR, Status, last_checkpoint

log = logging.getLogger(__name__)

# Dataset keys that change how data is served, not which users and items exist.
SERVING_KEYS = ("batch_size", "eval_batch_size", "num_workers", "split_seed")
# Groups an evaluation may not change: the model it evaluates is the one that was trained.
FIXED_GROUPS = ("model", "backbone", "loss")


@dataclass
class LoadedRun:
    """A run folder brought back to life."""

    run_dir: Path
    cfg: DictConfig  # the run's config, with any new overrides applied
    overrides: list[str]  # the run's own overrides followed by the new ones
    record: dict[str, Any]  # the run's metrics.json
    checkpoint: Path
    module: Any  # RecModule with the best weights, in eval mode
    datamodule: Any  # RecDataModule of `cfg`
    data: Any  # RecData of `cfg` (after filtering)
    protocol: str
    transfer: str | None  # None on the run's own catalogue, else what was (not) carried over

    @property
    def metrics(self) -> dict[str, float | None]:
        """The run's own final metrics (from metrics.json)."""
        return self.record.get("metrics") or {}

    @property
    def recommender(self) -> Any:
        return self.module.recommender


def read_record(run_dir: Path) -> dict[str, Any]:
    """metrics.json of a completed run that has a best checkpoint, or one line saying why not."""
    record = run_folder.read_record(run_dir)
    status = record.get("status")
    if status != Status.completed:
        error = f": {record['error']}" if record.get("error") else ""
        raise RecfitError(f"run {run_dir} did not complete (status {status}{error}); nothing to load")
    return record


def best_checkpoint(run_dir: Path, record: dict[str, Any]) -> Path:
    """checkpoints/best.ckpt of the run, looked up inside the folder (so a moved folder still loads).

    A run that kept only its final weights (checkpoint.keep=last) is loaded from last.ckpt instead.
    """
    recorded = record.get("best_checkpoint")
    path = run_dir / CHECKPOINT_DIR / (Path(recorded).name if recorded else BEST_CHECKPOINT)
    if path.is_file():
        return path
    last = last_checkpoint(run_dir)
    if last.is_file():
        log.info("%s has no %s (checkpoint.keep=last): loading the final weights", run_dir, path.name)
        return last
    raise RecfitError(
        f"run {run_dir} has no best checkpoint ({path.relative_to(run_dir)} missing); "
        "a run trained with checkpoint.keep=none keeps none"
    )


def run_config(run_dir: Path, overrides: list[str]) -> tuple[DictConfig, DictConfig, list[str]]:
    """(the run's config, the config with `overrides` on top, all overrides), composed and validated."""
    from recfit.config import compose, validate
    from recfit.config.rerun import saved_overrides

    saved = saved_overrides(run_dir)
    original = compose(saved)
    combined = [*without_replaced_groups(saved, overrides), *overrides]
    cfg = compose(combined)
    for group in FIXED_GROUPS:
        if OmegaConf.to_container(cfg[group]) != OmegaConf.to_container(original[group]):
            raise ConfigError(
                f"'{group}' cannot change when using a trained model (it is what was trained); "
                f"use `recfit rerun {run_dir} ...` to train another"
            )
    for composed in (original, cfg):
        # the run's checkpoint holds whatever it took from a parent run: the parent's folder may be gone
        composed.init_from.path = None
    if cfg.task.name != original.task.name:
        raise ConfigError(f"task.name cannot change from '{original.task.name}' for a trained model")
    validate(cfg)
    return original, cfg, combined


def _key(override: str) -> str:
    return override.partition("=")[0].lstrip("+~")


def without_replaced_groups(saved: list[str], overrides: list[str]) -> list[str]:
    """The saved overrides, less the keys of any group the new overrides switch to another option.

    `dataset=movielens_100k` replaces the synthetic data set, so the run's `dataset.reader.num_users=40`
    no longer applies (the new option has no such key).
    """
    switched = {_key(o) for o in overrides if "." not in _key(o)}
    return [o for o in saved if _key(o).split(".", 1)[0] not in switched or "." not in _key(o)]


def same_catalogue(original: DictConfig, cfg: DictConfig) -> bool:
    """True when both configs read the same users and items with the same codes."""

    def identity(dataset: DictConfig) -> dict:
        keys = OmegaConf.to_container(dataset, resolve=True)
        return {k: v for k, v in keys.items() if k not in SERVING_KEYS}

    return identity(original.dataset) == identity(cfg.dataset)


def load_run(run_dir: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> LoadedRun:
    """Rebuild a completed run's model, data and best weights; `overrides` may point it at other data."""
    run_dir = Path(run_dir)
    record = read_record(run_dir)
    checkpoint = best_checkpoint(run_dir, record)
    original, cfg, combined = run_config(run_dir, list(overrides))
    same = same_catalogue(original, cfg)
    if not same:
        from recfit.inference.history import check_history_transfer

        check_history_transfer(cfg)  # before the model is built: an ID item tower cannot transfer

    import lightning.pytorch as pl

    from recfit.inference.transfer import load_weights
    from recfit.training.checkpoint_state import load_state_dict
    from recfit.training.console import quiet_weight_loading
    from recfit.training.run import build

    quiet_weight_loading()
    pl.seed_everything(cfg.seed, workers=True, verbose=False)  # as training did: same random init
    built = build(cfg, checkpoint)  # its frozen weights in place before item vectors are cached
    transfer = load_weights(
        built,
        load_state_dict(checkpoint, built.module),
        checkpoint,
        same,
        cfg.model.name.value,
    )
    built.module.eval()
    return LoadedRun(
        run_dir=run_dir,
        cfg=cfg,
        overrides=combined,
        record=record,
        checkpoint=checkpoint,
        module=built.module,
        datamodule=built.datamodule,
        data=built.data,
        protocol=built.protocol,
        transfer=transfer,
    )
