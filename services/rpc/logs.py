"""Structured logs: one JSON object per line, with the id of the request being served.

Events are logged as ``event(log, "event_name", **fields)``; the formatter puts ``event``,
``level``, ``logger``, ``time`` and ``request_id`` (from the current request's context, set
per call by ``services.rpc.calls``) beside the fields. Code serving a request adds facts to that
request's one access-log line with ``note(...)``. Callers never pass image bytes or latents.
"""

from __future__ import annotations

import contextvars
import json
import logging
import sys
import time
from typing import Any

_ROOT = "latentforge"


class RequestContext:
    """The log context of one request: its id, and the facts noted while it runs."""

    __slots__ = ("request_id", "fields")

    def __init__(self, request_id: str) -> None:
        self.request_id = request_id
        self.fields: dict[str, Any] = {}


current_request: contextvars.ContextVar[RequestContext | None] = contextvars.ContextVar(
    "current_request", default=None)


def note(**fields: Any) -> None:
    """Add bounded, id-free facts (model, version, count) to the current request's log line."""
    request = current_request.get()
    if request is not None:
        request.fields.update(fields)


def _request_id() -> str | None:
    request = current_request.get()
    return None if request is None else request.request_id


def _make_encode() -> Any:
    """``json.dumps(o, default=str, separators=(",", ":"))``, built once: ``dumps`` (and
    ``JSONEncoder.encode``) make a new C encoder on every call. Log payloads are flat, so the
    circular-reference check is left out."""
    c_make_encoder = getattr(json.encoder, "c_make_encoder", None)
    if c_make_encoder is None:  # an interpreter without the C accelerator
        return json.JSONEncoder(default=str, separators=(",", ":")).encode
    chunks = c_make_encoder(None, str, json.encoder.encode_basestring_ascii, None, ":", ",", False, False, True)
    return lambda o: "".join(chunks(o, 0))


_encode = _make_encode()
_second: list[Any] = [None, ""]  # the last whole second formatted, and its text


def _timestamp(created: float) -> str:
    """ISO 8601 UTC with milliseconds; the seconds part is formatted once per second."""
    whole = int(created)
    if _second[0] != whole:
        _second[0], _second[1] = whole, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole))
    return f"{_second[1]}.{int((created - whole) * 1000):03d}Z"


class JsonFormatter(logging.Formatter):
    """Formats a record as one JSON line."""

    def format(self, record: logging.LogRecord) -> str:
        payload: dict[str, Any] = {
            "time": _timestamp(record.created),
            "level": record.levelname.lower(),
            "logger": record.name,
            "event": record.getMessage(),
        }
        rid = getattr(record, "request_id", None) or _request_id()
        if rid:
            payload["request_id"] = rid
        payload.update(getattr(record, "fields", None) or {})
        if record.exc_info and record.exc_info[0] is not None:
            payload["exception"] = self.formatException(record.exc_info)
        return _encode(payload)


class _JsonLinesHandler(logging.StreamHandler):
    """The handler ``configure_logging`` installs for JSON lines; ``access`` writes to it directly."""

    def write_line(self, line: str) -> None:
        with self.lock:  # type: ignore[union-attr]
            stream = self.stream
            stream.write(line)
            stream.flush()


class _TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        base = super().format(record)
        extra = dict(getattr(record, "fields", None) or {})
        rid = _request_id()
        if rid:
            extra["request_id"] = rid
        return base + ("  " + " ".join(f"{k}={v}" for k, v in extra.items()) if extra else "")


def configure_logging(level: str = "INFO", json_lines: bool = True, stream: Any = None) -> None:
    """Send the ``latentforge`` loggers to ``stream`` (stderr) in the chosen format."""
    handler: logging.StreamHandler = (_JsonLinesHandler if json_lines else logging.StreamHandler)(stream or sys.stderr)
    handler.setFormatter(JsonFormatter() if json_lines else _TextFormatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    root = logging.getLogger(_ROOT)
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    root.propagate = False


def get_logger(name: str) -> logging.Logger:
    """A logger under the ``latentforge`` hierarchy."""
    return logging.getLogger(f"{_ROOT}.{name}")


def event(logger: logging.Logger, name: str, level: int = logging.INFO, **fields: Any) -> None:
    """Log one structured event."""
    if logger.isEnabledFor(level):
        logger.log(level, name, extra={"fields": fields})


def access(logger: logging.Logger, name: str, request_id: str, fields: dict[str, Any]) -> None:
    """Log one INFO event of a request, as ``event`` does, at a fraction of its cost (the
    per-RPC access log): when the ``latentforge`` loggers go only to the JSON-lines handler of
    ``configure_logging``, the line is built here and written to it, without a LogRecord, a
    caller lookup or a formatter; otherwise (other handlers, filters, text format) it is an
    ordinary record."""
    if not logger.isEnabledFor(logging.INFO):
        return
    root = logger.parent
    handlers = root.handlers if root is not None else ()
    if (len(handlers) == 1 and type(handlers[0]) is _JsonLinesHandler and not root.propagate  # type: ignore[union-attr]
            and not logger.handlers and not logger.filters and not root.filters  # type: ignore[union-attr]
            and not handlers[0].filters and handlers[0].level <= logging.INFO):
        payload = {"time": _timestamp(time.time()), "level": "info", "logger": logger.name, "event": name,
                   "request_id": request_id}
        payload.update(fields)
        handlers[0].write_line(_encode(payload) + "\n")  # type: ignore[attr-defined]
        return
    logger.log(logging.INFO, name, extra={"fields": fields, "request_id": request_id})
