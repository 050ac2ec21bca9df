"""Running `recfit` as a user does: in this process (fast) or as a real subprocess (the CLI path)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import NamedTuple, Protocol

from helpers.files import REPO


class CliResult(NamedTuple):
    """What one `recfit` command left behind; field names match subprocess.CompletedProcess."""

    returncode: int
    stdout: str
    stderr: str


class _Finished(Protocol):
    returncode: int
    stderr: str


def recfit(
    *arguments: str, cwd: Path = REPO, timeout: int = 300, env: dict | None = None
) -> subprocess.CompletedProcess:
    """`python -m recfit <arguments>` in a fresh process: real argv, real exit code, real stderr."""
    return subprocess.run(
        [sys.executable, "-m", "recfit", *arguments],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=timeout,
        env=env,
    )


def run_cli(capsys, *arguments: str) -> CliResult:
    """`recfit <arguments>` in this process (pytest's capsys captures the output)."""
    from recfit.cli import main

    capsys.readouterr()
    try:
        main(list(arguments))
        code = 0
    except SystemExit as stop:
        code = stop.code if isinstance(stop.code, int) else (0 if stop.code is None else 1)
    out, err = capsys.readouterr()
    return CliResult(code, out, err)


def assert_one_line_error(result: _Finished, expected: str) -> None:
    """A refusal as the user sees it: non-zero exit, no traceback, exactly one `recfit: error:` line."""
    assert result.returncode != 0, getattr(result, "stdout", "")
    assert "Traceback" not in result.stderr, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("recfit: error:")]
    assert len(errors) == 1, result.stderr
    assert expected in errors[0], errors[0]
