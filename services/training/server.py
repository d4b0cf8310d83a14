"""The training server process: an ``RpcServer`` hosting the TrainingService, run until a signal."""

from __future__ import annotations

from services.rpc.server import RpcServer, run_until_signal
from services.training.config import TrainingConfig
from services.training.service import TrainingService


class TrainingServer(RpcServer):
    """An RpcServer with the TrainingService on it (``training``)."""

    def __init__(self, config: TrainingConfig) -> None:
        super().__init__(config)
        self.config = config
        self.training = self.add(TrainingService(config, self))


def serve_training(config: TrainingConfig) -> int:
    """Run a training server in the foreground until SIGINT or SIGTERM; returns the exit status."""
    return run_until_signal(lambda: TrainingServer(config), event_loop=config.event_loop, runs_jobs=True)
