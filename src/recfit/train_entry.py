"""`python -m recfit.train_entry [key=value ...]`: the train app alone, the command DDP ranks re-run.

Lightning's `ddp` strategy starts ranks 1..N-1 by running `python -m <module of __main__>` with
`sys.argv[1:]` again (plus the run folder of rank 0). Neither `recfit train ...` nor
`python -m recfit train ...` survives that rewrite, so before a `ddp` run starts, `recfit train` makes
this module the one Lightning sees. The config was validated once, in rank 0.
"""

from __future__ import annotations

import importlib.util
import sys


def reexecute_here(arguments: list[str]) -> None:
    """Make Lightning re-run ranks as `python -m recfit.train_entry ARGUMENTS`."""
    import __main__

    sys.argv = [__file__, *arguments]
    __main__.__spec__ = importlib.util.find_spec(__name__)


if __name__ == "__main__":
    from recfit.apps import train_app

    train_app()
