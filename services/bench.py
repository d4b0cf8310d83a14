"""Single-request latency of a server: ``python -m services.bench --models DIR [--redis-url URL]``.

Starts an in-process server on a loopback port (or measures ``--target``), sends requests one
at a time, and prints p50/p99 in milliseconds for Generate count=1, Generate count=16 and
GetSample on a cached id. Numbers are client-observed, including gRPC and PNG encoding.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Callable


def _percentiles(fn: Callable[[], object], n: int, warmup: int) -> dict[str, float]:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1000.0)
    times.sort()

    def pct(p: float) -> float:
        return round(times[min(len(times) - 1, int(round(p / 100.0 * (len(times) - 1))))], 3)

    return {"p50_ms": pct(50), "p99_ms": pct(99), "mean_ms": round(sum(times) / len(times), 3), "n": n}


def run(target: str, model: str, n: int, warmup: int) -> dict[str, dict[str, float]]:
    """Measure the three calls against a running server."""
    from services.client import GenerationClient

    with GenerationClient(target) as client:
        client.wait_ready()
        sid = client.generate(model, 1, seed=1).samples[0].sample_id
        counter = iter(range(10**9))
        return {
            "generate_count1": _percentiles(lambda: client.generate(model, 1, seed=next(counter)), n, warmup),
            "generate_count16": _percentiles(lambda: client.generate(model, 16, seed=next(counter)), n, warmup),
            "get_sample": _percentiles(lambda: client.get_sample(sid), n, warmup),
        }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=Path, help="repository to serve in-process")
    parser.add_argument("--target", help="measure this running server instead")
    parser.add_argument("--redis-url", help="in-process server: use this Redis as the cache")
    parser.add_argument("--model", default="mnist-dcgan")
    parser.add_argument("-n", type=int, default=300, help="requests per call type")
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--no-batching", action="store_true")
    args = parser.parse_args(argv)
    if bool(args.models) == bool(args.target):
        parser.error("give exactly one of --models, --target")
    server = None
    if args.models:
        from services.server import ServerThread, loopback_config

        config = loopback_config(models=args.models, redis_url=args.redis_url, metrics_port=None,
                                 batching=not args.no_batching)
        server = ServerThread(config).start()
        target = server.target
    else:
        target = args.target
    try:
        results = run(target, args.model, args.n, args.warmup)
    finally:
        if server is not None:
            server.stop()
    print(json.dumps({"target": target, "model": args.model, "redis": bool(args.redis_url),
                      "batching": not args.no_batching, **results}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
