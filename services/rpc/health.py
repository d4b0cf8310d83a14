"""grpc.health.v1 of one server: readiness per service, and liveness.

* ``""`` (the whole server) and each service's full name: readiness. A service is NOT_SERVING
  until it says it is ready (the GenerationService: a model version is loaded); the whole
  server is SERVING when every service on it is. Readiness probes and load balancers use these.
* ``"liveness"``: SERVING as soon as the server runs, NOT_SERVING only while it drains.
  Liveness and startup probes use it, so a server waiting for its first model is not restarted.
"""

from __future__ import annotations

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

LIVENESS = "liveness"
SERVICE_NAME = health.SERVICE_NAME
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


class Health:
    """The health service of one server and the readiness of each service on it."""

    def __init__(self) -> None:
        self.servicer = health.aio.HealthServicer()
        self._ready: dict[str, bool] = {}
        self.draining = False  # the server is going away (HTTP /healthz and /readyz read it)

    def declare(self, service: str) -> None:
        """Track the readiness of ``service`` (NOT_SERVING until ``set_ready``)."""
        self._ready[service] = False

    def add_to(self, server: grpc.aio.Server) -> None:
        health_pb2_grpc.add_HealthServicer_to_server(self.servicer, server)

    async def start(self) -> None:
        """The server is up: alive, and not ready until its services say so."""
        await self.servicer.set(LIVENESS, SERVING)
        for name in ("", *self._ready):
            await self.servicer.set(name, NOT_SERVING)

    async def set_ready(self, service: str, ready: bool) -> None:
        """Set one service's readiness, and the whole server's (every service ready)."""
        self._ready[service] = ready
        await self.servicer.set(service, SERVING if ready else NOT_SERVING)
        await self.servicer.set("", SERVING if all(self._ready.values()) else NOT_SERVING)

    def readiness(self) -> dict[str, bool]:
        """Each service's readiness, by its full name."""
        return dict(self._ready)

    async def drain(self) -> None:
        """Every name NOT_SERVING from now on, liveness included (the server is going away)."""
        self.draining = True
        await self.servicer.enter_graceful_shutdown()
