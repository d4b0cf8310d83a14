"""The TrainingService as a service of an ``RpcServer``: its job manager and servicer, wired.

Ready (health SERVING) once the manager has taken up the jobs the previous service process
left; on drain it stops running attempts with SIGTERM (each writes a checkpoint) and leaves
them RUNNING in the store, so the next start continues them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import grpc

from latentforge.v1 import training_pb2 as pb
from latentforge.v1 import training_pb2_grpc as pb_grpc
from services.rpc.server import RpcService
from services.training.config import TrainingConfig
from services.training.manager import JobManager
from services.training.metrics import TrainingMetrics
from services.training.servicer import TrainingServicer

if TYPE_CHECKING:
    from services.rpc.server import RpcServer

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["TrainingService"].full_name


class TrainingService(RpcService):
    """latentforge.v1.TrainingService with its job manager."""

    name = SERVICE_NAME

    def __init__(self, config: TrainingConfig, host: "RpcServer") -> None:
        self.config = config
        self.metrics = TrainingMetrics(host.registry)
        self.manager = JobManager(config, self.metrics)
        self.servicer = TrainingServicer(self.manager, host.calls)

    def add_to(self, server: grpc.aio.Server) -> None:
        pb_grpc.add_TrainingServiceServicer_to_server(self.servicer, server)

    def describe(self) -> dict[str, Any]:
        c = self.config
        return dict(data_dir=str(c.data_dir), publish_to=str(c.models), max_concurrent_jobs=c.max_concurrent_jobs,
                    max_queued_jobs=c.max_queued_jobs)

    async def start(self, host: "RpcServer") -> None:
        await self.manager.start()
        await host.health.set_ready(self.name, True)

    def begin_drain(self) -> None:
        self.manager.end_watches()

    async def close(self) -> None:
        await self.manager.close()
