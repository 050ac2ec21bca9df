"""The LightningModule: a recommender, its loss, its optimizer, and the task's metrics."""

from __future__ import annotations

import lightning.pytorch as pl
import numpy as np
import torch
import torchmetrics
from omegaconf import DictConfig
from torch import nn

from recfit.config.schema import LossName, TaskName
from recfit.config.validate import RANKING_METRICS
from recfit.data.datamodule import Catalogue
from recfit.errors import TrainingDivergedError
from recfit.evaluation import pointwise
from recfit.evaluation.pointwise import per_row_values
from recfit.evaluation.ranking import ScoreBuffer, SeenPairs, ranking_metrics, top_k_candidates, top_k_items
from recfit.training.domains import DomainLayout, DomainMetrics, mask_other_domains, top_k_within_domains
from recfit.training.losses import task_loss
from recfit.training.multitask import MultiTaskObjective
from recfit.training.optim import build_optimizer, total_optimizer_steps

STAGES = ("val", "test")


def non_persistent_buffers(module: nn.Module) -> list[str]:
    """Full names of the buffers that checkpoints leave out (recfit's caches)."""
    return [
        f"{prefix}.{name}" if prefix else name
        for prefix, child in module.named_modules()
        for name in child._non_persistent_buffers_set
    ]


class RecModule(pl.LightningModule):
    """Trains any recfit recommender on any task; logs `val/<metric>` and `test/<metric>` (multi-task:
    `val/<task>/<metric>`)."""

    def __init__(
        self,
        recommender: nn.Module,
        task: DictConfig,
        loss: DictConfig,
        optimizer: DictConfig,
        scheduler: DictConfig,
        num_items: int,
        num_classes: int = 0,
        catalogue: Catalogue | None = None,
        catalogue_batch_size: int = 256,
        item_log_frequency: torch.Tensor | None = None,
        train_batches: int = 1,
        class_weights: torch.Tensor | None = None,
        domains: DomainLayout | None = None,
        multitask: MultiTaskObjective | None = None,
    ) -> None:
        super().__init__()
        self.recommender = recommender
        self.task_name: TaskName = task.name
        self.loss_name: LossName = loss.name
        self.topk = list(task.topk)
        self.temperature = loss.temperature
        self.l2 = loss.l2
        self.optimizer_cfg = optimizer
        self.scheduler_cfg = scheduler
        self.num_items = num_items
        self.item_source = catalogue  # ranking: the catalogue to score, and the items each split ranks
        self.catalogue_batch_size = catalogue_batch_size
        self.train_batches = train_batches  # per epoch, in one process: sizes the learning-rate schedule
        self.catalogue: torch.Tensor | None = None
        self.score_buffer = ScoreBuffer()  # full ranking: score memory reused across batches
        self.ranked_items: torch.Tensor | None = None
        use_logq = (
            self.task_name == TaskName.ranking and loss.logq_correction and item_log_frequency is not None
        )
        self.register_buffer("item_log_frequency", item_log_frequency if use_logq else None, persistent=False)
        self.register_buffer("class_weights", class_weights, persistent=False)  # dataset.class_weights
        self.metrics = nn.ModuleDict({stage: self._metrics(num_classes) for stage in STAGES})
        # multi-domain data: domains kept apart in training and ranking, metrics also per domain
        self.domains = domains
        for side in ("user_domain", "item_domain"):
            self.register_buffer(side, None if domains is None else getattr(domains, side), persistent=False)
        self.domain_metrics = None
        if domains is not None:
            self.domain_metrics = DomainMetrics(domains.names, STAGES, lambda: self._metrics(num_classes))
        # several tasks (tasks=[rating,ctr]): their losses, weighting and metrics, in place of the above
        self.multitask = multitask
        # GAUC needs each row's user as well, so it sits beside the collection
        self.group_auc = (
            nn.ModuleDict({stage: pointwise.GroupAUC() for stage in STAGES})
            if task.name == TaskName.ctr and multitask is None
            else None
        )
        self.test_rows: list[dict[str, torch.Tensor]] = []
        # data-derived caches (frozen item vectors, frozen-layer states, logQ) are built alike on every
        # rank: DDP must not broadcast them, possibly gigabytes, from rank 0 at every step
        self._ddp_params_and_buffers_to_ignore = non_persistent_buffers(self)
        self.sum_dtype = torch.float64

    def _metrics(self, num_classes: int) -> torchmetrics.MetricCollection:
        if self.task_name == TaskName.ranking:
            names = [f"{metric}@{k}" for metric in RANKING_METRICS for k in self.topk]
            return torchmetrics.MetricCollection({name: torchmetrics.MeanMetric() for name in names})
        if self.task_name == TaskName.rating or self.loss_name == LossName.mse:
            return pointwise.regression_metrics()
        if self.task_name == TaskName.ctr:
            return pointwise.binary_metrics()
        return pointwise.multiclass_metrics(num_classes)

    # ---- training -------------------------------------------------------------------------------
    def training_step(self, batch: dict, batch_index: int) -> torch.Tensor:
        if self.loss_name == LossName.bpr:
            users = self.recommender.encode_users(batch["user"])
            positive = (users * self.recommender.batch_item_vectors(batch, "item")).sum(-1)
            negative = (users * self.recommender.batch_item_vectors(batch, "negative")).sum(-1)
            output = (positive, negative)
        elif self.task_name == TaskName.ranking:
            users = self.recommender.encode_users(batch["user"])
            items = self.recommender.batch_item_vectors(batch)
            scores = users @ items.T
            if self.domains is not None:  # an item of another domain is no negative for this user
                scores = mask_other_domains(
                    scores, self.user_domain[batch["user"]], self.item_domain[batch["item"]]
                )
            output = (scores, batch["item"])
        else:
            output = self.recommender(batch)
        if self.multitask is not None:
            loss, parts = self.multitask.loss(output, batch["target"])
            for name, value in parts.items():
                self.log(name, value, on_step=True, on_epoch=True, batch_size=len(batch["user"]))
        else:
            loss = task_loss(
                self.task_name,
                self.loss_name,
                output,
                batch["target"],
                self.temperature,
                self.item_log_frequency,
                self.class_weights,
            )
        if self.l2 > 0 and hasattr(self.recommender, "l2_penalty"):
            loss = loss + self.l2 * self.recommender.l2_penalty(batch)
        if not torch.isfinite(loss):
            raise TrainingDivergedError(
                f"training loss became {loss.item()} at step {self.global_step} "
                f"(epoch {self.current_epoch}); try a lower learning rate. The last good checkpoint is kept"
            )
        self.log(
            "train/loss", loss, on_step=True, on_epoch=True, prog_bar=True, batch_size=len(batch["user"])
        )
        return loss

    def configure_optimizers(self):
        total = total_optimizer_steps(self.trainer, self.train_batches)
        return build_optimizer(self, self.optimizer_cfg, self.scheduler_cfg, total)

    # ---- evaluation -----------------------------------------------------------------------------
    def _sum_in_float64(self, stage: str) -> None:
        """Sums of per-user / per-row values in float64: totals then do not depend on how rows fall into
        batches and DDP processes. Set at each epoch start: Lightning's setup resets a metric's dtype."""
        sums = self.task_name in (TaskName.ranking, TaskName.rating) or self.loss_name == LossName.mse
        self.sum_dtype = torch.float32 if self.device.type == "mps" else torch.float64  # MPS has no float64
        if sums:
            self.metrics[stage].set_dtype(self.sum_dtype)
            if self.domain_metrics is not None:
                for collection in self.domain_metrics.stages[stage].values():
                    collection.set_dtype(self.sum_dtype)
        if self.multitask is not None:
            self.multitask.set_sum_dtype(stage, self.sum_dtype)

    def _prepare_catalogue(self, stage: str) -> None:
        if self.task_name == TaskName.ranking:
            self.catalogue = self.recommender.catalogue_vectors(
                self.item_source.item_batches(self.catalogue_batch_size)
            )
            ranked = self.item_source.ranked_items(stage)
            self.ranked_items = None if ranked is None else ranked.to(self.catalogue.device)

    def on_validation_epoch_start(self) -> None:
        self._sum_in_float64("val")
        self._prepare_catalogue("val")

    def _evaluate(self, batch: dict, stage: str) -> None:
        metrics = self.metrics[stage]
        if self.task_name == TaskName.ranking:
            users = self.recommender.encode_users(batch["user"])
            depth = max(self.topk)
            if "candidates" in batch:
                top = top_k_candidates(users, self.catalogue, batch["candidates"], depth)
            elif self.domains is not None:  # each user ranks their own domain's items only
                top = top_k_within_domains(
                    users,
                    self.user_domain[batch["user"]],
                    self.catalogue,
                    SeenPairs.of(batch["seen_pairs"]),
                    depth,
                    self.domains.item_ranges(),
                    self.ranked_items,
                )
            elif self.ranked_items is not None:  # cold items, ranked among themselves; none was seen
                no_exclusions = SeenPairs.of(batch["seen_pairs"][:, :0])
                local = top_k_items(users, self.catalogue[self.ranked_items], no_exclusions, depth)
                top = self.ranked_items[local]
            else:
                exclude = SeenPairs.of(batch["seen_pairs"])
                top = top_k_items(users, self.catalogue, exclude, depth, buffer=self.score_buffer)
            values = ranking_metrics(top, batch["target_items"], self.topk)
            for name, per_user in values.items():
                metrics[name].update(
                    per_user.to(self.sum_dtype)
                )  # float64 batch sums too (see _sum_in_float64)
            if self.domain_metrics is not None:
                self.domain_metrics.update(
                    stage,
                    self.user_domain[batch["user"]],
                    lambda domain, rows: [
                        domain[n].update(v[rows].to(self.sum_dtype)) for n, v in values.items()
                    ],
                )
            if stage == "test":
                self.test_rows.append({"user": batch["user"], **values, **self._domain_column(batch)})
            return
        output = self.recommender(batch)
        if self.multitask is not None:
            rows = self.multitask.update(stage, output, batch["target"], batch["user"], self.sum_dtype)
            if stage == "test":
                self.test_rows.append({"user": batch["user"], "item": batch["item"], **rows})
            return
        target = batch["target"]
        if self.task_name == TaskName.ctr:
            output = torch.sigmoid(output)
            target = target.long()
            self.group_auc[stage].update(output, target, batch["user"])
        summed = (output, target)
        if target.is_floating_point():  # regression: float64 batch sums too (see _sum_in_float64)
            summed = (output.to(self.sum_dtype), target.to(self.sum_dtype))
        metrics.update(*summed)
        if self.domain_metrics is not None:
            self.domain_metrics.update(
                stage,
                self.user_domain[batch["user"]],
                lambda domain, rows: domain.update(*(x[rows] for x in summed)),
            )
        if stage == "test":
            self.test_rows.append(
                {
                    "user": batch["user"],
                    "item": batch["item"],
                    **per_row_values(output, target),
                    **self._domain_column(batch),
                }
            )

    def on_test_epoch_start(self) -> None:
        self.test_rows = []
        self._sum_in_float64("test")
        self._prepare_catalogue("test")

    def _domain_column(self, batch: dict) -> dict[str, torch.Tensor]:
        """{"domain": each row's domain code} for per_user.parquet; {} for one data set."""
        return {} if self.domains is None else {"domain": self.user_domain[batch["user"]]}

    def per_user_table(self) -> dict[str, np.ndarray]:
        """Test-split values per user (ranking) or per row (other tasks), for paired significance tests."""
        if not self.test_rows:
            return {}
        table = {
            key: torch.cat([row[key] for row in self.test_rows]).cpu().numpy() for key in self.test_rows[0]
        }
        if self.domains is not None:
            table["domain"] = np.asarray(self.domains.names, dtype=object)[table["domain"]]
        return table

    def validation_step(self, batch: dict, batch_index: int) -> None:
        self._evaluate(batch, "val")

    def test_step(self, batch: dict, batch_index: int) -> None:
        self._evaluate(batch, "test")

    def _log_epoch(self, stage: str) -> None:
        if self.multitask is not None:
            values = self.multitask.compute(stage)  # `<task>/<metric>`
        else:
            values = self.metrics[stage].compute()
        if self.group_auc is not None:
            values.update(self.group_auc[stage].compute_all())  # gauc (RecBole) and gauc_rows
            self.group_auc[stage].reset()
        if self.domain_metrics is not None:
            values.update(self.domain_metrics.compute(stage))
        for name, value in values.items():
            # already synchronised across processes by torchmetrics
            self.log(f"{stage}/{name}", value, prog_bar=(stage == "val"))
        self.metrics[stage].reset()
        self.catalogue = None
        self.score_buffer = ScoreBuffer()  # the epoch's score memory is released

    def on_validation_epoch_end(self) -> None:
        self._log_epoch("val")

    def on_test_epoch_end(self) -> None:
        self._log_epoch("test")
