"""Parameter-efficient fine-tuning: wrap a backbone in LoRA adapters with the peft library.

With `backbone.adapter=lora` every base weight is frozen and only the low-rank updates (B A, scaled
by alpha / rank) of the target modules train. Target modules default to peft's own choice for the
architecture (BERT: query, value; GPT-2: c_attn).

The freeze options combine with it: none and embeddings put adapters in every layer (LoRA freezes the
embeddings anyway); N keeps the first N layers without adapters; all is refused by validation.
"""

from __future__ import annotations

import logging

from omegaconf import DictConfig
from torch import nn
from transformers import PreTrainedModel

from recfit.config.schema import AdapterName
from recfit.errors import ConfigError

log = logging.getLogger(__name__)


def _unfrozen_layers(model: PreTrainedModel, freeze: str) -> list[int] | None:
    """freeze=N with LoRA: the first N layers stay exactly as they are, adapters go in the rest."""
    if not freeze.isdigit():
        return None  # none / embeddings: every layer gets adapters (LoRA freezes the embeddings anyway)
    from recfit.models.backbone import layer_list

    count = len(layer_list(model))
    if int(freeze) >= count:
        raise ConfigError(f"backbone.freeze={freeze} leaves none of the {count} layers for LoRA adapters")
    return list(range(int(freeze), count))


def add_adapter(model: PreTrainedModel, cfg: DictConfig) -> nn.Module:
    """`model` itself (adapter none) or a peft model whose only trainable weights are LoRA's."""
    if cfg.adapter == AdapterName.none:
        return model
    from peft import LoraConfig, get_peft_model

    lora = cfg.lora
    targets = list(lora.target_modules) if lora.target_modules else None
    if cfg.gradient_checkpointing:
        # checkpointed blocks need an input that requires grad, and the frozen embeddings give none
        model.enable_input_require_grads()
    config = LoraConfig(
        r=lora.rank,
        lora_alpha=lora.alpha,
        lora_dropout=lora.dropout,
        target_modules=targets,
        layers_to_transform=_unfrozen_layers(model, cfg.freeze),
    )
    try:
        wrapped = get_peft_model(model, config)
    except ValueError as error:  # no default targets for this architecture, or a name matching nothing
        first = str(error).strip().splitlines()[0]
        raise ConfigError(f"backbone.adapter=lora on {type(model).__name__}: {first}") from None
    trainable, total = wrapped.get_nb_trainable_parameters()
    log.info(
        "LoRA rank %d on %s: %s of %s backbone parameters trainable",
        lora.rank,
        ", ".join(sorted(wrapped.peft_config["default"].target_modules)),
        f"{trainable:,}",
        f"{total:,}",
    )
    return wrapped
