"""Users as their histories at inference: recommend for someone never trained on, and zero-shot transfer.

A run whose user encoder reads histories (`model.user_encoder.name` mean, gru or transformer) has no
vector of its own for any user: a user is the latest `max_history` items they touched. So
- `recfit recommend RUN_DIR --history ID,ID,...` scores the catalogue for a history given as the data
  set's own item ids (oldest first): the user vector is the trained encoder over the model's own item
  vectors, exactly as an evaluation row with that history gets it; the given items are excluded;
- `recfit recommend RUN_DIR --user ID` on such a run takes the user's whole known history (every split,
  in time order): what they are likely to want next after everything they did;
- `recfit eval RUN_DIR dataset=...` on another catalogue (zero-shot transfer) keeps the backbone, the
  projection and the user encoder, scores the new items from their content and the new users from their
  own histories in the new data. An item tower with ID embeddings names the items it was trained on:
  such a run is refused before anything is built.
See docs/sequential.md, "Inductive use and zero-shot transfer".
"""

from __future__ import annotations

from typing import Any

import numpy as np

from recfit.config.schema import ModelName, UserEncoderName
from recfit.errors import ConfigError, RecfitError

ID_ENCODER = UserEncoderName.id.value  # a user-ID tower: it encodes no history
ID_ITEM_TOWER_MODEL = ModelName.mf.value  # its item tower is an ID table only
HISTORY_SEPARATOR = ","
ZERO_SHOT = (
    "two_tower: backbone, projection and user encoder transferred; items scored from their content, each "
    "user encoded from their own history in the new data (no training)"
)


def user_encoder_name(cfg: Any) -> str:
    """The run's `model.user_encoder.name` (`id` for models without one)."""
    encoder = cfg.model.get("user_encoder")
    name = ID_ENCODER if encoder is None else encoder.name
    return str(getattr(name, "value", name))


def check_history_transfer(cfg: Any) -> None:
    """Refuse, before any model is built, a history-encoder run whose item tower has ID embeddings on
    another catalogue: its item vectors name the items it was trained on, which the new data lacks."""
    if user_encoder_name(cfg) == ID_ENCODER:
        return
    model = str(getattr(cfg.model.name, "value", cfg.model.name))
    if model == ID_ITEM_TOWER_MODEL or cfg.model.get("item_id_embedding", False):
        setting = "model=mf" if model == ID_ITEM_TOWER_MODEL else "model.item_id_embedding=true"
        raise ConfigError(
            f"this run's item tower has item ID embeddings ({setting}): they cannot transfer to another "
            "catalogue; zero-shot transfer needs a content item tower (model=two_tower with "
            "model.item_id_embedding=false)"
        )


def parse_history(text: str) -> list[str]:
    """`--history` as item ids, oldest first (`""` is the empty history, refused by `history_codes`)."""
    return [part.strip() for part in text.split(HISTORY_SEPARATOR)] if text.strip() else []


def _require_history_encoder(loaded: Any) -> None:
    if not getattr(loaded.recommender, "encodes_histories", False):
        raise RecfitError(
            f"--history needs a run whose users are encoded from their histories "
            f"(model.user_encoder.name=mean, gru or transformer); this run's user encoder is "
            f"{user_encoder_name(loaded.cfg)}"
        )


def history_item_codes(loaded: Any, ids: list[str]) -> np.ndarray:
    """Every item code of a history given as raw ids (oldest first). An empty history, an unknown id
    or an item named twice is refused in one line; the encoder itself keeps the latest `max_history`."""
    from recfit.data.sequences import history_codes

    data = loaded.data
    return history_codes(ids, data.item_ids, data.num_items, max(len(ids), 1))


def known_user_history(loaded: Any, code: int) -> np.ndarray:
    """A trained-on user's whole history in this data (train, validation and test items, oldest first)."""
    return loaded.datamodule.sequence_split.sequences[code]


def history_scores(loaded: Any, histories: list[np.ndarray]) -> Any:
    """[H, num_items] the model's score of every item for each user given by a history (item codes,
    oldest first), computed as an evaluation batch of those histories is."""
    import torch

    from recfit.inference.recommend import catalogue_vectors
    from recfit.tasks.next_item import history_user_vectors

    _require_history_encoder(loaded)
    with torch.no_grad():
        items = catalogue_vectors(loaded)
        return history_user_vectors(loaded.recommender, histories, items) @ items.T


def recommend_for_history(loaded: Any, ids: list[str], k: int) -> list[Any]:
    """The k best-scored items for a user given by their history (raw item ids, oldest first), the
    history's own items excluded; a user that needs no training. `recommend` has checked k."""
    from recfit.inference.recommend import top_recommendations

    _require_history_encoder(loaded)  # before the ids are checked: the run itself is the first problem
    codes = history_item_codes(loaded, ids)
    scores = history_scores(loaded, [codes])[0]
    scores[codes] = -float("inf")
    return top_recommendations(loaded.data, scores, k)


def check_explainable(loaded: Any, history: list[str] | None) -> None:
    """`--explain` decomposes a score over an ID user's training items; a user who is their history
    (given, or encoded by the run) is not decomposed yet: refused in one line."""
    if history is not None or getattr(loaded.recommender, "encodes_histories", False):
        raise RecfitError(
            "--explain needs a run with user-ID vectors (model.user_encoder.name=id); users encoded "
            "from their histories are not explained yet"
        )
