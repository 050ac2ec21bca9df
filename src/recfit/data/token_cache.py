"""Token ids of a list of texts, computed once and kept on disk under a key made of their content.

The key hashes everything the ids depend on: the tokenizer (its full serialised definition when it
is a fast tokenizer, else its class and vocabulary), max_length, the text template and the texts
themselves. Any change gives a new file; nothing is ever invalidated by hand. Files are written to a
temporary name and renamed, so sweep jobs that tokenize the same texts at once never read half a
file; a file that cannot be read (truncated, foreign) is tokenized again and replaced.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

CACHE_SUBDIR = Path("cache") / "tokens"
PLAIN_TEMPLATE = "{text}"  # texts are tokenized as they are; a different template gets other keys
FORMAT_VERSION = 1  # bump when the file layout changes


def tokenizer_fingerprint(tokenizer: Any) -> str:
    """sha256 of what decides a tokenizer's output: its serialised pipeline, or class + vocabulary."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:
        pipeline = json.loads(backend.to_str())
        # truncation / padding are per-call settings that linger after a call: not the tokenizer's identity
        pipeline.pop("truncation", None)
        pipeline.pop("padding", None)
        description = json.dumps(pipeline, sort_keys=True)
    else:
        description = type(tokenizer).__name__ + json.dumps(sorted(tokenizer.get_vocab().items()))
    return hashlib.sha256(description.encode()).hexdigest()


def texts_fingerprint(texts: list[str]) -> str:
    """sha256 over the texts, length-prefixed so that no two different lists collide by joining."""
    digest = hashlib.sha256()
    for text in texts:
        data = text.encode()
        digest.update(len(data).to_bytes(8, "little"))
        digest.update(data)
    return digest.hexdigest()


def cache_key(texts: list[str], tokenizer: Any, max_length: int, template: str = PLAIN_TEMPLATE) -> str:
    """The content key of the token ids of `texts`."""
    parts = [
        f"v{FORMAT_VERSION}",
        tokenizer_fingerprint(tokenizer),
        str(max_length),
        hashlib.sha256(template.encode()).hexdigest(),
        texts_fingerprint(texts),
    ]
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:32]


def tokenize(
    texts: list[str], tokenizer: Any, max_length: int, template: str = PLAIN_TEMPLATE
) -> list[list[int]]:
    """Token ids without special tokens, truncated to max_length (special tokens are added per batch)."""
    rendered = texts if template == PLAIN_TEMPLATE else [template.format(text=text) for text in texts]
    return tokenizer(rendered, add_special_tokens=False, truncation=True, max_length=max_length)["input_ids"]


def _read(path: Path, count: int) -> list[list[int]] | None:
    """The ids stored in `path`, or None when the file is missing or unusable."""
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as stored:
            flat, offsets = stored["flat"], stored["offsets"]
        if offsets.shape != (count + 1,) or offsets[0] != 0 or offsets[-1] != len(flat):
            raise ValueError("offsets do not match the texts")
        if np.any(np.diff(offsets) < 0):
            raise ValueError("offsets are not increasing")
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as error:
        log.warning("token cache %s is unusable (%s): tokenizing again", path, error)
        return None
    flat_list = flat.tolist()
    bounds = offsets.tolist()
    return [flat_list[bounds[i] : bounds[i + 1]] for i in range(count)]


def _write(path: Path, ids: list[list[int]]) -> None:
    """Write atomically: a temporary file in the same folder, then rename over the final name."""
    path.parent.mkdir(parents=True, exist_ok=True)
    offsets = np.zeros(len(ids) + 1, dtype=np.int64)
    np.cumsum([len(row) for row in ids], out=offsets[1:])
    flat = np.fromiter((token for row in ids for token in row), dtype=np.int64, count=int(offsets[-1]))
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=path.stem, suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as file:
            np.savez(file, flat=flat, offsets=offsets)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def cached_token_ids(
    texts: list[str],
    tokenizer: Any,
    max_length: int,
    data_dir: str | Path,
    template: str = PLAIN_TEMPLATE,
) -> list[list[int]]:
    """Token ids of `texts`, read from `data_dir/cache/tokens/<key>.npz` or computed and stored there."""
    path = (
        Path(data_dir).expanduser()
        / CACHE_SUBDIR
        / f"{cache_key(texts, tokenizer, max_length, template)}.npz"
    )
    ids = _read(path, len(texts))
    if ids is not None:
        log.info("token ids of %d texts read from %s", len(texts), path)
        return ids
    ids = tokenize(texts, tokenizer, max_length, template)
    try:
        _write(path, ids)
        log.info("token ids of %d texts cached in %s", len(texts), path)
    except OSError as error:  # a read-only data folder slows the next run down, it does not stop this one
        log.warning("cannot write token cache %s: %s", path, error)
    return ids
