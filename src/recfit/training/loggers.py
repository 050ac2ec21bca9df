"""The Lightning loggers of a run (`logger=[csv,tensorboard,mlflow,wandb]`): built into the run folder,
given the composed config, and closed when the run ends."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hydra.utils import get_class, instantiate
from lightning.pytorch.loggers import CSVLogger, Logger, MLFlowLogger, WandbLogger
from lightning.pytorch.utilities import rank_zero_only
from omegaconf import DictConfig, OmegaConf

from recfit.config.schema import CSVLoggerConfig
from recfit.run_folder import CONFIG_TREE_FILE
from recfit.training.atomic_writes import AtomicCSVLogger

# metrics.csv is a run-folder file: written atomically (recfit.training.atomic_writes)
ATOMIC_CSV_LOGGER = f"{AtomicCSVLogger.__module__}.{AtomicCSVLogger.__qualname__}"


def mlflow_metric_name(name: str) -> str:
    """MLflow refuses '@' in names (Lightning would silently drop it: recall@10 -> recall10)."""
    return name.replace("@", "_at_")


class MLflowLogger(MLFlowLogger):
    """Lightning's MLFlowLogger, with names that keep their cut-off: val/recall@10 -> val/recall_at_10."""

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        """Log under MLflow-safe names."""
        super().log_metrics({mlflow_metric_name(key): value for key, value in metrics.items()}, step)


def run_name(run_dir: Path) -> str:
    """A run's name in the trackers: its folder's timestamp, or `<sweep timestamp>/<job>` in a sweep."""
    return f"{run_dir.parent.name}/{run_dir.name}" if run_dir.name.isdigit() else run_dir.name


def _run_arguments(key: str, node: DictConfig, run_dir: Path) -> dict[str, Any]:
    """What each logger needs from this run beyond its config: where to write, and what to call the run."""
    arguments: dict[str, Any] = {"save_dir": str(run_dir)}
    if get_class(str(node._target_)) is CSVLogger:
        arguments["_target_"] = ATOMIC_CSV_LOGGER
    if key == "mlflow":
        arguments["run_name"] = node.run_name or run_name(run_dir)
        arguments["tags"] = {**node.tags, "run_dir": str(run_dir.resolve())}
        if node.artifact_location:  # a relative path would be resolved against whatever folder logs later
            arguments["artifact_location"] = Path(node.artifact_location).expanduser().resolve().as_uri()
    elif key == "wandb":
        arguments["name"] = node.name or run_name(run_dir)
    return arguments


def build_loggers(cfg: DictConfig, run_dir: Path) -> list[Logger]:
    """One Lightning logger per non-null entry of `cfg.logger`, all writing into (or naming) `run_dir`.

    The run folder's metrics.csv is part of its format (`recfit compare --plot-curves` reads it), so a
    CSV logger with the `logger=csv` defaults is added when `logger` leaves `csv` out.
    """
    loggers = [
        instantiate(node, **_run_arguments(str(key), node, run_dir))
        for key, node in cfg.logger.items()
        if node is not None
    ]
    if cfg.logger.get("csv") is None:
        node = OmegaConf.structured(CSVLoggerConfig)
        loggers.append(instantiate(node, **_run_arguments("csv", node, run_dir)))
    return loggers


def flat_config(cfg: DictConfig) -> dict[str, Any]:
    """The resolved config as `{"model.embedding_dim": 64, ...}`: keys as one overrides them."""
    flat: dict[str, Any] = {}

    def walk(node: Any, prefix: str) -> None:
        if isinstance(node, dict) and node:
            for key, value in node.items():
                walk(value, f"{prefix}{key}.")
        else:
            flat[prefix.rstrip(".")] = node

    container = OmegaConf.to_container(cfg, resolve=True, enum_to_str=True)
    walk({key: value for key, value in container.items() if key != "hydra"}, "")
    return flat


@rank_zero_only
def log_config(loggers: list[Logger], cfg: DictConfig, run_dir: Path) -> None:
    """Give every tracker the config: flattened as hyperparameters, and to MLflow as files too.

    The CSV logger is left out: the run folder already holds the config (.hydra/config.yaml).
    """
    params = flat_config(cfg)
    for logger in loggers:
        if isinstance(logger, CSVLogger):
            continue
        logger.log_hyperparams(params)
        if isinstance(logger, MLFlowLogger):
            client, run_id = logger.experiment, logger.run_id
            client.log_text(run_id, OmegaConf.to_yaml(cfg, resolve=True), "config/config.yaml")
            tree = run_dir / CONFIG_TREE_FILE
            if tree.is_file():
                client.log_artifact(run_id, str(tree), "config")


def close_loggers(loggers: list[Logger]) -> None:
    """Finish what Lightning leaves open: a W&B run stays active (and would swallow the next run's
    logging in the same process) until it is finished."""
    if any(isinstance(logger, WandbLogger) for logger in loggers):
        import wandb

        if wandb.run is not None:
            wandb.finish()
