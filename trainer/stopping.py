"""Stopping a run early and cleanly: SIGTERM or SIGINT ends training at a step boundary.

The signal handler only records the request; the training loop checks it after each step,
writes a checkpoint at that step and run.json, and returns. Under torchrun every rank
receives the signal at its own moment (or only one rank does), so the ranks agree each step
(an all-reduce of `StopRequest.code`) and all stop after the same step, with the same reason
and exit status. A second signal aborts at once.

`latentforge train` exits with 128 + the signal number after such a stop (143 for SIGTERM,
130 for SIGINT): the run is resumable (`--resume` or `--resume auto`) but not finished, so
a supervisor does not mistake it for a completed run.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from contextlib import contextmanager
from typing import Iterator

log = logging.getLogger(__name__)

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
_BY_CALLER = 1000  # code of a request made by a caller, not a signal (above every signal number)


class StopRequest:
    """A request to stop at the next step boundary; set by a signal handler or by a caller."""

    def __init__(self) -> None:
        self.reason: str | None = None
        self.signal: int | None = None

    @property
    def requested(self) -> bool:
        return self.reason is not None

    def request(self, reason: str, signum: int | None = None) -> None:
        """Ask the loop to stop after its current step (the first reason given is kept)."""
        if self.reason is None:
            self.reason = reason
            self.signal = signum

    @property
    def code(self) -> int:
        """0 when no stop is requested, the signal number for a signal, 1000 for a caller's request;
        the ranks of a job all-reduce it (max) to agree on whether and why to stop."""
        if not self.requested:
            return 0
        return self.signal if self.signal is not None else _BY_CALLER

    def agree(self, code: int) -> None:
        """Take the ranks' agreed request (the all-reduced `code`) as this one; 0 changes nothing,
        so a request made after the all-reduce counts at the next one."""
        if code == _BY_CALLER:
            self.reason, self.signal = "stop requested", None
        elif code:
            self.reason, self.signal = signal.Signals(code).name, code

    @property
    def exit_status(self) -> int:
        """The process exit status for a run stopped by this request: 128 + signal, else 1."""
        return 128 + self.signal if self.signal is not None else 1


@contextmanager
def stop_on_signals(signals: tuple[int, ...] = STOP_SIGNALS) -> Iterator[StopRequest]:
    """Within the block, the first of `signals` requests a stop; a second one aborts at once
    (the signal's previous handler runs). Handlers are restored on exit. Outside the main
    thread, where Python cannot install handlers, the request is only set by callers."""
    stop = StopRequest()
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return
    previous = {s: signal.getsignal(s) or signal.SIG_DFL for s in signals}  # None: set outside Python

    def handle(signum: int, frame: object) -> None:
        if stop.requested:
            for s, handler in previous.items():
                signal.signal(s, handler)
            log.warning("second %s: aborting without a checkpoint", signal.Signals(signum).name)
            os.kill(os.getpid(), signum)
            return
        name = signal.Signals(signum).name
        stop.request(name, signum)
        log.warning("%s received: stopping after the current step with a checkpoint (send it again to abort)", name)

    for s in signals:
        signal.signal(s, handle)
    try:
        yield stop
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
