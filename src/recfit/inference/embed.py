"""`recfit embed RUN_DIR --items`: every item's vector, as the model scores with it, to Parquet.

One row per item: `item_id` (the raw id of the data set's files, as text), `item_code` (recfit's
dense code), `title`, and `vector`, a list column of float32 (one list of `embedding_dim` numbers per
item; `pandas.read_parquet(...)["vector"]` gives arrays, `np.stack` makes the matrix).
Vectors are L2-normalised when the model normalises them (cosine-scored ranking), and include a
two-tower's item ID embedding. Only dot-product models (two_tower, mf) have item vectors.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from recfit.errors import RecfitError
from recfit.inference.recommend import catalogue_vectors, item_id, item_title

DEFAULT_FILE = Path("embeddings") / "items.parquet"


def default_output(run_dir: Path) -> Path:
    return run_dir / DEFAULT_FILE


def export_item_vectors(loaded: Any, output: Path) -> Path:
    """Write the item vectors of a loaded run to `output` (Parquet, atomically); returns the path."""
    import pandas as pd

    from recfit.models.dot_product import DotProductRecommender
    from recfit.run_folder import replace_atomic

    if not isinstance(loaded.recommender, DotProductRecommender):
        raise RecfitError(
            f"a {loaded.cfg.model.name.value} model has no item vectors to export (two_tower and mf have)"
        )
    vectors = catalogue_vectors(loaded).cpu().numpy().astype(np.float32)
    data = loaded.data
    codes = np.arange(data.num_items)
    frame = pd.DataFrame(
        {
            "item_id": [item_id(data, c) for c in codes],
            "item_code": codes,
            "title": [item_title(data, c) for c in codes],
            "vector": list(vectors),
        }
    )
    output.parent.mkdir(parents=True, exist_ok=True)
    replace_atomic(output, lambda temporary: frame.to_parquet(temporary, index=False))
    return output
