"""The configuration reference (docs/configuration.md), generated from the schemas and conf/.

Two sources, so the document cannot drift from the code: the dataclasses of recfit.config.schema
(every key, its type, its default and the one-line comment beside it in the source) and the option
files under conf/ (each option's header comment and the values it sets, with their one-line
comments). `python scripts/gen_config_reference.py` writes the file; tests/test_docs.py fails when
the committed file differs from what this module renders.

This module imports no torch.
"""

from __future__ import annotations

import ast
import dataclasses
import inspect
import io
import re
import tokenize
from enum import Enum
from pathlib import Path
from typing import Any

from omegaconf import MISSING

from recfit.config import schema
from recfit.config.compose import conf_dir

GENERATOR = "scripts/gen_config_reference.py"
# What each group is for: the one thing the files themselves do not say.
GROUP_PURPOSE = {
    "backbone": "The pretrained network over item content (text or images); `none` for ID-only models.",
    "dataset": "Where interactions and item content come from, how they are filtered, batched and balanced.",
    "split": "How interactions are divided into train, validation and test ([evaluation.md](evaluation.md)).",
    "task": "What is predicted, and the metric that selects the best checkpoint.",
    "model": "The recommender architecture; checked against the task and the backbone's modality.",
    "loss": "The training objective; checked against the task.",
    "optimizer": "The torch optimizer, with separate learning rates for the backbone and the new layers.",
    "scheduler": "The learning-rate schedule.",
    "trainer": "The Lightning Trainer: devices, precision, epochs, limits.",
    "logger": "Lightning loggers, keyed by name; every run also writes metrics.json itself.",
    "hparams_search": "Hyperparameter searches for `recfit train -m` (Hydra sweepers).",
    "experiment": "Complete runs (one file = one table row): they pick options and set keys in any group.",
}
SKIPPED_TOP_LEVEL = {"hydra"}  # train.yaml's Hydra settings: run-folder naming, not user options


def _escape(text: str) -> str:
    return text.replace("|", "\\|")


def _prose(text: str) -> str:
    """Comment text for a Markdown cell or paragraph: pipes escaped, <placeholders> kept visible."""
    return _escape(text).replace("<", "&lt;")


def _code(text: str) -> str:
    return f"`{_escape(text)}`" if text else ""


# ---- the schemas ---------------------------------------------------------------------------------
def field_comments() -> dict[str, dict[str, str]]:
    """Per schema class, per field: the `#` comment on the field's source lines."""
    source = inspect.getsource(schema)
    comments = {
        token.start[0]: token.string.lstrip("#").strip()
        for token in tokenize.generate_tokens(io.StringIO(source).readline)
        if token.type == tokenize.COMMENT
    }
    found: dict[str, dict[str, str]] = {}
    for node in ast.parse(source).body:
        if not isinstance(node, ast.ClassDef):
            continue
        for statement in node.body:
            if isinstance(statement, ast.AnnAssign) and isinstance(statement.target, ast.Name):
                lines = range(statement.lineno, (statement.end_lineno or statement.lineno) + 1)
                text = next((comments[line] for line in lines if line in comments), "")
                found.setdefault(node.name, {})[statement.target.id] = text
    return found


def _type_text(annotation: Any) -> str:
    name = annotation if isinstance(annotation, str) else getattr(annotation, "__name__", str(annotation))
    kind = getattr(schema, name, None)
    if isinstance(kind, type) and issubclass(kind, Enum):
        return " | ".join(member.value for member in kind)
    return name.replace("Any", "any").replace("None", "null")


def _value_text(value: Any) -> str:
    if value is MISSING:
        return "??? (required)"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, Enum):
        return str(value.value)
    if value == "":
        return '""'
    return str(value)


def _default(item: dataclasses.Field) -> Any:
    if item.default is not dataclasses.MISSING:
        return item.default
    if item.default_factory is not dataclasses.MISSING:
        return item.default_factory()
    return MISSING


def schema_rows(cls: type, comments: dict[str, dict[str, str]], prefix: str = "") -> list[tuple[str, ...]]:
    """(key, type, default, meaning) of every field, nested dataclasses flattened as a.b."""
    rows = []
    for item in dataclasses.fields(cls):
        default = _default(item)
        if dataclasses.is_dataclass(default):
            rows.extend(schema_rows(type(default), comments, f"{prefix}{item.name}."))
            continue
        meaning = comments.get(cls.__name__, {}).get(item.name, "")
        rows.append((f"{prefix}{item.name}", _type_text(item.type), _value_text(default), meaning))
    return rows


def _schema_table(rows: list[tuple[str, ...]]) -> list[str]:
    lines = ["| key | type | default | meaning |", "|---|---|---|---|"]
    for key, kind, default, meaning in rows:
        lines.append(f"| {_code(key)} | {_escape(kind)} | {_code(default)} | {_prose(meaning)} |")
    return lines


def _own_keys(dataset_schema: type) -> list[tuple[str, ...]]:
    """The rows of a data set's schema that the common DatasetConfig lacks: its reader's arguments
    (`reader.*`, typed by the data set's own reader class) and any key of its own."""
    common = {f.name for f in dataclasses.fields(schema.DatasetConfig)} - {"reader"}
    comments = field_comments()
    return [row for row in schema_rows(dataset_schema, comments) if row[0].split(".", 1)[0] not in common]


# ---- the option files ----------------------------------------------------------------------------
@dataclasses.dataclass
class OptionFile:
    """What one conf/<group>/<option>.yaml says: its header, its schema, its picks and its keys."""

    name: str
    header: str
    schema: str | None
    picks: list[str]
    keys: list[tuple[str, str, str]]  # (dotted key, value as written, comment)


COMMENT = re.compile(r"\s+#\s?(.*)$")


def _split_comment(text: str) -> tuple[str, str]:
    quoted = re.match(r"""\s*(".*?"|'.*?')(.*)$""", text)  # a quoted value may hold a '#'
    head, rest = (quoted.group(1), quoted.group(2)) if quoted else ("", text)
    match = COMMENT.search(rest)
    if not match:
        return (head + rest).strip(), ""
    return (head + rest[: match.start()]).strip(), match.group(1).strip()


def read_option(file: Path, skip: set[str] = frozenset()) -> OptionFile:
    """Parse an option file line by line (comments are what PyYAML throws away)."""
    header, picks, keys = [], [], []
    schema_name, in_defaults, body_started = None, False, False
    stack: list[tuple[int, str]] = []
    skipping = False
    for line in file.read_text().splitlines():
        stripped = line.strip()
        if not stripped:
            continue
        if stripped.startswith("#"):
            if not body_started and not stripped.startswith("# @package"):
                header.append(stripped.lstrip("#").strip())
            continue
        body_started = True
        indent = len(line) - len(line.lstrip())
        if indent == 0:
            in_defaults = stripped.startswith("defaults:")
            skipping = stripped.split(":", 1)[0] in skip
        if in_defaults:
            inline = re.search(r"\[(.*)\]", stripped)
            listed = [stripped[1:]] if stripped.startswith("-") else []
            entries = inline.group(1).split(",") if inline else listed
            for entry in (e.strip() for e in entries):
                entry = _split_comment(entry)[0]
                if entry.endswith(schema.SCHEMA_SUFFIX):
                    schema_name = entry
                elif entry.startswith("override /"):
                    group, _, option = entry[len("override /") :].partition(":")
                    picks.append(f"{group.strip()}={option.strip()}")
            continue
        if skipping or stripped.startswith("- "):
            continue
        key, _, rest = stripped.partition(":")
        while stack and stack[-1][0] >= indent:
            stack.pop()
        path = ".".join([*(name for _, name in stack), key])
        value, comment = _split_comment(rest)
        if value:
            keys.append((path, value, comment))
        else:
            stack.append((indent, key))
            if comment:
                keys.append((path, "", comment))
    return OptionFile(file.stem, " ".join(header), schema_name, picks, keys)


def _option_section(group: str, option: OptionFile) -> list[str]:
    lines = [f"### `{group}={option.name}`", ""]
    if option.header:
        lines += [_prose(option.header), ""]
    if option.picks:
        lines += ["Picks: " + ", ".join(f"`{pick}`" for pick in option.picks), ""]
    if option.keys:
        lines += ["| key | value | comment |", "|---|---|---|"]
        lines += [f"| {_code(k)} | {_code(v)} | {_prose(c)} |" for k, v, c in option.keys]
        lines.append("")
    return lines


# ---- the document --------------------------------------------------------------------------------
def _defaults_of_train(root: Path) -> list[tuple[str, str]]:
    picks = []
    for line in (root / "train.yaml").read_text().splitlines():
        match = re.match(r"\s*-\s*([\w/]+):\s*([\w.]+|null)", line)
        if match:
            picks.append((match.group(1), match.group(2)))
    return picks


def render_reference() -> str:
    """The whole of docs/configuration.md."""
    root = conf_dir()
    comments = field_comments()
    group_schemas = schema._GROUP_SCHEMAS  # noqa: SLF001 - the registry is the truth about schemas
    lines = [
        "# Configuration reference",
        "",
        f"<!-- Generated by `python {GENERATOR}` from src/recfit/config/schema.py and conf/. "
        "Do not edit: tests/test_docs.py fails when this file and the generator disagree. -->",
        "",
        "A run is composed from one option per group (`group=option`), then any key is overridden "
        "(`group.key=value`), e.g. `recfit train backbone=tiny_bert dataset.batch_size=32`. "
        "`recfit train --cfg job` prints the composed result; `recfit validate ...` checks it without "
        "running. Keys and types are checked against the schemas below at composition time.",
        "",
        "## Groups",
        "",
        "| group | default | options |",
        "|---|---|---|",
    ]
    defaults = dict(_defaults_of_train(root))
    groups = sorted(p.name for p in root.iterdir() if p.is_dir())
    for group in groups:
        options = ", ".join(f"`{p.stem}`" for p in sorted((root / group).glob("*.yaml")))
        lines.append(f"| [`{group}`](#{group}) | {_code(defaults.get(group, ''))} | {options} |")
    top = [row for row in schema_rows(schema.TrainConfig, comments) if not row[2].startswith("???")]
    lines += ["", "## Top-level keys", "", "Set in `conf/train.yaml`; override as `key=value`.", ""]
    lines += _schema_table(top)
    for group in groups:
        lines += ["", f"## {group}", ""]
        if group in GROUP_PURPOSE:
            lines += [GROUP_PURPOSE[group], ""]
        schemas = group_schemas.get(group, {})
        options = [read_option(p) for p in sorted((root / group).glob("*.yaml"))]
        if group == "dataset":
            lines += ["Keys every data set has (class `DatasetConfig`):", ""]
            lines += _schema_table(schema_rows(schema.DatasetConfig, comments))
            lines.append("")
            for option in options:
                lines += _option_section(group, option)
                cls = schemas.get(option.schema or "")
                own = _own_keys(cls) if cls else []
                if own:
                    lines += [f"Own keys (class `{cls.__name__}`):", "", *_schema_table(own), ""]
            continue
        for cls in dict.fromkeys(schemas.values()):
            lines += [f"Keys (class `{cls.__name__}`):", "", *_schema_table(schema_rows(cls, comments)), ""]
        for option in options:
            lines += _option_section(group, option)
    text = re.sub(r"\n{3,}", "\n\n", "\n".join(lines))
    return text.strip() + "\n"
