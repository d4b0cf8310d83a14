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


class JsonFormatter(logging.Formatter):
    """Formats a record as one JSON line."""

    def format(self, record: logging.LogRecord) -> str:
        payload: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
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
        return json.dumps(payload, default=str, separators=(",", ":"))


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
    handler = logging.StreamHandler(stream or sys.stderr)
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
