"""The serving process: an ``RpcServer`` hosting the GenerationService, run until a signal.

``GenerationServer`` is one server instance (its own metrics registry, so several can run in
one process); more services can be hosted on it with ``add`` before it starts. ``serve()``
runs one until SIGINT/SIGTERM, then drains it (``services.rpc.server``): health NOT_SERVING,
new calls refused with UNAVAILABLE, calls in flight finish within ``drain_grace_s``, exit 0.
"""

from __future__ import annotations

from services.config import ServeConfig
from services.generation.service import GenerationService
from services.rpc.server import RpcServer, run_until_signal


class GenerationServer(RpcServer):
    """An RpcServer with the GenerationService on it (``generation``)."""

    def __init__(self, config: ServeConfig) -> None:
        super().__init__(config)
        self.config = config
        self.generation = self.add(GenerationService(config, self))


def serve(config: ServeConfig) -> int:
    """Run a server in the foreground until SIGINT or SIGTERM; returns the exit status."""
    return run_until_signal(lambda: GenerationServer(config))
