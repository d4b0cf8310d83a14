"""Request errors a client can act on, independent of the transport.

Service code (pipelines, runners, the repository) raises these with a message that says what to
change; ``services.rpc.status`` is the one place that maps each kind to a gRPC status. Anything
else that escapes a call becomes INTERNAL without details (never a stack trace).
"""

from __future__ import annotations


class ServiceError(Exception):
    """A request failed; ``message`` says what to change. Unmapped kinds answer INTERNAL."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidArgument(ServiceError):
    """The request itself is wrong (a value out of range, a bad image)."""


class NotFound(ServiceError):
    """A named thing (model, version, sample id) does not exist."""


class Unavailable(ServiceError):
    """The server cannot answer now (nothing loaded, shutting down, cache down); retry."""


class ResourceExhausted(ServiceError):
    """A limit was reached (queue full); retry with backoff."""


class DeadlineExceeded(ServiceError):
    """The caller's deadline passed before the work could be done."""


class FailedPrecondition(ServiceError):
    """The request is well formed but the model cannot do it (e.g. Generate on a model with no prior)."""


class AlreadyExists(ServiceError):
    """The request names something that exists already in another form (an idempotency key
    used before for a different request)."""


class Cancelled(ServiceError):
    """The caller went away before the request was whole (an upload cut off): nothing is kept."""
