"""Next-item losses: softmax cross-entropy of the true next item against the catalogue or a sample of it.

- `full_softmax_loss`: every item is a negative (SASRec with RecBole's `loss_type: CE`). Exact; costs
  one [N, num_items] score matrix.
- `sampled_softmax_loss`: S negatives shared by the batch, drawn with replacement from a proposal q
  (uniform, or popularity), each negative's logit corrected by -log(S q_j). Then
  sum_k exp(logit_k) over the sampled negatives is an unbiased estimate of sum_j exp(score_j) over
  every item but the positive (importance sampling), so the loss approaches the full softmax as S
  grows; without the correction popular items are over-penalised (the log-frequency or logQ
  correction; Bengio & Senecal 2008, Jean et al. 2015, Yi et al. RecSys 2019). A sampled copy of a
  row's own positive (an "accidental hit") is masked for that row. The positive's logit is not
  corrected.
- `in_batch_softmax_loss`: the batch's own targets are the negatives. They are a draw from the
  training targets' frequency, so q is that frequency: the same estimator with S = the batch size.

Scores are dot products divided by `temperature` (1.0: RecBole's SASRec has none). Rows whose target
is negative (padding, `recfit.data.sequence_batches.PAD`) are ignored, so per-position outputs [B, L, d]
with targets [B, L] can be passed as they are.
"""

from __future__ import annotations

import math

import torch
from torch.nn import functional as F


def _valid_rows(queries: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Flatten [..., d] / [...] to [N, d] / [N] and keep the rows with a real target."""
    queries = queries.reshape(-1, queries.shape[-1])
    targets = targets.reshape(-1)
    keep = targets >= 0
    return queries[keep], targets[keep]


def full_softmax_loss(
    queries: torch.Tensor, item_vectors: torch.Tensor, targets: torch.Tensor, temperature: float = 1.0
) -> torch.Tensor:
    """Mean cross-entropy of each query's target over all `item_vectors` ([num_items, d])."""
    queries, targets = _valid_rows(queries, targets)
    return F.cross_entropy(queries @ item_vectors.T / temperature, targets)


def sampled_softmax_loss(
    queries: torch.Tensor,
    item_vectors: torch.Tensor,
    targets: torch.Tensor,
    negatives: torch.Tensor,
    log_q: torch.Tensor | None,
    temperature: float = 1.0,
) -> torch.Tensor:
    """Mean cross-entropy of each target against the shared sampled `negatives` ([S] item codes).

    item_vectors: [num_items, d], or any table indexed by item code (only targets and negatives are
    read); log_q: [num_items] log probability of drawing each item as a negative (each draw), or None
    for no correction (the negatives' plain scores).
    """
    queries, targets = _valid_rows(queries, targets)
    return _corrected_softmax(
        queries, item_vectors[targets], targets, item_vectors[negatives], negatives, log_q, temperature
    )


def in_batch_softmax_loss(
    queries: torch.Tensor,
    target_vectors: torch.Tensor,
    targets: torch.Tensor,
    log_q: torch.Tensor | None,
    temperature: float = 1.0,
) -> torch.Tensor:
    """Sampled softmax whose negatives are the batch's own targets (their vectors: `target_vectors`).

    target_vectors: [..., d], one per target (a content tower encodes only the batch's items);
    log_q: [num_items] log share of each item among the training targets (`log_frequency`), or None
    for no correction.
    """
    real = targets.reshape(-1) >= 0
    vectors = target_vectors.reshape(-1, target_vectors.shape[-1])[real]
    queries, targets = _valid_rows(queries, targets)
    return _corrected_softmax(queries, vectors, targets, vectors, targets, log_q, temperature)


def _corrected_softmax(
    queries: torch.Tensor,
    positive_vectors: torch.Tensor,
    targets: torch.Tensor,
    negative_vectors: torch.Tensor,
    negatives: torch.Tensor,
    log_q: torch.Tensor | None,
    temperature: float,
) -> torch.Tensor:
    """Column 0: the positive; columns 1..S: negatives corrected by -log(S q) (none when log_q is
    None), accidental hits masked."""
    positive = (queries * positive_vectors).sum(-1, keepdim=True) / temperature  # [N, 1]
    sampled = queries @ negative_vectors.T / temperature  # [N, S]
    if log_q is not None:
        sampled = sampled - (log_q[negatives] + math.log(len(negatives)))[None, :]
    sampled = sampled.masked_fill(negatives[None, :] == targets[:, None], float("-inf"))
    logits = torch.cat([positive, sampled], dim=1)
    return F.cross_entropy(logits, torch.zeros(len(targets), dtype=torch.long, device=queries.device))


def log_frequency(counts: torch.Tensor, smoothing: float = 0.0) -> torch.Tensor:
    """[num_items] log of each item's share of `counts` (+ `smoothing` each): log q of in-batch draws.

    An item never counted gets log(0) = -inf, which is only ever read for items that were drawn.
    """
    counts = counts.double() + smoothing
    return (counts / counts.sum()).log().float()


def sample_negatives(
    log_q: torch.Tensor, count: int, generator: torch.Generator | None = None
) -> torch.Tensor:
    """[count] item codes drawn with replacement with probabilities exp(log_q)."""
    return torch.multinomial(log_q.exp(), count, replacement=True, generator=generator)
