"""ranking: rank each user's held-out items against the catalogue (or sampled candidates).

Trained with a softmax over the other items of the batch (cross_entropy, optionally logQ-corrected) or
with BPR over one sampled negative per row; evaluated per user, seen items masked.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from recfit.errors import ConfigError
from recfit.tasks import metrics
from recfit.tasks.base import Task, TaskShape
from recfit.tasks.names import LossName, TaskName
from recfit.tasks.registry import register

if TYPE_CHECKING:
    import torch
    import torchmetrics
    from torch import nn

FULL_RANKING = "full"  # task.candidates: every item (recfit.data.datamodule.FULL_RANKING)
COLD_ITEM_SPLIT = "cold_item"  # split.method whose held-out items are ranked among themselves


class CatalogueRankingMetrics:
    """The evaluation state of a task that ranks the whole catalogue per user: one mean per metric,
    summed in float64, each user's top items found in `evaluate` rather than in the forward pass."""

    def new_metrics(self, num_classes: int) -> torchmetrics.MetricCollection:
        import torchmetrics

        return torchmetrics.MetricCollection(
            {name: torchmetrics.MeanMetric() for name in self.metric_names()}  # type: ignore[attr-defined]
        )

    @property
    def sums_in_float64(self) -> bool:
        return True

    def evaluation_output(self, module: Any, batch: dict) -> None:
        return None  # each user's top items come from the catalogue, in `evaluate`


@register
class Ranking(CatalogueRankingMetrics, Task):
    name = TaskName.ranking.value
    shape = TaskShape.catalogue_ranking
    losses = (LossName.cross_entropy, LossName.bpr)
    metric_catalog = metrics.RANKING

    @property
    def in_batch_softmax(self) -> bool:
        return self.loss == LossName.cross_entropy

    def check(self, cfg: Any) -> None:
        if self.in_batch_softmax and cfg.dataset.batch_size < 2:
            # dataset.batch_size is per device: with several devices each process still needs 2 rows
            raise ConfigError(
                "dataset.batch_size must be at least 2 for in-batch softmax: each row's negatives are the "
                "other rows of its device's batch"
            )

    def check_multi_domain(self, cfg: Any) -> None:
        if not self.in_batch_softmax or cfg.task.candidates != FULL_RANKING:
            raise ConfigError(
                "multi-domain ranking keeps domains apart with in-batch negatives and full ranking: "
                "use loss=cross_entropy and task.candidates=full"
            )

    # ---- data and model set-up --------------------------------------------------------------------
    @property
    def needs_negatives(self) -> bool:
        return self.loss == LossName.bpr

    def protocol(self, cfg: Any, num_items: int, domains: list[str] | None) -> str:
        from recfit.data.datamodule import parse_candidates

        within = "" if domains is None else " of the user's own domain"
        if cfg.split.method == COLD_ITEM_SPLIT:
            return f"held-out cold items{within} ranked among themselves"
        if cfg.task.candidates == FULL_RANKING:
            if domains is not None:
                return "full ranking over the items of the user's own domain, seen items masked"
            return f"full ranking over all {num_items:,} items, seen items masked"
        kind, count = parse_candidates(cfg.task.candidates)
        how = "uniformly" if kind == "uni" else "by popularity"
        return f"ranking among {count} negatives sampled {how} per user (not comparable with full ranking)"

    def targets(self, frame: pd.DataFrame) -> np.ndarray:
        """No target: the item itself is."""
        return np.zeros(len(frame), dtype=np.float32)

    def recommender_options(self) -> dict[str, bool]:
        # a catalogue ranking is a plain matrix product of user and item vectors: no biases
        return {"normalize": self.in_batch_softmax, "biases": False}

    def corrects_popularity(self, loss_cfg: Any) -> bool:
        # in-batch negatives are drawn in proportion to popularity (Yi et al., RecSys 2019)
        return bool(loss_cfg.logq_correction)

    # ---- training steps ---------------------------------------------------------------------------
    def training_output(self, module: Any, batch: dict) -> Any:
        """(positive scores, negative scores) for BPR; ([B, B] user-by-item scores, items) otherwise."""
        recommender = module.recommender
        users = recommender.encode_users(batch["user"])
        if self.loss == LossName.bpr:
            positive = (users * recommender.batch_item_vectors(batch, "item")).sum(-1)
            negative = (users * recommender.batch_item_vectors(batch, "negative")).sum(-1)
            return positive, negative
        scores = users @ recommender.batch_item_vectors(batch).T
        if module.domains is not None:  # an item of another domain is no negative for this user
            from recfit.training.domains import mask_other_domains

            scores = mask_other_domains(
                scores, module.user_domain[batch["user"]], module.item_domain[batch["item"]]
            )
        return scores, batch["item"]

    def loss_value(self, output: Any, target: torch.Tensor, module: Any) -> torch.Tensor:
        from recfit.training import losses

        if self.loss == LossName.bpr:
            return losses.bpr(*output)
        scores, items = output
        return losses.in_batch_softmax(scores, items, module.temperature, module.item_log_frequency)

    # ---- evaluation -------------------------------------------------------------------------------
    def row_identity(self, batch: dict) -> dict[str, torch.Tensor]:
        return {}  # one value per user

    def evaluate(
        self,
        module: Any,
        batch: dict,
        output: Any,
        target: Any,
        metrics: torchmetrics.MetricCollection,
        row_user_metric: nn.Module | None,
        dtype: torch.dtype | None,
        update_domains: Callable[[Callable[[Any, torch.Tensor], Any]], None] | None,
    ) -> dict[str, torch.Tensor]:
        from recfit.evaluation.ranking import ranking_metrics

        top = module.top_k(batch, max(self.topk))
        values = ranking_metrics(top, batch["target_items"], self.topk)
        for name, per_user in values.items():
            metrics[name].update(per_user.to(module.sum_dtype))  # float64 batch sums too
        if update_domains is not None:
            update_domains(
                lambda domain, rows: [
                    domain[n].update(v[rows].to(module.sum_dtype)) for n, v in values.items()
                ]
            )
        return values
