"""The per-call wrapper every RPC of every service goes through.

``@unary`` / ``@stream`` on a servicer method (the servicer holds a ``CallTracker`` as
``self.calls``): the request id (the client's ``x-request-id`` or a new one, sent back in the
trailers), timing, the in-flight gauge, one access-log line, errors turned into statuses
(``services.rpc.status``), and, while the server drains, refusal with UNAVAILABLE. One tracker
serves every servicer of a server, so the drain waits for all of their calls.
"""

from __future__ import annotations

import asyncio
import functools
import itertools
import re
import secrets
import time
from typing import Any, AsyncIterator, Awaitable, Callable

import grpc

from services.errors import ServiceError, Unavailable
from services.rpc.logs import RequestContext, access, current_request, get_logger
from services.rpc.metrics import Children, RpcMetrics
from services.rpc.status import status_of

log = get_logger("rpc")

REQUEST_ID_HEADER = "x-request-id"
REQUEST_ID_PATTERN = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
DRAINING_MESSAGE = "the server is shutting down; retry on another replica"

# Outcomes not logged when the per-RPC access log is off: success and the client's own limits.
_QUIET_CODES = frozenset({grpc.StatusCode.OK, grpc.StatusCode.RESOURCE_EXHAUSTED, grpc.StatusCode.CANCELLED,
                          grpc.StatusCode.DEADLINE_EXCEEDED})

_CODE_NAMES = {code: code.name for code in grpc.StatusCode}  # an enum's .name is a property, slow per call

# Server-made request ids: a random per-process prefix and a counter - unique without a system
# call per request.
_ID_PREFIX = secrets.token_hex(8)
_id_counter = itertools.count(1)


def new_request_id() -> str:
    """A request id made by the server (the client sent none, or one not of REQUEST_ID_PATTERN)."""
    return f"{_ID_PREFIX}{next(_id_counter):08x}"


def _request_id(context: grpc.aio.ServicerContext) -> str:
    for key, value in context.invocation_metadata() or ():
        if key == REQUEST_ID_HEADER and isinstance(value, str) and REQUEST_ID_PATTERN.match(value):
            return value
    return new_request_id()


def deadline(context: grpc.aio.ServicerContext) -> float | None:
    """The call's deadline in ``loop.time()`` seconds, or None when the client set none."""
    remaining = context.time_remaining()
    return None if remaining is None else asyncio.get_running_loop().time() + remaining


def add_trailer(key: str, value: str) -> None:
    """Send a trailing metadata entry with the current RPC's status."""
    call = current_request.get()
    if isinstance(call, _Call):
        call.extra_trailers.append((key, value))


class CallTracker:
    """The calls of one server: per-call metrics and log line, the count of calls in flight,
    and the drain (new calls refused, ``wait_idle`` until those in flight have finished)."""

    def __init__(self, metrics: RpcMetrics, access_log: bool = True) -> None:
        self.access_log = access_log
        self.draining = False
        self._active = 0
        self._idle: asyncio.Event | None = None
        self._inflight = Children(metrics.inflight.labels)
        self._outcome = Children(lambda method, code, protocol: (
            metrics.requests.labels(method, code, protocol), metrics.request_duration.labels(method, code, protocol)))

    @property
    def in_flight(self) -> int:
        """RPCs being served now."""
        return self._active

    def start_draining(self) -> None:
        """Refuse new calls (UNAVAILABLE, retry elsewhere); calls in flight go on."""
        self.draining = True

    async def wait_idle(self, timeout_s: float) -> bool:
        """Wait until no RPC is in flight (True) or ``timeout_s`` has passed (False)."""
        if self._active == 0:
            return True
        self._idle = asyncio.Event()
        try:
            await asyncio.wait_for(self._idle.wait(), max(0.0, timeout_s))
            return True
        except asyncio.TimeoutError:
            return self._active == 0


class _Call(RequestContext):
    """Bookkeeping of one RPC: request id, timing, outcome; the request's log context."""

    __slots__ = ("tracker", "method", "protocol", "code", "message", "extra_trailers", "start", "_token",
                 "_inflight")

    def __init__(self, tracker: CallTracker, method: str, context: grpc.aio.ServicerContext) -> None:
        # RequestContext's fields, set here: this runs once per call.
        self.request_id = _request_id(context)
        self.fields = {}
        self.tracker, self.method = tracker, method
        # "grpc", or the protocol of a context that stands in for grpc's (services.http.context).
        self.protocol = getattr(context, "protocol", "grpc")
        self.code = grpc.StatusCode.OK
        self.message = ""
        self.extra_trailers: list[tuple[str, str]] = []

    def __enter__(self) -> "_Call":
        self._token = current_request.set(self)
        self.start = time.perf_counter()
        tracker = self.tracker
        self._inflight = tracker._inflight.get(self.method, self.protocol)
        self._inflight.inc()
        tracker._active += 1
        return self

    def fail(self, exc: BaseException) -> None:
        """Record the status an exception maps to."""
        self.code, self.message = status_of(exc, self.request_id)
        if self.code == grpc.StatusCode.INTERNAL and not isinstance(exc, ServiceError):
            log.error("rpc_internal_error", exc_info=exc, extra={"fields": {"method": self.method}})

    def __exit__(self, *exc_info: Any) -> None:
        seconds = time.perf_counter() - self.start
        tracker = self.tracker
        self._inflight.dec()
        tracker._active -= 1
        if tracker._active == 0 and tracker._idle is not None:
            tracker._idle.set()
        code = _CODE_NAMES[self.code]
        requests, duration = tracker._outcome.get(self.method, code, self.protocol)
        requests.inc()
        duration.observe(seconds)
        if tracker.access_log or self.code not in _QUIET_CODES:
            fields = {"method": self.method, "code": code, "duration_ms": round(seconds * 1000, 3), **self.fields}
            if self.protocol != "grpc":
                fields["protocol"] = self.protocol
            if self.message and self.code != grpc.StatusCode.INTERNAL:
                fields["message"] = self.message
            access(log, "rpc", self.request_id, fields)
        try:
            current_request.reset(self._token)
        except ValueError:  # a cancelled stream's generator is closed from another context; nothing to undo there
            pass

    @property
    def trailers(self) -> tuple[tuple[str, str], ...]:
        return ((REQUEST_ID_HEADER, self.request_id), *self.extra_trailers)


def unary(method: Callable[..., Awaitable[Any]] | None = None, *,
          name: str | None = None) -> Any:
    """Wrap a unary servicer method (its servicer holds the server's tracker as ``calls``);
    ``@unary(name="X")`` records it as RPC ``X`` (another method serving the same RPC)."""
    if method is None:
        return functools.partial(unary, name=name)
    name = name or method.__name__

    @functools.wraps(method)
    async def wrapper(self: Any, request: Any, context: grpc.aio.ServicerContext) -> Any:
        calls: CallTracker = self.calls
        with _Call(calls, name, context) as call:
            try:
                if calls.draining:
                    raise Unavailable(DRAINING_MESSAGE)
                response = await method(self, request, context)
                context.set_trailing_metadata(call.trailers)
                return response
            except BaseException as exc:  # noqa: BLE001 - mapped to a status below
                call.fail(exc)
                if isinstance(exc, asyncio.CancelledError):
                    raise
        await context.abort(call.code, call.message, trailing_metadata=call.trailers)

    return wrapper


def stream(method: Callable[..., AsyncIterator[Any]]) -> Callable[..., AsyncIterator[Any]]:
    """Wrap a server-streaming servicer method, as ``unary`` does."""
    name = method.__name__

    @functools.wraps(method)
    async def wrapper(self: Any, request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
        calls: CallTracker = self.calls
        with _Call(calls, name, context) as call:
            try:
                if calls.draining:
                    raise Unavailable(DRAINING_MESSAGE)
                async for item in method(self, request, context):
                    yield item
                context.set_trailing_metadata(call.trailers)
                return
            except BaseException as exc:  # noqa: BLE001
                call.fail(exc)
                if isinstance(exc, (asyncio.CancelledError, GeneratorExit)):
                    raise
        await context.abort(call.code, call.message, trailing_metadata=call.trailers)

    return wrapper


def inner_call(tracker: CallTracker, method: str, context: grpc.aio.ServicerContext) -> _Call:
    """The bookkeeping of one request carried inside a stream (a Session's), as for an RPC of its
    own: ``with`` it around the request's work, in the request's own task; ``fail(exc)`` records
    the error's status (then ``code`` / ``message``). It counts as in flight for the drain."""
    return _Call(tracker, method, context)
