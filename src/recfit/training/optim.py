"""Optimizer with separate backbone / head learning rates, and a warm-up schedule."""

from __future__ import annotations

import inspect
import math
from typing import Any

from hydra.utils import get_class, get_method
from omegaconf import DictConfig, OmegaConf
from torch import nn

NO_DECAY = ("bias", "LayerNorm.weight", "layer_norm.weight", "ln_", "norm")


def parameter_groups(module: nn.Module, cfg: DictConfig) -> list[dict]:
    """Backbone parameters get `backbone_lr`, everything else `head_lr`; biases and norms no decay."""
    groups: dict[tuple[bool, bool], list[nn.Parameter]] = {}
    for name, parameter in module.named_parameters():
        if not parameter.requires_grad:
            continue
        in_backbone = ".backbone." in f".{name}"
        decays = parameter.ndim > 1 and not any(marker in name for marker in NO_DECAY)
        groups.setdefault((in_backbone, decays), []).append(parameter)
    return [
        {
            "params": params,
            "lr": cfg.backbone_lr if in_backbone else cfg.head_lr,
            "weight_decay": cfg.weight_decay if decays else 0.0,
        }
        for (in_backbone, decays), params in sorted(groups.items())
    ]


def total_optimizer_steps(trainer: Any, train_batches: int) -> int:
    """The optimizer steps of the whole run, for the learning-rate schedule.

    Lightning's `trainer.estimated_stepping_batches` gives the same number, but asking for it inside
    `configure_optimizers` builds the train loader before a checkpoint is restored, and the loader's
    saved position is then never loaded: an exact resume needs this computed without the loader.
    """
    per_process = math.ceil(train_batches / max(1, trainer.world_size))  # DistributedSampler pads
    limit = trainer.limit_train_batches
    per_epoch = int(per_process * limit) if isinstance(limit, float) else min(per_process, int(limit))
    updates = math.ceil(max(1, per_epoch) / trainer.accumulate_grad_batches)
    if trainer.max_steps is not None and trainer.max_steps > 0:
        return trainer.max_steps
    return updates * max(1, trainer.max_epochs or 1)


def build_optimizer(module: nn.Module, optimizer: DictConfig, scheduler: DictConfig, total_steps: float):
    """Lightning's `configure_optimizers` answer: the optimizer and a per-step scheduler."""
    extra = OmegaConf.to_container(optimizer.extra, resolve=True)
    instance = get_class(optimizer._target_)(parameter_groups(module, optimizer), **extra)
    steps = max(1, int(total_steps)) if math.isfinite(total_steps) else 1
    schedule = get_method(scheduler._target_)
    arguments = {"num_warmup_steps": int(scheduler.warmup_ratio * steps)}
    if "num_training_steps" in inspect.signature(schedule).parameters:
        arguments["num_training_steps"] = steps
    return {
        "optimizer": instance,
        "lr_scheduler": {"scheduler": schedule(instance, **arguments), "interval": "step"},
    }
