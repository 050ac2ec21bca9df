"""Keeping domains apart inside the LightningModule (multi-domain data, recfit.data.sources.multi_domain).

- training: an item of another domain is never an in-batch negative (its score is masked to -inf);
- ranking evaluation: each user ranks only the items of their own domain (a consecutive code range);
- metrics: each stage's metrics once more per domain, logged as `<stage>/<domain>/<metric>`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torchmetrics
from torch import nn

from recfit.data.tables import RecData
from recfit.evaluation.ranking import SeenPairs, top_k_items

NOT_RANKED = -2  # fills a top-k row past a small domain's size; never equal to a target (padding is -1)


@dataclass
class DomainLayout:
    """Which domain each user and item belongs to; a domain's items hold consecutive codes."""

    names: list[str]
    user_domain: torch.Tensor  # [num_users] domain code
    item_domain: torch.Tensor  # [num_items] domain code

    @classmethod
    def of(cls, data: RecData) -> DomainLayout | None:
        """The layout of multi-domain `data`; None for one data set."""
        if data.domain_names is None:
            return None
        return cls(
            list(data.domain_names), torch.as_tensor(data.user_domain), torch.as_tensor(data.item_domain)
        )

    def item_ranges(self) -> list[tuple[int, int]]:
        """[start, end) item codes of each domain."""
        counts = torch.bincount(self.item_domain, minlength=len(self.names)).tolist()
        ends = np.cumsum(counts).tolist()
        return [(end - count, end) for count, end in zip(counts, ends, strict=True)]


def mask_other_domains(
    scores: torch.Tensor, user_domains: torch.Tensor, item_domains: torch.Tensor
) -> torch.Tensor:
    """[B, B] in-batch scores with every (user, item of another domain) pair set to -inf."""
    return scores.masked_fill(user_domains[:, None] != item_domains[None, :], float("-inf"))


def _rows_of(pairs: SeenPairs, rows: torch.Tensor, batch: int) -> SeenPairs:
    """The pairs of the batch rows `rows`, renumbered to their position in `rows`."""
    position = torch.full((batch,), -1, dtype=torch.long, device=rows.device)
    position[rows] = torch.arange(len(rows), device=rows.device)
    keep = position[pairs.rows] >= 0
    return SeenPairs(position[pairs.rows[keep]], pairs.items[keep])


def top_k_within_domains(
    user_vectors: torch.Tensor,
    user_domains: torch.Tensor,
    item_vectors: torch.Tensor,
    exclude: SeenPairs | torch.Tensor,
    k: int,
    item_ranges: list[tuple[int, int]],
    ranked_items: torch.Tensor | None = None,
) -> torch.Tensor:
    """The k best item codes of each user among their own domain's items (recfit.evaluation.ranking).

    exclude: (batch row, item) pairs never to recommend (or [B, M] codes, -1 = padding); ranked_items:
    if given, only these codes are candidates (cold items) and nothing is excluded. Rows of a domain
    with fewer than k candidates end in NOT_RANKED.
    """
    if not isinstance(exclude, SeenPairs):
        exclude = SeenPairs.from_padded(exclude)
    top = torch.full((len(user_vectors), k), NOT_RANKED, dtype=torch.long, device=user_vectors.device)
    for domain, (start, end) in enumerate(item_ranges):
        rows = (user_domains == domain).nonzero(as_tuple=True)[0]
        if ranked_items is None:
            codes = torch.arange(start, end, device=user_vectors.device)
            local_exclude = _rows_of(exclude, rows, len(user_vectors)).within(start, end)
        else:
            codes = ranked_items[(ranked_items >= start) & (ranked_items < end)]
            local_exclude = SeenPairs(exclude.rows[:0], exclude.items[:0])
        if len(rows) == 0 or len(codes) == 0:
            continue
        local = top_k_items(user_vectors[rows], item_vectors[codes], local_exclude, k)
        top[rows, : local.shape[1]] = codes[local]
    return top


class DomainMetrics(nn.Module):
    """Each stage's metric collection, once per domain."""

    def __init__(self, names: list[str], stages: tuple[str, ...], make: Callable[[], nn.Module]) -> None:
        super().__init__()
        self.names = names
        self.stages = nn.ModuleDict(
            {stage: nn.ModuleDict({name: make() for name in names}) for stage in stages}
        )

    def update(
        self,
        stage: str,
        row_domains: torch.Tensor,
        update: Callable[[torchmetrics.MetricCollection, torch.Tensor], None],
    ) -> None:
        """Call `update(collection, rows)` for each domain with its rows of the batch (a bool mask)."""
        for code, name in enumerate(self.names):
            rows = row_domains == code
            if rows.any():
                update(self.stages[stage][name], rows)

    def compute(self, stage: str) -> dict[str, torch.Tensor]:
        """{"<domain>/<metric>": value} for every domain, and reset.

        Every domain is computed, including one this process saw no rows of: under DDP the metrics
        synchronise across processes, so all must compute the same ones (each domain's split has rows).
        """
        out = {}
        for name, collection in self.stages[stage].items():
            out.update({f"{name}/{metric}": value for metric, value in collection.compute().items()})
            collection.reset()
        return out
