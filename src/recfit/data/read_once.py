"""Within a sweep, read each data set once: the jobs of `recfit train -m` that read the same files with the
same reader settings get a copy of what the first job read, instead of parsing the files again.

Only inside `reads_kept()` (a sweep running in this process); elsewhere a read is a plain read. A read is
kept under its resolved reader config and the size, modification time and inode of every file under
each `path` it names, so a file changed between two jobs is read again. Readers without a `path` (a
download, generated data) or over more than `MAX_FILES` files are never kept. Each job gets its own
deep copy, so what one job does to its tables cannot reach another; the log lines the reader wrote
(skipped rows, dropped rows) are written again into each later job's log.
"""

from __future__ import annotations

import copy
import json
import logging
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from omegaconf import DictConfig, OmegaConf

if TYPE_CHECKING:
    from recfit.data.tables import RecData

PATH_KEY = "path"  # the reader argument naming the file or folder it reads
MAX_FILES = 10_000  # a folder with more files (an image tree) is read as before: listing it costs too much

_kept: dict[str, tuple[RecData, list[logging.LogRecord]]] | None = None  # set inside `reads_kept`


@contextmanager
def reads_kept() -> Iterator[None]:
    """Keep what readers read until the block ends (one kept data set at a time: a sweep's jobs read
    the same one; a sweep over data sets reads each again, as before, but holds one in memory)."""
    global _kept
    previous, _kept = _kept, {}
    try:
        yield
    finally:
        _kept = previous


def read_once(read: Callable[[], RecData], reader: DictConfig) -> Callable[[], RecData]:
    """`read` (the `reader` config's reader), made to return a copy of the data kept for the same reader
    config and files, if any."""
    return _ReadOnce(read, reader)


@dataclass(frozen=True)
class _ReadOnce:
    """A class, not a closure: a data module travels to ddp_spawn's workers by pickle."""

    read: Callable[[], RecData]
    reader: DictConfig

    def __call__(self) -> RecData:
        if _kept is None:
            return self.read()
        key = _key(OmegaConf.to_container(self.reader, resolve=True))
        if key is None:
            return self.read()
        if key not in _kept:
            with _log_records() as records:
                data = self.read()
            _kept.clear()
            _kept[key] = (copy.deepcopy(data), records)
            return data
        data, records = _kept[key]
        for record in records:  # the reader's log lines, into this job's log as well
            replayed = logging.makeLogRecord(record.__dict__)
            replayed.created = time.time()
            replayed.msecs = (replayed.created % 1) * 1000
            logging.getLogger(record.name).handle(replayed)
        return copy.deepcopy(data)


def _key(reader_config: Any) -> str | None:
    """The reader config and the state of every file it reads, or None when that is not known."""
    paths = list(_paths(reader_config))
    if not paths or any(path is None for path in paths):
        return None
    files: list[tuple[str, int, int, int]] = []
    for path in paths:
        stated = _files(Path(str(path)).expanduser())
        if stated is None:
            return None
        files.extend(stated)
    return json.dumps([reader_config, files], sort_keys=True, default=str)


def _paths(config: Any) -> Iterator[Any]:
    """Every `path` value in a reader config, nested ones included (a multi-domain reader's domains)."""
    if isinstance(config, dict):
        for name, value in config.items():
            if name == PATH_KEY:
                yield value
            else:
                yield from _paths(value)
    elif isinstance(config, list):
        for value in config:
            yield from _paths(value)


def _files(path: Path) -> list[tuple[str, int, int, int]] | None:
    """(name, size, mtime_ns, inode) of `path` or of every file below it; None: missing or too many."""
    if path.is_file():
        candidates = [path]
    elif path.is_dir():
        candidates = []
        for folder, _, names in os.walk(path):
            candidates.extend(Path(folder) / name for name in names)
            if len(candidates) > MAX_FILES:
                return None
    else:
        return None
    stated = []
    for file in sorted(candidates):
        status = file.stat()
        stated.append((str(file.resolve()), status.st_size, status.st_mtime_ns, status.st_ino))
    return stated


class _Recorder(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.NOTSET)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@contextmanager
def _log_records() -> Iterator[list[logging.LogRecord]]:
    """What recfit's loggers write while the block runs (the reader's own lines)."""
    recorder = _Recorder()
    logger = logging.getLogger("recfit")
    logger.addHandler(recorder)
    try:
        yield recorder.records
    finally:
        logger.removeHandler(recorder)
