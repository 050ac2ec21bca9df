"""What `recfit train --help` lists besides the groups: the top-level keys of conf/train.yaml.

Read from the YAML's own one-line comments (every config option has one), so the help text and the
config never disagree; plain text parsing keeps `--help` free of heavy imports.
"""

from __future__ import annotations

import re

from recfit.config.compose import conf_dir

_KEY = re.compile(r"^(?P<indent> {0,2})(?P<key>[a-z_]+):\s*(?P<value>[^#]*?)\s*(?:#\s*(?P<comment>.*))?$")
SKIPPED = ("defaults", "hydra")  # the groups are listed apart; Hydra's own settings are not recfit keys


def top_level_keys() -> list[tuple[str, str]]:
    """(key, comment) of each top-level key of conf/train.yaml; keys of a block as block.key."""
    keys: list[tuple[str, str]] = []
    parent: str | None = None
    for line in (conf_dir() / "train.yaml").read_text().splitlines():
        match = _KEY.match(line)
        if match is None:
            continue
        key, value, comment = match["key"], match["value"], match["comment"] or ""
        if not match["indent"]:
            parent = key
            if key not in SKIPPED and value:
                keys.append((key, comment))
        elif parent not in SKIPPED and len(match["indent"]) == 2:
            keys.append((f"{parent}.{key}", comment))
    return keys
