"""The Hydra applications behind the subcommands. Heavy imports wait until the config is valid."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from recfit.config import conf_dir, validate
from recfit.config.schema import register_schemas
from recfit.errors import RecfitError

log = logging.getLogger("recfit")

register_schemas()


@hydra.main(config_path=str(conf_dir()), config_name="train", version_base="1.3")
def train_app(cfg: DictConfig) -> float | None:
    """`recfit train`: validate, then train into Hydra's run folder. Returns the selection metric."""
    hydra_cfg = HydraConfig.get()
    in_sweep = hydra_cfg.mode == RunMode.MULTIRUN
    try:
        validate(cfg)
        from recfit.report import print_metrics
        from recfit.training.run import train

        result = train(cfg, Path(hydra_cfg.runtime.output_dir))
    except RecfitError as error:
        log.error("%s", error)
        print(f"recfit: error: {error}", file=sys.stderr)
        if in_sweep:
            return None
        raise SystemExit(1) from None
    print_metrics(result.metrics, result.run_dir, result.status, result.record["duration_s"])
    return result.metrics.get(f"val/{cfg.task.metric}")
