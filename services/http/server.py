"""The HTTP/JSON surface's server: uvicorn on the ``RpcServer``'s event loop, on a port of its own.

One process serves gRPC and HTTP, so both reach the same pipelines, batches and caches (one
model in memory, requests of both merged into the same ONNX Runtime calls). The socket is bound
here (``SO_REUSEPORT`` with the server's ``reuse_port``, so ``serve --processes N`` shares the
HTTP port as it shares the gRPC one); TLS and mutual TLS come from the server's settings, the
same files as gRPC's. uvicorn's own signal handling is left out: the ``RpcServer`` owns the
drain. On ``close`` every open event stream ends with an ``error`` event (UNAVAILABLE), then
uvicorn finishes the answers on their way out and closes the connections.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import ssl
from typing import TYPE_CHECKING, Any, Iterator

import uvicorn

from services.http.app import HttpApi
from services.http.sse import EventStream

if TYPE_CHECKING:
    from services.rpc.server import RpcServer

_CLOSE_S = 1.0  # after the streams were ended: how long answers on their way out may take


class _Uvicorn(uvicorn.Server):
    """uvicorn without its signal handlers: the RpcServer's drain stops it."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class HttpSurface:
    """The HTTP/JSON port of one ``RpcServer`` (``settings.http_port``)."""

    def __init__(self, host: "RpcServer") -> None:
        self.host = host
        self.open_streams: set[EventStream] = set()
        self.app = HttpApi(host, self.open_streams).app()
        self.port: int | None = None
        self._server: _Uvicorn | None = None
        self._task: asyncio.Task | None = None

    async def start(self) -> None:
        """Bind the port and serve (OSError when the port cannot be bound)."""
        s = self.host.settings
        host = (s.http_host or s.host).strip("[]")
        sock = _bind(host, s.http_port or 0, s.reuse_port)
        self.port = sock.getsockname()[1]
        options: dict[str, Any] = {}
        if s.tls_cert is not None:
            options.update(ssl_certfile=str(s.tls_cert), ssl_keyfile=str(s.tls_key))
            if s.tls_client_ca is not None:
                options.update(ssl_ca_certs=str(s.tls_client_ca), ssl_cert_reqs=ssl.CERT_REQUIRED)
        config = uvicorn.Config(self.app, log_config=None, access_log=False, lifespan="off", server_header=False,
                                timeout_graceful_shutdown=_CLOSE_S, **options)
        logging.getLogger("uvicorn.error").setLevel(logging.WARNING)
        self._server = _Uvicorn(config)
        self._task = asyncio.create_task(self._server.serve(sockets=[sock]), name="http-surface")
        try:
            while not self._server.started:
                if self._task.done():  # e.g. the TLS files do not load: its exception, here
                    self._task.result()
                    raise OSError("the HTTP surface did not start")
                await asyncio.sleep(0.01)
        except BaseException:
            sock.close()
            raise

    async def close(self) -> None:
        """End every open event stream with an error event, then stop serving."""
        for stream in list(self.open_streams):
            stream.close()
        if self._server is not None and self._task is not None:
            self._server.should_exit = True
            with contextlib.suppress(Exception):
                await self._task


def _bind(host: str, port: int, reuse_port: bool) -> socket.socket:
    family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM,
                                                         flags=socket.AI_PASSIVE)[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port and hasattr(socket, "SO_REUSEPORT"):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind(address)
        sock.listen(2048)
        sock.setblocking(False)
    except OSError as exc:
        sock.close()
        raise OSError(f"cannot bind HTTP to {host}:{port}: {exc.strerror or exc}") from None
    return sock
