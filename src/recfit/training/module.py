"""The LightningModule: a recommender, its tasks' losses and metrics (recfit.tasks), its optimizer."""

from __future__ import annotations

from functools import partial

import lightning.pytorch as pl
import numpy as np
import torch
from lightning.pytorch.trainer.states import TrainerFn
from omegaconf import DictConfig
from torch import nn

from recfit.data.datamodule import Catalogue
from recfit.errors import TrainingDivergedError
from recfit.evaluation.ranking import ScoreBuffer, SeenPairs, top_k_candidates, top_k_items
from recfit.tasks.base import Task
from recfit.tasks.registry import make_task
from recfit.training.checkpoint_state import validation_metrics_of
from recfit.training.domains import DomainLayout, DomainMetrics, top_k_within_domains
from recfit.training.frozen_reference import FrozenWeights, restore_into
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
    `val/<task>/<metric>`).

    What a task is (its loss, its metrics, what it asks of the model) is its class in recfit.tasks; this
    module runs its tasks alike, one or several (a single task is a multi-task run with one task), and
    owns what they share: the recommender, the optimizer, the catalogue for ranking, the domains.
    """

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
        # one task alone, or several (tasks=[rating,ctr]): each with its default loss, logged under its name
        self.tasks: list[Task] = (
            [make_task(name, task, None, f"{name}/") for name in multitask.task_names]
            if multitask is not None
            else [make_task(task.name, task, loss.name)]
        )
        self.loss_settings = loss  # what a task's loss reads besides these (next_item: its negatives)
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
        use_logq = item_log_frequency is not None and any(t.corrects_popularity(loss) for t in self.tasks)
        self.register_buffer("item_log_frequency", item_log_frequency if use_logq else None, persistent=False)
        self.register_buffer("class_weights", class_weights, persistent=False)  # dataset.class_weights
        self.metrics = nn.ModuleDict(
            {
                stage: nn.ModuleDict({t.name: t.new_metrics(num_classes) for t in self.tasks})
                for stage in STAGES
            }
        )
        # metrics that need each row's user as well (ctr's GAUC) sit beside the collections
        self.row_user_metrics = nn.ModuleDict(
            {
                stage: nn.ModuleDict(
                    {t.name: m for t in self.tasks if (m := t.new_row_user_metric()) is not None}
                )
                for stage in STAGES
            }
        )
        # multi-domain data: domains kept apart in training and ranking, metrics also per domain
        self.domains = domains
        for side in ("user_domain", "item_domain"):
            self.register_buffer(side, None if domains is None else getattr(domains, side), persistent=False)
        self.domain_metrics = None
        if domains is not None:  # one task (multi-task runs take one data set)
            self.domain_metrics = DomainMetrics(
                domains.names, STAGES, lambda: self.tasks[0].new_metrics(num_classes)
            )
        # several tasks: the weighting of their losses
        self.multitask = multitask
        self.test_rows: list[dict[str, torch.Tensor]] = []
        # data-derived caches (frozen item vectors, frozen-layer states, logQ) are built alike on every
        # rank: DDP must not broadcast them, possibly gigabytes, from rank 0 at every step
        self._ddp_params_and_buffers_to_ignore = non_persistent_buffers(self)
        self.sum_dtype = torch.float64
        self.frozen_weights: FrozenWeights | None = None  # set by a training run: checkpoints reference them

    def _column(self, values: torch.Tensor, column: int) -> torch.Tensor:
        """Task `column`'s share of outputs or targets: [B, T] with several tasks, the whole with one."""
        return values if len(self.tasks) == 1 else values[:, column]

    # ---- training -------------------------------------------------------------------------------
    def training_step(self, batch: dict, batch_index: int) -> torch.Tensor:
        # the tasks of a multi-task run all score rows: one forward pass serves them all
        output = self.tasks[0].training_output(self, batch)
        parts = [
            task.loss_value(self._column(output, column), self._column(batch["target"], column), self)
            for column, task in enumerate(self.tasks)
        ]
        if self.multitask is not None:
            loss, logged = self.multitask.combine(parts)
            for name, value in logged.items():
                self.log(name, value, on_step=True, on_epoch=True, batch_size=len(batch["user"]))
        else:
            (loss,) = parts
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

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        if self.trainer.state.fn == TrainerFn.FITTING:
            validation_metrics_of(checkpoint, self.trainer.callback_metrics)
        if self.frozen_weights is not None:
            self.frozen_weights.strip(self, checkpoint)

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        restore_into(self, checkpoint)

    def configure_optimizers(self):
        total = total_optimizer_steps(self.trainer, self.train_batches)
        return build_optimizer(self, self.optimizer_cfg, self.scheduler_cfg, total)

    # ---- evaluation -----------------------------------------------------------------------------
    def _sum_dtype(self, task: Task) -> torch.dtype | None:
        """The dtype a task's metric sums run in: float64 (float32 on MPS) when it asks for it, and for
        every task of a multi-task run (log loss included); None: as the values come."""
        return self.sum_dtype if len(self.tasks) > 1 or task.sums_in_float64 else None

    def _sum_in_float64(self, stage: str) -> None:
        """Sums of per-user / per-row values in float64: totals then do not depend on how rows fall into
        batches and DDP processes. Set at each epoch start: Lightning's setup resets a metric's dtype."""
        self.sum_dtype = torch.float32 if self.device.type == "mps" else torch.float64  # MPS has no float64
        for task in self.tasks:
            if self._sum_dtype(task) is None:
                continue
            self.metrics[stage][task.name].set_dtype(self.sum_dtype)
            if self.domain_metrics is not None:
                for collection in self.domain_metrics.stages[stage].values():
                    collection.set_dtype(self.sum_dtype)

    def _prepare_catalogue(self, stage: str) -> None:
        if any(task.ranks_catalogue for task in self.tasks):
            self.catalogue = self.recommender.catalogue_vectors(
                self.item_source.item_batches(self.catalogue_batch_size)
            )
            ranked = self.item_source.ranked_items(stage)
            self.ranked_items = None if ranked is None else ranked.to(self.catalogue.device)

    def top_k(self, batch: dict, depth: int) -> torch.Tensor:
        """[B, depth] the best item codes for each user of an evaluation batch, from the catalogue."""
        users = self.recommender.encode_users(batch["user"])
        if "candidates" in batch:
            return top_k_candidates(users, self.catalogue, batch["candidates"], depth)
        if self.domains is not None:  # each user ranks their own domain's items only
            return top_k_within_domains(
                users,
                self.user_domain[batch["user"]],
                self.catalogue,
                SeenPairs.of(batch["seen_pairs"]),
                depth,
                self.domains.item_ranges(),
                self.ranked_items,
            )
        if self.ranked_items is not None:  # cold items, ranked among themselves; none was seen
            no_exclusions = SeenPairs.of(batch["seen_pairs"][:, :0])
            local = top_k_items(users, self.catalogue[self.ranked_items], no_exclusions, depth)
            return self.ranked_items[local]
        exclude = SeenPairs.of(batch["seen_pairs"])
        return top_k_items(users, self.catalogue, exclude, depth, buffer=self.score_buffer)

    def _row_user_metric(self, stage: str, task: Task) -> nn.Module | None:
        metrics = self.row_user_metrics[stage]
        return metrics[task.name] if task.name in metrics else None  # noqa: SIM401 (ModuleDict has no get)

    def on_validation_epoch_start(self) -> None:
        self._sum_in_float64("val")
        self._prepare_catalogue("val")

    def _evaluate(self, batch: dict, stage: str) -> None:
        output, target = self.tasks[0].evaluation_output(self, batch), batch.get("target")
        rows = {"user": batch["user"], **self.tasks[0].row_identity(batch)}
        update_domains = None
        if self.domain_metrics is not None:
            update_domains = partial(self.domain_metrics.update, stage, self.user_domain[batch["user"]])
        for column, task in enumerate(self.tasks):
            values = task.evaluate(
                self,
                batch,
                None if output is None else self._column(output, column),
                None if target is None else self._column(target, column),
                self.metrics[stage][task.name],
                self._row_user_metric(stage, task),
                self._sum_dtype(task),
                update_domains,
            )
            rows.update({task.prefix + key: value for key, value in values.items()})
        if stage == "test":
            self.test_rows.append({**rows, **self._domain_column(batch)})

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
        values: dict[str, torch.Tensor] = {}
        for task in self.tasks:
            computed = task.compute(self.metrics[stage][task.name], self._row_user_metric(stage, task))
            values.update({task.prefix + key: value for key, value in computed.items()})
        if self.domain_metrics is not None:
            values.update(self.domain_metrics.compute(stage))
        for name, value in values.items():
            # already synchronised across processes by torchmetrics
            self.log(f"{stage}/{name}", value, prog_bar=(stage == "val"))
        self.catalogue = None
        self.score_buffer = ScoreBuffer()  # the epoch's score memory is released

    def on_validation_epoch_end(self) -> None:
        self._log_epoch("val")

    def on_test_epoch_end(self) -> None:
        self._log_epoch("test")
