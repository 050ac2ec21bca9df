"""Throughput features: the on-disk token cache, length-bucketed batches, cached frozen layers,
gradient checkpointing and torch.compile by config, and the samples/s a run reports."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from helpers.files import write_reviews_csv
from recfit.cli import main
from recfit.config import compose
from recfit.data.encode import TextContent
from recfit.data.length_buckets import LengthBucketSampler
from recfit.data.resumable import ResumableLoader
from recfit.data.token_cache import CACHE_SUBDIR, cache_key, cached_token_ids, tokenize
from recfit.models.backbone import load_backbone
from recfit.models.frozen_prefix import FrozenPrefixCache, frozen_prefix_layers
from recfit.models.tokenizers import byte_level_tokenizer, load_tokenizer

TEXTS = ["a short one", "a somewhat longer text about games", "x", "the last text, of medium size here"]


@pytest.fixture(scope="module")
def tokenizer():
    return load_tokenizer(compose(["backbone=tiny_bert"]).backbone)


def cache_files(data_dir: Path) -> list[Path]:
    return sorted((data_dir / CACHE_SUBDIR).glob("*.npz"))


# --- token cache -------------------------------------------------------------------------------


def test_token_cache_writes_once_then_reads_the_file(tmp_path, tokenizer):
    first = cached_token_ids(TEXTS, tokenizer, 16, tmp_path)
    assert first == tokenize(TEXTS, tokenizer, 16)
    (file,) = cache_files(tmp_path)
    # replace the stored ids by other valid ids: a hit must return what the file holds
    flat, offsets = np.array([7, 8, 9, 10], dtype=np.int64), np.array([0, 1, 2, 3, 4], dtype=np.int64)
    np.savez(file, flat=flat, offsets=offsets)
    assert cached_token_ids(TEXTS, tokenizer, 16, tmp_path) == [[7], [8], [9], [10]]
    assert cache_files(tmp_path) == [file]


def test_token_cache_key_follows_tokenizer_length_texts_and_template(tokenizer):
    key = cache_key(TEXTS, tokenizer, 16)
    assert cache_key(list(TEXTS), tokenizer, 16) == key
    others = {
        cache_key(TEXTS, tokenizer, 17),
        cache_key([*TEXTS[:-1], TEXTS[-1] + "!"], tokenizer, 16),
        cache_key(TEXTS[:-1], tokenizer, 16),
        cache_key(["a short", "one", *TEXTS[1:]], tokenizer, 16),  # same characters, other split
        cache_key(TEXTS, byte_level_tokenizer(), 16),
        cache_key(TEXTS, tokenizer, 16, template="title: {text}"),
    }
    assert key not in others and len(others) == 6


@pytest.mark.parametrize("damage", [b"", b"not a zip file at all", "truncate"])
def test_a_corrupt_token_cache_file_is_rebuilt(tmp_path, tokenizer, damage):
    expected = cached_token_ids(TEXTS, tokenizer, 16, tmp_path)
    (file,) = cache_files(tmp_path)
    data = file.read_bytes()
    file.write_bytes(data[: len(data) // 2] if damage == "truncate" else damage)
    assert cached_token_ids(TEXTS, tokenizer, 16, tmp_path) == expected
    assert cached_token_ids(TEXTS, tokenizer, 16, tmp_path) == expected  # and the file was replaced
    with np.load(file) as stored:
        assert stored["offsets"][-1] == sum(len(ids) for ids in expected)


def test_a_token_cache_for_other_texts_of_the_same_count_is_not_trusted(tmp_path, tokenizer):
    """Offsets that do not add up (a file from another layout) count as corrupt."""
    cached_token_ids(TEXTS, tokenizer, 16, tmp_path)
    (file,) = cache_files(tmp_path)
    np.savez(file, flat=np.arange(3), offsets=np.array([0, 1, 2, 3, 9]))
    assert cached_token_ids(TEXTS, tokenizer, 16, tmp_path) == tokenize(TEXTS, tokenizer, 16)


# --- length-bucketed batches ---------------------------------------------------------------------

LENGTHS = np.random.default_rng(0).integers(3, 64, size=203)


def bucket_order(epoch: int, seed: int = 1) -> list[int]:
    sampler = LengthBucketSampler(LENGTHS, batch_size=16, buckets=4, seed=seed)
    sampler.set_epoch(epoch)
    return list(sampler)


def test_buckets_serve_every_row_once_per_epoch_in_a_seeded_order():
    orders = [bucket_order(epoch) for epoch in range(3)]
    for order in orders:
        assert sorted(order) == list(range(len(LENGTHS)))
    assert orders[0] == bucket_order(0) and orders[0] != orders[1] != orders[2]
    assert bucket_order(0, seed=2) != orders[0]


def test_buckets_pad_less_than_random_batches_and_keep_the_short_batch_last():
    order = np.array(bucket_order(0))
    batches = np.split(order, range(16, len(order), 16))
    assert [len(b) for b in batches[:-1]] == [16] * 12 and len(batches[-1]) == 203 % 16
    bucketed = np.mean([LENGTHS[b].max() for b in batches])
    shuffled = np.random.default_rng(0).permutation(len(LENGTHS))
    random_width = np.mean([LENGTHS[b].max() for b in np.split(shuffled, range(16, len(shuffled), 16))])
    assert bucketed < 0.8 * random_width


def test_bucketed_loader_resumes_mid_epoch_with_the_same_batches():
    def loader() -> ResumableLoader:
        sampler = LengthBucketSampler(LENGTHS, batch_size=16, buckets=4, seed=3)
        return ResumableLoader(range(len(LENGTHS)), batch_size=16, sampler=sampler)

    whole = loader()
    whole.sampler.set_epoch(2)
    reference = [batch.tolist() for batch in whole]
    stopped = loader()
    stopped.sampler.set_epoch(2)
    batches = iter(stopped)
    served = [next(batches).tolist() for _ in range(5)]
    resumed = loader()
    resumed.load_state_dict(stopped.state_dict())
    assert served + [batch.tolist() for batch in resumed] == reference


# --- partially frozen backbones ------------------------------------------------------------------


def backbone_and_content(tokenizer, *overrides: str):
    cfg = compose(["backbone=tiny_bert", "backbone.freeze=none", *overrides]).backbone
    torch.manual_seed(0)
    backbone = load_backbone(cfg)
    return backbone, TextContent(TEXTS * 3, tokenizer, cfg.max_length)


@pytest.mark.parametrize("pooling", ["cls", "mean"])
def test_cached_frozen_layers_give_the_output_of_the_whole_backbone(tokenizer, pooling):
    backbone, content = backbone_and_content(tokenizer, "backbone.freeze=1", f"backbone.pooling={pooling}")
    assert frozen_prefix_layers(backbone, "1") == 1
    cache = FrozenPrefixCache(backbone, 1)
    cache.fill((None, content.batch(np.arange(start, min(start + 5, 12)))) for start in range(0, 12, 5))
    backbone.eval()
    items = torch.tensor([5, 2, 0, 11, 2])
    expected = backbone(content.batch(items.numpy()))
    torch.testing.assert_close(cache(items), expected, atol=1e-5, rtol=1e-4)
    # the trainable layer learns through the cached path; the frozen ones are never touched
    cache(items).sum().backward()
    last, first = backbone.model.encoder.layer[1], backbone.model.encoder.layer[0]
    assert all(p.grad is not None for p in last.parameters())
    assert all(p.grad is None for p in first.parameters())


def test_only_bert_style_partial_freezes_use_the_cache(tokenizer):
    assert frozen_prefix_layers(backbone_and_content(tokenizer)[0], "none") == 0
    embeddings_only = backbone_and_content(tokenizer, "backbone.freeze=embeddings")[0]
    assert frozen_prefix_layers(embeddings_only, "embeddings") == 0
    assert frozen_prefix_layers(embeddings_only, "1") == 0  # layer 1 still trains: nothing to cache
    gpt2 = load_backbone(compose(["backbone=tiny_gpt2", "backbone.freeze=1"]).backbone)
    assert frozen_prefix_layers(gpt2, "1") == 0


# --- GPU paths by config, checked on CPU ---------------------------------------------------------


def loss_and_grads(backbone, content) -> tuple[torch.Tensor, list[torch.Tensor]]:
    backbone.train()
    backbone.zero_grad()
    torch.manual_seed(5)  # dropout masks: checkpointing replays them with the saved RNG state
    loss = backbone(content.batch(np.arange(12))).pow(2).mean()
    loss.backward()
    return loss.detach(), [p.grad.clone() for p in backbone.parameters() if p.grad is not None]


def test_gradient_checkpointing_gives_the_same_loss_and_gradients(tokenizer):
    plain, content = backbone_and_content(tokenizer)
    checkpointed, _ = backbone_and_content(tokenizer, "backbone.gradient_checkpointing=true")
    assert checkpointed.model.is_activation_checkpointing and not plain.model.is_activation_checkpointing
    loss, grads = loss_and_grads(plain, content)
    loss_checkpointed, grads_checkpointed = loss_and_grads(checkpointed, content)
    torch.testing.assert_close(loss_checkpointed, loss)
    assert len(grads) == len(grads_checkpointed)
    for expected, got in zip(grads, grads_checkpointed, strict=True):
        torch.testing.assert_close(got, expected, atol=1e-6, rtol=1e-5)


@pytest.mark.slow
def test_compiled_backbone_keeps_parameter_names_and_outputs(tokenizer):
    if shutil.which("cc") is None and shutil.which("gcc") is None:
        pytest.skip("torch.compile's CPU backend needs a C compiler")
    plain, content = backbone_and_content(tokenizer)
    compiled, _ = backbone_and_content(tokenizer, "backbone.compile=true")
    assert list(compiled.state_dict()) == list(plain.state_dict())  # checkpoints stay interchangeable
    plain.eval(), compiled.eval()
    inputs = content.batch(np.arange(12))
    torch.testing.assert_close(compiled(inputs), plain(inputs), atol=1e-5, rtol=1e-4)


# --- end to end -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def text_run(tmp_path_factory) -> dict:
    """One text-classification run with buckets, cached frozen layers and the token cache."""
    folder = tmp_path_factory.mktemp("text_run")
    csv_file = write_reviews_csv(folder / "reviews.csv", rows=80)
    main(
        [
            "train",
            "experiment=text_csv_bert",
            "backbone=tiny_bert",
            "backbone.freeze=1",
            "dataset.length_buckets=2",
            "dataset.batch_size=8",
            f"dataset.reader.path={csv_file}",
            "dataset.reader.text_column=review",
            "dataset.reader.label_column=sentiment",
            "trainer.max_epochs=2",
            "trainer.enable_progress_bar=false",
            f"paths.output_dir={folder / 'out'}",
            f"paths.data_dir={folder / 'data'}",
        ]
    )
    (record,) = [json.loads(p.read_text()) for p in (folder / "out").glob("runs/*/*/metrics.json")]
    return {"record": record, "data_dir": folder / "data"}


@pytest.mark.slow
def test_a_run_reports_its_training_throughput_and_caches_its_tokens(text_run):
    record = text_run["record"]
    assert record["status"] == "completed", record.get("error")
    throughput = record["train_throughput"]
    assert throughput["samples"] == 2 * 64  # 80 rows, 10 % validation, 10 % test, two epochs
    assert throughput["seconds"] > 0 and throughput["samples_per_s"] > 0
    assert len(cache_files(text_run["data_dir"])) == 1
    assert record["metrics"]["val/accuracy"] is not None
