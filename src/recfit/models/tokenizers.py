"""Tokenizers and image processors for a backbone config."""

from __future__ import annotations

from typing import Any

from omegaconf import DictConfig

from recfit.config.schema import BYTE_LEVEL_TOKENIZER, Modality
from recfit.models.hub import resolve_model

IMAGENET_MEAN = [0.485, 0.456, 0.406]
IMAGENET_STD = [0.229, 0.224, 0.225]
END_OF_TEXT = "<|endoftext|>"


def byte_level_tokenizer() -> Any:
    """GPT-2's byte-level BPE with the 256 byte tokens and no merges, plus <|endoftext|> (id 256)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    alphabet = pre_tokenizers.ByteLevel.alphabet()
    vocab = {symbol: index for index, symbol in enumerate(sorted(alphabet))}
    vocab[END_OF_TEXT] = len(vocab)
    backend = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    return PreTrainedTokenizerFast(tokenizer_object=backend, eos_token=END_OF_TEXT, bos_token=END_OF_TEXT)


def load_tokenizer(cfg: DictConfig) -> Any:
    """The tokenizer named by `backbone.tokenizer` (default: the model's own), with a pad token set."""
    name = cfg.tokenizer or cfg.name_or_path
    if name == BYTE_LEVEL_TOKENIZER:
        tokenizer = byte_level_tokenizer()
    else:
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(
            resolve_model(name), trust_remote_code=cfg.trust_remote_code
        )
    if tokenizer.pad_token is None:  # GPT-2 has none; its end-of-text token is the usual choice
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def load_image_processor(cfg: DictConfig) -> Any:
    """The model's own image processor when it has one, else resize + ImageNet normalisation."""
    from transformers import AutoImageProcessor, ViTImageProcessorPil

    if cfg.name_or_path:
        try:
            return AutoImageProcessor.from_pretrained(resolve_model(cfg.name_or_path), use_fast=False)
        except OSError:
            pass
    size = {"height": cfg.image_size, "width": cfg.image_size}
    return ViTImageProcessorPil(size=size, image_mean=IMAGENET_MEAN, image_std=IMAGENET_STD)


def load_preprocessor(cfg: DictConfig) -> Any:
    """Tokenizer for text backbones, image processor for image backbones, None for ID-only."""
    if cfg.modality == Modality.text:
        return load_tokenizer(cfg)
    if cfg.modality == Modality.image:
        return load_image_processor(cfg)
    return None
