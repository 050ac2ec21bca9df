"""A Hugging Face AutoModel plus pooling: any text or image backbone becomes `inputs -> [N, hidden]`."""

from __future__ import annotations

import logging
import re

import torch
from omegaconf import DictConfig, OmegaConf
from torch import nn
from transformers import AutoConfig, AutoModel, PreTrainedModel

from recfit.config.schema import Modality, Pooling
from recfit.models.adapters import add_adapter
from recfit.models.hub import resolve_model

log = logging.getLogger(__name__)

# Parameter-name prefixes of the input embeddings (BERT, GPT-2, ResNet's stem).
EMBEDDING_PREFIXES = ("embeddings.", "wte.", "wpe.", "embedder.")


class Backbone(nn.Module):
    """Runs the model and pools its output to one vector per input."""

    def __init__(self, model: PreTrainedModel, modality: Modality, pooling: Pooling) -> None:
        super().__init__()
        self.model = model
        self.modality = modality
        self.pooling = pooling
        config = model.config
        self.hidden_size: int = config.hidden_sizes[-1] if modality == Modality.image else config.hidden_size

    @property
    def fully_frozen(self) -> bool:
        return not any(p.requires_grad for p in self.model.parameters())

    def forward(self, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        if self.modality == Modality.image:
            return self.model(pixel_values=inputs["pixel_values"]).pooler_output.flatten(1)
        return self.pool(self.model(**inputs).last_hidden_state, inputs["attention_mask"])

    def pool(self, states: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Token states [N, L, hidden] and their attention mask -> one vector per row."""
        if self.pooling == Pooling.cls:
            return states[:, 0]
        if self.pooling == Pooling.last:
            last = mask.sum(dim=1) - 1  # right padding: the last real token
            return states[torch.arange(states.shape[0], device=states.device), last]
        weights = mask.unsqueeze(-1).to(states.dtype)
        return (states * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1.0)


def build_hf_model(cfg: DictConfig) -> PreTrainedModel:
    """`from_pretrained` (pretrained: true) or the same architecture with random weights."""
    overrides = OmegaConf.to_container(cfg.config_overrides, resolve=True)
    remote = cfg.trust_remote_code
    if cfg.name_or_path:
        source = resolve_model(cfg.name_or_path)
        if cfg.pretrained:
            return AutoModel.from_pretrained(source, trust_remote_code=remote, **overrides)
        config = AutoConfig.from_pretrained(source, trust_remote_code=remote, **overrides)
    else:
        config = AutoConfig.for_model(cfg.model_type, **overrides)
    return AutoModel.from_config(config, trust_remote_code=remote)


def layer_list(model: PreTrainedModel) -> nn.ModuleList:
    """The stack of transformer layers (or ResNet stages), in order."""
    config = model.config
    count = len(config.depths) if hasattr(config, "depths") else config.num_hidden_layers
    for _, module in model.named_modules():
        if isinstance(module, nn.ModuleList) and len(module) == count:
            return module
    raise ValueError(f"cannot find the {count} layers of {type(model).__name__}")


def apply_freeze(model: PreTrainedModel, freeze: str) -> None:
    """none | all | embeddings | N: freeze the embeddings and the first N layers."""
    if freeze == "none":
        return
    if freeze == "all":
        model.requires_grad_(False)
        return
    for name, parameter in model.named_parameters():
        if name.startswith(EMBEDDING_PREFIXES):
            parameter.requires_grad_(False)
    if re.fullmatch(r"\d+", freeze):
        for layer in list(layer_list(model))[: int(freeze)]:
            layer.requires_grad_(False)


def load_backbone(cfg: DictConfig) -> Backbone | None:
    """Build the backbone a `backbone` config describes (None for modality none)."""
    if cfg.modality == Modality.none:
        return None
    model = build_hf_model(cfg)
    if cfg.gradient_checkpointing:
        # transformers 5 renamed it (the old name warns); non-reentrant: frozen embeddings still work
        getattr(model, "activation_checkpointing_enable", model.gradient_checkpointing_enable)()
    apply_freeze(model, cfg.freeze)
    model = add_adapter(model, cfg)
    if cfg.compile:
        model.compile()  # in place: parameter names, and so checkpoints, stay those of the plain model
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    log.info("backbone %s: %s parameters, %s trainable", type(model).__name__, f"{total:,}", f"{trainable:,}")
    return Backbone(model, cfg.modality, cfg.pooling)
