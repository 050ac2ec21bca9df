"""The Task base class: everything recfit needs to know about one task, in one object.

A task class has two halves:

- what `recfit.config` and `recfit compare` read before anything heavy loads (class attributes and
  torch-free methods): its name, the shape of output it needs from a model, the losses that fit, the
  metrics it reports (with their direction and per-row column), and its own config checks;
- what training calls (methods that import torch when first called): the target of each interaction,
  the number of outputs, where predictions start, what the model is asked for in a training step, the
  loss, and the metric states with their update and compute.

A run builds one instance per task, from `cfg.task` and the loss. A single-task run is a multi-task run
with one task: `RecModule` loops over its tasks; the only difference is the names it logs
(`val/<metric>` alone, `val/<task>/<metric>` with several: `prefix`).
"""

from __future__ import annotations

from collections.abc import Callable
from enum import Enum
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import pandas as pd

from recfit.errors import DataError
from recfit.tasks.metrics import Metric
from recfit.tasks.names import LossName

if TYPE_CHECKING:  # only for annotations: importing this module loads no torch
    import torch
    import torchmetrics
    from torch import nn

    from recfit.data.tables import RecData

RATING_COLUMN = (
    "rating"  # recfit.data.tables.RATING, without importing data (it loads torch-free, but slower)
)


class TaskShape(str, Enum):
    """What a task needs from a model; a model declares the shapes it gives (recfit.models.declarations)."""

    pair_score = "pair_score"  # one output (or one logit per class) for each (user, item) row
    catalogue_ranking = "catalogue_ranking"  # user and item vectors: each user ranks the catalogue
    row_label = "row_label"  # one output (or one logit per class) for each labelled text row


class Task:
    """One task. Subclasses set the class attributes and override what differs from a pointwise task.

    settings: the run's `task` config (topk, rating_threshold, candidates), or None where only the
        names matter; loss: the loss name, None for the task's default (its first in `losses`);
        prefix: "" in a single-task run, "<name>/" in a multi-task one (logged keys, per-row columns).
    """

    name: ClassVar[str]
    shape: ClassVar[TaskShape]
    losses: ClassVar[tuple[LossName, ...]]  # the losses that fit; the first is the default
    metric_catalog: ClassVar[tuple[Metric, ...]]  # every metric it may report, under any loss
    multitask: ClassVar[bool] = False  # may share a model with other such tasks (`tasks=[...]`)
    multi_domain: ClassVar[bool] = True  # trains on several data sets at once (`dataset=[a,b]`)
    labelled_text: ClassVar[bool] = False  # reads labelled text rows (dataset=text_csv), and only it does
    class_names: ClassVar[tuple[str, ...] | None] = None  # its classes when fixed (class weights' order)
    reads_histories: ClassVar[bool] = False  # rows are user histories: user encoders apply (next_item)

    def __init__(self, settings: Any = None, loss: LossName | str | None = None, prefix: str = "") -> None:
        self.settings = settings
        self.loss = LossName(loss) if loss is not None else self.losses[0]
        self.prefix = prefix

    def __repr__(self) -> str:
        return f"{type(self).__name__}(loss={self.loss.value})"

    # ---- config and compare (torch-free) ----------------------------------------------------------
    @property
    def topk(self) -> list[int]:
        return list(self.settings.topk)

    def metrics(self) -> list[Metric]:
        """The metrics a run of this task with this loss reports."""
        return list(self.metric_catalog)

    def metric_names(self) -> list[str]:
        """Every metric a run reports, without the val/ or test/ prefix (nor the task's own)."""
        return [name for metric in self.metrics() for name in metric.names(self.topk)]

    def over_classes(self) -> bool:
        """Whether the loss is over classes, so class weights and resampling apply."""
        return False

    def check(self, cfg: Any) -> None:
        """Raise recfit.errors.ConfigError (one line) for settings this task cannot run with."""

    def check_multi_domain(self, cfg: Any) -> None:
        """Raise ConfigError for settings this task cannot keep domains apart with (`dataset=[a,b]`)."""

    # ---- training: data and model set-up ----------------------------------------------------------
    @property
    def ranks_catalogue(self) -> bool:
        """Evaluated by ranking the catalogue for each user (evaluation batches hold users, not rows)."""
        return self.shape == TaskShape.catalogue_ranking

    @property
    def needs_negatives(self) -> bool:
        """Training batches carry one sampled negative item per row."""
        return False

    def sequence_plan(self, cfg: Any) -> Any:
        """For a task whose rows are user histories: how the data module cuts them
        (recfit.data.next_item_data.SequencePlan); None: rows are interactions."""
        return None

    def protocol(self, cfg: Any, num_items: int, domains: list[str] | None) -> str:
        """How the held-out data is evaluated, for the run record."""
        return "pointwise metrics on the held-out interactions"

    def targets(self, frame: pd.DataFrame) -> np.ndarray:
        """The target of each interaction of a split (a float32 or int64 array, one value per row)."""
        raise NotImplementedError

    def ratings(self, frame: pd.DataFrame, what: str = "ratings") -> np.ndarray:
        """The rating column as float32; a one-line DataError when the data set has none."""
        if RATING_COLUMN not in frame.columns:
            raise DataError(
                f"task '{self.name}' with loss '{self.loss.value}' needs {what}, and this data set has none"
            )
        return frame[RATING_COLUMN].to_numpy(dtype=np.float32)

    def num_outputs(self, data: RecData) -> int:
        """How many outputs per row the model gives for this task (classes, for a loss over classes)."""
        return 1

    def output_offset(self, train_targets: np.ndarray) -> float:
        """Where predictions start, before training (e.g. the mean training target)."""
        return 0.0

    def recommender_options(self) -> dict[str, bool]:
        """Model arguments the task decides: L2-normalised vectors, and per-user / per-item biases."""
        return {"normalize": False, "biases": False}

    def corrects_popularity(self, loss_cfg: Any) -> bool:
        """Whether the loss subtracts each item's log training frequency (logQ correction)."""
        return False

    # ---- training: steps (torch) ------------------------------------------------------------------
    def training_output(self, module: Any, batch: dict) -> Any:
        """What the loss takes from the model in a training step: by default, its output for each row."""
        return module.recommender(batch)

    def loss_value(self, output: Any, target: torch.Tensor, module: Any) -> torch.Tensor:
        """The training loss of one batch. `module` (RecModule) holds the loss settings and class weights."""
        raise NotImplementedError

    # ---- evaluation (torch) -----------------------------------------------------------------------
    def new_metrics(self, num_classes: int) -> torchmetrics.MetricCollection:
        """Fresh metric states for one stage, summed over batches (made once more per domain)."""
        raise NotImplementedError

    def new_row_user_metric(self) -> nn.Module | None:
        """A metric that also needs each row's user (ctr: GAUC), for the whole stage only."""
        return None

    @property
    def sums_in_float64(self) -> bool:
        """Whether its metric sums run in float64 (so totals do not depend on how rows fall into batches)."""
        return False

    def evaluation_output(self, module: Any, batch: dict) -> Any:
        """The model's output for an evaluation batch, shared by the tasks of a multi-task run."""
        return module.recommender(batch)

    def row_identity(self, batch: dict) -> dict[str, torch.Tensor]:
        """The per_user.parquet columns besides `user` that say which row a value belongs to."""
        return {"item": batch["item"]}

    def evaluate(
        self,
        module: Any,
        batch: dict,
        output: torch.Tensor,
        target: torch.Tensor,
        metrics: torchmetrics.MetricCollection,
        row_user_metric: nn.Module | None,
        dtype: torch.dtype | None,
        update_domains: Callable[[Callable[[Any, torch.Tensor], Any]], None] | None,
    ) -> dict[str, torch.Tensor]:
        """Add one evaluation batch to the metrics; returns its per-row (or per-user) values.

        output, target: this task's column of the batch; dtype: float64 (or float32 on MPS) when the
        sums run in it, else None; update_domains(fn) calls fn(collection, rows) for each domain's rows.
        """
        from recfit.evaluation.pointwise import per_row_values

        prediction, truth = self.prediction(output), self.truth(target)
        if row_user_metric is not None:
            row_user_metric.update(prediction, truth, batch["user"])
        summed = (prediction, truth)
        if truth.is_floating_point():  # regression: float64 batch sums too
            summed = (prediction.to(module.sum_dtype), truth.to(module.sum_dtype))
        elif dtype is not None:
            summed = (prediction.to(dtype), truth)
        metrics.update(*summed)
        if update_domains is not None:
            update_domains(lambda domain, rows: domain.update(*(x[rows] for x in summed)))
        return per_row_values(prediction, truth)

    def prediction(self, output: torch.Tensor) -> torch.Tensor:
        """What the metrics compare: the output itself, or e.g. the probability of a logit."""
        return output

    def truth(self, target: torch.Tensor) -> torch.Tensor:
        """The target as the metrics take it (e.g. 0/1 labels as integers)."""
        return target

    def compute(
        self, metrics: torchmetrics.MetricCollection, row_user_metric: nn.Module | None
    ) -> dict[str, torch.Tensor]:
        """The stage's values (without prefix), and reset for the next epoch."""
        values = dict(metrics.compute())
        metrics.reset()
        return values


TaskClass = type[Task]
