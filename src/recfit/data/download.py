"""Fetch a public data set once, verify its checksums, and unpack it."""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
import urllib.request
import zipfile
from pathlib import Path

from recfit.errors import DataError

log = logging.getLogger(__name__)


def file_digest(path: Path, algorithm: str = "sha256") -> str:
    """Hex digest of a file, read in 1 MiB chunks."""
    digest = hashlib.new(algorithm)
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def verify(path: Path, algorithm: str, expected: str) -> None:
    """Raise DataError when `path` does not have the expected digest."""
    actual = file_digest(path, algorithm)
    if actual != expected:
        raise DataError(f"checksum mismatch for {path}: {algorithm} {actual}, expected {expected}")


def download_zip(url: str, target_dir: Path, md5: str) -> Path:
    """Download `url` into `target_dir` (skipped when present and valid), check its MD5, unpack it.

    The archive is written under a temporary name and renamed once complete and verified, so an
    interrupted download never leaves a file that looks finished.
    """
    target_dir.mkdir(parents=True, exist_ok=True)
    archive = target_dir / url.rsplit("/", 1)[-1]
    if not archive.exists():
        log.info("downloading %s", url)
        handle, partial = tempfile.mkstemp(dir=target_dir, suffix=".part")
        os.close(handle)
        try:
            urllib.request.urlretrieve(url, partial)  # noqa: S310 - a fixed https URL
            verify(Path(partial), "md5", md5)
            os.replace(partial, archive)
        except OSError as error:
            raise DataError(
                f"could not download {url} ({error}); pass a local folder with dataset.reader.path"
            ) from None
        finally:
            if os.path.exists(partial):
                os.remove(partial)
    verify(archive, "md5", md5)
    with zipfile.ZipFile(archive) as bundle:
        bundle.extractall(target_dir)
    return target_dir
