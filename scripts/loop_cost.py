"""Many small calls on one channel: the event-loop thread's CPU per call and images/s, beside
the empty grpc.aio handler under the same load, in rounds, optionally against another checkout.

Each round runs, one after another on this machine, the load generator (``tools.loadgen``: one
gRPC channel, ``--concurrency`` closed-loop clients, count=1, tensor output, server-picked
seeds) against:

* the empty grpc.aio handler (``scripts.profile_serving``'s floor) on asyncio's event loop and on
  uvloop: what gRPC alone costs per call;
* the server of ``--before ROOT`` (a checkout of an earlier commit), when given;
* this checkout's server (``latentforge serve`` defaults, access log on, logs to /dev/null);

and for both servers c=1 (p50), PNG output at the same load, and bulk calls (count=64, c=4).
Loop CPU per call is the event-loop (main) thread's CPU time over the measured window divided
by the calls answered in it, from /proc. Usage::

    git worktree add /tmp/before <commit>
    python -m scripts.loop_cost --before /tmp/before --rounds 3 --out docs/benchmarks/serving_loop.md
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from scripts.profile_serving import ROOT, Process

MODEL = "mnist-dcgan"


def measure(server: Process, concurrency: int, count: int, fmt: str, duration: float) -> dict[str, Any]:
    """One load run: req/s, images/s, latencies, loop and server CPU per call (µs)."""
    from tools.loadgen import LoadSpec, run_load

    spec = LoadSpec(target=server.target, model=MODEL, concurrency=concurrency, count=count, duration_s=duration,
                    warmup_s=1.0, fmt=fmt)

    async def run() -> Any:
        task = asyncio.ensure_future(run_load(spec))
        await asyncio.sleep(spec.warmup_s)  # the window starts when the generator's warm-up ends
        before = server.cpu_by_thread()
        result = await task
        return result, before

    result, before = asyncio.run(run())
    after = server.cpu_by_thread()
    calls = max(1, result.requests)
    return {"req_s": result.requests_per_s, "images_s": result.images_per_s,
            "p50_ms": result.latencies_ms.get("p50", 0.0), "p99_ms": result.latencies_ms.get("p99", 0.0),
            "loop_us": (after[0] - before[0]) / calls * 1e6,
            "server_us": (after[0] + after[1] - before[0] - before[1]) / calls * 1e6}


def _server(models: Path, root: Path) -> Process:
    return Process("_serve", "--models", str(models), "--profile-out", os.devnull, "--settings", "{}", root=root)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=Path, default=ROOT / "out" / "bench-serving" / "models",
                        help="model repository (scripts.bench_serving builds it)")
    parser.add_argument("--before", type=Path, help="a checkout of the commit to compare with")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--duration", type=float, default=6.0, help="measured seconds per run")
    parser.add_argument("--delays", help="instead: the queue-delay ablation, e.g. 1,2,3 (ms), at c=4, 16, 64")
    parser.add_argument("--out", type=Path, help="markdown report (a .json beside it)")
    args = parser.parse_args(argv)
    if args.delays:
        return _delays(args)
    c, d = args.concurrency, args.duration
    servers = ([("before", args.before)] if args.before else []) + [("after", ROOT)]
    rows: dict[str, list[dict[str, Any]]] = {}

    def add(name: str, value: dict[str, Any]) -> None:
        rows.setdefault(name, []).append(value)
        print(f"{name}: {value['req_s']:.0f} req/s, loop {value['loop_us']:.0f} us/call", flush=True)

    for round_ in range(args.rounds):
        print(f"round {round_ + 1}", flush=True)
        for loop in ("asyncio", "uvloop"):
            with Process("_empty", "--event-loop", loop) as empty:
                add(f"empty grpc.aio handler ({loop})", measure(empty, c, 1, "raw", d))
        for label, root in servers:
            with _server(args.models, root) as server:
                add(f"{label}: c={c} tensor", measure(server, c, 1, "raw", d))
                if round_ == 0:
                    add(f"{label}: c={c} PNG", measure(server, c, 1, "png", d))
                    add(f"{label}: c=1 tensor", measure(server, 1, 1, "raw", d))
                    add(f"{label}: count=64 c=4 tensor", measure(server, 4, 64, "raw", d))
    text = _markdown(args, rows)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)
        args.out.with_suffix(".json").write_text(json.dumps(rows, indent=1))
        print(f"wrote {args.out}")
    else:
        print(text)
    return 0


def _delays(args: argparse.Namespace) -> int:
    """``--max-queue-delay-ms`` against images/s and latency at 4, 16 and 64 clients, in rounds."""
    delays = [float(x) for x in args.delays.split(",")]
    rows: dict[tuple[float, int], list[dict[str, Any]]] = {}
    for _ in range(args.rounds):
        for delay in delays:
            with Process("_serve", "--models", str(args.models), "--profile-out", os.devnull, "--settings",
                         json.dumps({"max_queue_delay_ms": delay})) as server:
                for c in (4, 16, 64):
                    rows.setdefault((delay, c), []).append(measure(server, c, 1, "raw", args.duration))
                    print(f"delay {delay:g} ms c={c}: {rows[delay, c][-1]['req_s']:.0f} req/s", flush=True)
    lines = [f"`python -m scripts.loop_cost --delays {args.delays} --rounds {args.rounds} --duration {args.duration:g}` "
             f"on {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} ({os.cpu_count()} cores); count=1, tensor, one "
             "channel; each round's figure, rounds in order.", "",
             "| max queue delay | clients | req/s | p50 ms | p99 ms | loop CPU us/call |", "|---|---|---|---|---|---|"]
    for (delay, c), values in sorted(rows.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        def each(key: str, digits: int) -> str:
            return ", ".join(f"{v[key]:.{digits}f}" for v in values)

        lines.append(f"| {delay:g} ms | {c} | {each('req_s', 0)} | {each('p50_ms', 2)} | {each('p99_ms', 1)} | "
                     f"{each('loop_us', 0)} |")
    text = "\n".join(lines) + "\n"
    if args.out:
        args.out.write_text(text)
    print(text)
    return 0


def _markdown(args: argparse.Namespace, rows: dict[str, list[dict[str, Any]]]) -> str:
    def cell(values: list[float], digits: int = 0) -> str:
        mid = statistics.median(values)
        if len(values) == 1:
            return f"{mid:.{digits}f}"
        return f"{mid:.{digits}f} ({min(values):.{digits}f}-{max(values):.{digits}f})"

    lines = [
        f"Produced by `python -m scripts.loop_cost{' --before BEFORE' if args.before else ''} --rounds {args.rounds} "
        f"--concurrency {args.concurrency} --duration {args.duration:g}` on "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}: {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} cores, Python {platform.python_version()}, load average at the end "
        f"{os.getloadavg()[0]:.2f}. One channel, count=1 unless said, server-picked seeds; median of the rounds "
        "(lowest-highest). Loop CPU is the event-loop thread's CPU per call.",
        "",
        "| run | rounds | req/s | images/s | p50 ms | p99 ms | loop CPU us/call | server CPU us/call |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, values in rows.items():
        lines.append(f"| {name} | {len(values)} | {cell([v['req_s'] for v in values])} | "
                     f"{cell([v['images_s'] for v in values])} | {cell([v['p50_ms'] for v in values], 2)} | "
                     f"{cell([v['p99_ms'] for v in values], 2)} | {cell([v['loop_us'] for v in values])} | "
                     f"{cell([v['server_us'] for v in values])} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
