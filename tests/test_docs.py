"""The docs cannot drift: the config reference is what its generator writes, every `recfit train` /
`recfit validate` example composes and validates, and every relative link points at a file."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from helpers.cli import run_cli
from helpers.files import REPO
from recfit.config import compose, validate
from recfit.config.reference import render_reference
from recfit.config.sweep import is_search_sweep, validate_sweep
from recfit.errors import ConfigError
from recfit.run_folder import best_checkpoint

DOCS = REPO / "docs"
PAGES = sorted(DOCS.glob("*.md")) + [REPO / "README.md"]
# written on another branch of the same issue; drop it from this set once both are merged
MULTIRUN = ("-m", "--multirun")


def test_configuration_reference_is_generated_from_the_schemas():
    committed = (DOCS / "configuration.md").read_text()
    assert committed == render_reference(), (
        "docs/configuration.md is stale: python scripts/gen_config_reference.py"
    )


def test_reference_covers_every_option_and_schema_key():
    text = render_reference()
    for file in (REPO / "conf").glob("*/*.yaml"):
        assert f"### `{file.parent.name}={file.stem}`" in text, file
    for key in (
        "`dataset.class_weights`",
        "`class_weights`",
        "`image_column`",
        "`backbone.freeze`",
        "`seed`",
    ):
        assert key in text or key.strip("`").split(".")[-1] in text, key


ERROR_PREFIX = "recfit: error: "
COMMAND = re.compile(r"(\.venv/bin/)?recfit (train|validate)\b")
# usage patterns, not commands: `recfit train backbone=<name>`, `recfit validate [overrides] [-m]`
PLACEHOLDER = re.compile(r"<\w|\s\[|\.\.\.$|=\.\.\.")


def example_commands() -> list[tuple[str, str, str | None]]:
    """(page, command, expected error or None) for every `recfit train` / `recfit validate` example:
    lines of code blocks (a `recfit: error:` line right after one is the error it must give) and
    inline code spans."""
    found = []
    for page in PAGES:
        in_code, pending = False, ""
        lines = page.read_text().splitlines()
        for number, line in enumerate(lines):
            if line.lstrip().startswith("```"):
                in_code, pending = not in_code, ""
                continue
            if not in_code:
                for span in re.findall(r"`([^`]+)`", line):
                    if COMMAND.match(span) and not PLACEHOLDER.search(span):
                        found.append((page.name, span, None))
                continue
            text = pending + line.strip().removeprefix("$ ")
            if text.endswith("\\"):
                pending = text[:-1] + " "
                continue
            pending = ""
            if COMMAND.match(text) and not PLACEHOLDER.search(re.split(r"\s+#\s", text)[0].strip()):
                following = lines[number + 1] if number + 1 < len(lines) else ""
                error = following.removeprefix(ERROR_PREFIX) if following.startswith(ERROR_PREFIX) else None
                found.append((page.name, re.split(r"\s+#\s", text)[0].strip(), error))
    return found


COMMANDS = example_commands()
# a command shown on several pages is one case (the test reads nothing but the command and its error)
CASES: dict[tuple[str, str | None], str] = {}
for _page, _command, _error in COMMANDS:
    CASES.setdefault((_command, _error), _page)


def stand_in_paths(overrides: list[str], tmp_path: Path) -> list[str]:
    """Placeholder data paths (path/to/ml-100k, reviews.csv) -> an existing file or folder of that kind:
    validation checks only that dataset.reader.path exists; reading it is the readers' tests' business."""
    out = []
    for override in overrides:
        key, _, value = override.partition("=")
        is_data_path = key == "dataset.reader.path" or re.fullmatch(
            r"dataset\.domains\.\w+\.reader\.path", key
        )
        if is_data_path and not Path(value).expanduser().exists():
            values = []
            for one in value.split(","):  # a sweep over several files
                stand_in = tmp_path / Path(one).name
                if stand_in.suffix:
                    stand_in.write_text("text,label\n")
                else:
                    stand_in.mkdir(exist_ok=True)
                values.append(str(stand_in))
            override = f"{key}={','.join(values)}"
        if key == "init_from.path" and not Path(value).expanduser().exists():  # RUN_DIR: a parent's folder
            checkpoint = best_checkpoint(tmp_path / "parent")
            checkpoint.parent.mkdir(parents=True, exist_ok=True)
            checkpoint.touch()
            override = f"{key}={checkpoint.parent.parent}"
        out.append(override)
    return out


def test_the_docs_have_examples():
    pages = {page for page, _, _ in COMMANDS}
    assert {"getting-started.md", "reproducing.md", "README.md"} <= pages
    assert any("dataset=image_folder" in command for _, command, _ in COMMANDS)
    assert any("dataset.class_weights" in command for _, command, _ in COMMANDS)
    assert any(error for _, _, error in COMMANDS)  # the documented error messages are checked too


@pytest.mark.slow  # ~1 s each: Hydra composes every job of every documented sweep
@pytest.mark.parametrize(
    ("command", "error"), list(CASES), ids=[f"{p}:{c[:60]}" for (c, _), p in CASES.items()]
)
def test_example_command_composes_and_validates(command, error, tmp_path, capsys):
    words = shlex.split(command)[2:]
    if any(word in ("--help", "-h", "--hydra-help") for word in words):
        help_text = run_cli(capsys, *shlex.split(command)[1:])  # a help text: it must answer, exit 0
        assert help_text.returncode == 0 and "backbone" in help_text.stdout, help_text.stderr
        return
    multirun = any(word in MULTIRUN for word in words)
    words = [
        w for i, w in enumerate(words) if not w.startswith("-") and words[i - 1] != "--cfg" and w != "..."
    ]
    overrides = stand_in_paths(words, tmp_path)
    if error is not None:
        with pytest.raises(ConfigError) as raised:
            validate(compose(overrides))
        assert str(raised.value) == error
    elif multirun and not is_search_sweep(overrides):
        assert validate_sweep(overrides) >= 1  # every job of the grid
    else:
        # a single run, or a search sweep, whose trials differ only in the searched keys: the base must
        # compose and validate
        validate(compose(overrides))


def test_relative_links_point_at_files():
    broken = []
    for page in PAGES:
        for target in re.findall(r"\]\(([^)#:]+?)(?:#[^)]*)?\)", page.read_text()):
            if not (page.parent / target).exists():
                broken.append(f"{page.name}: {target}")
    assert not broken
