"""Every backbone family x the tasks it supports, trained for real through Hydra, in one process."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from helpers.files import write_reviews_csv
from recfit.cli import main

FAST = ["trainer.max_epochs=1", "trainer.enable_progress_bar=false", "trainer.limit_train_batches=4"]
SMALL_DATA = [
    "dataset.reader.num_users=40",
    "dataset.reader.num_items=60",
    "dataset.reader.interactions_per_user=8",
]


def train(tmp_path: Path, *overrides: str) -> dict:
    """`recfit train` in this process; returns the run's metrics.json."""
    main(["train", *FAST, f"paths.output_dir={tmp_path}", *overrides])
    (record,) = [json.loads(p.read_text()) for p in tmp_path.glob("runs/*/*/metrics.json")]
    assert record["status"] == "completed", record["error"]
    run = Path(record["run_dir"])
    trained = record["parameters"]["trainable"] > 0  # the popularity baseline trains nothing
    expected = [".hydra/config.yaml", "per_user.parquet"] + (
        ["metrics.csv", "checkpoints/best.ckpt"] if trained else []
    )
    for name in expected:
        assert (run / name).is_file(), name
    return record


RANKING = ["task=ranking", "loss=cross_entropy"]
RATING = ["task=rating", "loss=mse"]
CTR = ["task=ctr", "loss=bce"]

COMBINATIONS = {
    "tiny_bert-two_tower-ranking": ["backbone=tiny_bert", "model=two_tower", *RANKING],
    "tiny_bert-two_tower-rating": ["backbone=tiny_bert", "model=two_tower", *RATING],
    "tiny_bert-two_tower-ctr": ["backbone=tiny_bert", "model=two_tower", *CTR],
    "tiny_bert-cross_encoder-rating": ["backbone=tiny_bert", "model=cross_encoder", *RATING],
    "tiny_bert-cross_encoder-ctr": ["backbone=tiny_bert", "model=cross_encoder", *CTR],
    "tiny_gpt2-two_tower-ranking": ["backbone=tiny_gpt2", "model=two_tower", *RANKING],
    "tiny_gpt2-cross_encoder-ctr": ["backbone=tiny_gpt2", "model=cross_encoder", *CTR],
    "tiny_resnet-two_tower-ranking": ["backbone=tiny_resnet", "model=two_tower", *RANKING],
    "tiny_resnet-two_tower-rating": ["backbone=tiny_resnet", "model=two_tower", *RATING],
    "none-mf-ranking": ["backbone=none", "model=mf", *RANKING],
    "none-mf-rating": ["backbone=none", "model=mf", *RATING],
    "none-mf-ctr": ["backbone=none", "model=mf", *CTR],
    "none-mf-bpr-ranking": ["backbone=none", "model=mf", "task=ranking", "loss=bpr"],
    "tiny_bert-two_tower-bpr-ranking": ["backbone=tiny_bert", "model=two_tower", "task=ranking", "loss=bpr"],
    "none-popularity-ranking": ["backbone=none", "model=popularity", *RANKING],
    "none-lr-ctr": ["backbone=none", "model=lr", *CTR],
    "none-lr-rating": ["backbone=none", "model=lr", *RATING],
}
EXPECTED_METRICS = {
    "ranking": {"recall@10", "ndcg@10", "mrr@10", "hit@10", "precision@10", "map@10", "ndcg@20"},
    "rating": {"rmse", "mae"},
    "ctr": {"auc", "gauc", "logloss", "accuracy", "f1"},
}


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(COMBINATIONS))
def test_backbone_model_task(tmp_path, name):
    record = train(tmp_path, *COMBINATIONS[name], *SMALL_DATA)
    task = name.rsplit("-", 1)[1]
    for stage in ("val", "test"):
        reported = {key.split("/", 1)[1] for key in record["metrics"] if key.startswith(stage + "/")}
        assert EXPECTED_METRICS[task] <= reported
        # GAUC is undefined (None) when no user has both classes, as in these 1-row-per-user splits
        assert all(record["metrics"][f"{stage}/{m}"] is not None for m in EXPECTED_METRICS[task] - {"gauc"})
    per_user = pd.read_parquet(Path(record["run_dir"]) / "per_user.parquet")
    # the per-user (ranking) or per-row values average to the reported test metric
    check = {"ranking": ("ndcg@10", "ndcg@10"), "rating": ("abs_error", "mae"), "ctr": ("logloss", "logloss")}
    column, metric = check[task]
    assert per_user[column].mean() == pytest.approx(record["metrics"][f"test/{metric}"], abs=1e-5)
    assert per_user["user"].notna().all()


@pytest.mark.slow
@pytest.mark.parametrize("loss", ["cross_entropy", "mse"])
def test_text_classification_from_csv(tmp_path, loss):
    csv_file = write_reviews_csv(tmp_path / "reviews.csv", rows=80)
    overrides = [
        "experiment=text_csv_bert",
        "backbone=tiny_bert",
        f"dataset.reader.path={csv_file}",
        "dataset.reader.text_column=review",
        f"dataset.reader.label_column={'sentiment' if loss == 'cross_entropy' else 'stars'}",
        f"loss={loss}",
        f"task.metric={'accuracy' if loss == 'cross_entropy' else 'rmse'}",
        f"task.mode={'max' if loss == 'cross_entropy' else 'min'}",
    ]
    record = train(tmp_path, *overrides)
    expected = {"accuracy", "f1"} if loss == "cross_entropy" else {"rmse", "mae"}
    assert {f"test/{m}" for m in expected} <= set(record["metrics"])
    assert record["data"].startswith("reviews: 80 interactions")  # the 2 incomplete rows were dropped


@pytest.mark.slow
def test_same_config_and_seed_give_identical_metrics(tmp_path):
    overrides = ["backbone=tiny_bert", "seed=0", *SMALL_DATA, "trainer.limit_train_batches=1.0"]
    first = train(tmp_path / "a", *overrides)
    second = train(tmp_path / "b", *overrides)
    assert first["metrics"] == second["metrics"]
    third = train(tmp_path / "c", *overrides[:1], "seed=1", *overrides[2:])
    assert third["metrics"] != first["metrics"]


@pytest.mark.slow
def test_frozen_backbone_trains_only_the_layers_on_top(tmp_path):
    record = train(tmp_path, "backbone=tiny_bert", "backbone.freeze=all", *SMALL_DATA)
    backbone_parameters = record["parameters"]["total"] - record["parameters"]["trainable"]
    assert backbone_parameters > 900_000  # the tiny BERT's ~1M weights are all frozen


@pytest.mark.slow
@pytest.mark.parametrize("split", ["ratio", "temporal", "leave_one_out", "cold_item"])
def test_every_split_protocol_trains_and_states_itself(tmp_path, split):
    record = train(tmp_path, "backbone=none", "model=mf", f"split={split}", *SMALL_DATA)
    assert record["protocol"].startswith("no filtering; " + split)
    if split == "cold_item":
        assert record["protocol"].endswith("held-out cold items ranked among themselves")
    else:
        assert "full ranking over all 60 items, seen items masked" in record["protocol"]


@pytest.mark.slow
def test_popularity_trains_nothing_and_sampled_candidates_score_higher_than_full_ranking(tmp_path):
    full = train(tmp_path / "full", "backbone=none", "model=popularity", *SMALL_DATA)
    assert full["parameters"]["trainable"] == 0
    sampled = train(
        tmp_path / "sampled", "backbone=none", "model=popularity", "task.candidates=uni20", *SMALL_DATA
    )
    assert "20 negatives sampled uniformly per user (not comparable with full ranking)" in sampled["protocol"]
    assert sampled["metrics"]["test/recall@10"] >= full["metrics"]["test/recall@10"]


@pytest.mark.slow
def test_diverging_loss_fails_the_run_with_a_clear_message(tmp_path):
    with pytest.raises(SystemExit) as exit_:
        main(["train", *FAST, f"paths.output_dir={tmp_path}", "backbone=none", "model=mf", *RATING,
              "task.metric=rmse", "task.mode=min", "optimizer.head_lr=1e30", *SMALL_DATA])  # fmt: skip
    assert exit_.value.code == 1
    (record,) = [json.loads(p.read_text()) for p in tmp_path.glob("runs/*/*/metrics.json")]
    assert record["status"] == "failed"
    assert record["error"].startswith("training loss became nan at step")
