"""`recfit recommend ... --explain`: why each recommended item scored what it scored.

Dot-product models (two_tower, mf): score(v) = u . v [+ biases]. Each recommended item's vector v is
written as a ridge least-squares combination of the user's training-history item vectors h_j,
b = (H H^T + lambda I)^-1 H v with lambda = RIDGE x the mean squared norm of the h_j (without it,
near-parallel history vectors get huge weights of opposite signs that cancel): v = sum_j b_j h_j + s.
The score then decomposes exactly:

    score(v) = sum_j b_j (u . h_j)  +  u . s  [+ biases]

b_j is large for the history items that THIS item resembles, and u . h_j is how much the model says
the user likes history item j: "like X, which you liked". So each item is explained by its own
neighbours in the user's history; `not_from_history` = u . s is the part of the item that the
history does not span, and `biases` the user, item and global biases (rating / ctr). Contributions,
not_from_history and biases add up to the score (up to float rounding); `remainder` is their sum.
(An earlier version decomposed the user vector instead, u = sum_j a_j h_j: its weights a_j are the
same for every item, so every item was explained by the same few history items.)
Vectors are the ones the model scores with (L2-normalised when it normalises).

cross_encoder: token attributions by integrated gradients on the input embeddings (a zero-embedding
baseline, a midpoint Riemann sum over `steps` points). By completeness they add up to
score - baseline_score, up to the sum's discretisation error (reported as `gap`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from recfit.inference.recommend import catalogue_vectors, item_id, item_title, training_history

RIDGE = 0.1  # ridge strength, relative to the history vectors' mean squared norm


@dataclass
class Contribution:
    """One history item's (or one token's) share of a score."""

    name: str  # a history item's raw id, or a token
    title: str | None
    value: float
    weight: float | None = None  # dot products: history item j's weight in this item's vector
    user_score: float | None = None  # dot products: the user's score of history item j (value = weight x it)


@dataclass
class Explanation:
    """Why one item got its score: contributions + remainder == score (exact for dot products)."""

    item_code: int
    score: float
    contributions: list[Contribution]  # all of them, largest magnitude first
    remainder: float  # what is not one of the contributions (see `extra` for its parts)
    method: str
    extra: dict[str, float] = field(default_factory=dict)  # the remainder's parts, and diagnostics
    remainder_parts: dict[str, float] = field(default_factory=dict)  # label -> value, summing to remainder

    def top(self, count: int) -> list[Contribution]:
        return self.contributions[:count]


DECIMALS = 4  # printed digits of every score and term
SHOWN = (3, 8)  # fewest and most terms printed per item, the largest in magnitude
SHOWN_SHARE = 0.5  # print terms until they carry this share of all terms' absolute sum (within SHOWN)


def shown_count(explanation: Explanation) -> int:
    """How many of the largest terms to print: enough to carry SHOWN_SHARE of them, within SHOWN."""
    magnitudes = np.abs([c.value for c in explanation.contributions])
    if not len(magnitudes) or magnitudes.sum() == 0:
        return min(SHOWN[0], len(magnitudes))
    carried = np.cumsum(magnitudes) / magnitudes.sum()
    needed = int(np.searchsorted(carried, SHOWN_SHARE)) + 1
    return int(np.clip(needed, SHOWN[0], SHOWN[1]))


def printed_terms(explanation: Explanation, other: str, count: int | None = None) -> list[tuple[str, str]]:
    """(label, value) lines: the largest terms (`count`, or `shown_count`), the rest as one line, and
    the remainder's parts.

    Values are rounded to DECIMALS, and the line that gathers many terms (the rest, or else the first
    remainder part) absorbs the rounding, so the printed values add up exactly to the printed score.
    """
    scale = 10**DECIMALS
    count = shown_count(explanation) if count is None else count
    units = [(c.title or c.name, round(c.value * scale)) for c in explanation.top(count)]
    rest = explanation.contributions[count:]
    parts = [(label, round(value * scale)) for label, value in explanation.remainder_parts.items()]
    if not parts:
        parts = [("remainder", round(explanation.remainder * scale))]
    lines = [*units, *([(f"{len(rest)} other {other}", 0)] if rest else []), *parts]
    absorbing = len(units)  # the rest when there is one, else the first remainder part
    lines[absorbing] = (
        lines[absorbing][0],
        round(explanation.score * scale) - sum(v for i, (_, v) in enumerate(lines) if i != absorbing),
    )
    return [(label, f"{value / scale:+.{DECIMALS}f}") for label, value in lines]


def shared_top(explanations: list[Explanation], count: int) -> list[str] | None:
    """The names of the top `count` contributions when every item has the same ones, else None."""
    tops = [sorted(c.name for c in e.top(count)) for e in explanations]
    return tops[0] if len(tops) > 1 and tops[0] and all(t == tops[0] for t in tops) else None


def ridge_projection(h: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """[n, m] weights b with v[:, i] ~= h.T @ b[:, i] (ridge least squares; see the module docstring)."""
    if len(h) == 0:
        return torch.zeros(0, v.shape[1], dtype=v.dtype)
    gram = h @ h.T
    strength = RIDGE * gram.diagonal().mean().clamp(min=1e-12)
    return torch.linalg.solve(gram + strength * torch.eye(len(h), dtype=h.dtype), h @ v)


DOT_PRODUCT_METHOD = (
    "each item's vector as a ridge least-squares combination of the user's training-history item vectors: "
    "history item j contributes (weight of j in this item) x (the user's score of j)"
)


@torch.no_grad()
def explain_dot_product(loaded: Any, user: int, items: list[int]) -> list[Explanation]:
    """Exact per-history-item decomposition of dot-product scores (see the module docstring)."""
    recommender, data = loaded.recommender, loaded.data
    catalogue = catalogue_vectors(loaded).double()
    u = recommender.encode_users(torch.tensor([user]))[0].double()
    history = training_history(loaded, user)
    h = catalogue[torch.as_tensor(history, dtype=torch.long)]  # [n, d]
    vectors = catalogue[torch.as_tensor(items, dtype=torch.long)]  # [k, d]
    weights = ridge_projection(h, vectors.T)  # [n, k]: column i = item i in history terms
    liking = h @ u  # [n]: the user's score of each history item
    residual = vectors - weights.T @ h  # [k, d]: what the history does not span
    unit = torch.nn.functional.normalize(vectors, dim=-1)
    explanations = []
    for column, code in enumerate(items):
        terms = weights[:, column] * liking
        not_from_history = float(residual[column] @ u)
        score = float(u @ vectors[column])
        parts = {"not from history": not_from_history}
        if recommender.biases:
            bias = float(
                recommender.user_bias.weight[user, 0]
                + recommender.item_bias.weight[code, 0]
                + recommender.global_bias[0]
            )
            parts["biases"] = bias
            score += bias
        order = torch.argsort(terms.abs(), descending=True, stable=True).tolist()
        contributions = [
            Contribution(
                item_id(data, int(history[j])),
                item_title(data, int(history[j])),
                float(terms[j]),
                weight=float(weights[j, column]),
                user_score=float(liking[j]),
            )
            for j in order
        ]
        others = torch.cat([unit[:column], unit[column + 1 :]])
        extra = {"not_from_history": not_from_history, "biases": parts.get("biases", 0.0)}
        if len(others):  # how alike the recommended items are: alike items share their explanations
            extra["mean_cosine_to_other_items"] = float((others @ unit[column]).mean())
        explanations.append(
            Explanation(
                code,
                score,
                contributions,
                remainder=sum(parts.values()),
                method=DOT_PRODUCT_METHOD,
                extra=extra,
                remainder_parts=parts,
            )
        )
    return explanations


def explain_cross_encoder(loaded: Any, user: int, items: list[int], steps: int = 32) -> list[Explanation]:
    """Integrated-gradients token attributions for each (user text, item text) pair."""
    recommender, datamodule = loaded.recommender, loaded.datamodule
    backbone = recommender.backbone
    embedding = backbone.model.get_input_embeddings()
    tokenizer = datamodule.item_content.tokenizer
    explanations = []
    for code in items:
        pair = (np.array([user]), np.array([code]))
        inputs = datamodule.item_content.pair_batch(datamodule.user_content, *pair)
        ids = inputs["input_ids"]
        rest = {k: v.repeat(steps, 1) for k, v in inputs.items() if k != "input_ids"}
        with torch.no_grad():
            actual = embedding(ids)  # [1, L, H]
        baseline = torch.zeros_like(actual)
        alphas = ((torch.arange(steps, dtype=actual.dtype) + 0.5) / steps)[:, None, None]
        path = (baseline + alphas * (actual - baseline)).requires_grad_(True)
        scores = recommender.head(backbone({"inputs_embeds": path, **rest})).squeeze(-1)
        (gradients,) = torch.autograd.grad(scores.sum(), path)
        attributions = ((actual - baseline)[0] * gradients.mean(0)).sum(-1)  # [L]
        with torch.no_grad():
            score = float(recommender({"pair_inputs": inputs}))
            single = {k: v[:1] for k, v in rest.items()}
            base_score = float(recommender.head(backbone({"inputs_embeds": baseline, **single})).squeeze())
        tokens = tokenizer.convert_ids_to_tokens(ids[0].tolist())
        order = torch.argsort(attributions.abs(), descending=True, stable=True).tolist()
        contributions = [Contribution(tokens[j], None, float(attributions[j])) for j in order]
        total = float(attributions.sum())
        explanations.append(
            Explanation(
                code,
                score,
                contributions,
                remainder=score - total,  # the baseline score plus the Riemann sum's error
                method=f"integrated gradients on input embeddings, zero baseline, {steps} steps",
                extra={"baseline_score": base_score, "gap": score - base_score - total},
                remainder_parts={"baseline score": base_score, "integration gap": score - base_score - total},
            )
        )
    return explanations


def explain(loaded: Any, user: int, items: list[int]) -> list[Explanation]:
    """Explanations for `items` recommended to user code `user`, by the model's kind."""
    from recfit.errors import RecfitError
    from recfit.models.cross_encoder import CrossEncoder
    from recfit.models.dot_product import DotProductRecommender

    recommender = loaded.recommender
    if isinstance(recommender, DotProductRecommender):
        return explain_dot_product(loaded, user, items)
    if isinstance(recommender, CrossEncoder):
        return explain_cross_encoder(loaded, user, items)
    raise RecfitError(f"--explain does not support the {loaded.cfg.model.name.value} model")
