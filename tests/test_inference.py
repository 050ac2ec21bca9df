"""Using a trained model: `recfit eval`, `recommend` (--explain), `embed`, and the Python API.

One tiny two-tower run (tiny BERT, synthetic data, 1 epoch) is trained once through `recfit.train`
and shared by every test; a tiny mf run and a tiny cross-encoder run serve the cases only they cover.
"""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

import recfit
from helpers.cli import assert_one_line_error, run_cli
from helpers.files import tree_digest
from helpers.imports import modules_loaded_by
from recfit.api import TrainResult
from recfit.errors import RecfitError

pytestmark = pytest.mark.slow

TINY = [
    "backbone=tiny_bert",
    "trainer.max_epochs=1",
    "trainer.enable_progress_bar=false",
    "dataset.reader.num_users=40",
    "dataset.reader.num_items=60",
    "dataset.reader.interactions_per_user=8",
]
OTHER_CATALOGUE = ["dataset.reader.seed=7", "dataset.reader.num_items=50", "split=cold_item"]


@pytest.fixture(scope="module")
def outputs(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("outputs")


@pytest.fixture(scope="module")
def trained(outputs) -> TrainResult:
    """The shared two-tower run, trained through the Python API."""
    return recfit.train(overrides=[*TINY, f"paths.output_dir={outputs}"])


@pytest.fixture(scope="module")
def loaded(trained):
    return recfit.load_run(trained.run_dir)


def eval_folders(outputs: Path) -> set[Path]:
    return {path.parent for path in outputs.glob("evals/*/*/metrics.json")}


# ---- the Python API -------------------------------------------------------------------------------
def test_train_returns_metrics_and_run_folder(trained):
    assert trained.status == "completed"
    record = json.loads((trained.run_dir / "metrics.json").read_text())
    assert trained.metrics == record["metrics"]
    assert {"val/ndcg@10", "test/ndcg@10"} <= set(trained.metrics)
    assert (trained.run_dir / "checkpoints" / "best.ckpt").is_file()
    assert (trained.run_dir / ".hydra" / "overrides.yaml").is_file()


def test_train_refuses_a_bad_config_in_one_line(outputs):
    with pytest.raises(RecfitError, match="unknown option 'bertt' for 'backbone'"):
        recfit.train(overrides=["backbone=bertt", f"paths.output_dir={outputs}"])
    with pytest.raises(RecfitError, match="recfit.train starts new runs only"):
        recfit.train(overrides=["resume=auto", f"paths.output_dir={outputs}"])
    runs_before = sorted(outputs.rglob("metrics.json"))
    with pytest.raises(RecfitError, match="would re-run your script in every rank"):
        recfit.train(overrides=["trainer=ddp_cpu", "trainer.strategy=ddp", f"paths.output_dir={outputs}"])
    assert sorted(outputs.rglob("metrics.json")) == runs_before  # refused before any run folder


def test_load_run_gives_config_metrics_model_and_datamodule(trained, loaded):
    from recfit.data.datamodule import RecDataModule
    from recfit.training.module import RecModule

    assert loaded.cfg.model.name.value == "two_tower"
    assert loaded.cfg.backbone.model_type == "bert"
    assert loaded.metrics == trained.metrics
    assert isinstance(loaded.module, RecModule) and not loaded.module.training
    assert isinstance(loaded.datamodule, RecDataModule)
    assert loaded.transfer is None
    saved = torch.load(trained.run_dir / "checkpoints" / "best.ckpt", weights_only=True)["state_dict"]
    for name, tensor in loaded.module.state_dict().items():
        assert torch.equal(tensor, saved[name]), name


def test_usage_lists_the_commands(capsys):
    code, out, _ = run_cli(capsys)
    assert code == 0
    for command in ("eval RUN_DIR", "recommend RUN_DIR --user ID", "embed RUN_DIR --items"):
        assert command in out


def test_version_and_every_command_help_print_usage_and_exit_0(capsys):
    from recfit import __version__
    from recfit.cli import COMMANDS

    code, out, _ = run_cli(capsys, "--version")
    assert code == 0 and out.strip() == f"recfit {__version__}"
    for command in COMMANDS:
        code, out, err = run_cli(capsys, command, "--help")
        assert code == 0, (command, err)
        assert out.startswith(f"usage: recfit {command}"), (command, out[:80])
        assert "error" not in err, (command, err)


def test_train_help_lists_the_top_level_keys_and_points_to_the_reference(capsys):
    code, out, _ = run_cli(capsys, "train", "--help")
    assert code == 0
    listed = [line.split()[0] for line in out.split("top-level keys")[1].splitlines()[1:] if line.strip()]
    for key in ("seed", "resume", "init_from.path", "early_stopping_patience", "quiet", "paths.output_dir"):
        assert key in listed, key
    assert "hydra" not in listed and "defaults" not in listed
    assert "docs/configuration.md" in out


def test_import_recfit_and_its_api_import_no_torch():
    assert modules_loaded_by("import recfit, recfit.api, recfit.cli; recfit.train; recfit.load_run") == []


# ---- recfit eval ----------------------------------------------------------------------------------
def test_eval_reproduces_the_run_test_metrics_into_a_folder_compare_reads(trained, outputs, capsys):
    before_run = tree_digest(trained.run_dir)
    before = eval_folders(outputs)
    code, out, err = run_cli(capsys, "eval", str(trained.run_dir))
    assert code == 0, err
    (folder,) = eval_folders(outputs) - before
    assert folder.parent.parent.name == "evals"
    record = json.loads((folder / "metrics.json").read_text())
    assert record["status"] == "completed"
    assert record["evaluated_run"] == str(trained.run_dir.resolve())
    expected = {k: v for k, v in trained.metrics.items() if k.startswith("test/")}
    assert record["metrics"] == expected  # exactly: same weights, same split, same code path
    pd.testing.assert_frame_equal(
        pd.read_parquet(folder / "per_user.parquet"), pd.read_parquet(trained.run_dir / "per_user.parquet")
    )
    for name in ("config.yaml", "overrides.yaml"):
        assert (folder / ".hydra" / name).is_file()
    assert str(folder) in out.replace("\n", "")
    assert tree_digest(trained.run_dir) == before_run  # the evaluated run is left as it was

    code, out, err = run_cli(
        capsys, "compare", str(outputs), "--metric", "test/ndcg@10", "--format", "csv", "--include-evals"
    )
    assert code == 0, err
    table = pd.read_csv(io.StringIO(out))
    rows = table[table["run"].str.contains(folder.name)]
    assert len(rows) == 1 and rows["test/ndcg@10"].iloc[0] == pytest.approx(expected["test/ndcg@10"])


def test_eval_on_another_catalogue_transfers_through_item_text(trained, outputs, capsys):
    before = eval_folders(outputs)
    code, out, err = run_cli(capsys, "eval", str(trained.run_dir), *OTHER_CATALOGUE)
    assert code == 0, err
    (folder,) = eval_folders(outputs) - before
    record = json.loads((folder / "metrics.json").read_text())
    assert record["status"] == "completed"
    assert record["transfer"].startswith("two_tower: backbone and projection transferred")
    assert "cold_item" in record["protocol"]
    assert 0 <= record["metrics"]["test/ndcg@10"] <= 1
    assert "split=cold_item" in (folder / ".hydra" / "overrides.yaml").read_text()

    # the transferred model: content weights from the run, no item IDs, users folded in from history
    other = recfit.load_run(trained.run_dir, OTHER_CATALOGUE)
    own = recfit.load_run(trained.run_dir)
    recommender = other.recommender
    assert torch.equal(recommender.projection[1].weight, own.recommender.projection[1].weight)
    assert not recommender.item_embedding.weight.any()
    with torch.no_grad():
        items = recommender.catalogue_vectors(other.datamodule.item_batches(64))
    splits = other.datamodule.splits
    history = pd.concat([splits.train, splits.val])
    user = int(history["user"].iloc[0])
    mean = items[history.loc[history["user"] == user, "item"].to_numpy()].mean(0)
    torch.testing.assert_close(recommender.user_embedding.weight[user], mean)


def test_eval_on_movielens_100k_zero_shot(trained, outputs, capsys, ml100k_dir):
    before = eval_folders(outputs)
    code, _, err = run_cli(
        capsys, "eval", str(trained.run_dir), "dataset=movielens_100k", f"dataset.reader.path={ml100k_dir}"
    )
    assert code == 0, err
    (folder,) = eval_folders(outputs) - before
    record = json.loads((folder / "metrics.json").read_text())
    assert record["status"] == "completed" and record["transfer"]
    assert record["data"].startswith("movielens_100k: 100,000 interactions, 943 users, 1,682 items")
    assert len(pd.read_parquet(folder / "per_user.parquet")) == 943


# ---- recfit recommend -----------------------------------------------------------------------------
def test_recommend_returns_k_unseen_items_with_titles(trained, loaded, capsys):
    code, out, err = run_cli(
        capsys, "recommend", str(trained.run_dir), "--user", "3", "--k", "7", "--format", "json"
    )
    assert code == 0, err
    result = json.loads(out)
    items = result["items"]
    assert result["user"] == "3" and len(items) == 7
    data = loaded.data
    seen = set(data.interactions.loc[data.interactions["user"] == 3, "item"])
    assert not seen & {item["item_code"] for item in items}
    for item in items:
        assert item["title"] == data.item_text[item["item_code"]]
        assert item["item_id"] == str(item["item_code"])  # synthetic data: the code is the id
    scores = [item["score"] for item in items]
    assert scores == sorted(scores, reverse=True)
    # the score is the model's own: user vector . item vector
    recommender = loaded.recommender
    with torch.no_grad():
        vectors = recommender.catalogue_vectors(loaded.datamodule.item_batches(64))
        user = recommender.encode_users(torch.tensor([3]))[0]
    unseen = [c for c in range(data.num_items) if c not in seen]
    best = sorted(unseen, key=lambda c: -float(vectors[c] @ user))[:7]
    assert [item["item_code"] for item in items] == best
    assert scores == pytest.approx([float(vectors[c] @ user) for c in best], abs=1e-5)

    code, out, err = run_cli(capsys, "recommend", str(trained.run_dir), "--user", "3", "--k", "7")
    assert code == 0, err
    assert "top 7 for user 3" in out and data.item_text[best[0]][:15] in out


def test_recommend_never_returns_seen_items_for_any_user(loaded):
    from recfit.inference.recommend import recommend

    data = loaded.data
    for user in range(0, data.num_users, 4):  # every 4th user: each call scores the whole catalogue
        seen = set(data.interactions.loc[data.interactions["user"] == user, "item"])
        codes = [item.item_code for item in recommend(loaded, str(user), 10)]
        assert len(codes) == 10 and len(set(codes)) == 10
        assert not seen & set(codes)
    everything = recommend(loaded, "0", 10_000)  # k beyond the unseen items: all of them, no more
    assert (
        len(everything) == data.num_items - data.interactions[data.interactions["user"] == 0].item.nunique()
    )


def printed_explanations(out: str) -> list[tuple[list[float], float]]:
    """(printed term values, printed score) of each item of `recommend --explain`'s terminal output."""
    blocks, terms = [], []
    for line in out.splitlines():
        value = line.strip().split("  ")[0]
        if value.startswith("="):
            blocks.append((terms, float(value[1:])))
            terms = []
        elif value[:1] in "+-" and value[1:2].isdigit():
            terms.append(float(value))
    return blocks


def test_explain_contributions_add_up_to_the_score(trained, loaded, capsys):
    arguments = ["recommend", str(trained.run_dir), "--user", "5", "--k", "4", "--explain"]
    code, out, err = run_cli(capsys, *arguments, "--format", "json")
    assert code == 0, err
    train = loaded.datamodule.splits.train
    history = {str(i) for i in train.loc[train["user"] == 5, "item"]}
    items = json.loads(out)["items"]
    for item in items:
        explanation = item["explanation"]
        contributions = explanation["contributions"]
        assert {c["name"] for c in contributions} == history
        total = sum(c["value"] for c in contributions) + explanation["remainder"]
        assert total == pytest.approx(item["score"], abs=1e-5)
        parts = explanation["not_from_history"] + explanation["biases"]
        assert parts == pytest.approx(explanation["remainder"])
        for c in contributions:
            assert c["value"] == pytest.approx(c["weight"] * c["user_score"], rel=1e-9, abs=1e-12)
        magnitudes = [abs(c["value"]) for c in contributions]
        assert magnitudes == sorted(magnitudes, reverse=True)  # positive and negative, largest first
    code, out, err = run_cli(capsys, *arguments)
    assert code == 0, err
    printed = printed_explanations(out)
    assert len(printed) == 4
    for (terms, score), item in zip(printed, items, strict=True):
        assert 3 <= len(terms) - 2 <= 8 + 1  # the largest terms, "N other history items", not from history
        assert round(sum(terms), 4) == score == round(item["score"], 4)  # the printed numbers add up
    assert "other history items" in out and "not from history" in out
    assert "ridge least-squares combination of the user's training-history item vectors" in out


def explain_history_items(loaded, user: int) -> tuple[list[str], list]:
    """(the user's history item ids, their explanations as if each were recommended to the user)."""
    from recfit.inference.explain import explain
    from recfit.inference.recommend import item_id, training_history

    history = training_history(loaded, user).tolist()
    return [item_id(loaded.data, code) for code in history], explain(loaded, user, history)


def test_explain_names_each_item_by_its_own_neighbours_in_the_history(loaded):
    """A history item explained as if recommended weighs itself most: each item is written in terms
    of the history items it resembles, not one fixed weighting of the user's history (which named the
    same few items for every recommendation)."""
    names, explanations = explain_history_items(loaded, 5)
    heaviest = [max(e.contributions, key=lambda c: c.weight).name for e in explanations]
    assert heaviest == names


# ---- recfit embed ---------------------------------------------------------------------------------
def test_embed_exports_every_item_vector(trained, loaded, tmp_path, capsys):
    target = tmp_path / "vectors.parquet"
    code, out, err = run_cli(capsys, "embed", str(trained.run_dir), "--items", "--output", str(target))
    assert code == 0, err
    frame = pd.read_parquet(target)
    assert list(frame.columns) == ["item_id", "item_code", "title", "vector"]
    assert len(frame) == loaded.data.num_items
    assert frame["item_id"].tolist() == [str(c) for c in range(loaded.data.num_items)]
    assert frame["title"].tolist() == loaded.data.item_text
    matrix = np.stack(frame["vector"].to_numpy())
    assert matrix.shape == (loaded.data.num_items, loaded.cfg.model.embedding_dim)
    with torch.no_grad():
        expected = loaded.recommender.catalogue_vectors(loaded.datamodule.item_batches(64)).numpy()
    np.testing.assert_allclose(matrix, expected, rtol=1e-6, atol=1e-6)


# ---- other models ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def mf_run(outputs) -> Path:
    return recfit.train(overrides=[*TINY, "backbone=none", "model=mf", f"paths.output_dir={outputs}"]).run_dir


def test_mf_recommends_and_explains_but_cannot_transfer(mf_run, capsys):
    code, out, err = run_cli(
        capsys, "recommend", str(mf_run), "--user", "2", "--k", "3", "--explain", "--format", "json"
    )
    assert code == 0, err
    for item in json.loads(out)["items"]:
        total = (
            sum(c["value"] for c in item["explanation"]["contributions"]) + item["explanation"]["remainder"]
        )
        assert total == pytest.approx(item["score"], abs=1e-5)
    names, explanations = explain_history_items(recfit.load_run(mf_run), 2)
    assert [max(e.contributions, key=lambda c: c.weight).name for e in explanations] == names
    assert [e.contributions[0].name for e in explanations] == names  # unlike ID vectors: itself first
    result = run_cli(capsys, "eval", str(mf_run), *OTHER_CATALOGUE)
    assert_one_line_error(result, "a mf model knows users and items by ID only")


@pytest.fixture(scope="module")
def cross_encoder_run(outputs) -> Path:
    overrides = [*TINY, "model=cross_encoder", "task=ctr", "loss=bce", "trainer.limit_train_batches=4"]
    return recfit.train(overrides=[*overrides, f"paths.output_dir={outputs}"]).run_dir


def test_cross_encoder_token_attributions(cross_encoder_run, capsys):
    arguments = [
        "recommend",
        str(cross_encoder_run),
        "--user",
        "1",
        "--k",
        "2",
        "--explain",
        "--format",
        "json",
    ]
    code, out, err = run_cli(capsys, *arguments)
    assert code == 0, err
    for item in json.loads(out)["items"]:
        explanation = item["explanation"]
        tokens = [c["name"] for c in explanation["contributions"]]
        assert "[CLS]" in tokens and "[SEP]" in tokens
        total = sum(c["value"] for c in explanation["contributions"])
        # completeness of integrated gradients: attributions add up to score - baseline score
        assert total + explanation["baseline_score"] + explanation["gap"] == pytest.approx(
            item["score"], abs=1e-5
        )
        assert abs(explanation["gap"]) <= 0.05 * abs(item["score"] - explanation["baseline_score"]) + 1e-3
    result = run_cli(capsys, "embed", str(cross_encoder_run), "--items")
    assert_one_line_error(result, "a cross_encoder model has no item vectors")


@pytest.fixture(scope="module")
def frozen_run(outputs) -> TrainResult:
    """A two-tower whose backbone is frozen: item features are cached once, batches carry ids only."""
    return recfit.train(overrides=[*TINY, "backbone.freeze=all", f"paths.output_dir={outputs}"])


def test_frozen_backbone_run_evaluates_exactly_and_transfers(frozen_run, outputs, capsys):
    for overrides in ([], OTHER_CATALOGUE):
        before = eval_folders(outputs)
        code, _, err = run_cli(capsys, "eval", str(frozen_run.run_dir), *overrides)
        assert code == 0, err
        (folder,) = eval_folders(outputs) - before
        record = json.loads((folder / "metrics.json").read_text())
        assert record["status"] == "completed"
        if not overrides:
            assert record["metrics"] == {k: v for k, v in frozen_run.metrics.items() if k.startswith("test/")}
    other = recfit.load_run(frozen_run.run_dir, OTHER_CATALOGUE)
    assert len(other.recommender.cached_features) == other.data.num_items == 50


# ---- bad input ------------------------------------------------------------------------------------
def test_bad_inputs_give_one_line_and_leave_runs_untouched(trained, outputs, tmp_path, capsys):
    run = str(trained.run_dir)
    before = tree_digest(outputs / "runs")
    broken = tmp_path / "no_checkpoint"
    shutil.copytree(trained.run_dir, broken, ignore=shutil.ignore_patterns("checkpoints"))
    failed = tmp_path / "failed"
    shutil.copytree(trained.run_dir, failed)
    record = json.loads((failed / "metrics.json").read_text())
    (failed / "metrics.json").write_text(json.dumps({**record, "status": "failed", "error": "boom"}))
    cases = [
        (["eval"], "the following arguments are required: RUN_DIR"),
        (["recommend", "--user", "1"], "the following arguments are required: RUN_DIR"),
        (["eval", str(tmp_path / "nowhere")], "no such run folder"),
        (["eval", str(tmp_path)], "is not a run folder (no metrics.json)"),
        (["eval", str(broken)], "has no best checkpoint (checkpoints/best.ckpt missing)"),
        (["recommend", str(failed), "--user", "1"], "did not complete (status failed: boom)"),
        (["recommend", run, "--user", "nobody"], "unknown user 'nobody' in data set 'synthetic'"),
        (["recommend", run, "--user", "1", "--k", "0"], "--k must be at least 1, got 0"),
        (["recommend", run], "one of the arguments --user --history is required"),
        (["embed", run], "the following arguments are required: --items"),
        (["eval", run, "model=mf"], "'model' cannot change when using a trained model"),
        (["eval", run, "dataset.nope=1"], "unknown config key 'dataset.nope'"),
        (["eval", run, "--bogus"], "unrecognized arguments: --bogus"),
    ]
    evals = eval_folders(outputs)
    for arguments, expected in cases:
        result = run_cli(capsys, *arguments)
        assert_one_line_error(result, expected)
    assert tree_digest(outputs / "runs") == before
    assert eval_folders(outputs) == evals  # no evaluation folder for a refused evaluation


def test_readers_keep_raw_ids_and_titles(ml100k_dir):
    from recfit.data.filters import filter_interactions
    from recfit.data.sources.movielens import read_movielens_100k

    data = read_movielens_100k(str(ml100k_dir))
    assert data.item_titles[0] == "Toy Story (1995)" and data.item_ids[0] == 1 and data.user_ids[0] == 1
    filtered, _ = filter_interactions(data, k_core_users=300)  # few users survive; codes change
    kept = filtered.interactions.groupby("user").size()
    assert len(kept) < data.num_users
    raw = filtered.user_ids[kept.index[0]]
    assert (data.interactions["user"] == raw - 1).sum() >= 300  # ML-100K: code = raw id - 1
    assert filtered.item_titles == [data.item_titles[i - 1] for i in filtered.item_ids]
