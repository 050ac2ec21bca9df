"""A sweep's heavy imports, kept out of the garbage collector's way.

torch, Lightning and transformers create over half a million long-lived objects (modules, classes,
functions). Every full pass of the garbage collector walks them all: nine passes while they are
imported (about 2 s of a sweep's start at load 5), and later ones, each longer as a sweep goes on.
The first job imports them with the collector paused; in a sweep those objects are then frozen
(`gc.freeze`) until the sweep ends.
"""

from __future__ import annotations

import gc
import sys
from collections.abc import Iterator
from contextlib import contextmanager

HEAVY_MODULE = "recfit.training.run"  # what a job imports first: torch, Lightning, transformers with it
_freeze_after_imports = False  # a sweep of this process's own command line is running its jobs here
_froze = False  # this module froze the garbage collector's objects (gc.freeze), and unfreezes them


@contextmanager
def imports_out_of_garbage_collection() -> Iterator[None]:
    """While a sweep runs its jobs here, the objects that exist once torch, Lightning and transformers
    are imported (modules, classes, functions: over half a million, all kept to the end) are left out
    of the garbage collector's full passes (gc.freeze), which otherwise walk them all again every few
    seconds, each pass longer as the sweep goes on. They are handed back when the sweep ends."""
    global _freeze_after_imports, _froze
    _freeze_after_imports = True
    try:
        yield
    finally:
        _freeze_after_imports = False
        if _froze:
            gc.unfreeze()
            _froze = False


@contextmanager
def heavy_imports() -> Iterator[None]:
    """The first job's imports of torch, Lightning and transformers, with the garbage collector paused:
    they create no garbage to speak of, but each full pass the collector makes while they run walks
    every object imported so far (nine passes, 2 s of a sweep's start at load 5). In a sweep the
    imported objects are then frozen (`imports_out_of_garbage_collection`)."""
    if HEAVY_MODULE in sys.modules or not gc.isenabled():
        yield
        return
    if _freeze_after_imports:
        gc.collect()  # the configs composed and validated so far are garbage: freed, not frozen
    gc.disable()
    try:
        yield
    finally:
        gc.enable()
    freeze_imports()


def freeze_imports() -> None:
    """Freeze what exists now, once per sweep, and never over someone else's frozen objects."""
    global _froze
    if _freeze_after_imports and not _froze and gc.get_freeze_count() == 0:
        gc.freeze()
        _froze = True
