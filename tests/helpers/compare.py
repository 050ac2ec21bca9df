"""`recfit compare` in this process, as text or as its JSON payload."""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path


def compare(*arguments: str | Path) -> tuple[int, str, str]:
    """`recfit compare <arguments>` in this process; returns (exit code, stdout, stderr)."""
    from recfit.compare.cli import run

    out, err = io.StringIO(), io.StringIO()
    saved = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = out, err
    try:
        code = run([str(argument) for argument in arguments])
    finally:
        sys.stdout, sys.stderr = saved
    return code, out.getvalue(), err.getvalue()


def compare_json(*arguments: str | Path) -> dict:
    """The JSON payload of a `recfit compare` that must succeed."""
    code, out, err = compare(*arguments, "--format", "json")
    assert code == 0, err
    return json.loads(out)
