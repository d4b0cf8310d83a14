"""What an HTTP request gives the servicers in place of a ``grpc.aio.ServicerContext``.

The servicers (and ``services.rpc.calls``, which wraps each of their methods) use four things of
their context: the request id in its metadata, the time left before its deadline, the trailers
to send, and ``abort``. ``HttpContext`` provides those for one HTTP request, so that a call over
HTTP runs through exactly the code a gRPC call runs through: the same checks, metrics (labelled
``protocol="http"``), access-log line and drain.
"""

from __future__ import annotations

import time
from typing import Sequence

import grpc

from services.rpc.calls import REQUEST_ID_HEADER


class CallAborted(Exception):
    """A servicer ended the call with a status (what ``abort`` raises on a gRPC context)."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message


class HttpContext:
    """One HTTP request as the servicers' context: its request id and deadline."""

    protocol = "http"  # the calls' metrics label and access-log field

    __slots__ = ("request_id", "deadline", "trailers", "_metadata")

    def __init__(self, request_id: str, timeout_s: float | None = None) -> None:
        self.request_id = request_id
        self.deadline = None if timeout_s is None else time.monotonic() + timeout_s
        self.trailers: Sequence[tuple[str, str]] = ()
        self._metadata = ((REQUEST_ID_HEADER, request_id),)

    def invocation_metadata(self) -> tuple[tuple[str, str], ...]:
        return self._metadata

    def time_remaining(self) -> float | None:
        """Seconds left before the deadline (the ``X-Timeout-Ms`` header), None without one."""
        return None if self.deadline is None else max(0.0, self.deadline - time.monotonic())

    def set_trailing_metadata(self, trailers: Sequence[tuple[str, str]]) -> None:
        self.trailers = trailers

    async def abort(self, code: grpc.StatusCode, details: str = "",
                    trailing_metadata: Sequence[tuple[str, str]] = ()) -> None:
        self.trailers = trailing_metadata
        raise CallAborted(code, details)
