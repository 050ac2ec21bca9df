"""Overrides written for the config layout before a data set's reader got its own node.

A data set's reader arguments used to sit beside its loader keys (`dataset.path=...`); they now live
under `dataset.reader` (`dataset.reader.path=...`), so the reader is a plain Hydra `instantiate` target.
Command lines, scripts and the overrides.yaml of earlier run folders still say `dataset.path=...`:
each such override is read as its new key, with one log line saying so.
"""

from __future__ import annotations

import dataclasses
import logging
import re

from recfit.config import schema

log = logging.getLogger(__name__)


def _subclasses(cls: type) -> list[type]:
    found = [cls]
    for sub in cls.__subclasses__():
        found.extend(_subclasses(sub))
    return found


def _field_names(base: type) -> set[str]:
    return {f.name for cls in _subclasses(base) for f in dataclasses.fields(cls)}


# every reader argument, less the keys a data set itself has (multi-domain `domains` is both)
READER_KEYS = frozenset(_field_names(schema.ReaderConfig) - _field_names(schema.DatasetConfig) - {"_target_"})
_MOVED = re.compile(
    r"^(?P<prefix>[+~]*)(?P<owner>dataset\.(?:domains\.[^.=]+\.)?)(?P<key>"
    + "|".join(sorted(READER_KEYS))
    + r")(?P<rest>[=.].*|)$"
)


def move_reader_keys(overrides: list[str] | tuple[str, ...]) -> list[str]:
    """`dataset.<reader argument>=v` -> `dataset.reader.<reader argument>=v`, also under
    `dataset.domains.<name>`; other overrides pass unchanged."""
    moved = []
    for override in overrides:
        match = _MOVED.match(override)
        if match is None:
            moved.append(override)
            continue
        new = f"{match['prefix']}{match['owner']}reader.{match['key']}{match['rest']}"
        log.info("%s is read as %s (reader arguments live under dataset.reader)", override, new)
        moved.append(new)
    return moved
