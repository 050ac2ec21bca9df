"""Find run folders (any folder holding metrics.json) and read their summary and config.

Only JSON and YAML are parsed here (with PyYAML's safe loader: no Python objects are ever built from a
config, so a run folder from an untrusted source cannot execute code). A broken folder, with a
missing or unreadable file, is still returned, so that it shows up in the table instead of
disappearing.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from recfit.errors import RecfitError
from recfit.run_folder import (
    CONFIG_FILE,
    METRICS_FILE,
    OVERRIDES_FILE,
    as_text,
    flatten,
    parse_record,
    reported_status,
)

# The C-accelerated safe loader when PyYAML was built with libyaml (5x faster on 1,000 runs), else
# the pure-Python one: both build plain dicts, lists and scalars only.
SafeLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def safe_load(text: str) -> Any:
    """yaml.safe_load, with the C loader when available."""
    return yaml.load(text, Loader=SafeLoader)  # noqa: S506 - a safe loader


UNREADABLE = "unreadable"  # the status of a run whose metrics.json cannot be parsed
EVALUATION_KIND = "eval"  # metrics.json "kind" of a folder written by `recfit eval`


@dataclass(frozen=True)
class Run:
    """One run folder as read from disk."""

    path: Path
    summary: dict[str, Any]  # metrics.json as written by `recfit train`
    config: dict[str, str]  # flattened config (dotted keys) plus override choices, values as text
    problems: list[str] = field(default_factory=list)  # why the folder is broken, if it is

    @property
    def status(self) -> str:
        return reported_status(self.summary) or UNREADABLE


def find_run_folders(roots: Sequence[Path]) -> list[Path]:
    """Every folder under `roots` (at any depth) that holds a metrics.json, sorted, without duplicates.

    The walk does not descend into a run folder: runs never nest, and a run's checkpoints and logs
    can be large.
    """
    found: set[Path] = set()
    for root in roots:
        if root.is_file() and root.name == METRICS_FILE:
            root = root.parent
        if not root.is_dir():
            raise RecfitError(f"no such folder: {root}")
        for folder, subfolders, files in os.walk(root):
            if METRICS_FILE in files:
                found.add(Path(folder).resolve())
                subfolders.clear()
            # hidden folders hold superseded attempts (`recfit sweep resume` keeps them in .attempts/)
            subfolders[:] = [name for name in subfolders if not name.startswith(".")]
    if not found:
        shown = ", ".join(str(root) for root in roots)
        raise RecfitError(f"no run folders (folders with {METRICS_FILE}) under {shown}")
    return sorted(found)


def load_runs(roots: Sequence[Path]) -> list[Run]:
    """Find and read every run folder under `roots`."""
    return [load_run(folder) for folder in find_run_folders(roots)]


def load_run(folder: Path) -> Run:
    """Read one run folder's metrics.json, config and overrides, noting (not raising) what is broken."""
    problems: list[str] = []
    summary = _read(folder / METRICS_FILE, parse_record, dict, problems)
    # a training run saves its config with ${...} references, `recfit eval` saves it resolved: compare
    # the values, not their spelling
    config = flatten(resolve_interpolations(_read(folder / CONFIG_FILE, safe_load, dict, problems)))
    overrides = _read(folder / OVERRIDES_FILE, safe_load, list, problems)
    # Group choices (backbone=tiny_bert) are not keys of the resolved config, yet they are what a
    # researcher thinks in; keep them as keys of their own.
    for key, value in override_choices(overrides).items():
        config.setdefault(key, value)
    return Run(path=folder, summary=summary, config=config, problems=problems)


def _read(path: Path, parse: Any, expected: type, problems: list[str]) -> Any:
    """Parse `path`, or return an empty `expected` and note why when it is missing or malformed."""
    try:
        value = parse(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        problems.append(f"{path.name} missing")
        return expected()
    except (OSError, ValueError, yaml.YAMLError) as error:
        problems.append(f"{path.name} unreadable: {type(error).__name__}")
        return expected()
    if not isinstance(value, expected):
        problems.append(f"{path.name} is not a {expected.__name__}")
        return expected()
    return value


def is_evaluation(run: Run) -> bool:
    """A folder written by `recfit eval` (a re-test of a training run, not another training run)."""
    return run.summary.get("kind") == EVALUATION_KIND


# `${a.b}` (absolute) or `${.b}` / `${..b}` (relative to the node holding the value); a reference
# with a colon calls a resolver (`${oc.env:HOME}`, `${now:%Y}`) and is left as written.
REFERENCE = re.compile(r"\$\{\s*(\.*[A-Za-z_][\w.-]*)\s*\}")
MAX_DEPTH = 10  # references to references, at most; deeper (or cyclic) ones stay as written


def resolve_interpolations(config: dict[str, Any]) -> dict[str, Any]:
    """The config with OmegaConf-style node references replaced by the values they name.

    Only plain references are resolved, without OmegaConf (compare reads files and builds nothing):
    a whole-string reference takes the referenced value (number, list, ...), one inside text is
    replaced by that value as text. Resolvers, missing keys and cycles stay as written.
    """

    def lookup(reference: str, where: tuple[str, ...]) -> tuple[bool, Any, tuple[str, ...]]:
        dots = len(reference) - len(reference.lstrip("."))
        parts = tuple(reference.lstrip(".").split("."))
        path = (*where[: len(where) - dots + 1], *parts) if dots else parts
        node: Any = config
        for part in path:
            if not isinstance(node, dict) or part not in node:
                return False, None, path
            node = node[part]
        return True, node, path

    def resolve(value: Any, where: tuple[str, ...], depth: int) -> Any:
        if isinstance(value, dict):
            return {key: resolve(item, (*where, str(key)), depth) for key, item in value.items()}
        if isinstance(value, list):
            return [resolve(item, where, depth) for item in value]
        if not isinstance(value, str) or "${" not in value or depth >= MAX_DEPTH:
            return value
        whole = REFERENCE.fullmatch(value.strip())
        if whole:
            found, target, path = lookup(whole.group(1), where[:-1])
            return resolve(target, path, depth + 1) if found else value

        def substitute(match: re.Match[str]) -> str:
            found, target, path = lookup(match.group(1), where[:-1])
            if not found:
                return match.group(0)
            return as_text(resolve(target, path, depth + 1))

        return REFERENCE.sub(substitute, value)

    return resolve(config, (), 0)


def override_choices(overrides: list[Any]) -> dict[str, str]:
    """`["backbone=tiny_bert", "+x.y=1"]` -> `{"backbone": "tiny_bert", "x.y": "1"}`."""
    choices = {}
    for override in overrides:
        key, equals, value = str(override).partition("=")
        if equals:
            choices[key.lstrip("+~")] = value
    return choices
