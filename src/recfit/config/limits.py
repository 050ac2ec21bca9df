"""Numbers and names a run cannot work with, refused before anything heavy is imported.

Each of these used to pass the schema (right type) and fail much later: a seed NumPy cannot take, an
integer too large for a tensor, a negative learning rate that silently climbed the loss, a Lightning
strategy or epoch count Lightning refused only after the data had loaded.
"""

from __future__ import annotations

import math
from typing import Any

from omegaconf import DictConfig, ListConfig

from recfit.config.targets import resolved_items
from recfit.errors import ConfigError

# NumPy's legacy seeding (and Lightning's seed_everything) takes unsigned 32-bit seeds
SEED_RANGE = (0, 2**32 - 1)
SEED_KEYS = ("seed", "dataset.split_seed", "dataset.reader.seed")
# the largest count any tensor, sampler or loop counter here can hold
LARGEST_INT = 2**63 - 1
# Lightning's registered strategies (lightning.pytorch.strategies.StrategyRegistry) and `auto`
STRATEGIES = frozenset(
    (
        "auto",
        "ddp",
        "ddp_spawn",
        "ddp_fork",
        "ddp_notebook",
        *(
            f"{base}_find_unused_parameters_{flag}"
            for base in ("ddp", "ddp_spawn", "ddp_fork", "ddp_notebook")
            for flag in ("true", "false")
        ),
        "deepspeed",
        "deepspeed_stage_1",
        "deepspeed_stage_2",
        "deepspeed_stage_2_offload",
        "deepspeed_stage_3",
        "deepspeed_stage_3_offload",
        "deepspeed_stage_3_offload_nvme",
        "fsdp",
        "fsdp_cpu_offload",
        "single_device",
        "single_tpu",
        "single_xla",
        "xla",
        "xla_debug",
    )
)
ACCELERATORS = frozenset(("auto", "cpu", "gpu", "cuda", "mps", "tpu"))
PRECISIONS = frozenset(
    ("32-true", "32", "64-true", "64", "16-mixed", "16", "16-true", "bf16-mixed", "bf16", "bf16-true")
)


def check_limits(cfg: DictConfig) -> None:
    """Raise ConfigError (one line) for a number or Lightning name no run can use."""
    _check_integer_sizes(cfg)
    for key in SEED_KEYS:
        _check_seed(cfg, key)
    optimizer = cfg.optimizer
    for key in ("backbone_lr", "head_lr"):
        rate = optimizer[key]
        if not (math.isfinite(rate) and rate > 0):
            raise ConfigError(f"optimizer.{key} must be a positive learning rate (got {rate})")
    if not (math.isfinite(optimizer.weight_decay) and optimizer.weight_decay >= 0):
        raise ConfigError(f"optimizer.weight_decay must be 0 or more (got {optimizer.weight_decay})")
    _check_trainer(cfg.trainer)


def _check_seed(cfg: DictConfig, key: str) -> None:
    node: Any = cfg
    for part in key.split("."):
        if not isinstance(node, DictConfig) or part not in node:
            return
        node = node[part]
    low, high = SEED_RANGE
    if isinstance(node, int) and not low <= node <= high:
        raise ConfigError(f"{key} must be a whole number from {low} to {high} (2**32 - 1), got {node}")


def _check_trainer(trainer: DictConfig) -> None:
    strategy = str(trainer.strategy)
    if strategy not in STRATEGIES:
        raise ConfigError(
            f"trainer.strategy '{strategy}' is not a Lightning strategy (e.g. auto, ddp, ddp_spawn)"
        )
    if str(trainer.accelerator) not in ACCELERATORS:
        raise ConfigError(
            f"trainer.accelerator '{trainer.accelerator}' must be one of {', '.join(sorted(ACCELERATORS))}"
        )
    if str(trainer.precision) not in PRECISIONS:
        allowed = ", ".join(sorted(PRECISIONS))
        raise ConfigError(f"trainer.precision '{trainer.precision}' must be one of {allowed}")
    for key in ("max_epochs", "max_steps"):
        if trainer[key] < -1:
            raise ConfigError(f"trainer.{key} must be -1 (no limit) or 0 or more (got {trainer[key]})")
    if trainer.accumulate_grad_batches < 1:
        raise ConfigError(
            f"trainer.accumulate_grad_batches must be at least 1 (got {trainer.accumulate_grad_batches})"
        )
    if not (math.isfinite(trainer.gradient_clip_val) and trainer.gradient_clip_val >= 0):
        raise ConfigError(
            f"trainer.gradient_clip_val must be 0 (off) or more (got {trainer.gradient_clip_val})"
        )
    if trainer.log_every_n_steps < 1:
        raise ConfigError(f"trainer.log_every_n_steps must be at least 1 (got {trainer.log_every_n_steps})")


def _check_integer_sizes(node: DictConfig | ListConfig, path: str = "") -> None:
    """No integer anywhere may exceed what a 64-bit counter holds (`dataset.batch_size=10**21`)."""
    for full, _key, value in resolved_items(node, path):
        if isinstance(value, int) and not isinstance(value, bool) and abs(value) > LARGEST_INT:
            raise ConfigError(f"{full} is too large ({value}; at most {LARGEST_INT})")
        if isinstance(value, (DictConfig, ListConfig)):
            _check_integer_sizes(value, full)
