"""Checks on the command-line overrides themselves: what Hydra would load, and keys added with `+`.

`experiment=../../elsewhere/file` makes Hydra load any YAML file on the machine as a config option
(and a `# @package _global_` file can set anything), so a group option is a plain name. `+key=value`
adds a key, which the schemas would otherwise never see: a typo such as `+trainer.max_epoch=3` was
accepted and did nothing. A key added under a typed node must be one of its schema's fields, except
where the schema leaves room on purpose (free-form dicts such as `optimizer.extra`, loggers of your
own under `logger.`, Hydra's own `hydra.*`, package overrides `group@package=option`).
"""

from __future__ import annotations

import dataclasses
from pathlib import PurePosixPath

from omegaconf import DictConfig, OmegaConf

from recfit.errors import ConfigError

# Nodes whose new children are documented: `+logger.mine._target_=my_package.MyLogger`
OPEN_NODES = ("logger",)


def _key(override: str) -> str:
    return override.partition("=")[0].lstrip("+~")


def check_overrides(overrides: list[str] | tuple[str, ...], groups: dict[str, list[str]]) -> None:
    """Refuse a group option that is a path (`experiment=../../x`) rather than an option name."""
    for override in overrides:
        key, equals, value = override.partition("=")
        group = key.lstrip("+~").split("@", 1)[0]
        if not equals or (group not in groups and not group.startswith("hydra/")):
            continue
        for option in value.strip("[] ").split(","):
            path = PurePosixPath(option.strip().strip("'\""))
            if path.is_absolute() or ".." in path.parts:
                raise ConfigError(f"'{override}': an option of '{group}' is a name, not a path")


def first_unknown_added_key(
    cfg: DictConfig, overrides: list[str] | tuple[str, ...], groups: dict[str, list[str]]
) -> str | None:
    """The first key added with `+` that its typed parent's schema does not have, or None."""
    for override in overrides:
        if not override.startswith("+") or "=" not in override:
            continue
        key = _key(override)
        if "@" in key or key.startswith("hydra") or key in groups:  # a package, Hydra's own, a group option
            continue
        unknown = _unknown_part(cfg, key.split("."))
        if unknown is not None:
            return unknown
    return None


def _unknown_part(cfg: DictConfig, parts: list[str]) -> str | None:
    node = cfg
    for depth, part in enumerate(parts):
        if not isinstance(node, DictConfig):
            return None
        schema = OmegaConf.get_type(node)
        prefix = ".".join(parts[:depth])
        if prefix in OPEN_NODES:
            return None
        if schema is not None and dataclasses.is_dataclass(schema):
            if part not in {field.name for field in dataclasses.fields(schema)}:
                return ".".join(parts[: depth + 1])
        elif schema is not None:  # a free-form dict (optimizer.extra, backbone.config_overrides)
            return None
        node = node._get_node(part)  # noqa: SLF001 - the node itself, unresolved (no interpolation runs)
        node = node if isinstance(node, DictConfig) else None
    return None
