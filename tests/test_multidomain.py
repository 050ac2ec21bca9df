"""Multi-domain training: `dataset=[synthetic,movielens_100k]` through real Hydra compositions.

Two tiny real domains: the synthetic generator (30 users) and the first 30 users of the real
MovieLens-100K files copied into a temporary folder. One two-tower run (tiny BERT, mixed 50/50 batches,
1 epoch) is trained through `recfit.train` and shared by the tests; a tiny mf run checks the ID model.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from omegaconf import OmegaConf

import recfit
from helpers.cli import assert_one_line_error, run_cli
from recfit.config import compose, validate
from recfit.config.domains import expand_domains
from recfit.config.schema import MovieLensDatasetConfig, MultiDomainDatasetConfig, SyntheticDatasetConfig
from recfit.errors import ConfigError

pytestmark = pytest.mark.slow

DOMAINS = ("synthetic", "movielens_100k")
MIX = "dataset.mix={synthetic: 0.5, movielens_100k: 0.5}"


@pytest.fixture(scope="module")
def tiny_ml100k(tmp_path_factory, ml100k_dir) -> Path:
    """The real MovieLens-100K files, cut to the ratings of users 1-30 (u.item and u.user whole)."""
    folder = tmp_path_factory.mktemp("ml-100k-tiny")
    ratings = (ml100k_dir / "u.data").read_text().splitlines()
    (folder / "u.data").write_text("\n".join(r for r in ratings if int(r.split("\t")[0]) <= 30) + "\n")
    for name in ("u.item", "u.user"):
        (folder / name).write_bytes((ml100k_dir / name).read_bytes())
    return folder


@pytest.fixture(scope="module")
def outputs(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("outputs")


def two_domains(tiny_ml100k: Path, outputs: Path) -> list[str]:
    return [
        "dataset=[synthetic, movielens_100k]",
        f"dataset.domains.movielens_100k.reader.path={tiny_ml100k}",
        "dataset.domains.synthetic.reader.num_users=30",
        "dataset.domains.synthetic.reader.num_items=60",
        "dataset.batch_size=32",
        "trainer.max_epochs=1",
        "trainer.enable_progress_bar=false",
        f"paths.output_dir={outputs}",
    ]


@pytest.fixture(scope="module")
def trained(tiny_ml100k, outputs):
    """The shared two-tower run: tiny BERT item tower shared by both domains, 50/50 batches."""
    return recfit.train(overrides=[*two_domains(tiny_ml100k, outputs), "backbone=tiny_bert", MIX])


@pytest.fixture(scope="module")
def loaded(trained):
    return recfit.load_run(trained.run_dir)


# ---- (1) the rewrite --------------------------------------------------------------------------------


def test_dataset_list_composes_into_one_config_per_domain_and_keys_override(tiny_ml100k, outputs):
    overrides = two_domains(tiny_ml100k, outputs)
    cfg = compose(overrides)
    validate(cfg)
    assert OmegaConf.get_type(cfg.dataset) is MultiDomainDatasetConfig
    assert list(cfg.dataset.domains) == list(DOMAINS)
    assert OmegaConf.get_type(cfg.dataset.domains.synthetic) is SyntheticDatasetConfig
    assert OmegaConf.get_type(cfg.dataset.domains.movielens_100k) is MovieLensDatasetConfig
    assert cfg.dataset.domains.synthetic.reader.num_users == 30  # a per-domain key overrides that domain only
    assert cfg.dataset.domains.movielens_100k.reader.path == str(tiny_ml100k)
    assert cfg.dataset.batch_size == 32  # a common key applies to the mixed batches
    expanded = expand_domains(overrides)
    assert expanded[:3] == [
        "dataset=multi_domain",
        "+dataset@dataset.domains.synthetic=synthetic",
        "+dataset@dataset.domains.movielens_100k=movielens_100k",
    ]
    assert expand_domains(expanded) == expanded  # what overrides.yaml records composes the same run
    with pytest.raises(ConfigError, match="unknown config key 'dataset.domains.synthetic.num_userz'"):
        compose([*overrides, "dataset.domains.synthetic.num_userz=3"])


BAD_INPUTS = [
    (
        "unknown domain share",
        [MIX.replace("synthetic:", "games:")],
        "dataset.mix names 'games', which is not",
    ),
    ("zero share", [MIX.replace("0.5}", "0}")], "dataset.mix.movielens_100k must be a positive share"),
    ("negative share", [MIX.replace("0.5,", "-1,")], "dataset.mix.synthetic must be a positive share"),
    ("duplicate domain", ["dataset=[synthetic,synthetic]"], "names synthetic more than once"),
    ("one domain", ["dataset=[synthetic]"], "names 1 data set; multi-domain needs two or more"),
    ("nested", ["dataset=[synthetic,multi_domain]"], "a domain cannot itself be multi_domain"),
    ("bpr", ["loss=bpr"], "multi-domain ranking keeps domains apart"),
    (
        "with multi-task",
        ["tasks=[rating,ctr]", "task=ctr", "loss=bce", "model=cross_encoder", "backbone=tiny_bert"],
        "tasks=[...] (multi-task) cannot be combined with dataset=multi_domain",
    ),
]


@pytest.mark.parametrize(
    "arguments, expected", [case[1:] for case in BAD_INPUTS], ids=[c[0] for c in BAD_INPUTS]
)
def test_bad_multidomain_input_is_one_line(capsys, tiny_ml100k, outputs, arguments, expected):
    before = sorted(outputs.rglob("*"))
    result = run_cli(capsys, "train", *two_domains(tiny_ml100k, outputs), *arguments)
    assert_one_line_error(result, expected)
    assert sorted(outputs.rglob("*")) == before


def test_multi_domain_without_domains_is_one_line(capsys, outputs):
    result = run_cli(capsys, "train", "dataset=multi_domain", f"paths.output_dir={outputs}")
    assert_one_line_error(result, "dataset=multi_domain needs two or more domains: use dataset=[a,b]")


# ---- (2) a two-domain run -----------------------------------------------------------------------------


def test_run_reports_overall_and_per_domain_metrics(trained, capsys):
    record = json.loads((trained.run_dir / "metrics.json").read_text())
    assert record["status"] == "completed"
    for stage in ("val", "test"):
        assert record["metrics"][f"{stage}/ndcg@10"] is not None
        for domain in DOMAINS:
            assert record["metrics"][f"{stage}/{domain}/ndcg@10"] is not None
    assert (
        "per domain: synthetic: ratio" in record["protocol"] and "movielens_100k: ratio" in record["protocol"]
    )
    curves = pd.read_csv(trained.run_dir / "metrics.csv")
    assert {"test/synthetic/ndcg@10", "test/movielens_100k/ndcg@10"} <= set(curves.columns)
    per_user = pd.read_parquet(trained.run_dir / "per_user.parquet")
    assert set(per_user["domain"]) == set(DOMAINS)
    # the overall metric is the mean over every user, each domain's over its own users
    for domain in DOMAINS:
        mine = per_user.loc[per_user["domain"] == domain, "ndcg@10"].mean()
        assert mine == pytest.approx(record["metrics"][f"test/{domain}/ndcg@10"], abs=1e-6)
    assert per_user["ndcg@10"].mean() == pytest.approx(record["metrics"]["test/ndcg@10"], abs=1e-6)
    code, out, err = run_cli(
        capsys, "compare", str(trained.run_dir), "--metric", "test/movielens_100k/ndcg@10"
    )
    assert code == 0, err
    assert f"{record['metrics']['test/movielens_100k/ndcg@10']:.4f}" in out


def test_ids_are_namespaced_by_domain(loaded):
    data = loaded.data
    assert data.domain_names == list(DOMAINS)
    assert str(data.user_ids[0]).startswith("synthetic:") and str(data.user_ids[-1]).startswith(
        "movielens_100k:"
    )
    assert [str(i).split(":", 1)[0] for i in data.item_ids] == [DOMAINS[d] for d in data.item_domain]


@pytest.mark.parametrize(
    "model, metric",
    [
        (["backbone=none", "model=mf"], "ndcg@10"),
        (["backbone=tiny_bert", "model=cross_encoder", "task=rating", "loss=mse"], "rmse"),
    ],
    ids=["mf ranking", "cross_encoder rating"],
)
def test_other_models_train_on_two_domains(tiny_ml100k, outputs, model, metric):
    result = recfit.train(overrides=[*two_domains(tiny_ml100k, outputs), *model])
    assert result.status == "completed"
    for stage in ("val", "test"):
        assert {f"{stage}/{domain}/{metric}" for domain in DOMAINS} <= set(result.metrics)
    if metric == "rmse":  # pointwise: each domain's rows, and all rows, pooled by squared error
        per_row = pd.read_parquet(result.run_dir / "per_user.parquet")
        for domain in DOMAINS:
            mse = per_row.loc[per_row["domain"] == domain, "squared_error"].mean()
            assert np.sqrt(mse) == pytest.approx(result.metrics[f"test/{domain}/rmse"], rel=1e-5)


# ---- (3) items kept apart -------------------------------------------------------------------------------


def test_every_recommended_item_is_from_the_users_domain(loaded):
    from recfit.inference.recommend import recommend

    data = loaded.data
    for code in (0, 5, data.num_users - 1):  # synthetic users first, then MovieLens users
        user = str(data.user_ids[code])
        domain = user.split(":", 1)[0]
        items = recommend(loaded, user, k=20)
        assert len(items) == 20
        assert all(item.item_id.startswith(f"{domain}:") for item in items), (user, items)


def test_evaluation_ranks_only_the_users_own_domain():
    from recfit.training.domains import NOT_RANKED, top_k_within_domains

    torch.manual_seed(0)
    users, items = torch.randn(4, 8), torch.randn(7, 8)
    ranges = [(0, 3), (3, 7)]  # items 0-2 domain 0, items 3-6 domain 1
    seen = torch.tensor([[1, -1], [-1, -1], [4, 6], [-1, -1]])
    top = top_k_within_domains(users, torch.tensor([0, 0, 1, 1]), items, seen, 4, ranges)
    # domain 0 has 3 items: the seen one ranks last (as in full ranking) and the 4th place is empty
    assert set(top[0, :2].tolist()) == {0, 2} and top[0, 2:].tolist() == [1, NOT_RANKED]
    assert set(top[1, :3].tolist()) == {0, 1, 2} and top[1, 3] == NOT_RANKED
    assert set(top[2, :2].tolist()) == {3, 5}  # never an item of domain 0
    assert sorted(top[3].tolist()) == [3, 4, 5, 6]
    best = (users[3] @ items[3:].T).argmax().item() + 3
    assert top[3, 0].item() == best


def test_in_batch_negatives_of_another_domain_are_masked():
    from recfit.training.domains import mask_other_domains
    from recfit.training.losses import in_batch_softmax

    torch.manual_seed(0)
    scores = torch.randn(5, 5)
    items = torch.tensor([10, 11, 12, 20, 21])
    domains = torch.tensor([0, 0, 0, 1, 1])  # rows 0-2 (and their items) domain 0, rows 3-4 domain 1
    masked = in_batch_softmax(mask_other_domains(scores, domains, domains), items, 0.1)
    # the same as each domain's block alone: cross-domain items take no part in the softmax
    a = in_batch_softmax(scores[:3, :3], items[:3], 0.1)
    b = in_batch_softmax(scores[3:, 3:], items[3:], 0.1)
    assert masked.item() == pytest.approx(((3 * a + 2 * b) / 5).item(), rel=1e-6)
    assert masked.item() != pytest.approx(in_batch_softmax(scores, items, 0.1).item(), rel=1e-3)


# ---- (4) mixed batches ------------------------------------------------------------------------------------


def test_batches_follow_the_mix_and_the_order_is_fixed_by_seed_and_epoch(loaded):
    from recfit.data.domain_mix import DomainMixSampler

    datamodule = loaded.datamodule
    sampler = datamodule.train_dataloader().sampler
    assert isinstance(sampler, DomainMixSampler)
    train = datamodule.splits.train
    row_domain = loaded.data.user_domain[train["user"].to_numpy()]
    order = np.asarray(sampler.order())
    batches = order.reshape(-1, datamodule.batch_size)
    per_batch = np.stack([(row_domain[batches] == d).sum(axis=1) for d in range(2)], axis=1)
    assert (per_batch == datamodule.batch_size // 2).all()  # 16 + 16 rows in every batch
    for d in range(2):  # every row of each domain served at least once; the smaller one recycled
        assert set(order[row_domain[order] == d]) == set(np.flatnonzero(row_domain == d))
    counts = np.bincount(row_domain[order])
    assert counts[0] == counts[1]  # 50/50 over the epoch although the domains differ in size
    assert np.bincount(row_domain)[0] != np.bincount(row_domain)[1]
    again = DomainMixSampler(row_domain, [0.5, 0.5], datamodule.batch_size, sampler.seed)
    assert again.order() == order.tolist()  # same (seed, epoch): same order
    again.set_epoch(1)
    assert again.order() != order.tolist()


def test_uneven_mix_gives_uneven_batches():
    from recfit.data.domain_mix import DomainMixSampler, rows_per_batch

    assert rows_per_batch([0.5, 0.5], 64) == [32, 32]
    assert rows_per_batch([3, 1], 10) == [8, 2]  # 7.5 / 2.5: the remainder to the larger share
    assert rows_per_batch([0.98, 0.02], 10) == [9, 1]  # each domain keeps a row
    row_domain = np.repeat([0, 1], [50, 500])
    sampler = DomainMixSampler(row_domain, [0.2, 0.8], 10, seed=3)
    batches = np.asarray(sampler.order()).reshape(-1, 10)
    assert len(batches) == 63  # until the 500 rows at 8 per batch are all served
    assert ((row_domain[batches] == 0).sum(axis=1) == 2).all()


def test_saved_overrides_compose_the_same_run_again(trained):
    from recfit.config.rerun import saved_overrides

    saved = saved_overrides(trained.run_dir)
    assert "+dataset@dataset.domains.movielens_100k=movielens_100k" in saved  # the expanded form
    again = compose(saved)
    validate(again)
    original = OmegaConf.load(trained.run_dir / ".hydra" / "config.yaml")
    assert OmegaConf.to_container(again.dataset) == OmegaConf.to_container(original.dataset)


def test_a_resumed_loader_serves_the_rest_of_the_mixed_epoch(loaded):
    datamodule = loaded.datamodule
    first = datamodule.train_dataloader()
    first.sampler.set_epoch(2)
    batches = [batch["user"] for batch in first]
    stopped = datamodule.train_dataloader()
    stopped.sampler.set_epoch(2)
    iterator = iter(stopped)
    for _ in range(3):
        next(iterator)
    resumed = datamodule.train_dataloader()
    resumed.load_state_dict(stopped.state_dict())  # what a mid-epoch checkpoint restores
    rest = [batch["user"] for batch in resumed]
    assert len(rest) == len(batches) - 3
    assert all(torch.equal(a, b) for a, b in zip(rest, batches[3:], strict=True))


def test_train_fraction_applies_within_each_domain(loaded):
    from recfit.data.domain_split import split_per_domain
    from recfit.data.split import make_splits

    data = loaded.data
    full = split_per_domain(data, lambda part: make_splits(part, "ratio", seed=0))
    tenth = split_per_domain(data, lambda part: make_splits(part, "ratio", seed=0, train_fraction=0.1))
    assert tenth.protocol.count("train_fraction 0.1 (") == len(DOMAINS)
    pd.testing.assert_frame_equal(tenth.test, full.test)
    assert len(tenth.train) + len(tenth.held_back) == len(full.train)
    seen = tenth.seen_before("test").sort_values(["user", "item"]).reset_index(drop=True)
    pd.testing.assert_frame_equal(
        seen, full.seen_before("test").sort_values(["user", "item"]).reset_index(drop=True)
    )
