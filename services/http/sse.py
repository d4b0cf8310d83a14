"""A server stream's messages as Server-Sent Events.

Each message is an event ``data`` (its proto3 JSON); the stream ends with ``end`` or with
``error`` (``{code, message}``). The servicer's stream runs in a task of its own that feeds a
short queue, so that:

* the first message (or the refusal) is known before the HTTP status is sent: a request the
  servicer refuses at once gets its error status and JSON body, as a unary call would;
* a client that goes away cancels the task, and with it the work (the drawing, the batch);
* the server's drain can end every open stream with an ``error`` event (UNAVAILABLE) instead of
  cutting the connection;
* an idle stream (a training job between events) sends a comment every ``KEEPALIVE_S``, which
  keeps proxies from closing it and finds clients that left.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any, AsyncIterator, Callable

import grpc
from google.protobuf import json_format

from services.http.context import CallAborted
from services.http.errors import error_body
from services.rpc.logs import get_logger

log = get_logger("http")

KEEPALIVE_S = 15.0
FIRST_WAIT_S = 1.0  # how long the answer's status waits for the stream's first event
DRAINING_MESSAGE = "the server is shutting down; retry on another replica"
_QUEUE = 2  # messages made ahead of what the connection has taken

Event = tuple[bytes, bool]  # the event's bytes, and whether the stream ends with it


def message_json(message: Any) -> bytes:
    """A message in the canonical proto3 JSON mapping, compact."""
    return json.dumps(json_format.MessageToDict(message), separators=(",", ":")).encode()


def _event(kind: str, data: bytes, event_id: Any = None) -> bytes:
    head = f"event: {kind}\n" if event_id is None else f"id: {event_id}\nevent: {kind}\n"
    return head.encode() + b"data: " + data + b"\n\n"


def error_event(code: str, message: str) -> Event:
    return _event("error", error_body(code, message)), True


END: Event = (_event("end", b"{}"), True)
KEEPALIVE: Event = (b": keep-alive\n\n", False)


class EventStream:
    """One server stream answered as Server-Sent Events; ``open`` set holds it while it runs."""

    def __init__(self, messages: AsyncIterator[Any], open_streams: set["EventStream"],
                 timeout_s: float | None = None, event_id: str | None = None,
                 trailers: Callable[[], dict[str, str]] | None = None) -> None:
        self._messages = messages
        self._trailers = trailers  # what the call sent as trailers once it ended: the end event's data
        self._open = open_streams
        self._timeout_s = timeout_s
        self._event_id = event_id
        self._queue: asyncio.Queue[Event] = asyncio.Queue(_QUEUE)
        self._first: Event | None = None
        self._task: asyncio.Task | None = None

    async def first(self, wait_s: float = FIRST_WAIT_S) -> CallAborted | None:
        """Start the stream and wait up to ``wait_s`` for its first event: the refusal when it
        is an error before any message (the caller answers it as a unary call's error), else
        None. A stream with nothing to say yet (a job between events) starts without it."""
        self._open.add(self)
        self._task = asyncio.create_task(self._produce())
        try:
                first = await asyncio.wait_for(self._queue.get(), wait_s)
        except TimeoutError:
            return None
        if first[1] and not first[0].startswith(b"event: end"):  # an error before any message: it is over
            self._open.discard(self)
            await asyncio.wait([self._task])  # (not awaited itself: this call's own cancellation still raises)
            if self._task.cancelled():  # the drain ended it before it began
                return CallAborted(grpc.StatusCode.UNAVAILABLE, DRAINING_MESSAGE)
            return self._task.result()
        self._first = first
        return None

    async def events(self) -> AsyncIterator[bytes]:
        """The response body: the first event, then the rest, until one ends the stream."""
        try:
            event = self._first or await self._next()
            while True:
                yield event[0]
                if event[1]:
                    break
                event = await self._next()
        finally:
            self._open.discard(self)
            if self._task is not None and not self._task.done():
                self._task.cancel()  # the client went away: stop the work

    async def _next(self) -> Event:
        try:
            return await asyncio.wait_for(self._queue.get(), KEEPALIVE_S)
        except TimeoutError:
            return KEEPALIVE

    def close(self) -> None:
        """End the stream now with an ``error`` event, UNAVAILABLE (the server drains): the work
        is cancelled and the events not sent yet give way to that one."""
        if self._task is not None and not self._task.done():
            self._task.cancel()
            while not self._queue.empty():
                self._queue.get_nowait()
            self._queue.put_nowait(error_event("UNAVAILABLE", DRAINING_MESSAGE))

    async def _produce(self) -> CallAborted | None:
        """Run the servicer's stream into the queue; returns the refusal it ended with, if any."""
        encode: Callable[[Any], Event]
        if self._event_id is None:
            encode = lambda m: (_event("data", message_json(m)), False)  # noqa: E731
        else:
            field = self._event_id
            encode = lambda m: (_event("data", message_json(m), getattr(m, field)), False)  # noqa: E731
        try:
            async with asyncio.timeout(self._timeout_s):
                async for message in self._messages:
                    await self._queue.put(encode(message))
        except CallAborted as exc:
            await self._queue.put(error_event(exc.code.name, exc.message))
            return exc
        except TimeoutError:
            exc = CallAborted(grpc.StatusCode.DEADLINE_EXCEEDED, "the stream's deadline (X-Timeout-Ms) passed")
            await self._queue.put(error_event(exc.code.name, exc.message))
            return exc
        except Exception as exc:  # noqa: BLE001 - a bug: the stream still ends, with INTERNAL
            log.error("http_stream_failed", exc_info=exc)
            failed = CallAborted(grpc.StatusCode.INTERNAL, "internal error; the server logged it")
            await self._queue.put(error_event(failed.code.name, failed.message))
            return failed
        await self._queue.put(self._end())
        return None

    def _end(self) -> Event:
        """The ``end`` event: ``{}``, or the call's trailers (GenerateStream's
        ``{"trailers": {"x-samples-stored": "false"}}`` says its ids cannot be used later)."""
        trailers = self._trailers() if self._trailers is not None else {}
        if not trailers:
            return END
        return _event("end", json.dumps({"trailers": trailers}, separators=(",", ":")).encode()), True
