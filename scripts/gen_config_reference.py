"""Write docs/configuration.md from the config schemas and conf/ (run after adding or changing a key).

python scripts/gen_config_reference.py          # rewrite docs/configuration.md
python scripts/gen_config_reference.py --check  # exit 1 if the committed file is out of date
"""

from __future__ import annotations

import sys
from pathlib import Path

from recfit.config.reference import render_reference

TARGET = Path(__file__).resolve().parents[1] / "docs" / "configuration.md"


def main(arguments: list[str]) -> int:
    text = render_reference()
    if "--check" in arguments:
        current = TARGET.read_text() if TARGET.is_file() else ""
        if current != text:
            print(f"{TARGET} is out of date: run python {Path(__file__).name}", file=sys.stderr)
            return 1
        return 0
    TARGET.write_text(text)
    print(f"wrote {TARGET}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
