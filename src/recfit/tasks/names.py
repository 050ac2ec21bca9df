"""The names of the built-in tasks and of the losses, as config values (`task=rating`, `loss=mse`).

Below `recfit.config` (whose schema re-exports them) so that tasks, config and compare share them
without importing Hydra.
"""

from __future__ import annotations

from enum import Enum


class TaskName(str, Enum):
    """The built-in tasks; the registry (recfit.tasks.registry) holds these and any added task."""

    rating = "rating"
    ctr = "ctr"
    ranking = "ranking"
    text_classification = "text_classification"
    next_item = "next_item"


class LossName(str, Enum):
    mse = "mse"
    bce = "bce"
    cross_entropy = "cross_entropy"
    bpr = "bpr"


class Negatives(str, Enum):
    """What a next-item softmax puts against each target item (`loss.negatives`)."""

    full = "full"  # every item of the catalogue
    sampled = "sampled"  # loss.num_negatives items drawn by training frequency, shared by the batch
    in_batch = "in_batch"  # the other target items of the batch


class HistoryExamples(str, Enum):
    """How next-item training cuts each user's training history into rows (`task.next_item_examples`)."""

    prefixes = "prefixes"  # every prefix is a row predicting its next item (RecBole's augmentation)
    window = "window"  # one row per user: every position of the latest window predicts its next item (SASRec)
