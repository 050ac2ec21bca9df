"""The run folder's format: its file names, its status values, atomic writes and reading a run back.

Everything that writes or reads a run folder (training, evaluation, sweeps, resume, init_from,
compare) names its files and statuses through this module, so the format is written down once.
It sits below config, data, training and compare: it imports the standard library and
recfit.errors only (pandas, for Parquet, when a table is written), never torch.

    <run folder>/
      .hydra/config.yaml overrides.yaml   the resolved config and the command-line overrides
      metrics.json      the record: status, final metrics, error, durations, data summary
      metrics.csv       per-step / per-epoch curves
      per_user.parquet  per-user (ranking) or per-row values, for paired significance tests
      run_info.json     seed, git state, package versions, devices, command line
      config_tree.txt   the composed config as a tree
      checkpoints/      best.ckpt (by task.metric) and last.ckpt (for resume)
      .lock .space-reserve   held while the run runs: the owner's lock, space for its final records
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import math
import os
import socket
import tempfile
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from recfit.errors import RecfitError

METRICS_FILE = "metrics.json"
CURVES_FILE = "metrics.csv"
# a resumed run's earlier curves, until they are joined to the new ones (recfit.training.curves)
EARLIER_CURVES_FILE = ".metrics.before-resume.csv"
PER_USER_FILE = "per_user.parquet"
# per_user.parquet of a next_item run: the test target item's number of training interactions, so that
# `recfit compare --cold-items N` can report warm- and cold-item metrics (the target is the `item` column)
ITEM_TRAIN_COUNT_COLUMN = "item_train_count"
RUN_INFO_FILE = "run_info.json"
CONFIG_TREE_FILE = "config_tree.txt"
HYDRA_DIR = ".hydra"
CONFIG_FILE = Path(HYDRA_DIR) / "config.yaml"
OVERRIDES_FILE = Path(HYDRA_DIR) / "overrides.yaml"
CHECKPOINT_DIR = "checkpoints"
BEST_CHECKPOINT = "best.ckpt"  # the best validation score by task.metric: what eval and init_from load
LAST_CHECKPOINT = "last.ckpt"  # the latest step, mid-epoch too: what resume continues from
LOCK_FILE = ".lock"  # held (flock) by the one process that runs the run; holds its pid
# a few KiB the run sets aside while it runs, freed to write its final record when the disk fills up
SPACE_RESERVE_FILE = ".space-reserve"
SPACE_RESERVE_BYTES = 256 * 1024  # metrics.json + run_info.json, with room to spare
# Files of a run folder are readable by everyone who can read the folder, whatever wrote them:
# a temporary file from mkstemp starts private (0600), so each one is set to this before its rename.
FILE_MODE = 0o644


class Status:
    """The `status` field of metrics.json."""

    running = "running"
    completed = "completed"
    failed = "failed"
    interrupted = "interrupted"


# A run killed with SIGKILL never got to change its status from running: both can be resumed.
RESUMABLE = (Status.running, Status.interrupted)


class RunFolderError(RecfitError):
    """A run folder that is missing, or whose metrics.json cannot be read (one line)."""


class DiskFullError(RunFolderError):
    """The file system of the run folder filled up (or hit its quota) while a file was written."""

    def __init__(self, path: Path | str) -> None:
        super().__init__(f"no space left on device while writing {path}")
        self.path = Path(path)


FULL_DISK_ERRNOS = (errno.ENOSPC, errno.EDQUOT)


@contextlib.contextmanager
def writing(path: Path | str) -> Iterator[None]:
    """A full disk inside the block becomes one DiskFullError line that names `path`."""
    try:
        yield
    except DiskFullError:
        raise
    except OSError as error:
        if error.errno in FULL_DISK_ERRNOS:
            raise DiskFullError(path) from error
        raise


@dataclass
class RunResult:
    """What a finished run reports: its status, final metrics, folder and whole metrics.json record."""

    status: str
    metrics: dict[str, float | None]
    run_dir: Path
    record: dict[str, Any]


def best_checkpoint(run_dir: Path) -> Path:
    """`<run_dir>/checkpoints/best.ckpt`."""
    return Path(run_dir) / CHECKPOINT_DIR / BEST_CHECKPOINT


def last_checkpoint(run_dir: Path) -> Path:
    """`<run_dir>/checkpoints/last.ckpt`."""
    return Path(run_dir) / CHECKPOINT_DIR / LAST_CHECKPOINT


# ---------------------------------------------------------------------------------------------- owning


@contextlib.contextmanager
def owned(run_dir: Path) -> Iterator[None]:
    """Hold the run folder's lock for the block: one process at a time may run (or resume) a run.

    RunFolderError (one line) when another process holds it. The kernel releases the lock of a
    process that dies, however it dies, so a killed run never stays locked.
    """
    run_dir = Path(run_dir)
    new = not run_dir.exists()
    run_dir.mkdir(parents=True, exist_ok=True)
    with open(run_dir / LOCK_FILE, "a+") as handle:
        with contextlib.suppress(OSError):  # the folder's other files are 0644 whatever the umask
            os.chmod(handle.fileno(), FILE_MODE)
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip()
            by = f" (process {holder})" if holder.isdigit() else ""
            raise RunFolderError(
                f"{run_dir} is in use by another recfit process{by}; wait for it to end, or stop it"
            ) from None
        handle.seek(0)
        handle.truncate()
        try:
            with writing(run_dir / LOCK_FILE):  # unbuffered: a failed write leaves nothing to flush on close
                os.write(handle.fileno(), f"{os.getpid()}\n".encode())
        except DiskFullError:
            if new:  # a new run that could not even start leaves no empty folder behind
                with contextlib.suppress(OSError):
                    (run_dir / LOCK_FILE).unlink()
                    run_dir.rmdir()
            raise
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


# ---------------------------------------------------------------------------------------------- writing


@contextlib.contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yield a temporary path next to `path`; rename it over `path` only if the block succeeds.

    Same folder, so the rename stays on one file system and is atomic: a reader sees the old file or
    the new one, never half of one, and an existing file survives a failed write. A full disk
    raises DiskFullError naming `path`.
    """
    path = Path(path)
    folder = path.parent
    if not folder.is_dir():
        raise RecfitError(f"cannot write {path}: folder {folder} does not exist")
    with writing(path):
        handle, temporary = tempfile.mkstemp(dir=folder, prefix=f".{path.name}.", suffix=".tmp")
    os.close(handle)
    try:
        with writing(path):
            yield Path(temporary)
            os.chmod(temporary, FILE_MODE)
            os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)


def replace_atomic(path: Path, write: Callable[[str], None]) -> None:
    """Call `write(temporary_path)` for a file in the same folder as `path`, then rename it over `path`."""
    with atomic_path(Path(path)) as temporary:
        write(str(temporary))


def write_text_atomic(path: Path, text: str) -> None:
    """Write `text` (UTF-8) to `path` atomically."""
    with atomic_path(Path(path)) as temporary:
        temporary.write_text(text, encoding="utf-8")


def write_json_atomic(path: Path, payload: Mapping[str, Any]) -> None:
    """metrics.json and run_info.json: indented JSON, replaced atomically."""
    write_text_atomic(path, json.dumps(payload, indent=2, default=str) + "\n")


def write_bytes_atomic(path: Path, data: bytes) -> None:
    """Write `data` to `path` atomically (a checkpoint, serialized in memory first)."""
    with atomic_path(Path(path)) as temporary:
        temporary.write_bytes(data)


def reserve_space(run_dir: Path) -> None:
    """Set a little space aside in the run folder while the run runs (`release_space` frees it)."""
    path = Path(run_dir) / SPACE_RESERVE_FILE
    with writing(path), open(path, "wb") as handle:
        handle.write(bytes(SPACE_RESERVE_BYTES))  # written, not sparse: the blocks are really taken


def release_space(run_dir: Path) -> None:
    """Free the space `reserve_space` set aside: the run's final records fit even on a full disk."""
    (Path(run_dir) / SPACE_RESERVE_FILE).unlink(missing_ok=True)


def write_parquet_atomic(path: Path, columns: Mapping[str, Any]) -> None:
    """A table of equal-length columns as Parquet, replaced atomically."""
    import pandas as pd

    replace_atomic(path, lambda temporary: pd.DataFrame(dict(columns)).to_parquet(temporary, index=False))


# ---------------------------------------------------------------------------------------------- records


def now_iso() -> str:
    """The current time in UTC, to the second, as metrics.json writes it."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def new_record(run_dir: Path, identity: Mapping[str, Any]) -> dict[str, Any]:
    """The metrics.json of a run that is starting: status running, no metrics yet.

    `identity` holds what the config says about the run (experiment, task, monitor, mode, seed;
    recfit.config.record.run_identity builds it).
    """
    return {
        "status": Status.running,
        **identity,
        "metrics": {},
        "error": None,
        "started_at": now_iso(),
        "run_dir": str(run_dir),
        "host": socket.gethostname(),  # with pid: resume refuses a run that is still alive
        "pid": os.getpid(),
    }


def describe(error: BaseException) -> str:
    """One line for metrics.json: the message alone for user errors, with the type for bugs."""
    message = str(error).strip().splitlines()[0] if str(error).strip() else ""
    return message if isinstance(error, RecfitError) else f"{type(error).__name__}: {message}"


def record_failure(run_dir: Path, identity: Mapping[str, Any], error: BaseException) -> None:
    """Mark a run that failed before training started (e.g. an invalid sweep trial)."""
    record = new_record(run_dir, identity)
    record.update(status=Status.failed, error=describe(error), finished_at=now_iso(), duration_s=0.0)
    write_json_atomic(Path(run_dir) / METRICS_FILE, record)


def clean_metrics(values: Mapping[str, Any]) -> dict[str, float | None]:
    """Plain floats (tensors and NumPy numbers converted), NaN kept as None so the JSON stays valid."""
    out: dict[str, float | None] = {}
    for name, value in sorted(values.items()):
        number = float(value)
        out[name] = None if math.isnan(number) else number
    return out


# ---------------------------------------------------------------------------------------------- reading


def flatten(mapping: dict[str, Any], prefix: str = "") -> dict[str, str]:
    """Nested mapping to {"a.b.c": text}; lists stay whole (as one value), empty mappings too."""
    flat: dict[str, str] = {}
    for key, value in mapping.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            flat.update(flatten(value, prefix=f"{name}."))
        else:
            flat[name] = as_text(value)
    return flat


def as_text(value: Any) -> str:
    """A config value as the text a user would type in an override (true, null, 0.001, [10, 20])."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, dict)):
        return json.dumps(value, default=str)
    return str(value)


def parse_record(text: str) -> dict[str, Any]:
    """The record held by the text of a metrics.json; ValueError when it is not a JSON object."""
    record = json.loads(text)
    if not isinstance(record, dict):
        raise ValueError(f"{METRICS_FILE} holds a JSON {type(record).__name__}, not an object")
    return record


def read_record(run_dir: Path) -> dict[str, Any]:
    """A run folder's metrics.json, or RunFolderError (one line) saying why it cannot be read."""
    run_dir = Path(run_dir)
    path = run_dir / METRICS_FILE
    if not run_dir.is_dir():
        raise RunFolderError(f"no such run folder: {run_dir}")
    try:
        return parse_record(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise RunFolderError(f"{run_dir} is not a run folder (no {METRICS_FILE})") from None
    except (OSError, ValueError) as error:
        raise RunFolderError(f"cannot read {path}: {str(error).splitlines()[0]}") from None


def read_record_if_any(run_dir: Path) -> dict[str, Any]:
    """metrics.json of `run_dir`, or {} when the folder has none yet or it cannot be read."""
    try:
        return read_record(run_dir)
    except RunFolderError:
        return {}


def status_of(run_dir: Path) -> str | None:
    """The `status` of a run folder, or None when it has no readable metrics.json."""
    status = read_record_if_any(run_dir).get("status")
    return status if isinstance(status, str) else None


def reported_status(record: Mapping[str, Any]) -> str | None:
    """The status to show for `record`: a run that says `running` but whose process is gone from this
    machine (killed with SIGKILL, or by a scheduler's hard time limit, before it could write a status)
    is `interrupted`, which `resume=auto` resumes. On another host the process cannot be checked, so
    `running` stays."""
    status = record.get("status")
    if not isinstance(status, str):
        return None
    if status == Status.running and record.get("host") == socket.gethostname() and not alive_here(record):
        return Status.interrupted
    return status


def alive_here(record: Mapping[str, Any]) -> bool:
    """Whether the process that wrote `record` still runs on this machine (its host and pid)."""
    if record.get("host") != socket.gethostname() or not record.get("pid"):
        return False
    try:
        os.kill(int(record["pid"]), 0)
    except (ProcessLookupError, PermissionError, ValueError, OverflowError):
        return False
    return True
