"""What a piece of recfit loads: the import rules of docs/architecture.md, checked in a fresh interpreter."""

from __future__ import annotations

import ast
import subprocess
import sys

HEAVY = ("torch", "lightning", "transformers")


def modules_loaded_by(code: str, packages: tuple[str, ...] = HEAVY) -> list[str]:
    """Run `code` in a fresh interpreter; the loaded modules that belong to `packages`, sorted.

    A package name matches itself and its submodules (`recfit.` lists every recfit module).
    """
    report = (
        f"\nimport sys as _sys; _wanted = {packages!r}; "
        "print(sorted(m for m in _sys.modules if m.split('.')[0] in _wanted or "
        "any(w.endswith('.') and m.startswith(w) for w in _wanted)))"
    )
    result = subprocess.run([sys.executable, "-c", code + report], capture_output=True, text=True, check=True)
    return ast.literal_eval(result.stdout.strip().splitlines()[-1])  # the list printed above
