"""Optimizer with separate backbone / head learning rates, and a warm-up schedule."""

from __future__ import annotations

import inspect
import math

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
