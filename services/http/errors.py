"""gRPC status codes as HTTP statuses, and the one shape of an error body: ``{code, message}``."""

from __future__ import annotations

import json

import grpc
from starlette.responses import Response

HTTP_STATUS: dict[grpc.StatusCode, int] = {
    grpc.StatusCode.OK: 200,
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.OUT_OF_RANGE: 400,
    grpc.StatusCode.UNAUTHENTICATED: 401,
    grpc.StatusCode.PERMISSION_DENIED: 403,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.ALREADY_EXISTS: 409,
    grpc.StatusCode.ABORTED: 409,
    grpc.StatusCode.FAILED_PRECONDITION: 412,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 429,
    grpc.StatusCode.CANCELLED: 499,  # the client went away (nginx's "client closed request")
    grpc.StatusCode.INTERNAL: 500,
    grpc.StatusCode.UNKNOWN: 500,
    grpc.StatusCode.DATA_LOSS: 500,
    grpc.StatusCode.UNIMPLEMENTED: 501,
    grpc.StatusCode.UNAVAILABLE: 503,
    grpc.StatusCode.DEADLINE_EXCEEDED: 504,
}

RETRY_AFTER_S = "1"  # on 503: a draining replica, an unreachable cache; another try soon may work


def error_body(code: str, message: str) -> bytes:
    """The JSON body of an error (also the data of an SSE ``error`` event)."""
    return json.dumps({"code": code, "message": message}, separators=(",", ":")).encode()


def error_response(code: grpc.StatusCode | str, message: str, status: int | None = None,
                   headers: dict[str, str] | None = None) -> Response:
    """An error answer: the HTTP status of ``code`` (or ``status``), the body ``{code, message}``."""
    name = code if isinstance(code, str) else code.name
    if status is None:
        status = HTTP_STATUS.get(code, 500) if isinstance(code, grpc.StatusCode) else 500
    headers = dict(headers or {})
    if status == 503:
        headers.setdefault("Retry-After", RETRY_AFTER_S)
    return Response(error_body(name, message), status, headers=headers, media_type="application/json")
