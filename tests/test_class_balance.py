"""dataset.class_weights and dataset.resampling: weights computed by hand, balanced epochs, real runs."""

from __future__ import annotations

import json
import math
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch

from recfit.cli import main
from recfit.config import compose, validate
from recfit.data.resumable import EpochSampler, ResumableLoader
from recfit.errors import ConfigError, DataError
from recfit.tasks.registry import make_task
from recfit.training.class_weights import class_weights

LABELS = np.array([0] * 7 + [1] * 2 + [2] * 1)  # 10 rows, 3 classes, counts 7 / 2 / 1


def test_balanced_weights_are_n_over_k_times_count():
    weights = class_weights("balanced", LABELS, num_classes=3)
    assert torch.allclose(weights, torch.tensor([10 / (3 * 7), 10 / (3 * 2), 10 / (3 * 1)]))
    # every class then carries the same total weight
    totals = [weights[c] * np.count_nonzero(np.equal(LABELS, c)) for c in range(3)]
    assert torch.allclose(torch.stack(totals), torch.full((3,), 10 / 3))


def test_explicit_weights_and_their_checks():
    assert torch.equal(class_weights([1, 4], np.array([0, 1]), 2), torch.tensor([1.0, 4.0]))
    assert class_weights(None, LABELS, 3) is None
    with pytest.raises(DataError, match="has 2 weights for 3 classes \\(neg, neu, pos\\)"):
        class_weights([1, 2], LABELS, 3, ["neg", "neu", "pos"])
    with pytest.raises(DataError, match="class 'pos' has no training rows"):
        class_weights("balanced", np.array([0, 0, 1]), 3, ["neg", "neu", "pos"])


def test_cross_entropy_weights_match_the_loss_by_hand():
    logits = torch.tensor([[2.0, 0.0, -1.0], [0.5, 1.5, 0.0], [0.0, 0.0, 3.0], [1.0, 2.0, 0.0]])
    target = torch.tensor([0, 1, 2, 0])
    weights = torch.tensor([0.5, 2.0, 4.0])
    per_row = -torch.log_softmax(logits, dim=1)[torch.arange(4), target]
    by_hand = (weights[target] * per_row).sum() / weights[target].sum()
    task = make_task("text_classification", loss="cross_entropy")
    got = task.loss_value(logits, target, SimpleNamespace(class_weights=weights))
    plain = task.loss_value(logits, target, SimpleNamespace(class_weights=None))
    assert torch.isclose(got, by_hand)
    assert torch.isclose(plain, per_row.mean()) and not torch.isclose(got, plain)


def test_bce_weights_scale_the_positive_rows_by_their_ratio():
    logits = torch.tensor([1.0, -0.5, 2.0, 0.0])
    target = torch.tensor([1.0, 0.0, 0.0, 1.0])
    weights = torch.tensor([0.5, 3.0])  # pos_weight = 6
    probability = torch.sigmoid(logits)
    per_row = -(6 * target * torch.log(probability) + (1 - target) * torch.log(1 - probability))
    task = make_task("ctr", loss="bce")
    got = task.loss_value(logits, target, SimpleNamespace(class_weights=weights))
    assert torch.isclose(got, per_row.mean())
    assert not torch.isclose(got, task.loss_value(logits, target, SimpleNamespace(class_weights=None)))


def epoch(sampler: EpochSampler, number: int) -> list[int]:
    sampler.set_epoch(number)
    return list(sampler)


@pytest.mark.parametrize(("method", "per_class"), [("oversample", 7), ("undersample", 1)])
def test_resampled_epochs_have_balanced_labels(method, per_class):
    sampler = EpochSampler(len(LABELS), seed=3, labels=LABELS, resampling=method)
    assert len(sampler) == 3 * per_class
    seen = []
    for number in range(4):
        rows = epoch(sampler, number)
        assert np.bincount(LABELS[rows]).tolist() == [per_class] * 3
        seen.append(rows)
    assert seen[0] != seen[1]  # each epoch draws afresh
    again = EpochSampler(len(LABELS), seed=3, labels=LABELS, resampling=method)
    assert epoch(again, 2) == seen[2]  # a pure function of (seed, epoch)
    if method == "oversample":
        assert set(seen[0]) == set(range(len(LABELS)))  # every row is kept


def test_a_resumable_loader_restored_mid_epoch_serves_the_remaining_resampled_batches():
    def loader() -> ResumableLoader:
        sampler = EpochSampler(len(LABELS), seed=4, labels=LABELS, resampling="oversample")
        return ResumableLoader(list(range(len(LABELS))), batch_size=4, sampler=sampler, collate_fn=list)

    alone = loader()
    alone.sampler.set_epoch(1)
    uninterrupted = list(alone)  # 21 rows: 6 batches
    stopped = loader()
    stopped.sampler.set_epoch(1)
    served = iter(stopped)
    first = [next(served), next(served)]
    state = stopped.state_dict()
    resumed = loader()
    resumed.load_state_dict(state)
    assert first + list(resumed) == uninterrupted


def test_no_resampling_keeps_the_plain_permutation():
    plain = torch.randperm(10, generator=torch.Generator().manual_seed(5 * 1_000_003 + 2)).tolist()
    assert epoch(EpochSampler(10, seed=5, labels=LABELS), 2) == plain


CTR = ["backbone=none", "model=mf", "task=ctr", "loss=bce"]
RATING = ["backbone=none", "model=mf", "task=rating", "loss=mse"]


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ([*RATING, "dataset.class_weights=balanced"], "task 'rating' with loss 'mse'"),
        (["dataset.resampling=oversample"], "dataset.resampling needs class labels"),
        ([*CTR, "dataset.class_weights=[1,2,3]"], "takes 2 weights"),
        ([*CTR, "dataset.class_weights=[1,-2]"], "must all be positive numbers"),
        ([*CTR, "dataset.class_weights=heavy"], "must be null, balanced or a list"),
        ([*CTR, "dataset.resampling=sideways"], "dataset.resampling: Invalid value 'sideways'"),
    ],
)
def test_bad_balance_settings_are_refused(overrides, message):
    with pytest.raises(ConfigError, match=message.replace("(", "\\(")):
        validate(compose(overrides))


def test_text_classification_with_mse_refuses_class_weights(tmp_path):
    csv = tmp_path / "rows.csv"
    csv.write_text("text,label\na,1\nb,2\n")
    overrides = ["experiment=text_csv_bert", f"dataset.reader.path={csv}", "loss=mse", "task.metric=rmse"]
    validate(compose(overrides))
    with pytest.raises(ConfigError, match="task 'text_classification' with loss 'mse'"):
        validate(compose([*overrides, "dataset.class_weights=balanced"]))


@pytest.mark.slow
def test_a_ctr_run_with_class_weights_and_oversampling_completes(tmp_path):
    main(
        [
            "train", *CTR, "dataset.class_weights=balanced", "dataset.resampling=oversample",
            "trainer.max_epochs=1", "trainer.enable_progress_bar=false", "dataset.batch_size=64",
            "trainer.log_every_n_steps=1", f"paths.output_dir={tmp_path}",
        ]
    )  # fmt: skip
    (path,) = tmp_path.glob("runs/*/*/metrics.json")
    record = json.loads(path.read_text())
    assert record["status"] == "completed", record.get("error")
    assert 0 <= record["metrics"]["test/auc"] <= 1
    # one epoch is the oversampled one: both classes at the majority's count
    cfg = compose(CTR)
    from recfit.data.configured import read_dataset
    from recfit.data.split import make_splits

    data = read_dataset(cfg.dataset)
    splits = make_splits(data, "ratio", val=0.1, test=0.1, seed=0)
    liked = (splits.train["rating"] >= 4).to_numpy()
    expected_steps = math.ceil(2 * max(liked.sum(), (~liked).sum()) / 64)
    curves = pd.read_csv(Path(record["run_dir"]) / "metrics.csv").dropna(subset=["train/loss_step"])
    assert curves["step"].max() + 1 == expected_steps
