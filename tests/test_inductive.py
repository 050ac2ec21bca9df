"""Users as their histories at inference (issue 14, item 3): `recommend --history` for a user never
trained on, zero-shot `recfit eval` on another catalogue, and `init_from` a sequential run.

One tiny text SASRec (tiny BERT frozen, no item IDs, synthetic data with item texts, 1 epoch) is
shared by every test; two ID-only next-item runs (an ID user tower, an ID item table under SASRec)
serve the refusals.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

import recfit
from helpers.cli import assert_one_line_error, run_cli
from helpers.files import tree_digest
from helpers.runs import ONE_EPOCH, SMALL_DATA
from recfit.errors import RecfitError

pytestmark = pytest.mark.slow

# 40 synthetic users x 8 items, the latest 5 items encode a user (so every test history is cut to 5)
NEXT_ITEM = [
    "task=next_item", "split=leave_one_out", "loss=cross_entropy", *SMALL_DATA, *ONE_EPOCH,
    "model.embedding_dim=16", "model.user_encoder.max_history=5", "loss.temperature=1.0", "seed=3",
]  # fmt: skip
TEXT_SASREC = [
    *NEXT_ITEM, "backbone=tiny_bert", "backbone.freeze=all", "model=two_tower",
    "model.item_id_embedding=false", "model.user_encoder.name=transformer",
]  # fmt: skip
ID_ONLY = [*NEXT_ITEM, "backbone=none", "model=mf", "optimizer.head_lr=0.01"]
# another catalogue: other items (other texts), other users; no shared ids
OTHER_CATALOGUE = ["dataset.reader.seed=7", "dataset.reader.num_items=50", "dataset.reader.num_users=30"]


@pytest.fixture(scope="module")
def outputs(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("outputs")


def train(output_dir: Path, *overrides: str) -> Path:
    """A completed run through the Python API, which hands the process's logging back afterwards (so
    later commands here write nothing into that run's train.log)."""
    result = recfit.train([*overrides, f"paths.output_dir={output_dir}"])
    assert result.status == "completed", result.record.get("error")
    return Path(result.run_dir)


@pytest.fixture(scope="module")
def text_run(outputs) -> Path:
    return train(outputs, *TEXT_SASREC)


@pytest.fixture(scope="module")
def loaded(text_run):
    return recfit.load_run(text_run)


@pytest.fixture(scope="module")
def id_user_run(tmp_path_factory) -> Path:
    """Next-item with an ID user tower (DSSM): it encodes no history."""
    return train(tmp_path_factory.mktemp("id_user"), *ID_ONLY)


@pytest.fixture(scope="module")
def id_item_run(tmp_path_factory) -> Path:
    """ID SASRec: histories encoded, but items are an ID table."""
    folder = tmp_path_factory.mktemp("id_item")
    return train(folder, *ID_ONLY, "model.user_encoder.name=transformer")


def raw_ids(data, codes: np.ndarray) -> list[str]:
    return [str(data.item_ids[c]) if data.item_ids is not None else str(c) for c in codes]


def evaluation_scores(loaded) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(users [U], their test targets [U], scores [U, num_items]) exactly as the test loop computes them."""
    from recfit.tasks.next_item import user_vectors

    module = loaded.module
    module._prepare_catalogue("test")
    users, targets, scores = [], [], []
    with torch.no_grad():
        for batch in loaded.datamodule.test_dataloader():
            users.append(batch["user"])
            targets.append(batch["target"])
            scores.append(user_vectors(module.recommender, batch, module.catalogue) @ module.catalogue.T)
    return torch.cat(users), torch.cat(targets), torch.cat(scores)


def ranking(scores: torch.Tensor) -> torch.Tensor:
    return torch.sort(scores, descending=True, stable=True).indices


def ndcg_at_10(scores: torch.Tensor, target: int) -> float:
    """NDCG@10 of one target under a full ranking (ties: lower code first, as a stable sort)."""
    rank = int((ranking(scores) == target).nonzero()[0, 0]) + 1
    return 1 / math.log2(rank + 1) if rank <= 10 else 0.0


# ---- recommend --history ----------------------------------------------------------------------------
def test_histories_score_exactly_as_the_model_scores_those_users_in_evaluation(loaded, text_run):
    from recfit.inference.history import history_item_codes, history_scores

    users, targets, expected = evaluation_scores(loaded)
    history = loaded.datamodule.sequence_split.history("test")
    assert len(users) == 40
    # each user's test-time history as a newcomer gives it: raw ids, 7 items (the encoder keeps 5)
    given = [raw_ids(loaded.data, history[user]) for user in users.tolist()]
    assert {len(ids) for ids in given} == {7}
    scores = history_scores(loaded, [history_item_codes(loaded, ids) for ids in given])
    assert torch.equal(scores, expected)  # the same batch of 40 users: bit for bit
    per_user = pd.read_parquet(text_run / "per_user.parquet").set_index("user")
    for row, user in enumerate(users.tolist()):  # the run's own per-user metric comes from these scores
        assert ndcg_at_10(scores[row], int(targets[row])) == pytest.approx(per_user.loc[user, "ndcg@10"])
        # one user alone (`recommend --history`): the same numbers up to float rounding of other shapes
        alone = history_scores(loaded, [history_item_codes(loaded, given[row])])[0]
        torch.testing.assert_close(alone, expected[row], rtol=0, atol=1e-5)


def test_recommend_history_ranks_every_item_but_the_history(loaded, text_run, capsys):
    from recfit.inference.history import history_scores

    history = loaded.datamodule.sequence_split.history("test")[0]
    ids = raw_ids(loaded.data, history)
    expected = history_scores(loaded, [history])
    code, out, err = run_cli(
        capsys, "recommend", str(text_run), "--history", ",".join(ids), "--k", "60", "--format", "json"
    )
    assert code == 0, err
    items = json.loads(out)["items"]
    ranked = expected[0].clone()
    ranked[torch.as_tensor(history)] = -torch.inf
    order = torch.sort(ranked, descending=True, stable=True)
    assert len(items) == 60 - len(history)  # everything but the history
    assert [item["item_code"] for item in items] == order.indices[: len(items)].tolist()
    assert [item["score"] for item in items] == pytest.approx(order.values[: len(items)].tolist())
    # the Python API gives the same, from a folder or a loaded run, from a list or "ID,ID,..."
    api = recfit.recommend(loaded, history=ids, k=5)
    assert [item.as_dict() for item in api] == [item.as_dict() for item in recfit.recommend(
        text_run, history=",".join(ids), k=5)]  # fmt: skip
    assert [item.item_code for item in api] == [item["item_code"] for item in items[:5]]


def test_a_trained_users_recommendations_are_those_of_their_whole_history(loaded, text_run, capsys):
    whole = loaded.datamodule.sequence_split.sequences[4]  # train, validation and test items
    by_user = recfit.recommend(loaded, user="4", k=10)
    by_history = recfit.recommend(loaded, history=raw_ids(loaded.data, whole), k=10)
    assert [item.as_dict() for item in by_user] == [item.as_dict() for item in by_history]
    assert not {item.item_code for item in by_user} & set(whole.tolist())
    code, out, err = run_cli(capsys, "recommend", str(text_run), "--user", "4", "--format", "json")
    assert code == 0, err
    assert [item["item_code"] for item in json.loads(out)["items"]] == [i.item_code for i in by_user]


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--history", ""], "the history is empty"),
        (["--history", " "], "the history is empty"),
        (["--history", "3,999"], "unknown item '999' in the history"),
        (["--history", "3,5,3"], "item '3' appears more than once in the history"),
        (["--history", "3,5", "--user", "4"], "argument --user: not allowed with argument --history"),
        (["--history", "3,5", "--k", "0"], "--k must be at least 1"),
        (["--history", "3,5", "--explain"], "--explain needs a run with user-ID vectors"),
    ],
)
def test_bad_histories_give_one_line_and_leave_the_run_alone(text_run, capsys, arguments, message):
    before = tree_digest(text_run)
    assert_one_line_error(run_cli(capsys, "recommend", str(text_run), *arguments), message)
    assert tree_digest(text_run) == before


def test_history_on_a_run_with_user_id_vectors_says_it_needs_a_sequence_encoder(id_user_run, capsys):
    before = tree_digest(id_user_run)
    result = run_cli(capsys, "recommend", str(id_user_run), "--history", "3,5")
    assert_one_line_error(result, "--history needs a run whose users are encoded from their histories")
    assert "this run's user encoder is id" in result.stderr
    assert tree_digest(id_user_run) == before


def test_the_api_refuses_both_or_neither_user_and_history(text_run):
    for arguments in ({}, {"user": "4", "history": ["3"]}):
        with pytest.raises(RecfitError, match="exactly one of user= or history="):
            recfit.recommend(text_run, **arguments)


# ---- zero-shot: recfit eval on another catalogue ------------------------------------------------------
def eval_folders(outputs: Path) -> set[Path]:
    return {path.parent for path in outputs.glob("evals/*/*/metrics.json")}


def hand_scored_ndcg(own, other) -> dict[int, float]:
    """Each user's NDCG@10 on the other catalogue, by hand: the trained run's own modules (backbone,
    projection, SASRec) over the new items' texts and each user's own history there, in time order."""
    from recfit.data.tables import ITEM, TIMESTAMP, USER

    recommender = own.recommender
    frame = other.data.interactions
    if TIMESTAMP in frame:
        frame = frame.sort_values(TIMESTAMP, kind="stable")
    ndcg = {}
    with torch.no_grad():
        vectors = torch.cat([
            recommender.projection(recommender.backbone(content))
            for _, content in other.datamodule.item_batches(64, content=True)
        ])  # fmt: skip
        for user, rows in frame.groupby(USER, sort=True):
            items = rows[ITEM].to_numpy()
            history, target = items[:-1][-5:], int(items[-1])  # the latest 5 before the test target
            mask = torch.ones(1, len(history), dtype=torch.bool)
            user_vector = recommender.user_encoder.encode(vectors[history][None], mask)[0]
            ndcg[int(user)] = ndcg_at_10(vectors @ user_vector, target)
    return ndcg


@pytest.fixture(scope="module")
def fine_tuned_run(outputs) -> Path:
    """A GRU over a text tower whose top BERT layer is fine-tuned (the first one prefix-cached)."""
    return train(
        outputs, *TEXT_SASREC, "backbone.freeze=1", "model.user_encoder.name=gru",
        "loss.negatives=sampled", "loss.num_negatives=20",
    )  # fmt: skip


@pytest.mark.parametrize("run", ["text_run", "fine_tuned_run"])
def test_zero_shot_eval_scores_another_catalogues_users_from_their_histories(run, outputs, capsys, request):
    from recfit.inference.history import ZERO_SHOT

    text_run = request.getfixturevalue(run)
    before, run_before = eval_folders(outputs), tree_digest(text_run)
    code, out, err = run_cli(capsys, "eval", str(text_run), *OTHER_CATALOGUE)
    assert code == 0, err
    (folder,) = eval_folders(outputs) - before
    record = json.loads((folder / "metrics.json").read_text())
    assert record["status"] == "completed" and record["transfer"] == ZERO_SHOT
    assert f"transfer: {ZERO_SHOT}" in out
    assert record["data"].startswith("synthetic: 240 interactions, 30 users, 50 items")
    assert "leave_one_out per user in time order" in record["protocol"]
    assert "full ranking over all 50 items, history items not masked" in record["protocol"]
    per_user = pd.read_parquet(folder / "per_user.parquet").set_index("user")
    assert len(per_user) == 30
    assert per_user["ndcg@10"].mean() == pytest.approx(record["metrics"]["test/ndcg@10"])
    assert tree_digest(text_run) == run_before
    by_hand = hand_scored_ndcg(recfit.load_run(text_run), recfit.load_run(text_run, OTHER_CATALOGUE))
    assert sum(value > 0 for value in by_hand.values()) >= 3  # not a table of zeros
    assert by_hand == pytest.approx(per_user["ndcg@10"].to_dict(), abs=1e-6)


def test_the_zero_shot_experiment_evaluates_a_games_sasrec_text_run_on_movielens_100k(
    tmp_path, capsys, ml100k_dir
):
    """The issue's zero-shot row as documented: a run of experiment=games_sasrec_text (here made tiny:
    synthetic data, tiny BERT) evaluated with experiment=games_sasrec_text_zero_shot_ml100k."""
    from recfit.inference.history import ZERO_SHOT

    parent = train(
        tmp_path, "experiment=games_sasrec_text", "dataset=synthetic", *SMALL_DATA, *ONE_EPOCH,
        "backbone=tiny_bert", "model.embedding_dim=16", "model.user_encoder.max_history=5",
        "dataset.batch_size=64", "dataset.eval_batch_size=64",
    )  # fmt: skip
    code, _, err = run_cli(
        capsys, "eval", str(parent), "experiment=games_sasrec_text_zero_shot_ml100k",
        "dataset=movielens_100k", f"dataset.reader.path={ml100k_dir}",
    )  # fmt: skip
    assert code == 0, err
    (folder,) = eval_folders(tmp_path)
    assert folder.parent.name == "games_sasrec_text_zero_shot_ml100k"
    record = json.loads((folder / "metrics.json").read_text())
    assert record["transfer"] == ZERO_SHOT
    assert record["data"].startswith("movielens_100k: 100,000 interactions, 943 users, 1,682 items")
    assert "full ranking over all 1,682 items, history items not masked" in record["protocol"]
    assert len(pd.read_parquet(folder / "per_user.parquet")) == 943
    assert set(record["metrics"]) >= {"test/ndcg@10", "test/recall@10"}


def write_recbole_without_items(folder: Path) -> Path:
    """RecBole atomic interactions only (no .item file: no item text), 6 users x 4 items in time."""
    folder.mkdir()
    lines = ["user_id:token\titem_id:token\ttimestamp:float"]
    lines += [f"u{u}\ti{(u + t) % 9}\t{t}" for u in range(6) for t in range(4)]
    (folder / f"{folder.name}.inter").write_text("\n".join(lines) + "\n")
    return folder


@pytest.mark.parametrize("case", ["id_items", "no_item_text"])
def test_zero_shot_refusals_give_one_line_and_make_no_eval_folder(
    case, text_run, id_item_run, tmp_path, capsys
):
    if case == "id_items":
        run, overrides = id_item_run, OTHER_CATALOGUE
        message = "this run's item tower has item ID embeddings (model=mf): they cannot transfer"
    else:
        run = text_run
        overrides = [
            "dataset=recbole",
            f"dataset.reader.path={write_recbole_without_items(tmp_path / 'plain')}",
        ]
        message = "has no item text for the text backbone"
    before, evals = tree_digest(run), eval_folders(run.parents[2])
    assert_one_line_error(run_cli(capsys, "eval", str(run), *overrides), message)
    assert tree_digest(run) == before and eval_folders(run.parents[2]) == evals


def test_a_text_and_id_item_tower_is_refused_before_anything_is_built():
    from recfit.config import compose
    from recfit.inference.history import check_history_transfer

    cfg = compose([*TEXT_SASREC, "model.item_id_embedding=true"])
    with pytest.raises(RecfitError, match=r"item ID embeddings \(model.item_id_embedding=true\)"):
        check_history_transfer(cfg)
    check_history_transfer(compose(TEXT_SASREC))  # a text-only tower transfers


# ---- init_from a sequential run on another catalogue ----------------------------------------------------
def test_init_from_a_text_sasrec_carries_the_backbone_projection_and_user_encoder(text_run, tmp_path):
    child = train(tmp_path, *TEXT_SASREC, *OTHER_CATALOGUE, f"init_from.path={text_run}")
    lineage = json.loads((child / "metrics.json").read_text())["init_from"]
    assert {"backbone", "item_tower", "user_tower"} <= set(lineage["taken"])
    assert lineage["reinitialised"] == {}  # nothing names an item: every tensor fits the new catalogue
    parent = torch.load(text_run / "checkpoints" / "best.ckpt", weights_only=True)["state_dict"]
    taken = [
        name for name in parent if name.startswith(("recommender.user_encoder", "recommender.projection"))
    ]
    assert lineage["tensors_taken"] >= len(taken) > 0


def test_init_from_an_id_sasrec_carries_the_user_encoder_but_not_the_item_table(id_item_run, tmp_path):
    child = train(tmp_path, *ID_ONLY, "model.user_encoder.name=transformer", *OTHER_CATALOGUE,
                  f"init_from.path={id_item_run}")  # fmt: skip
    lineage = json.loads((child / "metrics.json").read_text())["init_from"]
    assert "user_tower" in lineage["taken"] and "item_tower" not in lineage["taken"]
    assert lineage["reinitialised"]["item_tower"] == [
        "item_embedding.weight (60, 16) in the parent, (50, 16) here"
    ]
