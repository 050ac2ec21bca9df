"""Per-class loss weights for imbalanced labels (`dataset.class_weights`).

`balanced` gives class c the weight n / (k * n_c) (n training rows, k classes, n_c rows of class c):
the weights scikit-learn calls "balanced", under which every class contributes the same total weight.
Cross-entropy takes them as its per-class `weight`; binary cross-entropy (ctr) as
`pos_weight = w[1] / w[0]`, PyTorch's own knob for the positive class, so only their ratio matters.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from recfit.config.balance import BALANCED
from recfit.errors import DataError


def class_weights(
    spec: str | Sequence[float] | None,
    labels: np.ndarray,
    num_classes: int,
    class_names: Sequence[str] | None = None,
) -> torch.Tensor | None:
    """The weight of each class 0..num_classes-1, from `balanced` or an explicit list; None for null."""
    if spec is None:
        return None
    names = list(class_names) if class_names else [str(c) for c in range(num_classes)]
    if spec == BALANCED:
        counts = np.bincount(np.asarray(labels, dtype=np.int64), minlength=num_classes)
        if (counts == 0).any():
            missing = names[int(np.flatnonzero(counts == 0)[0])]
            raise DataError(f"dataset.class_weights=balanced: class '{missing}' has no training rows")
        return torch.as_tensor(len(labels) / (num_classes * counts), dtype=torch.float32)
    weights = [float(w) for w in spec]
    if len(weights) != num_classes:
        raise DataError(
            f"dataset.class_weights has {len(weights)} weights for {num_classes} classes ({', '.join(names)})"
        )
    return torch.tensor(weights, dtype=torch.float32)
