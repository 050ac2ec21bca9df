"""What recfit knows about a metric by its name: which direction is better, and what to pair it on.

Torch-free: `recfit compare` reads these to sort runs and to pick the per_user.parquet column of a paired
test, and `recfit.config` to list what a task reports. Each metric states its direction once (as
RecBole's metric classes state `smaller`); the tasks (recfit.tasks) say which of them they report.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Metric:
    """One reported metric.

    name: as logged, after `val/` or `test/` (a ranking metric without its `@k`).
    smaller: lower is better.
    per_row: the per_user.parquet column whose mean is the metric, or a number the metric is monotone
        in (rmse pairs on squared error), for paired significance tests; None when the metric is no
        average over rows (AUC, F1). A ranking metric is stored per user under its own name.
    at_k: reported once per cut-off in `task.topk`, as `<name>@<k>`.
    """

    name: str
    smaller: bool = False
    per_row: str | None = None
    at_k: bool = False

    def names(self, topk: list[int] | tuple[int, ...]) -> list[str]:
        """The logged names: `ndcg@10`, `ndcg@20` for a ranking metric; the name itself otherwise."""
        return [f"{self.name}@{k}" for k in topk] if self.at_k else [self.name]

    def column(self, logged: str) -> str | None:
        """The per_user.parquet column holding `logged`'s value per user or row (None: none does)."""
        return logged if self.at_k else self.per_row


# regression: the per-row squared and absolute errors
RMSE = Metric("rmse", smaller=True, per_row="squared_error")
MAE = Metric("mae", smaller=True, per_row="abs_error")
REGRESSION = (RMSE, MAE)

# binary labels, from predicted probabilities
AUC = Metric("auc")
GAUC = Metric("gauc")  # AUC per user, averaged with weights = the user's positive rows (RecBole)
GAUC_ROWS = Metric("gauc_rows")  # AUC per user, averaged with weights = the user's rows
LOGLOSS = Metric("logloss", smaller=True, per_row="logloss")
ACCURACY = Metric("accuracy", per_row="correct")
F1 = Metric("f1")
BINARY = (AUC, GAUC, GAUC_ROWS, LOGLOSS, ACCURACY, F1)

# several classes, from logits: accuracy (micro) and F1 (macro)
CLASSIFICATION = (ACCURACY, F1)

# ranking, per user at each cut-off K
RANKING = tuple(Metric(name, at_k=True) for name in ("recall", "ndcg", "mrr", "hit", "precision", "map"))
