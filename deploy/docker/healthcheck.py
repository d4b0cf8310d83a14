"""gRPC health probe for containers: exit 0 when the server answers SERVING, 1 otherwise.

Docker's HEALTHCHECK and the compose file run it inside the serving image (Kubernetes uses its
native ``grpc:`` probe instead). It asks the standard ``grpc.health.v1.Health/Check`` of the
server on this container, so it is healthy only once a model is loaded.

    python healthcheck.py [--target localhost:50051] [--service NAME] [--timeout 3]

The default target is ``localhost:$LATENTFORGE_PORT`` (50051 when unset).
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Sequence

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc


def check(target: str, service: str = "", timeout_s: float = 3.0) -> tuple[bool, str]:
    """Ask the health service once; returns (serving?, what was seen)."""
    try:
        with grpc.insecure_channel(target) as channel:
            stub = health_pb2_grpc.HealthStub(channel)
            reply = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=timeout_s)
    except grpc.RpcError as exc:
        return False, f"{exc.code().name}: {exc.details()}"
    status = health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)
    return reply.status == health_pb2.HealthCheckResponse.SERVING, status


def main(argv: Sequence[str] | None = None) -> int:
    default_target = f"localhost:{os.environ.get('LATENTFORGE_PORT') or 50051}"
    parser = argparse.ArgumentParser(description="Exit 0 when the gRPC server reports SERVING.")
    parser.add_argument("--target", default=default_target, help=f"host:port (default {default_target})")
    parser.add_argument("--service", default="", help="service name to ask about (default: the whole server)")
    parser.add_argument("--timeout", type=float, default=3.0, help="seconds to wait for the answer")
    args = parser.parse_args(argv)
    serving, seen = check(args.target, args.service, args.timeout)
    print(f"{args.target}: {seen}")
    return 0 if serving else 1


if __name__ == "__main__":
    sys.exit(main())
