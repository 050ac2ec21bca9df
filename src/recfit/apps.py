"""The Hydra applications behind the subcommands. Heavy imports wait until the config is valid."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from recfit.config import (
    conf_dir,
    resolvers,  # noqa: F401  (optuna_direction, used by hparams_search=optuna)
    validate,
)
from recfit.config.launch import check_sweep_strategy, started_externally
from recfit.config.multitask import monitor_key
from recfit.config.schema import register_schemas
from recfit.errors import RecfitError

log = logging.getLogger("recfit")

register_schemas()


@hydra.main(config_path=str(conf_dir()), config_name="train", version_base="1.3")
def train_app(cfg: DictConfig) -> float | None:
    """`recfit train`: validate, then train into Hydra's output folder. Returns the monitored metric.

    In a sweep, a job that fails for any reason is recorded as failed (metrics.json, the log, the
    sweep summary) and returns None, which Optuna counts as a failed trial; the sweep goes on.
    """
    hydra_cfg = HydraConfig.get()
    in_sweep = hydra_cfg.mode == RunMode.MULTIRUN
    run_dir = Path(hydra_cfg.runtime.output_dir)
    try:
        validate(cfg)
        if in_sweep:  # a search's trials are only known here; grid sweeps were checked before they started
            check_sweep_strategy(cfg, started_externally())
    except RecfitError as error:
        from recfit.training.run_folder import record_failure

        record_failure(cfg, run_dir, error)
        return _report_failure(error, in_sweep)
    from lightning.pytorch.utilities import rank_zero_only

    from recfit.report import print_metrics
    from recfit.training.console import is_quiet
    from recfit.training.run import train

    try:
        result = train(cfg, run_dir)
    except RecfitError as error:
        return _report_failure(error, in_sweep)
    except Exception as error:  # a bug or a crash: keep the traceback, but never kill the sweep
        if not in_sweep:
            raise
        log.exception("job failed: %s", error)
        return None
    if not is_quiet(cfg) and rank_zero_only.rank == 0:  # DDP ranks 1..N-1 print nothing
        print_metrics(result.metrics, result.run_dir, result.status, result.record["duration_s"])
    return result.metrics.get(monitor_key(cfg))


def _report_failure(error: RecfitError, in_sweep: bool) -> None:
    log.error("%s", error)
    print(f"recfit: error: {error}", file=sys.stderr)
    if not in_sweep:
        raise SystemExit(1)
    return None
