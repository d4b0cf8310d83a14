"""The Starlette app of the HTTP/JSON surface: each route of ``services.http.routes`` bound to
its servicer method, plus health, and the playground's static page when asked for.

A request is read into the route's proto message (proto3 JSON), then the servicer method runs
with an ``HttpContext`` in place of gRPC's: the same code as a gRPC call, its checks, metrics,
access-log line and drain. What only HTTP has is done here: the bearer token from the
``Authorization`` header, the request id from ``X-Request-Id``, the deadline from
``X-Timeout-Ms``, the body limit, and errors as HTTP statuses with a ``{code, message}`` body.
"""

from __future__ import annotations

import asyncio
import json
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any, AsyncIterator, Callable

import grpc
from google.protobuf import json_format
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route as StarletteRoute
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from latentforge.v1 import training_pb2 as train
from services.errors import Cancelled, InvalidArgument, ResourceExhausted
from services.http.context import CallAborted, HttpContext
from services.http.errors import RETRY_AFTER_S, error_response
from services.http.routes import ROUTES, Route
from services.http.sse import EventStream, message_json
from services.rpc.calls import REQUEST_ID_HEADER, REQUEST_ID_PATTERN, inner_call, new_request_id
from services.rpc.security import TokenCheck, load_tokens

if TYPE_CHECKING:
    from services.rpc.server import RpcServer

PLAYGROUND_DIR = Path(__file__).parent / "playground"
TIMEOUT = "X-Timeout-Ms"
# The playground is the project's own files only: no inline scripts, no other origins. Images
# come as data: URLs (base64 PNG in JSON) and blob: URLs (downloads).
CSP = ("default-src 'self'; img-src 'self' data: blob:; style-src 'self'; script-src 'self'; "
       "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'")
_PARSE_ON_LOOP_BYTES = 256 * 1024  # larger JSON bodies are parsed on a thread, not on the event loop


class BadRequest(Exception):
    """The HTTP request itself is unusable (its body, headers or query); 4xx, never reaches a servicer."""

    def __init__(self, message: str, status: int = 400, code: grpc.StatusCode = grpc.StatusCode.INVALID_ARGUMENT):
        super().__init__(message)
        self.message, self.status, self.code = message, status, code


class HttpApi:
    """The routes of the services hosted by one ``RpcServer``, and what they share."""

    def __init__(self, host: "RpcServer", open_streams: set[EventStream]) -> None:
        self.host = host
        self.settings = host.settings
        tokens = load_tokens(self.settings.auth_tokens, self.settings.auth_tokens_file)
        self.tokens = TokenCheck(tokens) if tokens else None
        self.open_streams = open_streams

    # ---- the app --------------------------------------------------------------------------

    def app(self) -> ASGIApp:
        routes: list[Any] = [
            StarletteRoute("/healthz", self.healthz, methods=["GET", "HEAD"]),
            StarletteRoute("/readyz", self.readyz, methods=["GET", "HEAD"]),
        ]
        for service in self.host.services:
            for route in ROUTES.get(service.name, ()):
                routes.append(StarletteRoute(route.path, self._endpoint(route, service.servicer), methods=[route.verb]))
        app = Starlette(routes=routes, exception_handlers={HTTPException: _http_error, Exception: _internal_error})
        # What no route takes: the playground's files (GET and HEAD outside /v1/, with
        # --playground), else a 404. A route's other methods still get 405 from the router.
        static = StaticFiles(directory=PLAYGROUND_DIR, html=True) if self.settings.playground else None
        not_found = app.router.not_found

        async def fallback(scope: Scope, receive: Receive, send: Send) -> None:
            if static is None or scope["method"] not in ("GET", "HEAD") or scope["path"].startswith("/v1/"):
                await not_found(scope, receive, send)
                return

            async def revalidated(message: Message) -> None:  # an upgraded server's page is fetched anew
                if message["type"] == "http.response.start":
                    message["headers"] = [*message.get("headers", []), (b"cache-control", b"no-cache")]
                await send(message)

            await static(scope, receive, revalidated)

        app.router.default = fallback
        return AnswerHeaders(app)

    def _endpoint(self, route: Route, servicer: Any) -> Callable[[Request], Any]:
        method = getattr(servicer, route.rpc)
        answer = {"unary": self._unary, "stream": self._stream, "upload": self._upload,
                  "sample_image": self._sample_image}[route.kind]

        async def endpoint(request: Request) -> Response:
            request_id = request.scope["state"]["request_id"]  # AnswerHeaders sends it back
            refused = self._refuse_caller(request)
            if refused is not None:
                return error_response(*refused, headers={"WWW-Authenticate": "Bearer"})
            try:
                context = HttpContext(request_id, _timeout_s(request))
            except BadRequest as exc:
                return error_response(exc.code, exc.message, exc.status)
            try:
                return await answer(route, method, request, context)
            except BadRequest as exc:
                self._record(route.rpc, context, exc)
                return error_response(exc.code, exc.message, exc.status)
            except CallAborted as exc:
                return error_response(exc.code, exc.message)
            except TimeoutError:
                return error_response(grpc.StatusCode.DEADLINE_EXCEEDED,
                                      f"the call's deadline ({TIMEOUT}) passed before it finished")
            except ClientDisconnect:  # nobody reads this answer; the work was cancelled
                return error_response(grpc.StatusCode.CANCELLED, "the client went away")

        endpoint.__name__ = route.rpc
        return endpoint

    def _refuse_caller(self, request: Request) -> tuple[grpc.StatusCode, str] | None:
        if self.tokens is None:
            return None
        refused = self.tokens.check(request.headers.get("authorization", ""))
        if refused is grpc.StatusCode.UNAUTHENTICATED:
            return refused, "missing bearer token: send the header 'Authorization: Bearer <token>'"
        if refused is not None:
            return refused, "the bearer token is not accepted here"
        return None

    def _record(self, rpc: str, context: HttpContext, exc: BadRequest) -> None:
        """A request refused before its servicer ran still counts: metrics and its access-log line."""
        kind = {grpc.StatusCode.RESOURCE_EXHAUSTED: ResourceExhausted,
                grpc.StatusCode.CANCELLED: Cancelled}.get(exc.code, InvalidArgument)
        with inner_call(self.host.calls, rpc, context) as call:  # type: ignore[arg-type]
            call.fail(kind(exc.message))

    # ---- the kinds of route ---------------------------------------------------------------

    async def _unary(self, route: Route, method: Any, request: Request, context: HttpContext) -> Response:
        message = await self._read(route, request)
        async with asyncio.timeout(context.time_remaining()):
            reply = await _unless_gone(request, method(message, context))
        return Response(message_json(reply), 200, media_type="application/json")

    async def _stream(self, route: Route, method: Any, request: Request, context: HttpContext) -> Response:
        message = await self._read(route, request)
        if request.method == "HEAD":  # what the stream would answer with, without running it
            return Response(None, 200, media_type="text/event-stream")
        if route.resume_from is not None:  # a reconnecting EventSource resumes after the last id it saw
            last = request.headers.get("last-event-id", "")
            if last.isascii() and last.isdigit() and len(last) < 19:
                setattr(message, route.resume_from, max(getattr(message, route.resume_from), int(last) + 1))

        def trailers() -> dict[str, str]:
            return {key: value for key, value in context.trailers if key != REQUEST_ID_HEADER}

        stream = EventStream(method(message, context), self.open_streams, context.time_remaining(), route.event_id,
                             trailers)
        refused = await stream.first()
        if refused is not None:
            return error_response(refused.code, refused.message)
        return StreamingResponse(stream.events(), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})

    async def _upload(self, route: Route, method: Any, request: Request, context: HttpContext) -> Response:
        header = self._query_message(route, request, enum_prefixes={"format": "DATASET_FORMAT_"})
        length = request.headers.get("content-length", "")
        if length.isascii() and length.isdigit() and not header.size_bytes:
            if len(length) > 18:
                raise BadRequest(f"Content-Length {length} is more than any upload may be", 413,
                                 grpc.StatusCode.RESOURCE_EXHAUSTED)
            header.size_bytes = int(length)

        async def chunks() -> AsyncIterator[Any]:
            yield train.DatasetChunk(header=header)
            try:
                async for piece in request.stream():
                    if piece:
                        yield train.DatasetChunk(data=piece)
            except ClientDisconnect:
                raise Cancelled("the client went away before the upload's last byte; nothing was kept") from None

        async with asyncio.timeout(context.time_remaining()):
            reply = await method(chunks(), context)
        return Response(message_json(reply), 200, media_type="application/json")

    async def _sample_image(self, route: Route, method: Any, request: Request, context: HttpContext) -> Response:
        message = await self._read(route, request)
        async with asyncio.timeout(context.time_remaining()):
            png = await _unless_gone(request, method(message, context))
        # An id names one latent and version: its image does not change while the id lives.
        return Response(png, 200, headers={"Cache-Control": "private, max-age=3600"},
                        media_type="image/png")

    # ---- requests into messages -----------------------------------------------------------

    async def _read(self, route: Route, request: Request) -> Any:
        """The route's request message from the JSON body (POST) or the query, and the path."""
        if route.verb != "POST":
            return self._query_message(route, request)
        body = await self._body(request)
        if body.strip():
            content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
            if content_type != "application/json":
                raise BadRequest(f"send the body as JSON with 'Content-Type: application/json' "
                                 f"(got {content_type or 'none'!r})", 415)
            if len(body) > _PARSE_ON_LOOP_BYTES:  # a large body is read beside the loop gRPC shares
                return await asyncio.to_thread(_parse_body, body, request.path_params, route.request)
        return _parse_body(body, request.path_params, route.request)

    def _query_message(self, route: Route, request: Request, enum_prefixes: dict[str, str] | None = None) -> Any:
        """Query parameters and path parameters as the route's message (repeated fields may repeat)."""
        descriptor = route.request.DESCRIPTOR
        by_name = {**{f.json_name: f for f in descriptor.fields}, **{f.name: f for f in descriptor.fields}}
        fields: dict[str, Any] = {}
        for key, value in request.query_params.multi_items():
            field = by_name.get(key)
            if field is None:
                known = ", ".join(f.name for f in descriptor.fields) or "none"
                raise BadRequest(f"unknown query parameter {key!r}; {descriptor.name} takes: {known}")
            if enum_prefixes and field.name in enum_prefixes and value and not value.startswith(enum_prefixes[field.name]):
                value = enum_prefixes[field.name] + value.upper()
            if field.is_repeated:
                fields.setdefault(key, []).append(value)
            elif key in fields:
                raise BadRequest(f"query parameter {key!r} is given twice")
            else:
                fields[key] = value
        for name, value in request.path_params.items():
            fields[name] = value
        return _parse(fields, route.request)

    async def _body(self, request: Request) -> bytes:
        """The whole body, refused with 413 past ``http_max_body_bytes`` (before reading it when
        Content-Length says so)."""
        limit = self.settings.http_max_body_bytes
        length = request.headers.get("content-length", "")
        if length.isdigit() and int(length) > limit:
            raise BadRequest(f"the body is {int(length)} bytes; this server takes at most {limit} "
                             "(http_max_body_bytes)", 413, grpc.StatusCode.RESOURCE_EXHAUSTED)
        parts, size = [], 0
        try:
            async for piece in request.stream():
                size += len(piece)
                if size > limit:
                    raise BadRequest(f"the body is over {limit} bytes, the most this server takes "
                                     "(http_max_body_bytes)", 413, grpc.StatusCode.RESOURCE_EXHAUSTED)
                parts.append(piece)
        except ClientDisconnect:
            raise BadRequest("the client went away before the body's end", 499, grpc.StatusCode.CANCELLED) from None
        return b"".join(parts)

    # ---- health ---------------------------------------------------------------------------

    async def healthz(self, request: Request) -> Response:
        """Liveness: 200 while the server runs, 503 once it drains (gRPC's "liveness" name)."""
        alive = not self.host.health.draining
        return JSONResponse({"status": "SERVING" if alive else "NOT_SERVING"}, 200 if alive else 503,
                            headers=None if alive else {"Retry-After": RETRY_AFTER_S})

    async def readyz(self, request: Request) -> Response:
        """Readiness: 200 when every service on the server is ready (gRPC's "" name), else 503."""
        services = self.host.health.readiness()
        ready = all(services.values()) and not self.host.health.draining
        return JSONResponse({"status": "SERVING" if ready else "NOT_SERVING", "services": services},
                            200 if ready else 503, headers=None if ready else {"Retry-After": RETRY_AFTER_S})


async def _unless_gone(request: Request, work: Any) -> Any:
    """``work``'s result, unless the client closes its connection first: then the work is
    cancelled (a batch not yet run drops it; the call counts as CANCELLED, as over gRPC) and
    ``ClientDisconnect`` is raised. The request's body has been read: what the connection says
    next is its end. One watching task per call; the work runs in the request's own task."""
    me = asyncio.current_task()
    gone = False

    async def watch() -> None:
        nonlocal gone
        while (await request.receive())["type"] != "http.disconnect":
            pass
        gone = True
        me.cancel()

    watcher = asyncio.ensure_future(watch())
    try:
        return await work
    except asyncio.CancelledError:
        if not gone:
            raise
        me.uncancel()  # the cancellation was the watcher's, now handled here
        raise ClientDisconnect() from None
    finally:
        watcher.cancel()


def _parse_body(body: bytes, path_params: dict[str, Any], message_type: Any) -> Any:
    """A JSON body (and the path's parameters) as a ``message_type``."""
    if body.strip():
        try:
            fields = json.loads(body)
        except (ValueError, RecursionError) as exc:
            raise BadRequest(f"the body is not valid JSON: {_short(exc)}") from None
        if not isinstance(fields, dict):
            raise BadRequest(f"the body must be a JSON object (a {message_type.DESCRIPTOR.name}), "
                             f"got a {type(fields).__name__}")
    else:
        fields = {}
    fields.update(path_params)
    return _parse(fields, message_type)


def _parse(fields: dict[str, Any], message_type: Any) -> Any:
    """``fields`` as a ``message_type`` by the proto3 JSON mapping; unknown fields refused."""
    message = message_type()
    try:
        json_format.ParseDict(fields, message, ignore_unknown_fields=False, max_recursion_depth=32)
    except (json_format.ParseError, ValueError, TypeError, AttributeError, RecursionError) as exc:
        raise BadRequest(f"the request is not a valid {message_type.DESCRIPTOR.name}: {_short(exc)}") from None
    return message


def _short(exc: BaseException, limit: int = 300) -> str:
    text = str(exc) or type(exc).__name__
    return text if len(text) <= limit else text[:limit] + "..."


def _timeout_s(request: Request) -> float | None:
    text = request.headers.get(TIMEOUT)
    if text is None:
        return None
    try:
        ms = float(text)
    except ValueError:
        ms = math.nan
    if not math.isfinite(ms) or ms <= 0:
        raise BadRequest(f"{TIMEOUT} must be a positive number of milliseconds, got {text!r}")
    return ms / 1000.0


async def _http_error(request: Request, exc: Exception) -> Response:
    """Starlette's own refusals (no such route, a method the route does not take) as ``{code, message}``."""
    assert isinstance(exc, HTTPException)
    status = exc.status_code
    code = {404: "NOT_FOUND", 405: "UNIMPLEMENTED"}.get(status, "INVALID_ARGUMENT")
    if status == 404:
        message = f"no route {request.method} {request.url.path}; the routes are listed in docs/http.md"
    elif status == 405:
        message = f"{request.url.path} does not take {request.method}; it takes {exc.headers.get('Allow', '')}" \
            if exc.headers else f"{request.url.path} does not take {request.method}"
    else:
        message = exc.detail
    return error_response(code, message, status, headers=dict(exc.headers or {}))


async def _internal_error(request: Request, exc: Exception) -> Response:
    from services.rpc.logs import get_logger

    request_id = request.scope.get("state", {}).get("request_id") or new_request_id()
    get_logger("http").error("http_internal_error", exc_info=exc, extra={"fields": {"path": request.url.path,
                                                                                      "request_id": request_id}})
    return error_response(grpc.StatusCode.INTERNAL, f"internal error; the server logged it under request id "
                                                    f"{request_id}")


class AnswerHeaders:
    """Every answer carries its request id (``X-Request-Id``: the client's when it sent a valid
    one, else a new one; the routes read it from ``scope["state"]``) and says: only this
    origin's scripts, styles and connections (the playground's Content-Security-Policy), no
    MIME sniffing, no referrer to other sites."""

    _HEADERS = [(b"content-security-policy", CSP.encode()), (b"x-content-type-options", b"nosniff"),
                (b"referrer-policy", b"same-origin")]

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = ""
        for key, value in scope["headers"]:
            if key == b"x-request-id":
                request_id = value.decode("latin-1")
                break
        if not REQUEST_ID_PATTERN.match(request_id):
            request_id = new_request_id()
        scope.setdefault("state", {})["request_id"] = request_id
        headers = [*self._HEADERS, (b"x-request-id", request_id.encode())]

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *headers]
            await send(message)

        await self.app(scope, receive, send_with_headers)


__all__ = ["HttpApi", "PLAYGROUND_DIR"]
