"""RecBole atomic files (`<name>.inter`, `.item`, `.user`) and the LLMRank Amazon "Games-6k" files.

An atomic file is tab-separated UTF-8 text whose first line names each column as `field:type`, with
type one of token, token_seq (space-separated tokens), float, float_seq. Ids are tokens (strings);
we map them to dense codes. Texts keep RecBole's raw form except that HTML entities are unescaped.
"""

from __future__ import annotations

import csv
import html
from pathlib import Path

import numpy as np
import pandas as pd

from recfit.data.bad_rows import BadRows
from recfit.data.tables import ITEM, RATING, TIMESTAMP, USER, RecData
from recfit.errors import DataError

FIELD_TYPES = ("token", "token_seq", "float", "float_seq")
# RecBole's default field names (USER_ID_FIELD, ITEM_ID_FIELD, RATING_FIELD, TIME_FIELD) -> ours.
USER_FIELD, ITEM_FIELD, RATING_FIELD, TIME_FIELD = "user_id", "item_id", "rating", "timestamp"
GAMES = "Games-6k"


def read_recbole_atomic(
    path: str, name: str | None = None, text_fields: list[str] | None = None, on_bad_rows: str = "error"
) -> RecData:
    """Read `<path>/<name>.inter` and, when present, `<name>.item` and `<name>.user`.

    `name` defaults to the folder's name (RecBole's layout: dataset/ml-100k/ml-100k.inter).
    Interactions need `user_id` and `item_id`; `rating` and `timestamp` are kept when present, other
    interaction fields are dropped. Items are the `.item` rows in file order when that file exists
    (an interaction naming any other item is a DataError), else the items of `.inter` in order of
    first appearance; users likewise with `.user`.
    Item text: the `text_fields` of `.item` joined with ". " (default: `title`, or else every
    token_seq field), HTML-unescaped. User text: "field: value" for every non-id `.user` field.
    An interaction with text in a float field, or a missing, NaN or infinite rating, stops the read
    with one line (`on_bad_rows=error`) or is dropped and counted (`on_bad_rows=skip`).
    """
    folder = Path(path).expanduser()
    name = name or folder.name
    inter_file = folder / f"{name}.inter"
    bad = BadRows(on_bad_rows, str(inter_file))
    inter, inter_types = read_atomic_file(inter_file, bad)
    _require_fields(inter, [USER_FIELD, ITEM_FIELD], inter_file)
    numeric = [RATING_FIELD] if RATING_FIELD in inter.columns else []
    if inter_types.get(TIME_FIELD) == "float":
        numeric.append(TIME_FIELD)
    if numeric:
        inter = bad.numeric(inter, numeric)

    item_file, user_file = folder / f"{name}.item", folder / f"{name}.user"
    items, item_types = read_atomic_file(item_file) if item_file.is_file() else (None, {})
    users = read_atomic_file(user_file)[0] if user_file.is_file() else None
    item_ids = _ids(items, ITEM_FIELD, item_file, inter[ITEM_FIELD])
    user_ids = _ids(users, USER_FIELD, user_file, inter[USER_FIELD])

    interactions = pd.DataFrame(
        {
            USER: _codes(inter[USER_FIELD], user_ids, "users", user_file),
            ITEM: _codes(inter[ITEM_FIELD], item_ids, "items", item_file),
        }
    )
    if RATING_FIELD in inter.columns:
        interactions[RATING] = inter[RATING_FIELD].astype("float32").to_numpy()
    if TIME_FIELD in inter.columns:
        interactions[TIMESTAMP] = _time_column(inter[TIME_FIELD], inter_types[TIME_FIELD])
    return RecData(
        skipped_rows=bad.skipped,
        name=name,
        interactions=interactions,
        num_users=len(user_ids),
        num_items=len(item_ids),
        item_text=None if items is None else _item_text(items, item_types, text_fields, item_file),
        user_text=None if users is None else _user_text(users),
        user_ids=user_ids.to_numpy(),
        item_ids=item_ids.to_numpy(),
    )


def read_amazon_games(path: str) -> RecData:
    """Amazon Video Games "Games-6k" (LLMRank): every user's full chronological sequence.

    `Games-6k.test.inter` holds one row per user: the history (training prefix plus the validation
    item) and the test target, so history + target is the whole sequence. One interaction per item
    in that order, with `timestamp` = its position in the sequence: `leave_one_out` then reproduces
    the files' own split exactly (last item = test target, second-to-last = valid target).
    Item codes follow `Games-6k.item` (ids 0..16858, so code == id); titles are HTML-unescaped.
    """
    folder = Path(path).expanduser()
    items, _ = read_atomic_file(folder / f"{GAMES}.item")
    test_file = folder / f"{GAMES}.test.inter"
    rows, _ = read_atomic_file(test_file)
    _require_fields(items, [ITEM_FIELD, "title"], folder / f"{GAMES}.item")
    _require_fields(rows, [USER_FIELD, "item_id_list", ITEM_FIELD], test_file)

    history = rows["item_id_list"]
    sequences = history.where(history == "", history + " ") + rows[ITEM_FIELD]
    tokens = sequences.str.split(" ").explode()  # index: the row (= user) of each token
    user_ids = pd.Index(rows[USER_FIELD])
    if user_ids.has_duplicates:
        raise DataError(f"{test_file} names {int(user_ids.duplicated().sum())} users more than once")
    item_ids = _ids(items, ITEM_FIELD, folder / f"{GAMES}.item", tokens)
    user_codes = tokens.index.to_numpy()
    interactions = pd.DataFrame(
        {
            USER: user_codes,
            ITEM: _codes(tokens, item_ids, "items", folder / f"{GAMES}.item"),
            TIMESTAMP: tokens.groupby(level=0).cumcount().to_numpy(),
        }
    )
    return RecData(
        name="amazon_games",
        interactions=interactions,
        num_users=len(user_ids),
        num_items=len(item_ids),
        item_text=[html.unescape(title) for title in items["title"]],
        user_ids=user_ids.to_numpy(),
        item_ids=item_ids.to_numpy(),
    )


def read_atomic_file(file: Path, bad: BadRows | None = None) -> tuple[pd.DataFrame, dict[str, str]]:
    """One atomic file -> (frame with columns named by field, {field: type}).

    token and sequence fields stay strings (empty when blank); float fields become float64 (NaN when
    blank). A row with text in a float field is bad: refused in one line, or, with `bad` (the
    interactions' policy), dropped and counted there.
    """
    if not file.is_file():
        raise DataError(f"RecBole atomic file missing: {file}")
    try:
        with open(file, encoding="utf-8") as handle:
            header = handle.readline().rstrip("\r\n")
        types = _parse_header(header, file)
        frame = pd.read_csv(
            file,
            sep="\t",
            header=None,
            skiprows=1,
            names=list(types),
            dtype=str,
            quoting=csv.QUOTE_NONE,  # titles may start with a quote: it is text, not CSV quoting
            keep_default_na=False,
            encoding="utf-8",
            engine="c",
        )
    except UnicodeDecodeError as error:
        raise DataError(f"{file} is not UTF-8 text (byte {error.start}): re-save it as UTF-8") from None
    except (pd.errors.ParserError, ValueError) as error:
        raise DataError(f"cannot read {file}: {str(error).splitlines()[0]}") from None
    for field in (field for field, kind in types.items() if kind == "float"):
        frame = _float_field(frame, field, file, bad)
    return frame, types


def _float_field(frame: pd.DataFrame, field: str, file: Path, bad: BadRows | None) -> pd.DataFrame:
    """`field` as float64; a row holding text there is refused, or dropped under `bad`'s skip policy."""
    text = frame[field].fillna("").str.strip()
    numbers = pd.to_numeric(text.where(text != ""), errors="coerce")
    wrong = (text != "") & numbers.isna() & (text.str.lower() != "nan")
    if wrong.any():
        if bad is None:
            row = int(np.flatnonzero(wrong.to_numpy())[0])
            raise DataError(
                f"{file} line {row + 2}: float field '{field}' holds text '{text.iloc[row]}' "
                f"({int(wrong.sum()):,} rows like it)"
            )
        frame = bad.drop(frame, wrong, f"with text in float field '{field}'")
        text = frame[field].fillna("").str.strip()
        numbers = pd.to_numeric(text.where(text != ""), errors="coerce")
    frame = frame.copy()
    frame[field] = numbers.astype("float64").to_numpy()
    return frame


def _parse_header(header: str, file: Path) -> dict[str, str]:
    types: dict[str, str] = {}
    for cell in header.split("\t"):
        field, _, kind = cell.partition(":")
        if not field or kind not in FIELD_TYPES or field in types:
            raise DataError(
                f"{file}: bad header cell '{cell}' (expected a unique field:type, type one of "
                f"{', '.join(FIELD_TYPES)})"
            )
        types[field] = kind
    return types


def _require_fields(frame: pd.DataFrame, fields: list[str], file: Path) -> None:
    missing = [field for field in fields if field not in frame.columns]
    if missing:
        raise DataError(
            f"{file} has no field {', '.join(missing)} (fields: {', '.join(map(str, frame.columns))})"
        )


def _ids(table: pd.DataFrame | None, field: str, file: Path, used: pd.Series) -> pd.Index:
    """The raw ids in code order: the feature file's rows when it exists, else first appearance in `used`."""
    if table is None:
        return pd.Index(pd.unique(used.to_numpy()))
    _require_fields(table, [field], file)
    ids = pd.Index(table[field])
    if ids.has_duplicates:
        raise DataError(f"{file} lists {int(ids.duplicated().sum())} {field} values more than once")
    return ids


def _codes(raw: pd.Series, ids: pd.Index, what: str, file: Path) -> np.ndarray:
    codes = ids.get_indexer(raw)
    unknown = codes < 0
    if unknown.any():
        raise DataError(f"{int(unknown.sum()):,} interactions name {what} missing from {file}")
    return codes


def _time_column(values: pd.Series, kind: str) -> np.ndarray:
    if kind == "float":
        return values.to_numpy()
    numbers = pd.to_numeric(values, errors="coerce")  # a token timestamp: numeric if it parses
    return numbers.to_numpy() if numbers.notna().all() else values.to_numpy()


def _item_text(
    items: pd.DataFrame, types: dict[str, str], text_fields: list[str] | None, file: Path
) -> list[str] | None:
    """The text fields of each item joined with ". ", HTML-unescaped; None when there are none."""
    if text_fields is None:
        sequences = [field for field, kind in types.items() if kind == "token_seq"]
        text_fields = ["title"] if "title" in types else sequences
    if not text_fields:
        return None
    _require_fields(items, text_fields, file)
    parts = _strings(items[text_fields])
    return [html.unescape(". ".join(part for part in row if part)) for row in parts]


def _user_text(users: pd.DataFrame) -> list[str]:
    """ "field: value" for every non-id field of each user, joined with ", "."""
    fields = [field for field in users.columns if field != USER_FIELD]
    values = _strings(users[fields])
    return [", ".join(f"{f}: {v}" for f, v in zip(fields, row, strict=True) if v) for row in values]


def _strings(frame: pd.DataFrame) -> np.ndarray:
    """Cells as text: floats without a trailing ".0", blank where missing (blank float cells are NaN)."""
    columns = [
        column.map("{:g}".format) if pd.api.types.is_float_dtype(column) else column
        for _, column in frame.items()
    ]
    text = pd.concat(columns, axis=1) if columns else frame
    return text.astype(object).where(frame.notna(), "").astype(str).to_numpy()
