"""MovieLens-100K and -1M from the raw GroupLens files (titles in Latin-1).

100K: u.data, u.item, u.user, plus the predefined test sets u1..u5.test, ua.test, ub.test as bool
columns `fold_1`..`fold_5`, `fold_a`, `fold_b` (for `make_splits(..., "folds", fold="1")`).
1M: ratings.dat, movies.dat, users.dat, `::`-separated.
"""

from __future__ import annotations

import csv
import io
import logging
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd

from recfit.data.bad_rows import BadRows
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
# The predefined test sets of the 100K archive and their published sizes (the README's mku.sh):
# u1..u5 are a 5-fold cross-validation of all ratings, ua/ub hold out exactly 10 ratings per user.
FOLD_ROWS = {"1": 20_000, "2": 20_000, "3": 20_000, "4": 20_000, "5": 20_000, "a": 9_430, "b": 9_430}
FOLD_SHA256 = {
    "1": "18c6014a4b2c7324f250a63f8904a7b16b2b19f911129e346141507b0cbac950",
    "2": "4de658d1e04ed9104629509a2e2528fce833ac8e048280183f1df167632038c3",
    "3": "0f548b51c78327de4c156461d3e430b7e5579fe2b5681586a59416e48fd35f6d",
    "4": "7c02ad0a1e7ab1083c8b9d4b627203a051dd7b5eab46d99fa44de33470de8db9",
    "5": "351cc52e0d15b6c721466276fc24671d40936899e3d01fadeaf312915b8c5634",
    "a": "d0497e202417720f57a184ec8c66be2d1afa4ff41bb53787c57b28d6bf79bc42",
    "b": "d54a72d05730d5892062734b2bec73e976f9b713d18c828a18b968d6cce442da",
}

URL_1M = "https://files.grouplens.org/datasets/movielens/ml-1m.zip"
ZIP_MD5_1M = "c4d9eecfca2ab87c1945afe126590906"  # the published checksum of the official archive
FILES_1M = ("ratings.dat", "movies.dat", "users.dat")
# users.dat stores age and occupation as codes; the words are those of the ML-1M README.
AGES_1M = {1: "under 18", 18: "18-24", 25: "25-34", 35: "35-44", 45: "45-49", 50: "50-55", 56: "56 or older"}
OCCUPATIONS_1M = [
    "other or not specified", "academic/educator", "artist", "clerical/admin", "college/grad student",
    "customer service", "doctor/health care", "executive/managerial", "farmer", "homemaker",
    "K-12 student", "lawyer", "programmer", "retired", "sales/marketing", "scientist", "self-employed",
    "technician/engineer", "tradesman/craftsman", "unemployed", "writer",
]  # fmt: skip


# The documented scale of both data sets: whole stars from 1 to 5.
STARS = (1, 5)
# MovieLens began in 1997 (100K: 1997-98, 1M: 2000-03): a rating from before 1995 or the future is damage.
FIRST_TIMESTAMP = int(datetime(1995, 1, 1, tzinfo=timezone.utc).timestamp())
TIMESTAMP_RANGE = "1995-01-01 .. now (Unix seconds)"


def _check_values(ratings: pd.DataFrame, bad: BadRows) -> pd.DataFrame:
    """Drop (skip) or refuse (error) ratings off MovieLens's 1-5 star scale and impossible timestamps."""
    low, high = STARS
    off_scale = ~ratings[RATING].isin(range(low, high + 1))
    ratings = bad.drop(ratings, off_scale, f"with a rating other than a whole {low}-{high} stars")
    return bad.outside(ratings, TIMESTAMP, FIRST_TIMESTAMP, time.time() + 86_400, TIMESTAMP_RANGE)


def read_movielens_100k(
    path: str | None = None, download_dir: str = "data", on_bad_rows: str = "error"
) -> RecData:
    """Read MovieLens-100K from `path`, or download the official zip into `download_dir` and verify it.

    Item text: "Title (year). Genres: A, B." User text: "A 24-year-old man, technician."
    When the folder holds u1..u5.test, ua.test, ub.test, each present one adds a bool column
    `fold_<k>`: True on the rows of that test set (matched by (user, item), unique in u.data).
    """
    if path is None:
        folder = download_zip(URL, Path(download_dir), ZIP_MD5) / "ml-100k"
        for name, digest in FILE_SHA256.items():
            verify(folder / name, "sha256", digest)
        for fold, digest in FOLD_SHA256.items():
            verify(folder / f"u{fold}.test", "sha256", digest)
    else:
        folder = Path(path).expanduser()
    for name in FILE_SHA256:
        if not (folder / name).is_file():
            raise DataError(f"MovieLens-100K file missing: {folder / name}")

    ratings = _read(folder / "u.data", "\t", [USER, ITEM, RATING, TIMESTAMP], "utf-8")
    items = _read(folder / "u.item", "|", ["id", "title", "release", "video", "url", *GENRES], "latin-1")
    users = _read(folder / "u.user", "|", ["id", "age", "gender", "occupation", "zip"], "utf-8")

    bad = BadRows(on_bad_rows, str(folder / "u.data"))
    ratings = bad.numeric(ratings, [USER, ITEM, RATING, TIMESTAMP])
    ratings = _check_values(ratings, bad)
    item_ids = items["id"].to_numpy()
    user_ids = users["id"].to_numpy()
    ratings = bad.drop(ratings, ~ratings[ITEM].isin(item_ids), "naming an item missing from u.item")
    ratings = bad.drop(ratings, ~ratings[USER].isin(user_ids), "naming a user missing from u.user")
    ratings = bad.drop(
        ratings, ratings.duplicated([USER, ITEM], keep="last"), "repeating a (user, item) pair"
    )
    _add_fold_columns(ratings, folder, sum(bad.skipped.values()))
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
    # side features for feature-based models (RecBole's LR row: age, gender, occupation, year, genres)
    year = pd.to_datetime(items["release"], format="%d-%b-%Y", errors="coerce").dt.year
    item_features = pd.DataFrame(genre_flags, columns=[f"genre_{g}" for g in GENRES]).astype("float32")
    item_features.insert(0, "release_year", year.fillna(year.median()).astype("float32"))
    user_features = users[["age", "gender", "occupation"]].astype({"age": "float32"}).reset_index(drop=True)
    return RecData(
        skipped_rows=bad.skipped,
        user_features=user_features,
        item_features=item_features,
        name="movielens_100k",
        interactions=ratings,
        num_users=len(users),
        num_items=len(items),
        item_text=item_text,
        user_text=user_text,
        user_ids=user_ids,
        item_ids=item_ids,
        item_titles=[str(title) for title in items["title"]],
    )


def read_movielens_1m(
    path: str | None = None, download_dir: str = "data", on_bad_rows: str = "error"
) -> RecData:
    """Read MovieLens-1M from `path`, or download the official zip into `download_dir` and verify it.

    Items are every movie of movies.dat (also those nobody rated), users every line of users.dat.
    Item text: "Title (year). Genres: A, B." User text: "A man aged 25-34, programmer."
    """
    if path is None:
        folder = download_zip(URL_1M, Path(download_dir), ZIP_MD5_1M) / "ml-1m"
    else:
        folder = Path(path).expanduser()
    for name in FILES_1M:
        if not (folder / name).is_file():
            raise DataError(f"MovieLens-1M file missing: {folder / name}")

    ratings = _read_dat(folder / "ratings.dat", [USER, ITEM, RATING, TIMESTAMP])
    bad = BadRows(on_bad_rows, str(folder / "ratings.dat"))
    ratings = _check_values(bad.numeric(ratings, [USER, ITEM, RATING, TIMESTAMP]), bad)
    movies = _read_dat(folder / "movies.dat", ["id", "title", "genres"])
    users = _read_dat(folder / "users.dat", ["id", "gender", "age", "occupation", "zip"])

    item_ids, user_ids = pd.Index(movies["id"]), pd.Index(users["id"])
    ratings[USER] = user_ids.get_indexer(ratings[USER])
    ratings[ITEM] = item_ids.get_indexer(ratings[ITEM])
    unknown_users, unknown_items = int((ratings[USER] < 0).sum()), int((ratings[ITEM] < 0).sum())
    if unknown_items or unknown_users:
        raise DataError(
            f"ratings.dat names {unknown_items} ratings of unknown movies "
            f"and {unknown_users} of unknown users"
        )
    ratings[RATING] = ratings[RATING].astype("float32")

    item_text = [
        f"{title}. Genres: {genres.replace('|', ', ')}."
        for title, genres in zip(movies["title"], movies["genres"].astype(str), strict=True)
    ]
    user_text = [
        f"A {GENDERS.get(gender, 'person')} aged {AGES_1M.get(age, 'unknown')}, {_occupation(code)}."
        for gender, age, code in zip(users["gender"], users["age"], users["occupation"], strict=True)
    ]
    return RecData(
        skipped_rows=bad.skipped,
        name="movielens_1m",
        interactions=ratings,
        num_users=len(users),
        num_items=len(movies),
        item_text=item_text,
        user_text=user_text,
        user_ids=user_ids.to_numpy(),
        item_ids=item_ids.to_numpy(),
        item_titles=[str(title) for title in movies["title"]],
    )


def _occupation(code: int) -> str:
    return OCCUPATIONS_1M[code] if 0 <= code < len(OCCUPATIONS_1M) else "other or not specified"


def _add_fold_columns(ratings: pd.DataFrame, folder: Path, skipped: int = 0) -> None:
    """A bool column `fold_<k>` per predefined test set present in `folder` (raw ids, before coding).

    Rows skipped as bad (`on_bad_rows=skip`) leave the folds too: up to `skipped` of a test set's
    ratings may be missing from `ratings`; more means the files do not belong together.
    """
    width = int(ratings[ITEM].max()) + 1
    keys = ratings[USER].to_numpy(dtype=np.int64) * width + ratings[ITEM].to_numpy(dtype=np.int64)
    for fold, rows in FOLD_ROWS.items():
        file = folder / f"u{fold}.test"
        if not file.is_file():
            continue
        test = _read(file, "\t", [USER, ITEM, RATING, TIMESTAMP], "utf-8")
        if len(test) != rows:
            raise DataError(f"{file} has {len(test):,} rows, expected {rows:,}: the file is damaged")
        test_keys = test[USER].to_numpy(dtype=np.int64) * width + test[ITEM].to_numpy(dtype=np.int64)
        in_fold = np.isin(keys, test_keys)
        if not rows - skipped <= in_fold.sum() <= rows:
            raise DataError(f"{file}: {rows - int(in_fold.sum()):,} of its ratings are not in u.data")
        ratings[f"fold_{fold}"] = in_fold


def _read(file: Path, sep: str, names: list[str], encoding: str) -> pd.DataFrame:
    try:
        frame = pd.read_csv(file, sep=sep, names=names, header=None, encoding=encoding, engine="c")
    except (UnicodeDecodeError, pd.errors.ParserError, ValueError) as error:
        raise DataError(f"cannot read {file}: {str(error).splitlines()[0]}") from None
    if frame.isna().all(axis=1).any() or len(frame.columns) != len(names):
        raise DataError(f"cannot read {file}: expected {len(names)} '{sep}'-separated fields per line")
    return frame


def _read_dat(file: Path, names: list[str]) -> pd.DataFrame:
    """A `::`-separated ML-1M file, in Latin-1 (movies.dat has accented titles; the rest is ASCII).

    pandas' C parser takes one-character separators only, and its Python engine is ~15x slower on
    ratings.dat (3.8 s vs 0.27 s for a million lines), so `::` is rewritten to a tab first. Titles hold
    single colons and quotes but never `::` or tabs.
    """
    data = file.read_bytes().replace(b"::", b"\t")
    try:
        frame = pd.read_csv(
            io.BytesIO(data),
            sep="\t",
            names=names,
            header=None,
            encoding="latin-1",
            quoting=csv.QUOTE_NONE,
            engine="c",
        )
    except (pd.errors.ParserError, ValueError) as error:
        raise DataError(f"cannot read {file}: {str(error).splitlines()[0]}") from None
    if frame.empty or frame.isna().any(axis=None):
        raise DataError(f"cannot read {file}: expected {len(names)} '::'-separated fields per line")
    return frame
