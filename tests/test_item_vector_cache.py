"""The on-disk item vector cache of frozen backbones: its key, hits and misses, broken files, and real runs
with and without it giving the same metrics."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest
import torch
from filelock import FileLock
from transformers import AutoTokenizer, BertConfig, BertModel

from helpers.cli import assert_one_line_error, run_cli
from recfit.cli import main
from recfit.config.schema import Modality, Pooling
from recfit.data.encode import TextContent
from recfit.models.backbone import Backbone
from recfit.models.hub import resolve_model
from recfit.models.two_tower import TwoTower
from recfit.training import item_vector_cache
from recfit.training.item_vector_cache import CacheStatus, cache_key, load_or_compute, read_vectors

TEXTS = [f"item number {i}: a {'long ' * (i % 7)}description of a thing" for i in range(23)]
BATCH = 8


@pytest.fixture(scope="module")
def tokenizer():
    return AutoTokenizer.from_pretrained(resolve_model("sentence-transformers/all-MiniLM-L6-v2"))


def frozen_backbone(seed: int = 0, pooling: Pooling = Pooling.cls) -> Backbone:
    torch.manual_seed(seed)
    config = BertConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64)
    model = BertModel(config).requires_grad_(False)
    return Backbone(model, Modality.text, pooling)


def catalogue(tokenizer, texts: list[str] = TEXTS, max_length: int = 32, batch_size: int = BATCH):
    """What RecDataModule.item_batches yields: (item codes, padded content) over the whole catalogue."""
    content = TextContent(texts, tokenizer, max_length)

    def batches():
        for start in range(0, len(texts), batch_size):
            codes = np.arange(start, min(start + batch_size, len(texts)))
            yield torch.as_tensor(codes), content.batch(codes)

    return batches


def two_tower(backbone: Backbone | None = None) -> TwoTower:
    return TwoTower(backbone or frozen_backbone(), num_users=3, num_items=len(TEXTS))


def test_key_is_stable_and_changes_with_whatever_changes_the_vectors(tokenizer):
    base = cache_key(frozen_backbone(), catalogue(tokenizer)(), "cpu")
    assert cache_key(frozen_backbone(), catalogue(tokenizer)(), "cpu") == base  # same weights, same items

    other_seed = frozen_backbone(seed=1)  # a random init is its weights: another seed, another key
    nudged = frozen_backbone()
    with torch.no_grad():
        nudged.model.encoder.layer[1].output.dense.weight[0, 0] += 1e-6
    changed = {
        "random init seed": cache_key(other_seed, catalogue(tokenizer)(), "cpu"),
        "one weight": cache_key(nudged, catalogue(tokenizer)(), "cpu"),
        "one text": cache_key(frozen_backbone(), catalogue(tokenizer, [*TEXTS[:-1], "another"])(), "cpu"),
        "pooling": cache_key(frozen_backbone(pooling=Pooling.mean), catalogue(tokenizer)(), "cpu"),
        "max_length": cache_key(frozen_backbone(), catalogue(tokenizer, max_length=6)(), "cpu"),
        "batching": cache_key(frozen_backbone(), catalogue(tokenizer, batch_size=5)(), "cpu"),
        "device": cache_key(frozen_backbone(), catalogue(tokenizer)(), "cuda"),
    }
    assert base not in changed.values()
    assert len(set(changed.values())) == len(changed)


def test_miss_then_hit_gives_the_very_same_vectors(tmp_path, tokenizer):
    batches = catalogue(tokenizer)
    uncached = two_tower()
    uncached.cache_item_features(batches())

    first, second = two_tower(), two_tower()
    assert load_or_compute(first, batches, tmp_path, len(TEXTS)) == CacheStatus.miss
    (stored,) = tmp_path.glob("*.safetensors")
    assert load_or_compute(second, batches, tmp_path, len(TEXTS)) == CacheStatus.hit
    assert torch.equal(first.cached_features, uncached.cached_features)
    assert torch.equal(second.cached_features, uncached.cached_features)
    assert torch.equal(read_vectors(stored, len(TEXTS)), uncached.cached_features)

    different = two_tower(frozen_backbone(seed=3))
    assert load_or_compute(different, batches, tmp_path, len(TEXTS)) == CacheStatus.miss
    assert len(list(tmp_path.glob("*.safetensors"))) == 2
    assert not torch.equal(different.cached_features, uncached.cached_features)


def truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:-100])


def flip_last_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[-1] ^= 0x01
    path.write_bytes(bytes(data))


@pytest.mark.parametrize(
    "damage",
    [truncate, flip_last_byte, lambda path: path.write_bytes(b"not a safetensors file")],
    ids=["truncated", "one flipped bit", "garbage"],
)
def test_a_corrupt_file_is_recomputed_with_one_warning(tmp_path, tokenizer, caplog, damage):
    batches = catalogue(tokenizer)
    reference = two_tower()
    load_or_compute(reference, batches, tmp_path, len(TEXTS))
    (stored,) = tmp_path.glob("*.safetensors")
    damage(stored)
    with pytest.raises(ValueError):
        read_vectors(stored, len(TEXTS))

    again = two_tower()
    with caplog.at_level(logging.WARNING, logger=item_vector_cache.__name__):
        assert load_or_compute(again, batches, tmp_path, len(TEXTS)) == CacheStatus.recomputed
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1 and "corrupt" in warnings[0].getMessage()
    assert torch.equal(again.cached_features, reference.cached_features)
    assert torch.equal(read_vectors(stored, len(TEXTS)), reference.cached_features)  # repaired


def test_an_unusable_cache_folder_costs_a_warning_not_the_run(tmp_path, tokenizer, caplog):
    in_the_way = tmp_path / "a_file"
    in_the_way.write_text("")
    tower = two_tower()
    with caplog.at_level(logging.WARNING, logger=item_vector_cache.__name__):
        status = load_or_compute(tower, catalogue(tokenizer), in_the_way / "cache", len(TEXTS))
    assert status == CacheStatus.unavailable
    assert tower.cached_features.shape == (len(TEXTS), 32)
    assert len([r for r in caplog.records if r.levelno >= logging.WARNING]) == 1


def test_a_job_waits_for_the_one_encoding_the_same_vectors(tmp_path, tokenizer, monkeypatch):
    """While another job holds the key's lock, this one does not write the file (it would wait)."""
    batches = catalogue(tokenizer)
    key = cache_key(frozen_backbone(), batches(), "cpu")
    monkeypatch.setattr(item_vector_cache, "LOCK_TIMEOUT_S", 0.05)
    with FileLock(str(tmp_path / f"{key}.safetensors.lock")):
        tower = two_tower()
        assert load_or_compute(tower, batches, tmp_path, len(TEXTS)) == CacheStatus.unavailable
        assert not list(tmp_path.glob("*.safetensors"))
    assert load_or_compute(two_tower(), batches, tmp_path, len(TEXTS)) == CacheStatus.miss


def test_disabled_cache_reads_and_writes_nothing(tmp_path, tokenizer):
    tower = two_tower()
    assert load_or_compute(tower, catalogue(tokenizer), None, len(TEXTS)) == CacheStatus.disabled
    assert tower.cached_features.shape == (len(TEXTS), 32)


# ---- real runs: `recfit train` in this process, tiny BERT frozen entirely ----------------------------

RUN = [
    "backbone=tiny_bert",
    "backbone.freeze=all",
    "trainer.max_epochs=1",
    "trainer.enable_progress_bar=false",
    "dataset.reader.num_users=40",
    "dataset.reader.num_items=60",
    "dataset.reader.interactions_per_user=8",
]


def run(tmp: Path, name: str, data_dir: Path, *overrides: str) -> dict:
    out = tmp / name
    main(["train", *RUN, f"paths.output_dir={out}", f"paths.data_dir={data_dir}", *overrides])
    (record,) = [json.loads(p.read_text()) for p in out.glob("runs/*/*/metrics.json")]
    assert record["status"] == "completed", record["error"]
    return record


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> tuple[dict[str, dict], Path]:
    tmp = tmp_path_factory.mktemp("vector_cache_runs")
    data_dir = tmp / "data"
    records = {
        "first": run(tmp, "first", data_dir),
        "second": run(tmp, "second", data_dir),
        "disabled": run(tmp, "disabled", data_dir, "backbone.cache_vectors=false"),
        "other seed": run(tmp, "other_seed", data_dir, "seed=1"),
    }
    return records, data_dir / "cache" / "item_vectors"


@pytest.mark.slow
def test_runs_with_and_without_the_cache_give_identical_metrics(runs):
    records, _ = runs
    assert records["first"]["item_vector_cache"] == CacheStatus.miss
    assert records["second"]["item_vector_cache"] == CacheStatus.hit
    assert records["disabled"]["item_vector_cache"] == CacheStatus.disabled
    assert records["first"]["metrics"] == records["second"]["metrics"] == records["disabled"]["metrics"]
    assert "test/ndcg@10" in records["first"]["metrics"]


@pytest.mark.slow
def test_a_random_init_from_another_seed_gets_its_own_vectors(runs):
    records, cache_dir = runs
    assert records["other seed"]["item_vector_cache"] == CacheStatus.miss
    assert len(list(cache_dir.glob("*.safetensors"))) == 2


def test_cache_switch_must_be_a_boolean(capsys):
    result = run_cli(capsys, "train", "backbone.cache_vectors=perhaps")
    assert_one_line_error(result, "backbone.cache_vectors")
