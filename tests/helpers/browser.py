"""A real browser for the playground tests: Debian's chromium driven by Playwright (never
``playwright install``: its bundled driver talks to the system's chromium), one page per test
that fails the test on any console error, uncaught page error or request that leaves the
server's origin, and screenshots for docs/playground.md.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path
from typing import Iterator
from urllib.parse import urlsplit

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS_ENV = "LATENTFORGE_SCREENSHOTS"
DOCS_IMAGES = ROOT / "docs" / "images"
VIEWPORT = {"width": 1360, "height": 900}


def chromium_path() -> str:
    """The system chromium; the test fails (not skips) without it: `make system-deps` installs it."""
    path = shutil.which("chromium") or ("/usr/bin/chromium" if os.access("/usr/bin/chromium", os.X_OK) else None)
    if path is None:
        pytest.fail("chromium is not installed: run `make system-deps` (it installs Debian's chromium, which "
                    "the playground tests drive)", pytrace=False)
    return path


class Chromium:
    """Debian's chromium under Playwright, launched on first use: from inside a test, so a missing
    chromium fails that test (with what to run) rather than erroring in a fixture."""

    def __init__(self) -> None:
        self._playwright = None
        self._browser = None

    def get(self):
        if self._browser is None:
            executable = chromium_path()
            from playwright.sync_api import sync_playwright

            self._playwright = sync_playwright().start()
            self._browser = self._playwright.chromium.launch(executable_path=executable, args=["--no-sandbox"],
                                                             headless=True)
        return self._browser

    def close(self) -> None:
        if self._browser is not None:
            self._browser.close()
        if self._playwright is not None:
            self._playwright.stop()


def origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


class WatchedPage:
    """A page of a fresh browser context on ``base_url`` that records every console error, page
    error and request to another origin; ``check()`` fails the test on any of them. ``allow``:
    regular expressions of console errors a test expects (a refused call's "Failed to load
    resource" line)."""

    def __init__(self, browser: Chromium, base_url: str, allow: tuple[str, ...] = ()) -> None:
        self.base_url = base_url.rstrip("/")
        self.allow = [re.compile(a) for a in allow]
        self.problems: list[str] = []
        self.context = browser.get().new_context(base_url=self.base_url, viewport=VIEWPORT, accept_downloads=True)
        self.context.route("**/*", self._route)
        self.page = self.context.new_page()
        self.page.set_default_timeout(30_000)
        self.page.on("console", self._console)
        self.page.on("pageerror", lambda exc: self.problems.append(f"page error: {exc}"))

    def _route(self, route) -> None:
        url = route.request.url
        if url.startswith(("data:", "blob:")) or origin(url) == origin(self.base_url):
            route.continue_()
        else:
            self.problems.append(f"request outside the server's origin: {route.request.method} {url}")
            route.abort()

    def _console(self, message) -> None:
        if message.type != "error":
            return
        text = message.text
        if any(a.search(text) for a in self.allow):
            return
        self.problems.append(f"console error: {text} ({message.location.get('url', '')})")

    def expect_console_errors(self, *patterns: str) -> None:
        """Console errors the test causes on purpose (regular expressions)."""
        self.allow += [re.compile(p) for p in patterns]

    def open(self, path: str = "/"):
        """Load the page and wait until its script has started."""
        self.page.goto(self.base_url + path)
        self.page.wait_for_selector("body[data-ready='true']")
        return self.page

    def check(self) -> None:
        assert not self.problems, "the page misbehaved:\n" + "\n".join(self.problems)

    def close(self) -> None:
        self.context.close()


class SlowLink:
    """A loopback TCP proxy in front of a server that plays a slow network for some connections:
    once the browser sent a request whose bytes contain ``marker`` on a connection, the server's
    bytes on it reach the browser in ``piece``-byte pieces ``pause_s`` apart. On loopback a
    stream's events arrive all at once; through this they arrive as over a real link, so a test
    can see the page draw them as they come. Other connections pass through untouched."""

    def __init__(self, target_port: int, marker: bytes, piece: int = 48, pause_s: float = 0.015) -> None:
        import socket
        import threading

        self.target_port, self.marker, self.piece, self.pause_s = target_port, marker, piece, pause_s
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self._threading = threading
        self._closed = False
        threading.Thread(target=self._accept, name="slow-link", daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _accept(self) -> None:
        import socket

        while not self._closed:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.target_port))
            slow = self._threading.Event()
            for args in ((client, upstream, slow, False), (upstream, client, slow, True)):
                self._threading.Thread(target=self._pipe, args=args, daemon=True).start()

    def _pipe(self, source, sink, slow, answers: bool) -> None:
        import socket
        import time

        try:
            while True:
                data = source.recv(65536)
                if not data:
                    break
                if not answers and self.marker in data:
                    slow.set()
                if answers and slow.is_set():
                    for at in range(0, len(data), self.piece):
                        sink.sendall(data[at:at + self.piece])
                        time.sleep(self.pause_s)
                else:
                    sink.sendall(data)
        except OSError:
            pass
        finally:
            try:
                sink.shutdown(socket.SHUT_WR)
            except OSError:
                pass
            if answers:  # the server is done with this connection: both ends go
                source.close()
                sink.close()

    def close(self) -> None:
        self._closed = True
        self.listener.close()


def screenshot(page, name: str, tmp_path: Path, full_page: bool = False) -> Path:
    """A screenshot of the page: docs/images/playground-<name>.png when LATENTFORGE_SCREENSHOTS=1
    (for docs/playground.md), else in the test's tmp_path (so a test run leaves the tree clean)."""
    folder = DOCS_IMAGES if os.environ.get(SCREENSHOTS_ENV) == "1" else tmp_path
    path = folder / f"playground-{name}.png"
    page.screenshot(path=str(path), full_page=full_page, animations="disabled", caret="hide")
    return path


@pytest.fixture(scope="module")
def browser() -> Iterator[Chromium]:
    """One chromium for a module's playground tests, launched by the first page. Module scope:
    Playwright's sync API keeps an event loop running in this thread while it lives, so it is
    stopped before other modules' tests (which run their own loops) begin."""
    chromium = Chromium()
    yield chromium
    chromium.close()


@pytest.fixture()
def open_page(browser: Chromium):
    """``open_page(base_url, allow=())`` -> a WatchedPage; checked and closed after the test."""
    pages: list[WatchedPage] = []

    def make(base_url: str, allow: tuple[str, ...] = ()) -> WatchedPage:
        watched = WatchedPage(browser, base_url, allow)
        pages.append(watched)
        return watched

    yield make
    try:
        for watched in pages:
            watched.check()
    finally:
        for watched in pages:
            watched.close()
