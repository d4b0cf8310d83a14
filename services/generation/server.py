"""The serving process: an ``RpcServer`` hosting the GenerationService, run until a signal.

``GenerationServer`` is one server instance (its own metrics registry, so several can run in
one process); more services can be hosted on it with ``add`` before it starts (with a
``TrainingConfig`` it hosts the TrainingService too: ``latentforge serve --training``, one
process for the single-machine case). ``serve()`` runs one until SIGINT/SIGTERM, then drains
it (``services.rpc.server``): health NOT_SERVING, new calls refused with UNAVAILABLE, calls in
flight finish within ``drain_grace_s``, exit 0.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable

from services.generation.config import ServeConfig
from services.generation.service import GenerationService
from services.rpc.server import RpcServer, run_until_signal

if TYPE_CHECKING:
    from services.training.config import TrainingConfig


class GenerationServer(RpcServer):
    """An RpcServer with the GenerationService on it (``generation``), and the TrainingService
    (``training``) when given its settings."""

    def __init__(self, config: ServeConfig, training: "TrainingConfig | None" = None) -> None:
        super().__init__(config)
        self.config = config
        self.generation = self.add(GenerationService(config, self))
        self.training = None
        if training is not None:
            from services.training.service import TrainingService

            self.training = self.add(TrainingService(training, self))
            # A version a job publishes is served at once, not at the next repository scan.
            self.training.manager.on_published = self.generation.reload


def serve(config: ServeConfig, training: "TrainingConfig | None" = None,
          on_serving: Callable[[], None] | None = None) -> int:
    """Run a server in the foreground until SIGINT or SIGTERM; returns the exit status.
    ``on_serving`` is called once its services have started (see ``services.generation.processes``)."""
    return run_until_signal(lambda: GenerationServer(config, training), on_serving, config.event_loop,
                            runs_jobs=training is not None)
