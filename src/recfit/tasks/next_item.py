"""next_item: predict each user's next item from their chronological history (SASRec's task).

Rows are user histories, not interactions: every prefix of a user's training sequence predicts the
item after it (RecBole's data augmentation; `task.next_item_examples=prefixes`), or one row per user
trains every position of their latest window at once (`window`: SASRec's own objective, the loss over
every real position's next item). A user is their latest `model.user_encoder.max_history`
items, encoded by `model.user_encoder` (`mean`, `gru`, `transformer`) from the same item vectors that
are scored; with `id` the user is a learned user-ID vector (two-tower / DSSM) trained the same way.
The split is leave-one-out in time order (RecBole `LS: valid_and_test`, `TO`); evaluation ranks the
whole catalogue for each user with nothing masked, as RecBole's sequential full-sort evaluation does.
Loss: softmax cross-entropy over every item (`loss.negatives=full`, RecBole's `loss_type: CE`), over
`loss.num_negatives` items drawn by training frequency (`sampled`), or over the batch's targets
(`in_batch`), the last two with the logQ correction when `loss.logq_correction`.
See docs/sequential.md.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from recfit.errors import ConfigError
from recfit.run_folder import ITEM_TRAIN_COUNT_COLUMN
from recfit.tasks import metrics
from recfit.tasks.base import Task, TaskShape
from recfit.tasks.names import HistoryExamples, LossName, Negatives, TaskName
from recfit.tasks.ranking import CatalogueRankingMetrics
from recfit.tasks.registry import register

if TYPE_CHECKING:
    import torch
    import torchmetrics
    from torch import nn

LEAVE_ONE_OUT_SPLIT = "leave_one_out"  # the split.method next-item needs (recfit.config.schema.SplitMethod)
FULL_RANKING = "full"  # task.candidates: every item (recfit.data.datamodule.FULL_RANKING)
REPORTED = ("recall", "ndcg", "mrr", "hit")  # RecBole's; with one target per user recall@K = hit@K
FROZEN = "all"  # backbone.freeze: the item vectors never change, so they are computed once
ID_USERS = "id"  # model.user_encoder.name whose users are ID vectors (recfit.config.schema.UserEncoderName)


def _cached_item_vectors(backbone: Any) -> bool:
    """Whether the backbone's item output is computed once (freeze all) or from cached frozen layers
    (freeze N), so a step can encode any item from its code alone."""
    freeze = str(backbone.freeze)
    return freeze == FROZEN or (freeze.isdigit() and int(freeze) > 0)


@register
class NextItem(CatalogueRankingMetrics, Task):
    name = TaskName.next_item.value
    shape = TaskShape.catalogue_ranking
    losses = (LossName.cross_entropy,)
    metric_catalog = tuple(metric for metric in metrics.RANKING if metric.name in REPORTED)
    multi_domain = False
    reads_histories = True

    def check(self, cfg: Any) -> None:
        method = getattr(cfg.split.method, "value", cfg.split.method)
        if method != LEAVE_ONE_OUT_SPLIT:
            raise ConfigError(
                f"task next_item needs split=leave_one_out (each user's last item is the test target, "
                f"the one before it the validation target), not split.method={method}"
            )
        if cfg.task.candidates != FULL_RANKING:
            raise ConfigError("task next_item ranks the full catalogue: use task.candidates=full")
        loss = cfg.loss
        if loss.l2 > 0:
            raise ConfigError("loss.l2 applies to rows of (user, item) pairs; task next_item takes none")
        negatives = Negatives(loss.negatives)
        if negatives == Negatives.sampled and loss.num_negatives < 1:
            raise ConfigError(f"loss.num_negatives must be at least 1 (got {loss.num_negatives})")
        if negatives == Negatives.in_batch and cfg.dataset.batch_size < 2:
            raise ConfigError("dataset.batch_size must be at least 2 for in-batch negatives")
        _check_window(cfg)
        has_backbone = getattr(cfg.backbone.modality, "value", cfg.backbone.modality) != "none"
        if negatives == Negatives.full and has_backbone and not _cached_item_vectors(cfg.backbone):
            raise ConfigError(
                "task next_item with loss.negatives=full scores every item at every step: freeze the "
                "backbone (backbone.freeze=all, or N to fine-tune the layers above N) or use "
                "loss.negatives=sampled or in_batch"
            )

    # ---- data and model set-up --------------------------------------------------------------------
    def sequence_plan(self, cfg: Any) -> Any:
        from recfit.data.next_item_data import SequencePlan

        return SequencePlan(
            max_history=cfg.model.user_encoder.max_history,
            negatives=Negatives(cfg.loss.negatives),
            num_negatives=cfg.loss.num_negatives,
            examples=_examples(cfg.task),
        )

    def protocol(self, cfg: Any, num_items: int, domains: list[str] | None) -> str:
        line = (
            f"full ranking over all {num_items:,} items, history items not masked (RecBole's "
            f"sequential protocol)"
        )
        encoder = cfg.model.user_encoder
        if str(getattr(encoder.name, "value", encoder.name)) == ID_USERS:
            return line  # ID users and popularity read no history
        return f"{line}; users as their latest {encoder.max_history} items"

    def targets(self, frame: pd.DataFrame) -> np.ndarray:
        """No per-interaction target: the next item of each history is (the data module's examples)."""
        return np.zeros(len(frame), dtype=np.float32)

    def recommender_options(self) -> dict[str, bool]:
        return {"normalize": False, "biases": False}  # SASRec scores plain dot products

    def corrects_popularity(self, loss_cfg: Any) -> bool:
        return Negatives(loss_cfg.negatives) != Negatives.full and bool(loss_cfg.logq_correction)

    # ---- training steps ---------------------------------------------------------------------------
    def training_output(self, module: Any, batch: dict) -> Any:
        """(user vectors [B, d], item vectors by code [num_items, d], sampled negatives or None).

        Full softmax encodes the whole catalogue; otherwise only the batch's distinct items are encoded
        (history, targets, negatives) and placed at their codes, so the losses index by code alike.
        Window rows: the user vectors are [B, L, d], one per position (the batch's `target` is [B, L]),
        and the negatives of in-batch softmax are the rows' last targets.
        """
        recommender = module.recommender
        if "unique_items" in batch:
            unique = batch["unique_items"]
            vectors = recommender.catalogue_vectors([(unique, batch.get("item_inputs", {}))])
            table = vectors.new_zeros(module.num_items, vectors.shape[1]).index_copy(0, unique, vectors)
        else:
            import torch

            table = recommender.catalogue_vectors([(torch.arange(module.num_items), {})])
        if _examples(self.settings) == HistoryExamples.window:
            users = recommender.encode_history_positions(batch["items"], batch["mask"], table)
        else:
            users = user_vectors(recommender, batch, table)
        return users, table, batch.get("negatives")

    def loss_value(self, output: Any, target: torch.Tensor, module: Any) -> torch.Tensor:
        from recfit.training import next_item_loss as losses

        users, table, negatives = output
        log_q = module.item_log_frequency  # None unless the logQ correction is on
        negatives_kind = Negatives(module.loss_settings.negatives)
        if negatives_kind == Negatives.full:
            return losses.full_softmax_loss(users, table, target, module.temperature)
        if negatives is not None:  # sampled ones, or window rows' in-batch ones (the rows' last targets)
            return losses.sampled_softmax_loss(users, table, target, negatives, log_q, module.temperature)
        return losses.in_batch_softmax_loss(users, table[target], target, log_q, module.temperature)

    # ---- evaluation -------------------------------------------------------------------------------
    def row_identity(self, batch: dict) -> dict[str, torch.Tensor]:
        return {"item": batch["target"]}  # one row per user, with its target: warm / cold-item breakdowns

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
        from recfit.evaluation.ranking import SeenPairs, ranking_metrics, top_k_items

        catalogue = module.catalogue
        users = user_vectors(module.recommender, batch, catalogue)
        nothing = batch["target"].new_empty(0)
        # RecBole's sequential full ranking masks nothing: an item of the history may come again
        top = top_k_items(
            users, catalogue, SeenPairs(nothing, nothing), max(self.topk), buffer=module.score_buffer
        )
        reported = set(self.metric_names())
        values = {
            name: value
            for name, value in ranking_metrics(top, batch["target"][:, None], self.topk).items()
            if name in reported
        }
        for name, per_user in values.items():
            metrics[name].update(per_user.to(module.sum_dtype))  # float64 batch sums too
        counts = _training_item_counts(module)
        if counts is not None:  # a column of per_user.parquet, not a metric
            values[ITEM_TRAIN_COUNT_COLUMN] = counts[batch["target"].cpu()].to(batch["target"].device)
        return values


def _examples(settings: Any) -> HistoryExamples:
    """`task.next_item_examples` (prefixes when the settings predate it)."""
    return HistoryExamples(getattr(settings, "next_item_examples", None) or HistoryExamples.prefixes)


def _check_window(cfg: Any) -> None:
    """Window rows train a user vector per position: a model whose users are ID vectors has one per user."""
    if _examples(cfg.task) != HistoryExamples.window:
        return
    from recfit.models.declarations import declaration

    encoder = str(getattr(cfg.model.user_encoder.name, "value", cfg.model.user_encoder.name))
    if encoder == ID_USERS and declaration(cfg.model.name).user_encoders:
        raise ConfigError(
            "task.next_item_examples=window trains every position of a history, but "
            "model.user_encoder.name=id has one vector per user, not per position (use mean, gru or "
            "transformer, or task.next_item_examples=prefixes)"
        )


def _training_item_counts(module: Any) -> torch.Tensor | None:
    """[num_items] each item's number of training interactions (its occurrences in the training
    sequences: what "cold item" is measured by), from the module's data module; None without one."""
    counts = getattr(module, "_training_item_counts", None)
    if counts is None:
        split = getattr(module.item_source, "sequence_split", None)
        if split is None:
            return None
        import torch

        counts = torch.as_tensor(split.train.item_counts(), dtype=torch.int64)
        module._training_item_counts = counts  # computed once per module, not per batch
    return counts


def user_vectors(recommender: Any, batch: dict, item_vectors: torch.Tensor) -> torch.Tensor:
    """[B, d] the users of a next-item batch: encoded from their histories (`items`, `mask`) over
    `item_vectors` (by item code), or their ID vectors when the model's user encoder is `id`."""
    if getattr(recommender, "encodes_histories", False):
        return recommender.encode_histories(batch["items"], batch["mask"], item_vectors)
    return recommender.encode_users(batch["user"])


def history_user_vectors(
    recommender: Any, histories: Sequence[Sequence[int]], item_vectors: torch.Tensor
) -> torch.Tensor:
    """[H, d] user vectors for free-standing histories (item codes, oldest first, each non-empty), e.g.
    a user never trained on: each history's latest `recommender.max_history` items, encoded exactly as
    an evaluation row with that history is. `item_vectors`: the catalogue's ([num_items, d], from
    `recommender.catalogue_vectors`). Raw item ids become codes with
    `recfit.data.sequences.history_codes` (unknown, repeated or no items refused in one line)."""
    from recfit.data.sequence_batches import history_batch

    if not getattr(recommender, "encodes_histories", False):
        raise ConfigError("this model's users are IDs (model.user_encoder.name=id): it encodes no history")
    arrays = [np.asarray(history, dtype=np.int64) for history in histories]
    batch = history_batch(arrays, len(item_vectors), recommender.max_history)
    device = item_vectors.device
    return recommender.encode_histories(batch["items"].to(device), batch["mask"].to(device), item_vectors)
