"""DDP for real: two CPU processes (gloo, ddp_spawn) evaluate a checkpoint exactly as one process does,
and a DDP sweep writes one run folder per job."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from helpers.cli import assert_one_line_error, recfit
from helpers.runs import evaluate
from recfit.cli import main
from recfit.config import compose, validate
from recfit.data.eval_shards import ContiguousShardSampler
from recfit.errors import ConfigError, DataError

SMALL_DATA = [
    "dataset.reader.num_users=41",
    "dataset.reader.num_items=60",
    "dataset.reader.interactions_per_user=8",
]
FAST = ["trainer.max_epochs=1", "trainer.enable_progress_bar=false", *SMALL_DATA]
TINY = ["backbone=tiny_bert", *FAST]
# eval_batch_size 8: 41 users split 20 / 21, so shards and batches do not line up and batches are uneven.
# Rating and CTR, one multi-task run (a single task runs through the same per-task loop of RecModule),
# use ID-only MF: a text model's per-row predictions move by ~1e-7 with the padding of the batch a row
# lands in (in one process too, with another eval_batch_size), which is not what is tested here.
TASKS = {
    "ranking": [*TINY, "task=ranking", "loss=cross_entropy", "dataset.eval_batch_size=8"],
    "rating_and_ctr": [
        "backbone=none", "model=mf", *FAST, "task=ctr", "loss=bce", "tasks=[rating,ctr]",
        "dataset.eval_batch_size=8",
    ],
}  # fmt: skip


@pytest.mark.parametrize(("size", "world"), [(41, 2), (7, 3), (2, 2)])
def test_shards_cover_every_row_once_in_order(size, world):
    shards = [list(ContiguousShardSampler(size, world, rank)) for rank in range(world)]
    assert [row for shard in shards for row in shard] == list(range(size))  # no padding, no repeats
    assert max(map(len, shards)) - min(map(len, shards)) <= 1
    assert [len(ContiguousShardSampler(size, world, rank)) for rank in range(world)] == list(map(len, shards))


def test_fewer_rows_than_processes_is_a_clear_error():
    with pytest.raises(DataError, match="1 evaluation rows cannot be shared by 2 DDP processes"):
        ContiguousShardSampler(1, 2, 0)


def test_ddp_configs_compose_and_bad_device_counts_are_refused():
    validate(compose(["trainer=ddp", "trainer.num_nodes=4"]))  # devices: -1 = every GPU
    cfg = compose(["trainer=ddp_cpu"])
    assert cfg.trainer.strategy.startswith("ddp_spawn") and (
        cfg.trainer.devices,
        cfg.trainer.accelerator,
    ) == (2, "cpu")
    validate(cfg)
    with pytest.raises(ConfigError, match="trainer.devices must be auto, -1"):
        validate(compose(["trainer.devices=0"]))
    with pytest.raises(ConfigError, match="trainer.num_nodes must be at least 1"):
        validate(compose(["trainer.num_nodes=0"]))


def test_ddp_leaves_the_frozen_caches_alone():
    """The item-vector and frozen-layer caches are not broadcast from rank 0 at every step."""
    from recfit.training.run import build

    for freeze, cache in (("all", "recommender.cached_features"), ("1", "recommender.prefix_cache.states")):
        module = build(compose([*TINY, f"backbone.freeze={freeze}", "backbone.cache_vectors=false"])).module
        ignored = module._ddp_params_and_buffers_to_ignore
        assert cache in ignored and module.get_buffer(cache).numel() > 0
        assert not any(name in ignored for name, _ in module.named_parameters())


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> dict[str, str]:
    """One tiny single-process run per task; its best checkpoint."""
    checkpoints = {}
    for task, overrides in TASKS.items():
        outputs = tmp_path_factory.mktemp(task)
        main(["train", *overrides, f"paths.output_dir={outputs}"])
        (record,) = [json.loads(p.read_text()) for p in outputs.glob("runs/*/*/metrics.json")]
        assert record["status"] == "completed", record["error"]
        checkpoints[task] = record["best_checkpoint"]
    return checkpoints


@pytest.mark.slow
@pytest.mark.parametrize("task", sorted(TASKS))
def test_two_processes_evaluate_exactly_like_one(trained, task, tmp_path):
    overrides = TASKS[task]
    one, one_table = evaluate(overrides, trained[task], tmp_path / "one", devices=1)
    two, two_table = evaluate(overrides, trained[task], tmp_path / "two", devices=2, strategy="ddp_spawn")
    assert {name.split("/")[0] for name in one} == {"val", "test"}
    assert len(one) >= 4
    if task == "ranking":
        assert two == one  # exactly: no padded repeats counted, states summed across processes
        assert len(one_table) == one_table["user"].nunique() == 41  # each test user once
    else:
        assert {"test/rating/rmse", "val/rating/mae", "test/ctr/auc", "test/ctr/gauc", "val/ctr/auc"} <= set(
            one
        )
        rating = [name for name in one if "/rating/" in name]
        assert {name: two[name] for name in rating} == {name: one[name] for name in rating}  # exactly
        # CTR's sums in another order: to float64 rounding, NaN alike (GAUC, one row per user)
        assert two == pytest.approx(one, rel=1e-12, nan_ok=True)
    pd.testing.assert_frame_equal(two_table, one_table)


@pytest.mark.slow
def test_a_ddp_sweep_writes_one_run_folder_per_job(tmp_path):
    """Job 0 trains only; job 1, launched after it in the same process, trains and tests (each DDP
    phase starts two fresh processes: the second job's evaluation is the one a first job could upset)."""
    outputs = tmp_path / "outputs"
    result = recfit(
        "train", "-m", *TASKS["ranking"], "trainer=ddp_cpu", "test=false,true",
        f"paths.output_dir={outputs}", f"paths.data_dir={outputs}/data",
        cwd=tmp_path, timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    # no stray run folder from a re-executed rank ("data" holds the token cache)
    assert sorted(p.name for p in outputs.iterdir()) == ["data", "sweeps"]
    (sweep,) = list(outputs.glob("sweeps/*/*"))
    expected = [".sweep_summary.csv.lock", "0", "1", "multirun.yaml", "sweep_summary.csv"]
    assert sorted(p.name for p in sweep.iterdir()) == expected
    for job, tested in (("0", False), ("1", True)):
        record = json.loads((sweep / job / "metrics.json").read_text())
        assert record["status"] == "completed", record["error"]
        assert record["run_dir"] == str(sweep / job)
        assert "val/ndcg@10" in record["metrics"]
        assert ("test/ndcg@10" in record["metrics"]) is tested  # each job ran its own config
        assert sorted(p.name for p in (sweep / job / "checkpoints").iterdir()) == ["best.ckpt"]
        curves = pd.read_csv(sweep / job / "metrics.csv")
        assert curves["train/loss_epoch"].notna().any()
        assert record["train_throughput"]["samples"] > 0  # counted in the workers, over both ranks
        assert (sweep / job / "per_user.parquet").is_file() is tested
    table = pd.read_parquet(sweep / "1" / "per_user.parquet")
    assert len(table) == table["user"].nunique() == 41
    # the spawned evaluation workers rewrite metrics.csv: the training curves must survive them
    curves = pd.read_csv(sweep / "1" / "metrics.csv")
    assert curves["train/loss_epoch"].notna().any() and curves["test/ndcg@10"].notna().any()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["outputs"]  # nothing written where it was launched


def test_ddp_that_reexecutes_the_command_line_is_refused_in_a_sweep(tmp_path):
    result = recfit(
        "train", "-m", *TINY, "trainer=ddp_cpu", "trainer.strategy=ddp", "seed=1,2",
        f"paths.output_dir={tmp_path}",
    )  # fmt: skip
    assert_one_line_error(result, "trainer.strategy=ddp re-runs the command line in every rank")
    assert not (tmp_path / "sweeps").exists()


@pytest.mark.slow
def test_ddp_reexecuting_the_command_line_trains_every_rank_into_one_folder(tmp_path):
    """The default strategy (`auto`) with several CPU devices is Lightning's `ddp` (not spawn), which
    starts ranks 1 and 2 as new commands: they must be working ones (they crashed with `can't open file
    'recfit train'`, and left the run `running`), and write nothing. A text tower leaves parameters
    without gradients (its pooler), which plain `ddp` refuses with a traceback in every rank: recfit's
    `auto` allows them, as its ddp configs do."""
    outputs = tmp_path / "outputs"
    result = recfit(
        "train", *TASKS["ranking"], "trainer.accelerator=cpu", "trainer.devices=3",
        f"paths.output_dir={outputs}",
        f"paths.data_dir={outputs}/data",
        cwd=tmp_path, timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    (run,) = list(outputs.glob("runs/*/*"))
    record = json.loads((run / "metrics.json").read_text())
    assert record["status"] == "completed", record["error"]
    assert "test/ndcg@10" in record["metrics"]
    table = pd.read_parquet(run / "per_user.parquet")
    assert len(table) == table["user"].nunique() == 41
    # ranks 1 and 2 ran, in rank 0's folder
    assert (run / "train_ddp_process_1.log").is_file() and (run / "train_ddp_process_2.log").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["outputs"]
