"""`python -m recfit.train_entry [key=value ...]`: `recfit train`, as the command DDP ranks re-run.

Lightning's `ddp` strategy starts ranks 1..N-1 by running `python -m <module of __main__>` with
`sys.argv[1:]` again (plus the run folder of rank 0). Neither `recfit train ...` nor
`python -m recfit train ...` survives that rewrite, so before a `ddp` run starts, `recfit.apps.launch`
makes this module the one Lightning sees; each rank then goes through `launch` like rank 0.
"""

from __future__ import annotations

import sys

if __name__ == "__main__":
    from recfit.cli import main

    main(["train", *sys.argv[1:]])
