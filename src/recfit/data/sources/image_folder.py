"""Items with images on disk: an items CSV mapping item ids to image files, plus an interactions CSV.

The folder `path` holds both files. `items.csv` has one row per item: its id, the image's path
relative to that folder, and optionally a text column (a title) for text backbones. `interactions.csv`
has `user,item[,rating,timestamp]` rows, where `item` is an id from items.csv. Every image is read
once, converted to RGB and resized to `image_size` x `image_size`; the backbone's image processor then
normalises them once for the whole run (recfit.data.encode.ImageContent).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd

from recfit.data.bad_rows import BadRows
from recfit.data.tables import ITEM, RATING, TIMESTAMP, USER, RecData
from recfit.errors import DataError

log = logging.getLogger(__name__)


def read_image_folder(
    path: str,
    items_file: str = "items.csv",
    interactions_file: str = "interactions.csv",
    item_column: str = "item_id",
    image_column: str = "image",
    text_column: str | None = None,
    image_size: int = 224,
    on_bad_rows: str = "error",
) -> RecData:
    """Read the items (with their images) and the interactions under `path`.

    An item whose image is missing or unreadable, or an interaction with an unknown item or a
    non-numeric rating, stops the read with one line (`on_bad_rows=error`) or is dropped and counted
    (`on_bad_rows=skip`).
    """
    folder = Path(path).expanduser()
    items_path, interactions_path = folder / items_file, folder / interactions_file
    items = _read_csv(items_path, [item_column, image_column, *([text_column] if text_column else [])])
    duplicated = items[item_column].duplicated()
    if duplicated.any():
        raise DataError(f"{items_path}: item id '{items[item_column][duplicated].iloc[0]}' appears twice")
    bad_items = BadRows(on_bad_rows, str(items_path))
    images, unusable = _load_images(folder, items, item_column, image_column, image_size)
    if unusable and bad_items.policy == "error":
        row, reason = next(iter(unusable.items()))
        others = f" (and {len(unusable) - 1} more)" if len(unusable) > 1 else ""
        raise DataError(
            f"{items_path} line {row + 2}: {reason}{others}; set dataset.reader.on_bad_rows=skip to drop them"
        )
    items = bad_items.drop(items, items.index.isin(list(unusable)), "whose image is missing or unreadable")
    images = [image for row, image in enumerate(images) if row not in unusable]

    frame = _read_csv(interactions_path, [USER, ITEM])
    bad_rows = BadRows(on_bad_rows, str(interactions_path))
    item_ids = pd.Index(items[item_column])
    frame = bad_rows.drop(frame, ~frame[ITEM].isin(item_ids), f"whose item is not in {items_file}")
    numeric = [column for column in (RATING, TIMESTAMP) if column in frame.columns]
    if numeric:
        frame = bad_rows.numeric(frame, numeric)
    if frame.empty:
        raise DataError(f"{interactions_path}: no interactions left to train on")
    user_ids = pd.Index(sorted(frame[USER].unique()))
    interactions = pd.DataFrame(
        {
            USER: user_ids.get_indexer(frame[USER]).astype(np.int64),
            ITEM: item_ids.get_indexer(frame[ITEM]).astype(np.int64),
            **{column: frame[column].astype("float64").to_numpy() for column in numeric},
        }
    )
    if RATING in interactions:
        interactions[RATING] = interactions[RATING].astype("float32")
    return RecData(
        name=folder.name,
        interactions=interactions,
        num_users=len(user_ids),
        num_items=len(item_ids),
        item_text=items[text_column].fillna("").tolist() if text_column else None,
        item_images=np.stack(images),
        user_ids=user_ids.to_numpy(),
        item_ids=item_ids.to_numpy(),
        skipped_rows={**bad_items.skipped, **bad_rows.skipped},
    )


def _read_csv(file: Path, columns: list[str]) -> pd.DataFrame:
    """A CSV read as text (ids stay strings: '007' is not 7), refused in one line if a column is missing."""
    if file.exists() and not file.is_file():  # a FIFO or device would block read_csv forever
        raise DataError(f"{file} is not a regular file")
    try:
        frame = pd.read_csv(file, dtype=str, keep_default_na=False, encoding="utf-8")
    except FileNotFoundError:
        raise DataError(f"file not found: {file}") from None
    except UnicodeDecodeError:
        raise DataError(f"{file} is not UTF-8 text: re-save it as UTF-8") from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as error:
        raise DataError(f"cannot parse {file}: {str(error).splitlines()[0]}") from None
    for column in columns:
        if column not in frame.columns:
            raise DataError(
                f"{file} has no column '{column}' (columns: {', '.join(map(str, frame.columns))})"
            )
    return frame.replace("", np.nan) if len(frame) else frame


def _load_images(
    folder: Path, items: pd.DataFrame, item_column: str, image_column: str, size: int
) -> tuple[list[np.ndarray | None], dict[int, str]]:
    """Each item's image as (size, size, 3) uint8, and why the unusable ones are unusable (by row)."""
    from PIL import Image, UnidentifiedImageError

    images: list[np.ndarray | None] = []
    unusable: dict[int, str] = {}
    for row, (item, relative) in enumerate(zip(items[item_column], items[image_column], strict=True)):
        image = None
        if not isinstance(relative, str):
            unusable[row] = f"item '{item}' has no image path"
        elif not (folder / relative).is_file():
            unusable[row] = f"image file not found for item '{item}': {folder / relative}"
        else:
            try:
                with Image.open(folder / relative) as opened:
                    # convert() decodes every pixel, so a truncated file fails here, not in training
                    image = np.asarray(opened.convert("RGB").resize((size, size), Image.Resampling.BILINEAR))
            except (UnidentifiedImageError, OSError, ValueError) as error:
                reason = str(error).splitlines()[0] if str(error) else type(error).__name__
                unusable[row] = f"cannot read image of item '{item}' ({folder / relative}): {reason}"
        images.append(image)
    return images, unusable
