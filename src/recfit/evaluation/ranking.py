"""Top-K ranking metrics, vectorised over a chunk of users (no per-user Python loop).

Definitions, per user with R >= 1 relevant (held-out) items and the ranked top K list:
- hit@K       = 1 if any relevant item is in the top K, else 0
- recall@K    = (relevant items in the top K) / R
- precision@K = (relevant items in the top K) / K   (K, not the list length, even when K > catalogue)
- mrr@K       = 1 / rank of the first relevant item in the top K (0 if none)
- ndcg@K      = DCG@K / IDCG@K, DCG = sum over hits at rank r of 1 / log2(r + 1),
                IDCG = the same for min(R, K) hits at ranks 1..min(R, K)
- map@K       = (sum over hits at rank r of precision@r) / min(R, K)   (RecBole's definition)
Users with no relevant item are not evaluated (they are not in the evaluation batches at all).
Items already seen (train, and validation when testing) are excluded from the ranking.
Ties: equal scores are ordered by item code, lower first, so results never depend on the
hardware or the chunking.
"""

from __future__ import annotations

from typing import NamedTuple

import torch

ITEM_CHUNK = 65_536  # items scored at once: bounds memory at users x ITEM_CHUNK floats


def _stable_top(scores: torch.Tensor, codes: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Top-k of each row, ties broken by position (then code, since codes ascend along the row)."""
    order = scores.sort(dim=1, descending=True, stable=True).indices[:, :k]
    return scores.gather(1, order), codes.gather(1, order)


def _chunk_top(scores: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Top-k (scores, column positions) of each row, ties going to the lower position.

    `topk` (a partial selection, far cheaper than sorting the row) picks k + 1; its pick of the first
    k is exact unless the (k + 1)-th score equals the k-th (a tie across the cut, or fewer than k + 1
    finite scores): those few rows are redone with a stable full sort.
    """
    width = scores.shape[1]
    values, positions = scores.topk(min(k + 1, width), dim=1)
    tied = values[:, k] == values[:, k - 1] if width > k else torch.zeros_like(values[:, 0], dtype=torch.bool)
    values, positions = values[:, :k], positions[:, :k]
    # order the k picked by (score descending, position ascending): sort by position, then stably by score
    positions, by_position = positions.sort(dim=1)
    values = values.gather(1, by_position)
    values, by_score = values.sort(dim=1, descending=True, stable=True)
    positions = positions.gather(1, by_score)
    if tied.any():
        rows = tied.nonzero(as_tuple=True)[0]
        order = scores[rows].sort(dim=1, descending=True, stable=True).indices[:, :k]
        positions[rows] = order
        values[rows] = scores[rows].gather(1, order)
    return values, positions


class SeenPairs(NamedTuple):
    """Items never to recommend, as (batch row, item code) pairs: exactly the cells to mask.

    The data module's ranking collator hands these over (`seen_pairs`, a [2, P] tensor). Padded
    [B, M] codes make masking touch B x (widest history) cells, and with long-tailed histories the
    widest user of a batch has several times the mean.
    """

    rows: torch.Tensor  # [P] row of the batch
    items: torch.Tensor  # [P] item code

    @classmethod
    def of(cls, pairs: torch.Tensor) -> SeenPairs:
        """From the collator's [2, P] tensor."""
        return cls(pairs[0], pairs[1])

    @classmethod
    def from_padded(cls, codes: torch.Tensor) -> SeenPairs:
        """From [B, M] codes padded with -1."""
        rows, columns = (codes >= 0).nonzero(as_tuple=True)
        return cls(rows, codes[rows, columns])

    def within(self, start: int, end: int) -> SeenPairs:
        """The pairs whose item lies in [start, end), items shifted to start at 0."""
        keep = (self.items >= start) & (self.items < end)
        return SeenPairs(self.rows[keep], self.items[keep] - start)


class ScoreBuffer:
    """Memory for the [B, items] score matrix, reused from one batch to the next.

    A fresh matrix per batch is fresh pages from the allocator each time: on CPU, at 1,024 users x
    20,000 items, faulting them in cost about as much as the matrix product itself.
    """

    def __init__(self) -> None:
        self._memory: torch.Tensor | None = None

    def take(self, rows: int, columns: int, like: torch.Tensor) -> torch.Tensor:
        """A [rows, columns] tensor of `like`'s dtype and device (contents undefined)."""
        size = rows * columns
        memory = self._memory
        if (
            memory is None
            or memory.numel() < size
            or memory.dtype != like.dtype
            or memory.device != like.device
        ):
            memory = self._memory = like.new_empty(size)
        return memory[:size].view(rows, columns)


def _masked_scores(
    user_vectors: torch.Tensor,
    chunk: torch.Tensor,
    exclude: torch.Tensor | SeenPairs,
    start: int,
    whole: bool,
    buffer: ScoreBuffer | None,
) -> torch.Tensor:
    """[B, width] scores of one item chunk with every excluded (user, item) cell at -inf."""
    width = chunk.shape[0]
    if isinstance(exclude, SeenPairs):
        if buffer is None:
            scores = user_vectors @ chunk.T
        else:
            out = buffer.take(user_vectors.shape[0], width, user_vectors)
            scores = torch.mm(user_vectors, chunk.T, out=out)
        pairs = exclude if whole else exclude.within(start, start + width)
        scores.index_put_((pairs.rows, pairs.items), scores.new_tensor(float("-inf")))
        return scores
    # padded codes: one spare all-zero item column receives the -inf of every padding or out-of-chunk
    # code, so the history is masked by one scatter (no nonzero/index_put over the history)
    scores = user_vectors @ torch.cat([chunk, chunk.new_zeros(1, chunk.shape[1])]).T
    if whole:  # one chunk (the usual case): padding -1 wraps round to width
        spare = exclude.remainder(width + 1)
    else:
        local = exclude - start
        spare = local.where((local >= 0) & (local < width), width)
    scores.scatter_(1, spare, float("-inf"))
    return scores[:, :width]


def top_k_items(
    user_vectors: torch.Tensor,
    item_vectors: torch.Tensor,
    exclude: torch.Tensor | SeenPairs,
    k: int,
    item_chunk: int = ITEM_CHUNK,
    buffer: ScoreBuffer | None = None,
) -> torch.Tensor:
    """The k best item codes per user by dot product, over the whole catalogue in item chunks.

    exclude: item codes never to recommend, as SeenPairs (what the data module gives) or [B, M] codes
    (-1 = padding); both give the same result. Never materialises more than B x item_chunk scores;
    the result is identical for any chunk size. `buffer` (with SeenPairs): memory for the scores, kept
    by the caller across batches.
    """
    batch = user_vectors.shape[0]
    k = min(k, item_vectors.shape[0])
    best_scores = user_vectors.new_empty(batch, 0)
    best_codes = torch.empty(batch, 0, dtype=torch.long, device=user_vectors.device)
    whole = item_vectors.shape[0] <= item_chunk
    for start in range(0, item_vectors.shape[0], item_chunk):
        chunk = item_vectors[start : start + item_chunk]
        width = chunk.shape[0]
        scores = _masked_scores(user_vectors, chunk, exclude, start, whole, buffer)
        values, positions = _chunk_top(scores, min(k, width))
        if start == 0:
            best_scores, best_codes = values, positions
            continue
        # earlier chunks hold lower codes, so concatenating them first keeps ties ordered by code
        best_scores, best_codes = _stable_top(
            torch.cat([best_scores, values], dim=1), torch.cat([best_codes, positions + start], dim=1), k
        )
    return best_codes


def top_k_candidates(
    user_vectors: torch.Tensor, item_vectors: torch.Tensor, candidates: torch.Tensor, k: int
) -> torch.Tensor:
    """The k best of each user's own candidate items ([B, C] codes, -1 = padding), for sampled protocols."""
    valid = candidates >= 0
    vectors = item_vectors[candidates.clamp(min=0)]  # [B, C, d]
    scores = (user_vectors[:, None, :] * vectors).sum(-1).masked_fill(~valid, float("-inf"))
    # sort candidates by code first so that ties fall back to the lower code, as in full ranking
    codes, position = candidates.masked_fill(~valid, torch.iinfo(torch.long).max).sort(dim=1)
    return _stable_top(scores.gather(1, position), codes, min(k, candidates.shape[1]))[1]


def ranking_metrics(top_items: torch.Tensor, targets: torch.Tensor, ks: list[int]) -> dict[str, torch.Tensor]:
    """Per-user values of every ranking metric at every K in `ks`: {"ndcg@10": [B], ...}.

    top_items: [B, L] recommended codes, best first (L >= max(ks) unless the catalogue is smaller);
    targets: [B, T] relevant codes, -1 = padding.
    """
    hits = (top_items[:, :, None] == targets[:, None, :]).any(dim=2).float()  # [B, L]
    num_relevant = (targets >= 0).sum(dim=1).float()
    length = hits.shape[1]
    ranks = torch.arange(1, length + 1, device=hits.device, dtype=torch.float32)
    discounts = 1.0 / torch.log2(ranks + 1.0)
    ideal_cumulative = discounts.cumsum(0)
    precision_at_rank = hits.cumsum(dim=1) / ranks
    out: dict[str, torch.Tensor] = {}
    for k in ks:
        kk = min(k, length)
        hits_k = hits[:, :kk]
        found = hits_k.sum(dim=1)
        first = torch.where(hits_k.any(dim=1), hits_k.argmax(dim=1).float() + 1.0, torch.inf)
        cap = num_relevant.clamp(max=kk)
        out[f"recall@{k}"] = found / num_relevant.clamp(min=1.0)
        out[f"precision@{k}"] = found / k
        out[f"hit@{k}"] = (found > 0).float()
        out[f"mrr@{k}"] = 1.0 / first
        out[f"ndcg@{k}"] = (hits_k * discounts[:kk]).sum(dim=1) / ideal_cumulative[
            (cap - 1).clamp(min=0).long()
        ]
        out[f"map@{k}"] = (precision_at_rank[:, :kk] * hits_k).sum(dim=1) / cap.clamp(min=1.0)
    return out
