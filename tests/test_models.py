"""Backbones, offline model resolution, tokenization and the towers, on real Hugging Face classes."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from transformers import AutoModel, BertModel

from recfit.config import compose
from recfit.data.encode import ImageContent, TextContent
from recfit.models.backbone import Backbone, apply_freeze, build_hf_model, load_backbone
from recfit.models.hub import resolve_model
from recfit.models.tokenizers import END_OF_TEXT, load_image_processor, load_tokenizer

MINILM = "sentence-transformers/all-MiniLM-L6-v2"
MINILM_SHA256 = "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"


def backbone_cfg(name: str, *overrides: str):
    return compose([f"backbone={name}", *overrides]).backbone


def test_minilm_resolves_offline_to_the_packaged_copy():
    import hashlib
    from pathlib import Path

    folder = Path(resolve_model(MINILM))
    assert (folder / "config.json").is_file()
    assert hashlib.sha256((folder / "model.safetensors").read_bytes()).hexdigest() == MINILM_SHA256
    assert resolve_model("all-MiniLM-L6-v2") == str(folder)
    assert resolve_model("nobody/unknown-model") == "nobody/unknown-model"  # left for the hub


def test_packaged_minilm_matches_sentence_transformers():
    """The packaged weights load into BertModel and our mean pooling gives sentence-transformers' vectors."""
    from sentence_transformers import SentenceTransformer

    cfg = backbone_cfg("minilm")
    backbone = load_backbone(cfg)
    assert isinstance(backbone.model, BertModel)
    assert sum(p.numel() for p in backbone.model.parameters()) == 22_713_216
    texts = ["A practical guide to rockets and comets.", "Pasta, bread and soups.", "short"]
    content = TextContent(texts, load_tokenizer(cfg), max_length=128)
    backbone.eval()
    with torch.no_grad():
        ours = torch.nn.functional.normalize(backbone(content.batch(np.arange(3))), dim=-1)
    reference = SentenceTransformer(resolve_model(MINILM), device="cpu").encode(texts, convert_to_tensor=True)
    torch.testing.assert_close(ours, reference, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("name", ["tiny_bert", "tiny_gpt2", "tiny_resnet"])
def test_from_pretrained_on_a_saved_tiny_model(tmp_path, name):
    random_cfg = backbone_cfg(name)
    model = build_hf_model(random_cfg)
    model.save_pretrained(tmp_path)
    saved = backbone_cfg(name, f"backbone.name_or_path={tmp_path}", "backbone.pretrained=true")
    loaded = build_hf_model(saved)
    for (key, a), (_, b) in zip(model.state_dict().items(), loaded.state_dict().items(), strict=True):
        torch.testing.assert_close(a, b, msg=key)
    fresh = build_hf_model(
        backbone_cfg(name, f"backbone.name_or_path={tmp_path}", "backbone.pretrained=false")
    )
    assert type(fresh) is type(model)
    assert any(not torch.equal(a, b) for a, b in zip(model.parameters(), fresh.parameters(), strict=True))


def test_bert_pairs_match_the_tokenizer():
    """Pairs assembled from ids tokenized once equal the tokenizer's own pair encoding."""
    tokenizer = load_tokenizer(backbone_cfg("tiny_bert"))
    users = TextContent(["a 24-year-old technician"], tokenizer, max_length=64)
    items = TextContent(["Toy Story (1995). Genres: Animation."], tokenizer, max_length=64)
    ours = items.pair_batch(users, np.array([0]), np.array([0]))
    reference = tokenizer(
        "a 24-year-old technician", "Toy Story (1995). Genres: Animation.", return_tensors="pt"
    )
    for key in ("input_ids", "token_type_ids", "attention_mask"):
        torch.testing.assert_close(ours[key], reference[key])
    single = items.batch(np.array([0]))
    torch.testing.assert_close(
        single["input_ids"],
        tokenizer("Toy Story (1995). Genres: Animation.", return_tensors="pt")["input_ids"],
    )


def test_truncation_respects_max_length():
    tokenizer = load_tokenizer(backbone_cfg("tiny_bert"))
    long = " ".join(["word"] * 100)
    content = TextContent([long, "short"], tokenizer, max_length=16)
    batch = content.pair_batch(content, np.array([0, 1]), np.array([0, 0]))
    assert batch["input_ids"].shape[1] == 16
    assert batch["attention_mask"].sum(1).tolist() == [16, 16]


def test_gpt2_byte_level_tokenizer_and_last_token_pooling():
    cfg = backbone_cfg("tiny_gpt2")
    tokenizer = load_tokenizer(cfg)
    assert tokenizer.pad_token == END_OF_TEXT and tokenizer.pad_token_id == 256
    assert tokenizer.decode(tokenizer("café ☕")["input_ids"]) == "café ☕"
    backbone = load_backbone(cfg).eval()
    content = TextContent(["a longer text than the other", "short"], tokenizer, max_length=64)
    with torch.no_grad():
        padded = backbone(content.batch(np.array([0, 1])))
        alone = backbone(content.batch(np.array([1])))
    torch.testing.assert_close(padded[1], alone[0])  # padding on the right does not change the vector


def test_image_backbone_on_generated_images():
    cfg = backbone_cfg("tiny_resnet")
    images = np.random.default_rng(0).integers(0, 255, (5, 20, 20, 3), dtype=np.uint8)
    content = ImageContent(images, load_image_processor(cfg), chunk=2)
    assert content.pixel_values.shape == (5, 3, 32, 32)
    vectors = load_backbone(cfg)(content.batch(np.array([0, 3])))
    assert vectors.shape == (2, 32)


@pytest.mark.parametrize(("freeze", "frozen_layers"), [("none", 0), ("embeddings", 0), ("1", 1), ("2", 2)])
def test_freeze_options(freeze, frozen_layers):
    model = build_hf_model(backbone_cfg("tiny_bert"))
    apply_freeze(model, freeze)
    embeddings_frozen = not any(p.requires_grad for p in model.embeddings.parameters())
    assert embeddings_frozen == (freeze != "none")
    for index, layer in enumerate(model.encoder.layer):
        assert all(p.requires_grad for p in layer.parameters()) == (index >= frozen_layers)
    apply_freeze(model, "all")
    assert not any(p.requires_grad for p in model.parameters())


def test_backbone_none_is_id_only():
    assert load_backbone(backbone_cfg("none")) is None


def test_pooling_choices_differ():
    cfg = backbone_cfg("tiny_bert")
    model = AutoModel.from_config(build_hf_model(cfg).config).eval()
    content = TextContent(["one two three", "four"], load_tokenizer(cfg), max_length=16)
    inputs = content.batch(np.array([0, 1]))
    with torch.no_grad():
        pooled = {p: Backbone(model, cfg.modality, p)(inputs) for p in ("cls", "mean", "last")}
        states = model(**inputs).last_hidden_state
    torch.testing.assert_close(pooled["cls"], states[:, 0])
    torch.testing.assert_close(pooled["mean"][1], states[1, :3].mean(0))  # [CLS] four [SEP], padding ignored
    torch.testing.assert_close(pooled["last"][1], states[1, 2])
    # the three choices give three different item vectors for the same input
    for first, second in (("cls", "mean"), ("cls", "last"), ("mean", "last")):
        assert not torch.allclose(pooled[first], pooled[second]), (first, second)
