"""The one map from outcomes to gRPC statuses.

A transport-neutral ``services.errors`` kind answers its status with its own message; a
cancelled call answers CANCELLED; anything else is a bug and answers INTERNAL with only the
request id, under which the server logged it (never a stack trace to the client). Every
message is cut to ``MAX_MESSAGE_CHARS`` (``short_message``): gRPC carries it in a header, and a
message past the peer's metadata limit would reach the client as a broken stream instead.
"""

from __future__ import annotations

import asyncio

import grpc

from latentforge.runtime import FeedError

from services.errors import (AlreadyExists, Cancelled, DeadlineExceeded, FailedPrecondition, InvalidArgument,
                             NotFound, ResourceExhausted, ServiceError, Unavailable)

_CODES: dict[type[ServiceError], grpc.StatusCode] = {
    ServiceError: grpc.StatusCode.INTERNAL,
    InvalidArgument: grpc.StatusCode.INVALID_ARGUMENT,
    NotFound: grpc.StatusCode.NOT_FOUND,
    Unavailable: grpc.StatusCode.UNAVAILABLE,
    ResourceExhausted: grpc.StatusCode.RESOURCE_EXHAUSTED,
    DeadlineExceeded: grpc.StatusCode.DEADLINE_EXCEEDED,
    FailedPrecondition: grpc.StatusCode.FAILED_PRECONDITION,
    AlreadyExists: grpc.StatusCode.ALREADY_EXISTS,
    Cancelled: grpc.StatusCode.CANCELLED,
}

# The longest status message sent, in characters: a few problems, well inside gRPC's default
# 8 KiB metadata limit even when every character is percent-encoded (9 bytes for 3-byte UTF-8).
MAX_MESSAGE_CHARS = 500
_PROBLEMS = "; "  # how a message joins several problems


def short_message(message: str, limit: int = MAX_MESSAGE_CHARS) -> str:
    """``message`` cut to ``limit`` characters: whole problems (parts joined by "; ") while they
    fit, then how many more there were; a single long problem is cut, saying how much was left."""
    if len(message) <= limit:
        return message
    parts = message.split(_PROBLEMS)
    for keep in range(len(parts) - 1, 0, -1):
        more = len(parts) - keep
        text = f"{_PROBLEMS.join(parts[:keep])}; ... and {more} more problem{'s' if more > 1 else ''}"
        if len(text) <= limit:
            return text
    n = len(parts) - 1
    others = f", and {n} more problem{'s' if n > 1 else ''}" if n else ""
    cut = limit - len(f"... ({len(message)} more characters{others})")
    return f"{message[:cut]}... ({len(message) - cut} more characters{others})"


def status_code(error: ServiceError) -> grpc.StatusCode:
    """The status of an error kind (or of its nearest mapped base class)."""
    kind = type(error)
    code = _CODES.get(kind)
    if code is None:
        code = _CODES[kind] = next(_CODES[k] for k in kind.__mro__ if k in _CODES)
    return code


def status_of(exc: BaseException, request_id: str) -> tuple[grpc.StatusCode, str]:
    """(status, message) a call that raised ``exc`` answers with."""
    if isinstance(exc, ServiceError):
        return status_code(exc), short_message(exc.message)
    if isinstance(exc, FeedError):  # a request's values do not fit the graph's signature
        return grpc.StatusCode.INVALID_ARGUMENT, short_message(str(exc))
    if isinstance(exc, (asyncio.CancelledError, GeneratorExit)):
        return grpc.StatusCode.CANCELLED, "cancelled"
    return grpc.StatusCode.INTERNAL, f"internal error; the server logged it under request id {request_id}"
