"""MovieLens-100K from the raw GroupLens files (u.data, u.item in Latin-1, u.user)."""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd

from recfit.data.download import download_zip, verify
from recfit.data.tables import ITEM, RATING, TIMESTAMP, USER, RecData
from recfit.errors import DataError

log = logging.getLogger(__name__)

URL = "https://files.grouplens.org/datasets/movielens/ml-100k.zip"
ZIP_MD5 = "0e33842e24a9c977be4e0107933c0723"  # the published checksum of the official archive
# sha256 of the files read, so a download that unpacks to edited data is refused as well.
FILE_SHA256 = {
    "u.data": "06416e597f82b7342361e41163890c81036900f418ad91315590814211dca490",
    "u.item": "553841ebc7de3a0fd0d6b62a204ea30c1e651aacfb2814c7a6584ac52f2c5701",
    "u.user": "f120e114da2e8cf314fd28f99417c94ae9ddf1cb6db8ce0e4b5995d40e90e62c",
}
GENRES = [
    "unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime", "Documentary",
    "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi", "Thriller",
    "War", "Western",
]  # fmt: skip
GENDERS = {"M": "man", "F": "woman"}


def read_movielens_100k(path: str | None = None, download_dir: str = "data") -> RecData:
    """Read MovieLens-100K from `path`, or download the official zip into `download_dir` and verify it.

    Item text: "Title (year). Genres: A, B." User text: "A 24-year-old man, technician."
    """
    if path is None:
        folder = download_zip(URL, Path(download_dir), ZIP_MD5) / "ml-100k"
        for name, digest in FILE_SHA256.items():
            verify(folder / name, "sha256", digest)
    else:
        folder = Path(path).expanduser()
    for name in FILE_SHA256:
        if not (folder / name).is_file():
            raise DataError(f"MovieLens-100K file missing: {folder / name}")

    ratings = _read(folder / "u.data", "\t", [USER, ITEM, RATING, TIMESTAMP], "utf-8")
    items = _read(folder / "u.item", "|", ["id", "title", "release", "video", "url", *GENRES], "latin-1")
    users = _read(folder / "u.user", "|", ["id", "age", "gender", "occupation", "zip"], "utf-8")

    item_ids = items["id"].to_numpy()
    user_ids = users["id"].to_numpy()
    unknown_items = ~ratings[ITEM].isin(item_ids)
    unknown_users = ~ratings[USER].isin(user_ids)
    if unknown_items.any() or unknown_users.any():
        raise DataError(
            f"u.data names {int(unknown_items.sum())} ratings of unknown items and "
            f"{int(unknown_users.sum())} of unknown users"
        )
    ratings[USER] = pd.Index(user_ids).get_indexer(ratings[USER])
    ratings[ITEM] = pd.Index(item_ids).get_indexer(ratings[ITEM])
    ratings[RATING] = ratings[RATING].astype("float32")

    genre_flags = items[GENRES].to_numpy().astype(bool)
    item_text = [
        f"{title}. Genres: {', '.join(g for g, on in zip(GENRES, flags, strict=True) if on)}."
        for title, flags in zip(items["title"], genre_flags, strict=True)
    ]
    user_text = [
        f"A {age}-year-old {GENDERS.get(gender, 'person')}, {occupation}."
        for age, gender, occupation in zip(users["age"], users["gender"], users["occupation"], strict=True)
    ]
    return RecData(
        name="movielens_100k",
        interactions=ratings,
        num_users=len(users),
        num_items=len(items),
        item_text=item_text,
        user_text=user_text,
    )


def _read(file: Path, sep: str, names: list[str], encoding: str) -> pd.DataFrame:
    try:
        frame = pd.read_csv(file, sep=sep, names=names, header=None, encoding=encoding, engine="c")
    except (UnicodeDecodeError, pd.errors.ParserError, ValueError) as error:
        raise DataError(f"cannot read {file}: {str(error).splitlines()[0]}") from None
    if frame.isna().all(axis=1).any() or len(frame.columns) != len(names):
        raise DataError(f"cannot read {file}: expected {len(names)} '{sep}'-separated fields per line")
    return frame
