"""Which code a config may name, and the walk that finds every name in a composed config.

A run folder is data, not code: its `.hydra/overrides.yaml` is replayed by `rerun`, `eval`,
`recommend`, `embed` and `resume`, so whatever a config can make Python call must be one of the
callables below. Hydra calls any `_target_` it meets while instantiating, however deep (a `_target_`
inside the value of `trainer.limit_test_batches` is built along with the Trainer), and Python's
logging config calls `class` and `()` and follows `ext://`. So every one of those, anywhere in the
composed config (hydra.* included, after resolving interpolations such as `${oc.create:...}`), must
be an allowed callable, named exactly as listed: a name is looked up in this table as a whole,
never by prefix, so `recfit.run_folder.os.system` (os.system, reached through a
module that imports it) is refused. Each allowed name is `<module>.<attribute>`, so it names one
object: that attribute of that module, which Hydra imports and no other.

Code of your own (a logger, a reader) is allowed by listing its exact names in the environment
variable RECFIT_ALLOW_TARGETS (comma-separated): the environment belongs to whoever runs recfit, a
run folder cannot set it.

This module imports no torch, transformers or Lightning.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

from omegaconf import DictConfig, ListConfig
from omegaconf.errors import (
    InterpolationToMissingValueError,
    MissingMandatoryValue,
    OmegaConfBaseException,
)

from recfit.errors import ConfigError

ALLOW_VARIABLE = "RECFIT_ALLOW_TARGETS"

READERS = (
    "recfit.data.sources.synthetic.make_synthetic",
    "recfit.data.sources.movielens.read_movielens_100k",
    "recfit.data.sources.movielens.read_movielens_1m",
    "recfit.data.sources.recbole.read_recbole_atomic",
    "recfit.data.sources.recbole.read_amazon_games",
    "recfit.data.sources.text_csv.read_text_csv",
    "recfit.data.sources.image_folder.read_image_folder",
    "recfit.data.sources.multi_domain.read_domains",
)
MODELS = (
    "recfit.models.two_tower.TwoTower",
    "recfit.models.cross_encoder.CrossEncoder",
    "recfit.models.mf.MatrixFactorization",
    "recfit.models.popularity.Popularity",
    "recfit.models.linear.FeatureLinear",
)
OPTIMIZERS = (
    "torch.optim.AdamW",
    "torch.optim.Adam",
    "torch.optim.SGD",
    "torch.optim.Adagrad",
    "torch.optim.RMSprop",
)
SCHEDULES = (
    "transformers.get_linear_schedule_with_warmup",
    "transformers.get_cosine_schedule_with_warmup",
    "transformers.get_constant_schedule_with_warmup",
)
LIGHTNING = (
    "lightning.pytorch.Trainer",
    "lightning.pytorch.loggers.CSVLogger",
    "lightning.pytorch.loggers.TensorBoardLogger",
    "lightning.pytorch.loggers.WandbLogger",
    "recfit.training.loggers.MLflowLogger",
)
# hydra.launcher, hydra.sweeper (and its sampler), hydra.callbacks
HYDRA_PLUGINS = (
    "hydra._internal.core_plugins.basic_launcher.BasicLauncher",
    "hydra._internal.core_plugins.basic_sweeper.BasicSweeper",
    "hydra_plugins.hydra_joblib_launcher.joblib_launcher.JoblibLauncher",
    "hydra_plugins.hydra_submitit_launcher.submitit_launcher.SlurmLauncher",
    "hydra_plugins.hydra_submitit_launcher.submitit_launcher.LocalLauncher",
    "hydra_plugins.hydra_optuna_sweeper.optuna_sweeper.OptunaSweeper",
    "optuna.samplers.TPESampler",
    "optuna.samplers.RandomSampler",
    "optuna.samplers.GridSampler",
    "optuna.samplers.CmaEsSampler",
    "optuna.samplers.NSGAIISampler",
    "optuna.samplers.MOTPESampler",
    "recfit.training.sweep_summary.SweepSummaryCallback",
)
ALLOWED_TARGETS = frozenset((*READERS, *MODELS, *OPTIMIZERS, *SCHEDULES, *LIGHTNING, *HYDRA_PLUGINS))

# Python's logging.config calls `class` and `()` and resolves `ext://` (hydra.job_logging, hydra_logging)
LOGGING_CALLABLES = frozenset(
    (
        "logging.StreamHandler",
        "logging.FileHandler",
        "logging.NullHandler",
        "logging.Formatter",
        "logging.handlers.RotatingFileHandler",
        "logging.handlers.WatchedFileHandler",
        "colorlog.ColoredFormatter",
    )
)
LOGGING_STREAMS = frozenset(("ext://sys.stdout", "ext://sys.stderr"))
LOGGING_NODES = ("job_logging", "hydra_logging")
TARGET_KEY = "_target_"
# The command line kept as text: Hydra never resolves or instantiates these, and `seed=${seed}` there
# is the user's override, not a config value.
TEXT_NODES = frozenset(("hydra.overrides", "hydra.job.override_dirname"))


def allowed_targets() -> frozenset[str]:
    """The callables a config may name: recfit's own table plus the user's RECFIT_ALLOW_TARGETS."""
    extra = (name.strip() for name in os.environ.get(ALLOW_VARIABLE, "").split(","))
    return ALLOWED_TARGETS | {name for name in extra if name}


def check_target(name: Any, where: str) -> None:
    """Raise ConfigError unless `name` is exactly one of the allowed callables."""
    if isinstance(name, str) and name in allowed_targets():
        return
    raise ConfigError(
        f"refusing {where}={name!r}: not a callable recfit allows (recfit's readers, models, optimizers, "
        f"schedules, Lightning trainer and loggers, Hydra plugins; add your own with {ALLOW_VARIABLE})"
    )


def resolved_items(node: DictConfig | ListConfig, path: str) -> Iterator[tuple[str, Any, Any]]:
    """(full key, key, value) of each entry of `node`, interpolations resolved.

    A value still missing (`???`, or an interpolation to one) is left out: Hydra fills some at run
    time (hydra.runtime.output_dir) and `validate` reports the others. Any other interpolation that
    cannot resolve (`seed=${seed}`, `${oc.env:UNSET}`) is one ConfigError line.
    """
    keys = list(node.keys()) if isinstance(node, DictConfig) else list(range(len(node)))
    for key in keys:
        full = f"{path}[{key}]" if isinstance(key, int) else f"{path}.{key}" if path else str(key)
        if full in TEXT_NODES:
            continue
        try:
            value = node[key]
        except (MissingMandatoryValue, InterpolationToMissingValueError):
            continue
        except OmegaConfBaseException as error:
            raise ConfigError(f"{full}: {_first_line(getattr(error, 'msg', None) or str(error))}") from None
        yield full, key, value


def _first_line(text: str) -> str:
    return next((line.strip() for line in str(text).splitlines() if line.strip()), str(text))


def check_targets(cfg: DictConfig | ListConfig, path: str = "") -> None:
    """Refuse (one ConfigError line) any `_target_` anywhere in `cfg` that is not an allowed callable."""
    for full, key, value in resolved_items(cfg, path):
        if key == TARGET_KEY:
            check_target(value, full)
        elif key in LOGGING_NODES and path == "hydra" and isinstance(value, DictConfig):
            check_logging(value, full)
        if isinstance(value, (DictConfig, ListConfig)):
            check_targets(value, full)


def check_logging(node: DictConfig | ListConfig, path: str) -> None:
    """hydra.job_logging / hydra_logging go to logging.config.dictConfig, which calls `class` and `()`."""
    for full, key, value in resolved_items(node, path):
        if key in ("class", "()"):
            if not (isinstance(value, str) and value in LOGGING_CALLABLES):
                raise ConfigError(f"refusing {full}={value!r}: not a logging class recfit allows")
        elif isinstance(value, str) and value.startswith("ext://") and value not in LOGGING_STREAMS:
            raise ConfigError(
                f"refusing {full}={value!r}: logging may refer to ext://sys.stdout or stderr only"
            )
        if isinstance(value, (DictConfig, ListConfig)):
            check_logging(value, full)
