"""A circuit breaker for a dependency that may hang rather than fail: after ``threshold``
consecutive failures it opens, and callers are answered at once instead of each waiting out a
timeout; a background probe tries the dependency after a back-off (doubling up to a cap) and
closes the breaker when it answers.

States: CLOSED (calls go through), OPEN (calls are refused; a probe is scheduled), HALF_OPEN (the
probe is running; calls are still refused, so a dependency that is still hung costs one probe,
not every request). Only the probe leaves OPEN; it never raises and is the only caller of the
dependency while the breaker is not closed.

The breaker knows nothing of metrics or logs: whoever owns it passes ``on_transition``, called
once per state change with the old and the new state and a few facts about the change.
"""

from __future__ import annotations

import asyncio
import enum
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any


class BreakerState(enum.IntEnum):
    """Also the value of the state gauge: 0 closed, 1 open, 2 half-open."""

    CLOSED = 0
    OPEN = 1
    HALF_OPEN = 2


@dataclass(frozen=True)
class BreakerSettings:
    """``threshold`` consecutive failures open the breaker (0: never, i.e. no breaker); the first
    probe runs ``backoff_s`` after it opens, each failed probe doubles the wait up to
    ``backoff_max_s`` (which bounds how long a recovered dependency waits to be used again)."""

    threshold: int = 3
    backoff_s: float = 0.25
    backoff_max_s: float = 1.0

    @property
    def enabled(self) -> bool:
        return self.threshold > 0

    def validate(self) -> BreakerSettings:
        """Raise ValueError naming the bad value; returns self."""
        if self.threshold < 0:
            raise ValueError(f"breaker threshold must be >= 0 (0: no breaker), got {self.threshold}")
        if not self.backoff_s > 0:
            raise ValueError(f"breaker back-off must be > 0 seconds, got {self.backoff_s}")
        if self.backoff_max_s < self.backoff_s:
            raise ValueError(f"breaker back-off cap ({self.backoff_max_s} s) must be >= the back-off "
                             f"({self.backoff_s} s)")
        return self


Transition = Callable[[BreakerState, BreakerState, dict[str, Any]], None]


class CircuitBreaker:
    """Counts consecutive failures of calls to one dependency and refuses calls while it is open.

    Callers ask ``allow()`` before a call and report its outcome with ``success()`` or
    ``failure()`` (from a running event loop: opening schedules the probe task there).
    ``probe`` is an awaitable check of the dependency returning True when it answers.
    """

    def __init__(self, settings: BreakerSettings, probe: Callable[[], Awaitable[bool]],
                 on_transition: Transition | None = None) -> None:
        self.settings = settings.validate()
        self._probe = probe
        self._on_transition = on_transition
        self.state = BreakerState.CLOSED
        self.failures = 0  # consecutive failures while closed
        self.refused = 0  # calls refused (not made) since the breaker was built
        self.opened = 0  # times it opened from closed
        self.probes = 0  # probes run since it last opened
        self._opened_at = 0.0
        self._next_probe_at = 0.0
        self._task: asyncio.Task | None = None

    def allow(self) -> bool:
        """True when a call may go to the dependency; a refusal is counted (and makes sure the
        probe is running, should it have died or belong to a loop that is gone)."""
        if self.state is BreakerState.CLOSED:
            return True
        self.refused += 1
        self._ensure_probe()
        return False

    def retry_in_s(self) -> float:
        """Seconds until the next probe (0 while one is running or when closed)."""
        if self.state is not BreakerState.OPEN:
            return 0.0
        return max(0.0, self._next_probe_at - time.monotonic())

    def success(self) -> None:
        """A call answered. While open, a late answer to a call made before it opened changes
        nothing: only the probe closes the breaker."""
        if self.state is BreakerState.CLOSED:
            self.failures = 0

    def failure(self) -> None:
        """A call failed or timed out; the ``threshold``-th in a row opens the breaker."""
        if self.state is not BreakerState.CLOSED or not self.settings.enabled:
            return
        self.failures += 1
        if self.failures >= self.settings.threshold:
            self.opened += 1
            self.probes = 0
            self._opened_at = time.monotonic()
            self._next_probe_at = self._opened_at + self.settings.backoff_s
            self._set(BreakerState.OPEN, failures=self.failures, retry_in_s=self.settings.backoff_s)
            self._ensure_probe()

    def _ensure_probe(self) -> None:
        """Start the probe task on the running loop unless it is running there already."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no loop: the next call from one starts it
            return
        task = self._task
        if task is None or task.done() or task.get_loop() is not loop:
            self._task = loop.create_task(self._probe_loop(), name="breaker-probe")

    async def _probe_loop(self) -> None:
        # The wait that follows the next failed probe is twice this (a restarted loop resumes it).
        delay = min(self.settings.backoff_s * 2 ** min(self.probes, 30), self.settings.backoff_max_s)
        while True:
            await asyncio.sleep(max(0.0, self._next_probe_at - time.monotonic()))
            self.probes += 1
            self._set(BreakerState.HALF_OPEN, probe=self.probes)
            try:
                ok = bool(await self._probe())
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - a probe that raises counts as a failed one
                ok = False
            if ok:
                self.failures = 0
                self._set(BreakerState.CLOSED, probes=self.probes,
                          open_s=round(time.monotonic() - self._opened_at, 3))
                self._task = None
                return
            delay = min(delay * 2, self.settings.backoff_max_s)
            self._next_probe_at = time.monotonic() + delay
            self._set(BreakerState.OPEN, probe=self.probes, retry_in_s=delay)

    def _set(self, state: BreakerState, **facts: Any) -> None:
        old, self.state = self.state, state
        if self._on_transition is not None and old is not state:
            self._on_transition(old, state, facts)

    async def close(self) -> None:
        """Stop the probe, if one is scheduled or running."""
        task, self._task = self._task, None
        if task is not None and not task.done():
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                pass
