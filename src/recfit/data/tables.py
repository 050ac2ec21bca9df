"""The canonical tables every reader produces, whatever the file format."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from recfit.errors import DataError

# Interaction columns. `user` and `item` are dense codes 0..n-1; the others are optional.
USER, ITEM, RATING, LABEL, TIMESTAMP = "user", "item", "rating", "label", "timestamp"


@dataclass
class RecData:
    """One data set in canonical form.

    interactions: one row per (user, item) event with dense integer codes in `user` and `item`,
        and optionally `rating` (float), `label` (class code) and `timestamp`.
    item_text / item_images / user_text: item and user content, indexed by code.
    user_features / item_features: side information for feature-based models (e.g. age, genres);
        object or category columns are categorical, numeric and bool columns are numeric.
    label_names: class names for `label` (text classification).
    user_ids / item_ids: the raw id of each code as the source files spell it (None: the code is the id),
        so `recfit recommend --user ID` takes the data set's own ids; item_titles: short display names.
    domain_names / user_domain / item_domain: with several domains, each user's and item's domain code
        (users and items of one domain hold consecutive codes).
    """

    name: str
    interactions: pd.DataFrame
    num_users: int
    num_items: int
    item_text: list[str] | None = None
    item_images: np.ndarray | None = None  # (num_items, H, W, 3) uint8
    user_text: list[str] | None = None
    label_names: list[str] | None = None
    user_features: pd.DataFrame | None = None  # one row per user code: categorical or numeric columns
    item_features: pd.DataFrame | None = None  # one row per item code: categorical or numeric columns
    skipped_rows: dict[str, int] = field(
        default_factory=dict
    )  # dataset.reader.on_bad_rows=skip: reason -> rows
    user_ids: np.ndarray | None = None  # raw id per user code
    item_ids: np.ndarray | None = None  # raw id per item code
    item_titles: list[str] | None = None  # display name per item code (None: item_text)
    # multi-domain data (recfit.data.sources.multi_domain); None for one data set
    domain_names: list[str] | None = None  # the domains, in code order
    user_domain: np.ndarray | None = None  # domain code per user code
    item_domain: np.ndarray | None = None  # domain code per item code

    def __post_init__(self) -> None:
        frame = self.interactions
        for column in (USER, ITEM):
            if column not in frame.columns:
                raise DataError(f"{self.name}: interactions have no '{column}' column")
        if frame.empty:
            raise DataError(f"{self.name}: no interactions")
        for column, size in ((USER, self.num_users), (ITEM, self.num_items)):
            codes = frame[column].to_numpy()
            if codes.min() < 0 or codes.max() >= size:
                raise DataError(f"{self.name}: '{column}' codes must lie in 0..{size - 1}")
        if self.item_text is not None and len(self.item_text) != self.num_items:
            raise DataError(f"{self.name}: {len(self.item_text)} item texts for {self.num_items} items")

    def summary(self) -> str:
        """One line: sizes of the data set."""
        return (
            f"{self.name}: {len(self.interactions):,} interactions, "
            f"{self.num_users:,} users, {self.num_items:,} items"
        )
