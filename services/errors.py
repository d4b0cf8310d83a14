"""Request errors that carry the gRPC status a client can act on.

Service code raises these; the RPC wrapper in ``servicer.py`` turns them into a status with
the message, and turns anything else into INTERNAL without details (never a stack trace).
"""

from __future__ import annotations

import grpc


class ServiceError(Exception):
    """A request failed with ``code``; ``message`` says what to change."""

    code: grpc.StatusCode = grpc.StatusCode.INTERNAL

    def __init__(self, message: str, code: grpc.StatusCode | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code


class InvalidArgument(ServiceError):
    code = grpc.StatusCode.INVALID_ARGUMENT


class NotFound(ServiceError):
    code = grpc.StatusCode.NOT_FOUND


class Unavailable(ServiceError):
    code = grpc.StatusCode.UNAVAILABLE


class ResourceExhausted(ServiceError):
    code = grpc.StatusCode.RESOURCE_EXHAUSTED


class DeadlineExceeded(ServiceError):
    code = grpc.StatusCode.DEADLINE_EXCEEDED


class FailedPrecondition(ServiceError):
    """The request is well formed but the model cannot do it (e.g. Generate on a model with no prior)."""

    code = grpc.StatusCode.FAILED_PRECONDITION
