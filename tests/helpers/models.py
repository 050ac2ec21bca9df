"""Small local model folders for tests: what a hub id resolves to offline, in milliseconds."""

from __future__ import annotations

from pathlib import Path

HIDDEN, VOCAB = 32, 30522  # the tiny BERT of conf/backbone/tiny_bert.yaml (MiniLM's WordPiece vocabulary)


def save_tiny_pretrained_bert(folder: Path, seed: int = 0) -> Path:
    """A 2-layer, 32-wide BERT saved as a pretrained model folder (`backbone.name_or_path=folder`)."""
    import torch
    from transformers import BertConfig, BertModel

    torch.manual_seed(seed)
    config = BertConfig(
        hidden_size=HIDDEN, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64, vocab_size=VOCAB
    )
    BertModel(config).save_pretrained(folder)
    return folder


def tiny_pretrained_bert(folder: Path, freeze: str) -> list[str]:
    """The overrides of a run on the model folder `folder` with `backbone.freeze=freeze`."""
    return ["backbone=tiny_bert", f"backbone.name_or_path={folder}", "backbone.pretrained=true",
            f"backbone.freeze={freeze}"]  # fmt: skip
