"""The one map from outcomes to gRPC statuses.

A transport-neutral ``services.errors`` kind answers its status with its own message; a
cancelled call answers CANCELLED; anything else is a bug and answers INTERNAL with only the
request id, under which the server logged it (never a stack trace to the client).
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
        return status_code(exc), exc.message
    if isinstance(exc, FeedError):  # a request's values do not fit the graph's signature
        return grpc.StatusCode.INVALID_ARGUMENT, str(exc)
    if isinstance(exc, (asyncio.CancelledError, GeneratorExit)):
        return grpc.StatusCode.CANCELLED, "cancelled"
    return grpc.StatusCode.INTERNAL, f"internal error; the server logged it under request id {request_id}"
