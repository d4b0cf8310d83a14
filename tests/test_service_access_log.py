"""The per-RPC access log's fast path writes the same JSON line as the logging path."""

from __future__ import annotations

import io
import json
import logging

import pytest

from services.rpc.logs import (
    RequestContext,
    access,
    configure_logging,
    current_request,
    event,
    get_logger,
)


@pytest.fixture(autouse=True)
def restore_logging():
    """configure_logging changes the process's `latentforge` logger: put it back for the tests after."""
    root = logging.getLogger("latentforge")
    saved = (list(root.handlers), root.level, root.propagate)
    yield
    for handler in list(root.handlers):
        root.removeHandler(handler)
    for handler in saved[0]:
        root.addHandler(handler)
    root.setLevel(saved[1])
    root.propagate = saved[2]


def _lines(stream: io.StringIO) -> list[dict]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_access_line_equals_the_formatted_event_line():
    stream = io.StringIO()
    configure_logging("INFO", json_lines=True, stream=stream)
    log = get_logger("rpc")
    fields = {"method": "Generate", "code": "OK", "duration_ms": 1.25, "model": "m", "version": 3, "count": 1,
              "message": "caf\u00e9 \"quoted\"", "odd": object.__new__(type("Odd", (), {"__str__": lambda s: "odd"}))}
    token = current_request.set(RequestContext("rid-1"))
    try:
        event(log, "rpc", **fields)
        access(log, "rpc", "rid-1", fields)
    finally:
        current_request.reset(token)
    slow, fast = _lines(stream)
    assert slow.pop("time")[:4] == fast.pop("time")[:4]
    assert list(fast.items()) == list(slow.items())
    assert fast["request_id"] == "rid-1" and fast["odd"] == "odd"


def test_access_goes_through_logging_when_other_handlers_listen():
    stream = io.StringIO()
    configure_logging("INFO", json_lines=True, stream=stream)
    root = logging.getLogger("latentforge")
    seen: list[logging.LogRecord] = []
    extra = logging.Handler()
    extra.emit = seen.append  # type: ignore[method-assign]
    root.addHandler(extra)
    try:
        access(get_logger("rpc"), "rpc", "rid-2", {"method": "Generate", "code": "OK"})
    finally:
        root.removeHandler(extra)
    assert [r.getMessage() for r in seen] == ["rpc"] and seen[0].fields["method"] == "Generate"
    line = _lines(stream)[0]
    assert line["request_id"] == "rid-2" and line["code"] == "OK"


def test_access_respects_the_level():
    stream = io.StringIO()
    configure_logging("WARNING", json_lines=True, stream=stream)
    access(get_logger("rpc"), "rpc", "rid-3", {"method": "Generate"})
    assert stream.getvalue() == ""
