"""The Session RPC: many requests on one long-lived stream, answered by id as they complete.

Each request read from the stream runs as a task of its own through the same pipeline (and so
the same batcher) as the unary calls, and is tracked like one (``services.rpc.calls.inner_call``:
``latentforge_requests_total{method="Session.Generate"}``, latency, in flight, its access-log
line, and the drain waits for it); the stream itself counts once as ``method="Session"``. A
failed request is answered with its id and status; the stream goes on.

Back-pressure: a request holds one of the session's ``max_in_flight`` slots from when it is read
until its answer has been written, and the next request is read only when a slot is free, so a
client that sends faster than it reads its answers is held back by HTTP/2 flow control and the
server's memory per session stays bounded. When the stream ends or is cancelled, the session's
requests still queued are cancelled (the batcher drops them unrun). On drain the session stops
reading, answers what it has read, then ends with UNAVAILABLE (nothing unanswered was run).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any

import grpc

from latentforge.v1 import generation_pb2 as pb
from services.errors import AlreadyExists, InvalidArgument, Unavailable
from services.generation import convert
from services.rpc.calls import DRAINING_MESSAGE, CallTracker, deadline, inner_call

MAX_ID_LENGTH = 128

# Per request kind (the SessionRequest oneof field): its method label and its handler, which
# turns the inner request into a SessionResponse (id filled in here) or raises a service error.
Handler = Callable[[Any, "float | None"], Awaitable[pb.SessionResponse]]
Handlers = Mapping[str, tuple[str, Handler]]

_DONE = object()  # wakes the writer when the reader has stopped


class Sessions:
    """The open Session streams of one servicer, so that a drain can reach them."""

    def __init__(self, calls: CallTracker, max_in_flight: int) -> None:
        self.calls = calls
        self.max_in_flight = max_in_flight
        self._open: set[_Session] = set()

    def __len__(self) -> int:
        return len(self._open)

    def begin_drain(self) -> None:
        """Every open session stops reading; what it has read is answered, then it ends."""
        for session in list(self._open):
            session.stop_reading()

    async def serve(self, requests: AsyncIterator[pb.SessionRequest], context: grpc.aio.ServicerContext,
                    handlers: Handlers) -> AsyncIterator[pb.SessionResponse]:
        """The answers of one Session stream, in the order they complete."""
        session = _Session(self, requests, context, handlers)
        self._open.add(session)
        try:
            async for response in session.run():
                yield response
        finally:
            self._open.discard(session)
            await session.close()


class _Session:
    """One stream: a reader task, one task per request, and the answers queued for writing."""

    def __init__(self, owner: Sessions, requests: AsyncIterator[pb.SessionRequest],
                 context: grpc.aio.ServicerContext, handlers: Handlers) -> None:
        self.owner, self.requests, self.context, self.handlers = owner, requests, context, handlers
        self.until = deadline(context)
        self.slots = asyncio.Semaphore(owner.max_in_flight)
        self.answers: asyncio.Queue[Any] = asyncio.Queue()  # answers to write, or _DONE
        self.in_flight: set[str] = set()  # ids of requests read and not yet answered
        self.unanswered = 0  # requests read whose answer has not been written yet
        self.tasks: set[asyncio.Task] = set()
        self.reader: asyncio.Task | None = None
        self.reading = True
        self.drained = False
        self.read_error: Exception | None = None

    def stop_reading(self) -> None:
        """The server drains: read no more requests."""
        self.drained = True
        if self.reader is not None:
            self.reader.cancel()

    async def run(self) -> AsyncIterator[pb.SessionResponse]:
        if self.owner.calls.draining:
            raise Unavailable(DRAINING_MESSAGE)
        self.reader = asyncio.create_task(self._read())
        answers, slots = self.answers, self.slots
        while self.reading or self.unanswered:
            item = await answers.get()
            if item is _DONE:
                continue
            yield item  # returns once the transport took it (flow control)
            self.unanswered -= 1
            slots.release()
        if self.read_error is not None:
            raise self.read_error
        if self.drained:
            raise Unavailable(DRAINING_MESSAGE)

    async def _read(self) -> None:
        """Read requests while a slot is free; start each one."""
        try:
            iterator = self.requests.__aiter__()
            while True:
                await self.slots.acquire()
                try:
                    message = await iterator.__anext__()
                except BaseException:
                    self.slots.release()
                    raise
                self.unanswered += 1
                self._start(message)
        except StopAsyncIteration:
            pass  # the client closed its side: answer what was read, then end
        except asyncio.CancelledError:
            pass  # drain, or the stream is over
        except Exception as exc:  # noqa: BLE001 - the stream ends with it once what was read is answered
            self.read_error = exc
        finally:
            self.reading = False
            self.answers.put_nowait(_DONE)

    def _start(self, message: pb.SessionRequest) -> None:
        rid = message.id
        kind = message.WhichOneof("request")
        method, handler = self.handlers.get(kind, ("Session.Unknown", None)) if kind else ("Session.Unknown", None)
        owned = None
        if not 1 <= len(rid) <= MAX_ID_LENGTH:
            error: Exception | None = InvalidArgument(
                f"request id must be 1..{MAX_ID_LENGTH} characters, got {len(rid)}; give each request its own id")
        elif handler is None:
            error = InvalidArgument(f"request {rid!r} carries no request; set one of: {', '.join(self.handlers)}")
        elif rid in self.in_flight:
            error = AlreadyExists(f"request id {rid!r} is already in flight in this session; use a new id per "
                                  "request (the earlier request is still answered)")
        else:
            error, owned = None, rid
            self.in_flight.add(rid)
        task = asyncio.create_task(self._answer(rid, owned, method, handler, getattr(message, kind or "id"), error))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _answer(self, rid: str, owned: str | None, method: str, handler: Handler | None, request: Any,
                      error: Exception | None) -> None:
        """Run one request as a tracked call; queue its answer (or its error) for writing."""
        with inner_call(self.owner.calls, method, self.context) as call:
            try:
                if error is not None:
                    raise error
                assert handler is not None
                response = await handler(request, self.until)
                response.id = rid
            except asyncio.CancelledError:
                call.fail(asyncio.CancelledError())
                raise
            except Exception as exc:  # noqa: BLE001 - answered as this request's status
                call.fail(exc)
                response = convert.session_error(rid, call.code.value[0], call.message)
        if owned is not None:
            self.in_flight.discard(owned)  # answered: the id may be used again
        self.answers.put_nowait(response)

    async def close(self) -> None:
        """The stream is over (done, failed or cancelled): cancel the reader and every request
        still running, so that their queued batches are dropped unrun."""
        pending = [t for t in (self.reader, *self.tasks) if t is not None and not t.done()]
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)
