"""`recfit recommend RUN_DIR --user ID --k 10`: a user's top-k items, items they already saw excluded.

Users are named by the raw id of the data set's files (MovieLens `user id`, RecBole `user_id`; the
code itself for data sets without raw ids, e.g. synthetic). "Seen" means every item the user has an
interaction with in the data set (train, validation and test splits alike): recommending something
the user already has is never useful.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch

from recfit.config.multitask import task_list
from recfit.data.tables import ITEM, USER
from recfit.errors import RecfitError


@dataclass
class Recommendation:
    """One recommended item."""

    rank: int
    item_id: str  # the raw id of the data set's files
    item_code: int  # recfit's dense code
    title: str | None
    score: float

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def user_code(data: Any, user: str) -> int:
    """The dense code of raw user id `user`, or one line naming the problem."""
    ids = data.user_ids if data.user_ids is not None else np.arange(data.num_users)
    matches = np.flatnonzero(np.asarray([str(raw) for raw in ids]) == str(user))
    if len(matches) == 0:
        raise RecfitError(f"unknown user '{user}' in data set '{data.name}' ({data.num_users:,} users)")
    return int(matches[0])


def item_id(data: Any, code: int) -> str:
    return str(data.item_ids[code]) if data.item_ids is not None else str(code)


def item_title(data: Any, code: int) -> str | None:
    titles = data.item_titles if data.item_titles is not None else data.item_text
    return None if titles is None else titles[code]


def seen_items(data: Any, code: int) -> np.ndarray:
    """Every item `code` has an interaction with, in any split."""
    frame = data.interactions
    return np.unique(frame.loc[frame[USER].to_numpy() == code, ITEM].to_numpy())


def training_history(loaded: Any, code: int) -> np.ndarray:
    """The items of the user's training interactions: what the model learned the user from."""
    train = loaded.datamodule.splits.train
    return np.unique(train.loc[train[USER].to_numpy() == code, ITEM].to_numpy())


@torch.no_grad()
def catalogue_vectors(loaded: Any) -> torch.Tensor:
    """Every item's vector as the model scores it (normalised when the model normalises)."""
    datamodule = loaded.datamodule
    return loaded.recommender.catalogue_vectors(datamodule.item_batches(datamodule.eval_batch_size))


@torch.no_grad()
def score_all_items(loaded: Any, code: int) -> torch.Tensor:
    """[num_items] scores of user `code` for every item, as the model's forward pass would give them."""
    from recfit.models.cross_encoder import CrossEncoder
    from recfit.models.dot_product import DotProductRecommender

    recommender, data = loaded.recommender, loaded.data
    if isinstance(recommender, CrossEncoder):
        return _cross_encoder_scores(loaded, code)
    if not hasattr(recommender, "encode_users"):
        raise RecfitError(f"recommend does not support the {loaded.cfg.model.name.value} model")
    if getattr(recommender, "encodes_histories", False):  # a user is their items: all of them, in order
        from recfit.inference.history import history_scores, known_user_history

        return history_scores(loaded, [known_user_history(loaded, code)])[0]
    user = recommender.encode_users(torch.tensor([code]))[0]
    scores = catalogue_vectors(loaded) @ user
    if isinstance(recommender, DotProductRecommender) and recommender.biases:
        items = torch.arange(data.num_items)
        scores = scores + recommender.item_bias(items).squeeze(-1)
        scores = scores + recommender.user_bias(torch.tensor([code]))[0] + recommender.global_bias
    return scores


def _cross_encoder_scores(loaded: Any, code: int) -> torch.Tensor:
    recommender, datamodule = loaded.recommender, loaded.datamodule
    if recommender.num_outputs != 1:
        raise RecfitError("recommend needs one score per item; this cross-encoder predicts classes")
    chunks = []
    for start in range(0, loaded.data.num_items, datamodule.eval_batch_size):
        items = np.arange(start, min(start + datamodule.eval_batch_size, loaded.data.num_items))
        pairs = datamodule.item_content.pair_batch(datamodule.user_content, np.full(len(items), code), items)
        chunks.append(recommender({"pair_inputs": pairs}))
    return torch.cat(chunks)


def recommend(
    loaded: Any, user: str | None, k: int, history: list[str] | None = None
) -> list[Recommendation]:
    """The k best-scored items the user has not seen, best first (ties: lower code first). With
    `history` (raw item ids, oldest first) instead of `user`: a user never trained on
    (`recfit.inference.history`)."""
    if k < 1:
        raise RecfitError(f"--k must be at least 1, got {k}")
    if task_list(loaded.cfg):  # one output per task: which one ranks is not settled yet
        raise RecfitError("recommend needs one score per item; this multi-task run predicts one per task")
    if history is not None:
        from recfit.inference.history import recommend_for_history

        return recommend_for_history(loaded, history, k)
    data = loaded.data
    code = user_code(data, user)
    scores = score_all_items(loaded, code).clone()
    scores[torch.as_tensor(seen_items(data, code), dtype=torch.long)] = -torch.inf
    if data.item_domain is not None:  # multi-domain: only the user's own domain's items
        scores[torch.as_tensor(data.item_domain != data.user_domain[code])] = -torch.inf
    return top_recommendations(data, scores, k)


def top_recommendations(data: Any, scores: torch.Tensor, k: int) -> list[Recommendation]:
    """The k best of `scores` [num_items] (excluded items at -inf), best first, ties: lower code first."""
    available = int(torch.isfinite(scores).sum())
    values, codes = torch.sort(scores, descending=True, stable=True)
    count = min(k, available)
    return [
        Recommendation(rank, item_id(data, c), c, item_title(data, c), s)
        for rank, (s, c) in enumerate(zip(values[:count].tolist(), codes[:count].tolist(), strict=True), 1)
    ]
