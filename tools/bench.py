"""``latentforge bench``: a served model under load, or ONNX Runtime alone on the same files.

    latentforge bench --target HOST:PORT --model NAME --concurrency C --count K --duration S
                      [--format png|raw] [--session] [--metrics-url URL | --server-pid PID] [--json OUT]
    latentforge bench --raw --model-path models/NAME/VERSION [--batch-sizes 1,2,...] [--json OUT]

The first is a closed-loop load generator (``tools.loadgen``); the second is the limit the
first is compared with (``tools.ortbench``), built with the server's own settings (flags,
``LATENTFORGE_*`` variables, ``--config``) so that both use the same session options. Both print
a summary and write the full result as JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path
from typing import Any

# Server settings that shape raw ONNX Runtime sessions (flags as `latentforge serve` spells them).
_RAW_SETTINGS = ("workers", "intra_op_threads", "precision", "providers")


def register(subparsers: Any) -> None:
    """Add ``latentforge bench`` to the ``latentforge`` parser."""
    b = subparsers.add_parser("bench", help="load-test a running server, or measure ONNX Runtime alone (--raw)",
                              description="Closed-loop gRPC load generator (requests/s, images/s, latency "
                                          "percentiles, errors, client and server CPU per image), or with --raw "
                                          "the in-process ONNX Runtime limit of a version folder at batch sizes "
                                          "1..256 with the server's session settings.")
    add_arguments(b)
    b.set_defaults(func=run)


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The bench command's flags."""
    from services.generation.config import ServeConfig
    from services.rpc.settings import add_flags

    p.add_argument("--raw", action="store_true", help="measure ONNX Runtime alone on --model-path (no server)")
    p.add_argument("--json", type=Path, help="write the result here as JSON")
    load = p.add_argument_group("load generator (against a running server)")
    load.add_argument("--target", help="server address HOST:PORT")
    load.add_argument("--model", help="model name")
    load.add_argument("--concurrency", type=int, default=1, help="clients, each with one request in flight (default 1)")
    load.add_argument("--count", type=int, default=1, help="samples per Generate request (default 1)")
    load.add_argument("--duration", type=float, default=10.0, help="seconds measured, after the warm-up (default 10)")
    load.add_argument("--warmup", type=float, default=1.0, help="seconds of load before measuring (default 1)")
    load.add_argument("--max-requests", type=int, default=1_000_000, help="stop after this many requests too")
    load.add_argument("--format", choices=("png", "raw"), default="png", help="output format asked for (default png)")
    load.add_argument("--method", choices=("Generate", "GetSample"), default="Generate")
    load.add_argument("--seed-mode", choices=("random", "fixed"), default="random",
                      help="random: the server picks seeds; fixed: every request asks for seed 7 (cache hits)")
    load.add_argument("--protocol", choices=("grpc", "http"), default="grpc",
                      help="grpc, or http: POST /v1/generate to the HTTP/JSON port at --target (default grpc)")
    load.add_argument("--channels", type=int, default=1, help="HTTP/2 connections to spread clients over")
    load.add_argument("--session", action="store_true",
                      help="send the Generate requests on one Session stream per channel (each client keeps one "
                           "request in flight on it) instead of as unary calls")
    load.add_argument("--backoff-ms", type=float, default=0.0,
                      help="a client's first pause after RESOURCE_EXHAUSTED/UNAVAILABLE, doubling while refused "
                           "(to 1 s), as a gRPC retry policy does (default 0: retry at once)")
    load.add_argument("--timeout", type=float, default=30.0, help="per-request deadline in seconds")
    load.add_argument("--metrics-url", help="server /metrics URL, for its CPU time (latentforge_process_cpu_seconds_total)")
    load.add_argument("--server-pid", type=int, help="or the server's process id (same machine), for its CPU time")
    raw = p.add_argument_group("raw ONNX Runtime (--raw)")
    raw.add_argument("--model-path", type=Path, help="a version folder, e.g. models/mnist-dcgan/1")
    raw.add_argument("--batch-sizes", default="1,2,4,8,16,32,64,128,256", help="comma-separated batch sizes")
    raw.add_argument("--size-duration", type=float, default=2.0, help="seconds per batch size (default 2)")
    raw.add_argument("--config", type=Path, help="the server's settings file (threads, precision, ...)")
    add_flags(raw, ServeConfig, only=_RAW_SETTINGS)  # the server's own flags for these settings


def run(args: argparse.Namespace) -> int:
    """Run the command; returns the exit status."""
    try:
        result = _run_raw(args) if args.raw else _run_load(args)
    except (ValueError, OSError) as exc:
        print(f"latentforge bench: {exc}", file=sys.stderr)
        return 2
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    print(summary(result))
    return 0 if result.get("ok", 1) or args.raw else 1


def _run_load(args: argparse.Namespace) -> dict[str, Any]:
    from tools.loadgen import LoadSpec, ServerCpu, run_load

    if not args.target or not args.model:
        raise ValueError("give --target and --model (or --raw --model-path)")
    spec = LoadSpec(target=args.target, model=args.model, concurrency=args.concurrency, count=args.count,
                    duration_s=args.duration, max_requests=args.max_requests, fmt=args.format, method=args.method,
                    seed_mode=args.seed_mode, warmup_s=args.warmup, timeout_s=args.timeout,
                    channels=args.channels, backoff_s=args.backoff_ms / 1000.0,
                    session=args.session, protocol=args.protocol).validate()
    result = asyncio.run(run_load(spec, ServerCpu(args.metrics_url, args.server_pid)))
    return {"mode": "load", **result.to_dict()}


def _run_raw(args: argparse.Namespace) -> dict[str, Any]:
    from services.generation.config import ConfigError, load_config
    from latentforge.runtime import OrtSettings
    from tools.ortbench import run_raw

    if not args.model_path:
        raise ValueError("--raw needs --model-path models/NAME/VERSION")
    try:
        config = load_config(args.config, overrides={name: getattr(args, name) for name in _RAW_SETTINGS})
    except ConfigError as exc:
        raise ValueError(str(exc)) from None
    sizes = [int(b) for b in str(args.batch_sizes).split(",") if b.strip()]
    if not sizes or min(sizes) < 1:
        raise ValueError("--batch-sizes must be positive integers")
    settings = OrtSettings.from_config(config)
    return run_raw(args.model_path, settings, threads=config.workers, batch_sizes=sizes,
                   duration_s=args.size_duration)


def summary(result: dict[str, Any]) -> str:
    """A few human-readable lines of a load or raw result."""
    if result.get("mode") == "raw":
        best, lone = result["best"], result["batch1_single_thread"]
        lines = [f"raw ONNX Runtime: {result['model']} v{result['version']} ({result['variant']}, {result['provider']}, "
                 f"{result['threads']} thread(s) x {result['settings']['intra_op_threads']} intra-op)"]
        lines += [f"  batch {p['batch_size']:>4}: {p['images_per_s']:>10.1f} images/s  "
                  f"{p['cpu_us_per_image']:>9.1f} us CPU/image  p50 {p['call_ms'].get('p50', 0):.3f} ms/call"
                  for p in result["points"]]
        lines.append(f"  best: {best['images_per_s']:.1f} images/s at batch {best['batch_size']} "
                     f"({best['cpu_us_per_image']:.1f} us CPU/image); lone batch-1 p50 "
                     f"{lone['call_ms'].get('p50', 0):.3f} ms")
        return "\n".join(lines)
    lat = result.get("latencies_ms", {})
    spec = result["spec"]
    server = result.get("server_cpu_us_per_image")
    return "\n".join([
        f"{spec['method']}{' on Session streams' if spec.get('session') else ''} {spec['model']} "
        f"count={spec['count']} concurrency={spec['concurrency']} "
        f"format={spec['fmt']} for {result['seconds']:.1f} s",
        f"  {result['requests_per_s']:.1f} requests/s, {result['images_per_s']:.1f} images/s, "
        f"{result['requests']} requests, errors {result['errors'] or 'none'}",
        "  latency ms: " + ", ".join(f"{k} {v:.3f}" for k, v in lat.items()),
        *(f"  {code} latency ms: " + ", ".join(f"{k} {v:.3f}" for k, v in by.items())
          for code, by in result.get("latencies_by_code_ms", {}).items() if code != "OK"),
        f"  CPU: client {result['client_cpu_us_per_image'] or 0:.1f} us/image "
        f"({100 * (result['client_cpu_share'] or 0):.1f}% of the machine), server "
        + (f"{server:.1f} us/image ({100 * (result['server_cpu_share'] or 0):.1f}%)" if server is not None
           else "unknown (give --metrics-url or --server-pid)"),
        "  load average: " + " ".join(f"{x:.2f}" for x in (result.get("load_average") or ())),
    ])


def main(argv: list[str] | None = None) -> int:
    """``python -m tools.bench``: the same as ``latentforge bench``."""
    parser = argparse.ArgumentParser(prog="latentforge bench", description=__doc__.splitlines()[0])
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
