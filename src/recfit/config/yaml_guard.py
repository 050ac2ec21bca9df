"""Read YAML that came from somewhere else (a run folder, `--config-path`) without letting it hang recfit.

A few hundred bytes of YAML anchors and aliases ("billion laughs") expand into billions of nodes once
something copies them, as OmegaConf does: a config that hung `recfit train` forever. The file is
parsed into YAML's node graph first, where an alias is a reference and nothing is copied, and the
size it would expand to is counted; above the caps it is refused in one line.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from recfit.errors import ConfigError

MAX_BYTES = 1_000_000  # a config or an overrides.yaml is a few kilobytes
MAX_NODES = 100_000  # scalars, lists and mappings after expanding every alias
CONFIG_DIR_FLAGS = ("--config-path", "--config-dir", "-cp", "-cd")


def check_yaml_file(path: Path) -> str:
    """The text of `path` if it is a regular, small YAML file that does not explode; else ConfigError."""
    if not path.is_file():
        raise ConfigError(f"{path} is not a regular file")
    size = path.stat().st_size
    if size > MAX_BYTES:
        raise ConfigError(f"{path} is {size:,} bytes; a config file may have at most {MAX_BYTES:,}")
    try:
        text = path.read_text()
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as error:
        raise ConfigError(f"cannot read {path}: {str(error).splitlines()[0]}") from None
    if root is not None and _expanded_size(root, {}, set()) > MAX_NODES:
        raise ConfigError(f"{path} expands (through YAML aliases) to more than {MAX_NODES:,} values; refused")
    return text


def _expanded_size(node: yaml.Node, sizes: dict[int, int], open_nodes: set[int]) -> int:
    """Values under `node` with every alias expanded (a shared node counts at each use, computed once)."""
    key = id(node)
    if key in sizes:
        return sizes[key]
    if key in open_nodes:  # an alias to an enclosing node: infinite when expanded
        return MAX_NODES + 1
    open_nodes.add(key)
    total = 1
    if isinstance(node, yaml.SequenceNode):
        for child in node.value:
            total += _expanded_size(child, sizes, open_nodes)
            if total > MAX_NODES:
                break
    elif isinstance(node, yaml.MappingNode):
        for name, value in node.value:
            total += _expanded_size(name, sizes, open_nodes) + _expanded_size(value, sizes, open_nodes)
            if total > MAX_NODES:
                break
    open_nodes.discard(key)
    sizes[key] = total
    return total


def check_config_dirs(arguments: list[str]) -> None:
    """Every YAML file under a `--config-path` / `--config-dir` folder given on the command line."""
    for index, argument in enumerate(arguments):
        flag, equals, value = argument.partition("=")
        if flag not in CONFIG_DIR_FLAGS:
            continue
        if not equals:
            value = arguments[index + 1] if index + 1 < len(arguments) else ""
        folder = Path(value).expanduser()
        if folder.is_dir():
            for file in sorted(folder.rglob("*.yaml")):
                check_yaml_file(file)
