"""`recfit recommend ... --explain`: why each recommended item scored what it scored.

Dot-product models (two_tower, mf): the user tower is an ID embedding, not a pooling of history, so
the user vector u is first written as a combination of the user's training-history item vectors h_j
by ridge least squares, a = (H H^T + lambda I)^-1 H u with lambda = RIDGE x the mean squared norm of
the h_j (without it, near-parallel history vectors get huge weights of opposite signs that cancel):
u = sum_j a_j h_j + r, where r is what the history does not explain. The score of item v then
decomposes exactly, whatever a is:

    score(v) = sum_j a_j (h_j . v)  +  r . v  [+ biases]

Each term a_j (h_j . v) is history item j's contribution; `remainder` = r . v plus any biases. The
contributions and the remainder add up to the score (up to float rounding), and when the history
explains u well the remainder is small.
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


@dataclass
class Explanation:
    """Why one item got its score: contributions + remainder == score (exact for dot products)."""

    item_code: int
    score: float
    contributions: list[Contribution]  # all of them, largest first
    remainder: float
    method: str
    extra: dict[str, float] = field(default_factory=dict)

    def top(self, count: int) -> list[Contribution]:
        return self.contributions[:count]


def ridge_weights(h: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """[n] weights a with u ~= h.T @ a (ridge least squares; see the module docstring)."""
    if len(h) == 0:
        return torch.zeros(0, dtype=u.dtype)
    gram = h @ h.T
    strength = RIDGE * gram.diagonal().mean().clamp(min=1e-12)
    return torch.linalg.solve(gram + strength * torch.eye(len(h), dtype=h.dtype), h @ u)


@torch.no_grad()
def explain_dot_product(loaded: Any, user: int, items: list[int]) -> list[Explanation]:
    """Exact per-history-item decomposition of dot-product scores (see the module docstring)."""
    recommender, data = loaded.recommender, loaded.data
    catalogue = catalogue_vectors(loaded).double()
    u = recommender.encode_users(torch.tensor([user]))[0].double()
    history = training_history(loaded, user)
    h = catalogue[torch.as_tensor(history, dtype=torch.long)]  # [n, d]
    weights = ridge_weights(h, u)
    residual = u - h.T @ weights
    explanations = []
    for code in items:
        v = catalogue[code]
        terms = weights * (h @ v)
        remainder = float(residual @ v)
        score = float(u @ v)
        if recommender.biases:
            bias = float(
                recommender.user_bias.weight[user, 0]
                + recommender.item_bias.weight[code, 0]
                + recommender.global_bias[0]
            )
            remainder += bias
            score += bias
        order = torch.argsort(terms, descending=True, stable=True).tolist()
        contributions = [
            Contribution(item_id(data, int(history[j])), item_title(data, int(history[j])), float(terms[j]))
            for j in order
        ]
        method = "ridge least-squares decomposition of the user vector over training-history item vectors"
        explanations.append(Explanation(code, score, contributions, remainder, method))
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
