"""Checkpoints hold what changed: frozen pretrained weights by a verified reference, and only the
checkpoints `checkpoint.keep` asks for once a run completes. Real training runs, in this process."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from helpers.cli import assert_one_line_error, run_cli
from helpers.models import save_tiny_pretrained_bert
from helpers.models import tiny_pretrained_bert as backbone
from helpers.runs import interrupted_after_step
from recfit.cli import main
from recfit.training.frozen_reference import REFERENCE_KEY

FAST = [
    "trainer.max_epochs=2", "trainer.enable_progress_bar=false", "trainer.limit_train_batches=3",
    "dataset.reader.num_users=40", "dataset.reader.num_items=60", "dataset.reader.interactions_per_user=8",
    "dataset.batch_size=16", "task=ranking", "loss=cross_entropy", "model=two_tower",
]  # fmt: skip
STEPS = 6  # 2 epochs x 3 batches


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory) -> Path:
    """A tiny BERT saved as a local pretrained model folder (what a hub id resolves to offline)."""
    return save_tiny_pretrained_bert(tmp_path_factory.mktemp("tiny_pretrained"))


def train(outputs: Path, *overrides: str) -> dict:
    """`recfit train` in this process; the run's metrics.json."""
    main(["train", *FAST, f"paths.output_dir={outputs}", f"paths.data_dir={outputs / 'data'}", *overrides])
    (path,) = outputs.glob("runs/*/*/metrics.json")
    record = json.loads(path.read_text())
    assert record["status"] == "completed", record["error"]
    return record


def checkpoint_names(record: dict) -> list[str]:
    return sorted(p.name for p in (Path(record["run_dir"]) / "checkpoints").iterdir())


def folder_size(record: dict) -> int:
    return sum(p.stat().st_size for p in Path(record["run_dir"]).rglob("*") if p.is_file())


@pytest.fixture(scope="module")
def referenced(pretrained, tmp_path_factory) -> dict:
    """Embeddings frozen (a 977k-parameter table), the two layers fine-tuned, default checkpoint keys."""
    return train(tmp_path_factory.mktemp("referenced"), *backbone(pretrained, "embeddings"))


@pytest.fixture(scope="module")
def self_contained(pretrained, tmp_path_factory) -> dict:
    """The same run with checkpoint.save_frozen=true and both checkpoints kept (the old form)."""
    outputs = tmp_path_factory.mktemp("self_contained")
    return train(
        outputs, *backbone(pretrained, "embeddings"), "checkpoint.save_frozen=true", "checkpoint.keep=both"
    )


def test_frozen_weights_are_referenced_not_stored(referenced, self_contained, pretrained):
    best = Path(referenced["run_dir"]) / "checkpoints" / "best.ckpt"
    saved = torch.load(best, weights_only=True, map_location="cpu")  # the DESIGN.md invariant
    reference = saved[REFERENCE_KEY]
    assert reference["source"] == str(pretrained)
    assert reference["names"] and all(".embeddings." in name for name in reference["names"])
    assert not set(reference["names"]) & set(saved["state_dict"])
    assert "optimizer_states" not in saved  # best.ckpt is for evaluation: weights only
    full = torch.load(
        Path(self_contained["run_dir"]) / "checkpoints" / "best.ckpt", weights_only=True, map_location="cpu"
    )
    assert REFERENCE_KEY not in full and set(reference["names"]) <= set(full["state_dict"])
    # the trained weights are the same either way, and so are the metrics
    assert all(torch.equal(full["state_dict"][name], tensor) for name, tensor in saved["state_dict"].items())
    assert referenced["metrics"] == self_contained["metrics"]
    frozen_bytes = sum(full["state_dict"][name].numel() * 4 for name in reference["names"])
    assert folder_size(referenced) < frozen_bytes / 2  # the run folder is smaller than its frozen table
    assert folder_size(self_contained) > 2 * frozen_bytes  # best + last, each with the table


def test_a_completed_run_keeps_best_only_by_default(referenced):
    assert checkpoint_names(referenced) == ["best.ckpt"]


@pytest.mark.parametrize(
    ("keep", "kept"),
    [("last", ["last.ckpt"]), ("both", ["best.ckpt", "last.ckpt"]), ("none", [])],
)
def test_keep_decides_what_a_completed_run_keeps(keep, kept, tmp_path, capsys):
    # checkpoint_every_n_steps=4 of 6 steps: a last.ckpt left from training would be stale (step 4)
    record = train(
        tmp_path, "backbone=none", "model=mf", f"checkpoint.keep={keep}", "checkpoint_every_n_steps=4"
    )
    assert checkpoint_names(record) == kept
    run_dir = Path(record["run_dir"])
    if "last.ckpt" in kept:
        last = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)
        assert last["global_step"] == STEPS  # the final state, not the step-4 one
    if keep == "last":  # evaluation falls back on the final weights
        assert run_cli(capsys, "eval", str(run_dir), f"paths.output_dir={tmp_path}").returncode == 0
    if keep == "none":
        result = run_cli(capsys, "eval", str(run_dir), f"paths.output_dir={tmp_path}")
        assert result.returncode != 0 and "trained with checkpoint.keep=none keeps none" in result.stderr


def test_changed_model_files_are_refused_in_one_line(referenced, pretrained, tmp_path, capsys):
    from transformers import BertModel

    copy = tmp_path / "run"
    shutil.copytree(referenced["run_dir"], copy)
    changed = tmp_path / "model"
    shutil.copytree(pretrained, changed)
    model = BertModel.from_pretrained(changed)
    with torch.no_grad():
        model.embeddings.word_embeddings.weight[7, 0] += 1.0  # one number differs
    model.save_pretrained(changed)
    overrides = copy / ".hydra" / "overrides.yaml"
    overrides.write_text(overrides.read_text().replace(str(pretrained), str(changed)))
    result = run_cli(capsys, "eval", str(copy), f"paths.output_dir={tmp_path}")
    assert_one_line_error(result, f"the frozen weights of {pretrained} do not match the checkpoint's (sha256")


def test_eval_reproduces_the_run_without_reencoding(pretrained, tmp_path, monkeypatch):
    """freeze=all: eval reads the item vectors from the cache and gets the run's own test metrics."""
    import recfit
    from recfit.models.two_tower import TwoTower

    record = train(tmp_path, *backbone(pretrained, "all"))
    assert record["item_vector_cache"] == "miss"
    best = torch.load(Path(record["run_dir"]) / "checkpoints" / "best.ckpt", weights_only=True)
    assert not any(name.startswith("recommender.backbone.") for name in best["state_dict"])
    encoded = []  # every time the catalogue goes through the backbone (the real method still runs)
    encode = TwoTower.cache_item_features
    monkeypatch.setattr(TwoTower, "cache_item_features", lambda self, b: encoded.append(1) or encode(self, b))
    loaded = recfit.load_run(record["run_dir"])
    assert loaded.recommender.cached_features.numel() > 0
    assert not encoded  # the verified frozen backbone is the one the cached vectors came from
    result = recfit.evaluate(record["run_dir"])
    assert {k: v for k, v in result.metrics.items() if k.startswith("test/")} == {
        k: v for k, v in record["metrics"].items() if k.startswith("test/")
    }


def test_children_outlive_their_parent(pretrained, tmp_path, capsys):
    """A parent fine-tunes the backbone; a child freezes what it took. Once the parent's folder is
    deleted, the child still evaluates to its own metrics and can itself be a parent."""
    import recfit

    parent = train(tmp_path / "parent", *backbone(pretrained, "none"))
    child = train(
        tmp_path / "child", *backbone(pretrained, "embeddings"), f"init_from.path={parent['run_dir']}"
    )
    assert child["init_from"]["taken"]
    best = torch.load(Path(child["run_dir"]) / "checkpoints" / "best.ckpt", weights_only=True)
    # the frozen embeddings came from the parent (fine-tuned): no model id names them, so they stay
    assert REFERENCE_KEY not in best
    assert "recommender.backbone.model.embeddings.word_embeddings.weight" in best["state_dict"]
    shutil.rmtree(parent["run_dir"])
    result = recfit.evaluate(child["run_dir"])
    assert {k: v for k, v in result.metrics.items() if k.startswith("test/")} == {
        k: v for k, v in child["metrics"].items() if k.startswith("test/")
    }
    grandchild = train(
        tmp_path / "grandchild", *backbone(pretrained, "embeddings"), f"init_from.path={child['run_dir']}"
    )
    assert grandchild["init_from"]["taken"]


def test_a_parent_with_a_reference_hands_over_its_frozen_weights(referenced, pretrained, tmp_path):
    """The child trains the whole backbone: the parent's frozen embeddings come from the model files."""
    child = train(tmp_path, *backbone(pretrained, "none"), f"init_from.path={referenced['run_dir']}")
    assert "backbone" in child["init_from"]["taken"]
    assert not child["init_from"]["reinitialised"]


def test_a_run_resumed_from_a_reference_ends_exactly_as_the_run_left_alone(pretrained, tmp_path, monkeypatch):
    """Ctrl-C after step 4 of 6 (raised there, as tests/test_resume.py does), then resume=auto."""
    frozen = backbone(pretrained, "embeddings")
    alone = train(tmp_path / "alone", *frozen)
    run = interrupted_after_step(4, train, tmp_path / "stopped", monkeypatch, *frozen)
    last = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)
    assert last["global_step"] == 4 and REFERENCE_KEY in last and "optimizer_states" in last
    resumed = train(tmp_path / "stopped", *frozen, "resume=auto")
    assert resumed["metrics"] == alone["metrics"]
    weights = [
        torch.load(Path(r["run_dir"]) / "checkpoints" / "best.ckpt", weights_only=True)["state_dict"]
        for r in (alone, resumed)
    ]
    assert weights[0].keys() == weights[1].keys()
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])
