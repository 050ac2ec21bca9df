"""Stop on SIGTERM or Ctrl-C, in any phase of a run, at a point a resume continues from exactly.

Lightning stops gracefully on SIGTERM (after the current batch, writing last.ckpt through
InterruptCheckpoint), but only while one of its loops runs, and not on SIGINT: a KeyboardInterrupt
lands in the middle of whatever runs, a half-done optimizer step included. A run has phases outside
Lightning too (reading the data, building the model, writing metrics.json), where a signal used to
end the process at once and leave its record `running` with a dead pid. `StopSignals` covers the
whole run:

- while a Lightning loop runs, SIGTERM and SIGINT both ask it to stop after the current batch;
- elsewhere, they raise `Interrupted` at once: the run is recorded as interrupted;
- a signal that Lightning left unanswered (it arrived while a loop was starting or on its last batch)
  is raised as soon as that loop returns (`raise_if_received`);
- the final records are written with both signals held back (`held`), so they are whole;
- a second Ctrl-C stops at once.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any

import lightning.pytorch as pl

SIGNALS = (signal.SIGTERM, signal.SIGINT)


class Interrupted(SystemExit):
    """The run was stopped by a signal; exits as the signal itself would (128 + its number)."""

    def __init__(self, signum: int) -> None:
        super().__init__(128 + signum)
        self.signum = signum


class StopSignals(pl.Callback):
    """Handles SIGTERM and SIGINT for one run, from `install()` to `uninstall()` (in the main thread)."""

    def __init__(self) -> None:
        self.received: int | None = None
        self._holding = False  # inside `held`: a signal is noted (in _held), and raised when it ends
        self._held: int | None = None
        self._trainer: pl.Trainer | None = None  # set while a Lightning loop runs
        self._previous: dict[int, Any] = {}

    def install(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return  # Python delivers signals to the main thread only; a run in another thread keeps its own
        for signum in SIGNALS:
            self._previous[signum] = signal.signal(signum, self._handle)

    def uninstall(self) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous = {}

    def __getstate__(self) -> dict[str, Any]:
        # ddp_spawn pickles the callbacks into its workers; the handlers and the trainer stay here
        return {**self.__dict__, "_previous": {}, "_trainer": None}

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        first = self.received is None
        self.received = self.received or signum
        if self._holding:
            self._held = signum
            return
        if self._trainer is None or not first:
            raise Interrupted(self.received)
        if signum != signal.SIGTERM:  # Lightning's own handler already noted a SIGTERM
            # the same path as SIGTERM: stop the launcher's other processes, stop after this batch
            self._trainer._signal_connector._sigterm_notifier_fn(signum, frame)

    def raise_if_received(self) -> None:
        """Raise `Interrupted` for a signal that arrived while a Lightning loop could not act on it."""
        if self.received is not None:
            raise Interrupted(self.received)

    @contextmanager
    def held(self) -> Iterator[None]:
        """Both signals wait until the block is done, then raise `Interrupted`.

        (A flag, not a signal mask: a mask holds a signal back from one thread only, and a signal
        sent to the process goes to any thread that does not block it, torch's included.)
        """
        self._holding, self._held = True, None
        try:
            yield
        finally:
            self._holding = False
        if self._held is not None:
            raise Interrupted(self._held)

    # Lightning's hooks: which trainer runs a loop, and a signal that came while it was setting up
    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        self._trainer = trainer

    def teardown(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        self._trainer = None

    def _ask_to_stop(self, trainer: pl.Trainer) -> None:
        # Lightning forgets a signal received before its handlers are registered (between setup and
        # the first batch), so it is passed on again once the loop has started
        if self.received is not None:
            trainer._signal_connector.received_sigterm = True

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._ask_to_stop(trainer)

    def on_validation_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._ask_to_stop(trainer)

    def on_test_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._ask_to_stop(trainer)
