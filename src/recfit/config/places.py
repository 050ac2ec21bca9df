"""Where a run reads and writes: names that stay inside `paths.output_dir`, an output folder that can be
written, and data paths that are files or folders (a FIFO or a device would block the reader forever).

`experiment_name` becomes a folder (`<output_dir>/runs/<experiment_name>/<time>`, `evals/`, `sweeps/`)
and a logger's `name` / `version` a sub-folder of the run folder, so none of them may climb out with
`..` or start at `/`. A name with `/` inside (`ml100k/rating`) stays below and is fine.
"""

from __future__ import annotations

import os
from pathlib import Path, PurePosixPath

from omegaconf import DictConfig

from recfit.errors import ConfigError

LOGGER_PLACE_KEYS = ("name", "version")


def check_name(value: object, key: str) -> None:
    """Refuse a name that would put a folder outside the one it belongs in."""
    if value is None:
        return
    text = str(value)
    path = PurePosixPath(text.replace("\\", "/"))
    if "\x00" in text or path.is_absolute() or ".." in path.parts or text.startswith("~"):
        raise ConfigError(
            f"{key} '{text}' would write outside paths.output_dir: use a plain name (no '..', no leading '/')"
        )


def check_places(cfg: DictConfig) -> None:
    """experiment_name and logger sub-folders stay inside the output folder, which must be writable."""
    check_name(cfg.get("experiment_name"), "experiment_name")
    loggers = cfg.get("logger") or {}
    for logger_name, logger in loggers.items():
        if isinstance(logger, DictConfig):
            for key in LOGGER_PLACE_KEYS:
                if key in logger:
                    check_name(logger[key], f"logger.{logger_name}.{key}")
    check_writable(cfg.paths.output_dir, "paths.output_dir")
    check_data_path(cfg.dataset.reader.get("path"), "dataset.reader.path")
    for name, domain in (cfg.dataset.get("domains") or {}).items():
        if isinstance(domain, DictConfig) and isinstance(domain.get("reader"), DictConfig):
            check_data_path(domain.reader.get("path"), f"dataset.domains.{name}.reader.path")


def check_data_path(value: object, key: str) -> None:
    """An existing data path must be a regular file or a folder, never a FIFO, socket or device."""
    if value is None:
        return
    path = Path(str(value)).expanduser()
    if path.exists() and not (path.is_file() or path.is_dir()):
        raise ConfigError(f"{key} {value} is not a regular file or folder (a FIFO, socket or device)")


def check_hydra_places(hydra: DictConfig) -> None:
    """hydra.job.name names the log file, hydra.output_subdir the .hydra folder: both stay in the run."""
    job = hydra.get("job") or {}
    check_name(job.get("name"), "hydra.job.name")
    check_name(hydra.get("output_subdir"), "hydra.output_subdir")


def check_writable(folder: str, key: str) -> None:
    """The nearest existing ancestor of `folder` must be a directory this process can write into."""
    path = Path(folder).expanduser()
    existing = path
    while not existing.exists() and existing != existing.parent:
        if existing.is_symlink():  # a dangling link: mkdir would fail on it
            raise ConfigError(f"{key} {folder}: {existing} is a broken link")
        existing = existing.parent
    if not existing.is_dir():
        raise ConfigError(f"{key} {folder}: {existing} is a file, not a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ConfigError(f"{key} {folder}: {existing} is not writable")
