"""Before/after of the generation server on the same machine: the server of an older commit and
this checkout's, started in turns on the same models under the same load.

    python -m scripts.serving_ab --before b0c7e5f [--models out/bench-serving/models] [--rounds 2]
        [--channels 4 --processes 2]

Figures measured months apart on a shared machine do not compare (the machine itself changes);
this runs both servers now, alternating, and reports each side's median over the rounds (and
the spread, lowest to highest): server CPU per image (the figure that noise disturbs least),
images/s and p50, at count=1 with c=1 and c=64, and in bulk (count=64 with c=4). The older commit is checked out in a temporary git worktree and run with this checkout's
virtual environment. ``--processes N`` adds two sides of this checkout with a redis-server: one
process, and N processes behind the port (``serve --processes N --workers 1``); spread the load
over connections with ``--channels`` then, as the kernel spreads connections, not calls. The
per-request targets are scored beside ONNX Runtime alone and the gRPC floor (an empty handler).
Writes ``serving_before_after.md`` next to the other benchmarks.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RAW_BATCH = 16  # about the mean batch the server forms at 64 clients
LOADS = ((1, 1, "png"), (1, 1, "raw"), (64, 1, "png"), (4, 64, "png"))  # (clients, images per call, output)
FIGURES = ("images_per_s", "server_cpu_us_per_image", "p50", "redis_cpu_us_per_image")


def _serve(code: Path, models: Path, extra: list[str]) -> tuple[subprocess.Popen, str]:
    from scripts.bench_serving import _free_port

    port, metrics_port = _free_port(), _free_port()
    with tempfile.TemporaryFile() as log:  # the server's log lines: the supervisor says when all are up
        proc = subprocess.Popen(
            [sys.executable, "-m", "latentforge", "serve", "--models", str(models), "--host", "127.0.0.1",
             "--port", str(port), "--metrics-port", str(metrics_port), *extra],
            cwd=code, env={**os.environ, "PYTHONPATH": str(code), "LATENTFORGE_RELOAD_INTERVAL_S": "0"},
            stdout=subprocess.DEVNULL, stderr=log)
        target = f"127.0.0.1:{port}"
        from services.generation.client import GenerationClient

        with GenerationClient(target) as client:
            client.wait_serving(timeout_s=120)
        if "--processes" in extra:
            # Every process must have joined the port before the load generator connects: the
            # kernel gives each new connection to one of the processes listening at that moment.
            deadline = time.monotonic() + 120
            while not _logged(log, b'"processes_serving"'):
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError("the server processes did not all come up")
                time.sleep(0.1)
        return proc, target


def _logged(log: Any, text: bytes) -> bool:
    """Whether the server has written ``text`` to its log file so far."""
    log.seek(0)
    return text in log.read()


def _measure(code: Path, models: Path, side: Side, model: str, concurrency: int, duration: float,
             channels: int, redis: Any, count: int = 1, fmt: str = "png") -> dict[str, Any]:
    from scripts.bench_serving import stop_process
    from tools.loadgen import LoadSpec, ServerCpu, run_load

    extra = [*side.extra, *(["--redis-url", redis.url] if side.redis else [])]
    proc, target = _serve(code, models, extra)
    try:
        spec = LoadSpec(target=target, model=model, concurrency=concurrency, count=count, duration_s=duration,
                        channels=channels, fmt=fmt)
        redis_cpu = ServerCpu(pid=redis.proc.pid) if side.redis else None
        redis_before = redis_cpu.read() if redis_cpu else None
        result = asyncio.run(run_load(spec, ServerCpu(pid=proc.pid))).to_dict()
        if redis_cpu is not None and redis_before is not None:
            result["redis_cpu_us_per_image"] = (redis_cpu.read() - redis_before) / max(1, result["images"]) * 1e6
        return result
    finally:
        stop_process(proc)


@dataclass(frozen=True)
class Side:
    """One server of the comparison: which code, which extra flags, with a Redis or not."""

    name: str
    before: bool
    extra: tuple[str, ...] = ()
    redis: bool = False


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--before", required=True, help="git revision of the 'before' server")
    parser.add_argument("--models", type=Path, default=ROOT / "out" / "bench-serving" / "models",
                        help="model repository (default: the one `make bench-serving` builds)")
    parser.add_argument("--model-names", default="mnist-dcgan,rgb64-dcgan")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--channels", type=int, default=1,
                        help="client connections (HTTP/2); several processes behind one port need several")
    parser.add_argument("--processes", type=int, default=0,
                        help="also run this checkout with Redis: one process, and this many processes "
                             "(--processes N --workers 1)")
    parser.add_argument("--after-http", action="store_true",
                        help="run the 'after' server with its HTTP/JSON port open (--http-port 0): its gRPC "
                             "figures beside a server without one")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "benchmarks")
    args = parser.parse_args(argv)
    from scripts.bench_serving import Redis, machine

    sides = [Side("before", True),
             Side("after, HTTP port on", False, ("--http-port", "0")) if args.after_http else Side("after", False)]
    if args.processes:
        sides += [Side("after, Redis", False, redis=True),
                  Side(f"after, {args.processes} processes, Redis", False,
                       ("--processes", str(args.processes), "--workers", "1"), redis=True)]
    info = machine()
    rows = []
    redis = Redis() if any(side.redis for side in sides) else None
    with tempfile.TemporaryDirectory() as tmp:
        before = Path(tmp) / "before"
        subprocess.run(["git", "worktree", "add", "--detach", str(before), args.before], cwd=ROOT, check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            for model in args.model_names.split(","):
                for c, count, fmt in LOADS:
                    runs: dict[str, list[dict[str, Any]]] = {side.name: [] for side in sides}
                    for _ in range(args.rounds):
                        for side in sides:
                            r = _measure(before if side.before else ROOT, args.models, side, model, c,
                                         args.duration, args.channels, redis, count, fmt)
                            runs[side.name].append(r)
                            print(f"{model} c={c} count={count} {fmt} {side.name}: {r['images_per_s']:.0f} img/s, server "
                                  f"{r['server_cpu_us_per_image']:.0f} us/img, p50 {_figure(r, 'p50'):.2f} ms",
                                  file=sys.stderr, flush=True)
                    med = {name: {k: statistics.median(_figure(r, k) for r in rs) for k in FIGURES}
                           for name, rs in runs.items()}
                    for name, rs in runs.items():
                        med[name].update({f"{k}_spread": (min(_figure(r, k) for r in rs), max(_figure(r, k) for r in rs))
                                          for k in FIGURES})
                    rows.append((model, (c, count, fmt), med))
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(before)], cwd=ROOT, check=False)
            if redis is not None:
                redis.stop()
    floor = _floor(args.model_names.split(",")[0], args.duration, args.channels, args.models)
    raw = {model: _raw(args.models, model, RAW_BATCH) for model in args.model_names.split(",")}
    text = _markdown(args, argv, info, sides, rows) + _targets(sides, rows, floor, raw)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "serving_before_after.md").write_text(text)
    print(f"wrote {args.out / 'serving_before_after.md'}")
    return 0


def _floor(model: str, duration: float, channels: int, models: Path) -> dict[str, float]:
    """The gRPC floor: an empty grpc.aio handler on the Generate path, at c=1 (p50) and c=64
    (server CPU per request), under the same load generator; and at c=1 (tensor out) the same
    handler running the model's decode graph once per call, answering a one-sample response:
    the least a server can do per call."""
    from scripts.profile_serving import Process
    from tools.loadgen import LoadSpec, ServerCpu, run_load

    found: dict[str, float] = {}
    with Process("_empty") as server:
        for c in (1, 64):
            spec = LoadSpec(target=server.target, model=model, concurrency=c, count=1, duration_s=duration,
                            channels=channels)
            r = asyncio.run(run_load(spec, ServerCpu(pid=server.proc.pid))).to_dict()
            found[f"p50_c{c}"] = r["latencies_ms"]["p50"]
            found[f"cpu_c{c}"] = r["server_cpu_us_per_image"]
    with Process("_empty", "--version-dir", str(models / model / "1")) as server:
        spec = LoadSpec(target=server.target, model=model, concurrency=1, count=1, duration_s=duration,
                        channels=channels, fmt="raw")
        r = asyncio.run(run_load(spec, ServerCpu(pid=server.proc.pid))).to_dict()
        found["graph_p50_c1"] = r["latencies_ms"]["p50"]
    return found


def _raw(models: Path, model: str, batch: int) -> dict[str, float]:
    """ONNX Runtime alone on the served file with the server's session settings."""
    from scripts.profile_serving import _raw as raw

    r = raw(models, model, batch)
    return {"cpu_us_per_image": r["at_batch"], "batch1_p50_ms": r["batch1_p50_ms"]}


def _targets(sides: list[Side], rows: list[tuple[str, int, dict[str, dict[str, float]]]],
             floor: dict[str, float], raw: dict[str, dict[str, float]]) -> str:
    """The per-request overhead targets, for each side of this checkout."""
    by = {(model, "bulk" if load[1] > 1 else f"{load[0]}{'' if load[2] == 'png' else ' ' + load[2]}"): med
          for model, load, med in rows}
    lines = ["", "## Per-request overhead targets", "",
             (f"Raw = ONNX Runtime alone on the same file and session settings (1 thread per call), CPU per image "
             f"at batch {RAW_BATCH} and the p50 of a lone batch-1 call. The gRPC floor, an empty grpc.aio handler "
             f"on the Generate path under the same load generator: {floor['cpu_c64']:.0f} us of server CPU per "
             f"request at c=64, p50 {floor['p50_c1']:.2f} ms at c=1. Server CPU counts the whole server, so its "
             "share of the floor is in every figure below."), "",
             "| model | target | side | met | figure |", "|---|---|---|---|---|"]
    for model, r in raw.items():
        small = model == next(iter(raw))
        for side in sides:
            if side.before:
                continue
            c64, c1 = by[(model, "64")][side.name], by[(model, "1 raw")][side.name]
            if small:
                extra = c64["server_cpu_us_per_image"] - r["cpu_us_per_image"]
                lines.append(f"| {model} | c=64: server CPU per image beyond raw <= 300 us | {side.name} | "
                             f"{'yes' if extra <= 300 else 'no'} | {c64['server_cpu_us_per_image']:.0f} - "
                             f"{r['cpu_us_per_image']:.0f} = {extra:.0f} us (gRPC floor {floor['cpu_c64']:.0f}) |")
                for (load, label) in (((model, "64"), "c=64"), ((model, "bulk"), "bulk 4 x 64")):
                    after, before = by[load][side.name], by[load]["before"]
                    ips_ok = after["images_per_s"] >= before["images_per_s_spread"][0]
                    cpu_ok = after["server_cpu_us_per_image"] <= before["server_cpu_us_per_image_spread"][1]
                    lines.append(f"| {model} | {label}: no loss beyond the before side's spread (images/s, server "
                                 f"CPU per image) | {side.name} | {'yes' if ips_ok and cpu_ok else 'no'} | "
                                 f"{after['images_per_s']:.0f} img/s vs {before['images_per_s']:.0f} "
                                 f"{_spread(before, 'images_per_s', '.0f')}; {after['server_cpu_us_per_image']:.0f} us vs "
                                 f"{before['server_cpu_us_per_image']:.0f} {_spread(before, 'server_cpu_us_per_image', '.0f')} |")
                limit = floor["p50_c1"] + r["batch1_p50_ms"] + 0.15
                lines.append(f"| {model} | c=1, tensor out: p50 <= gRPC floor p50 + raw batch-1 + 0.15 ms | "
                             f"{side.name} | {'yes' if c1['p50'] <= limit else 'no'} | {c1['p50']:.2f} vs "
                             f"{floor['p50_c1']:.2f} + {r['batch1_p50_ms']:.2f} + 0.15 = {limit:.2f} ms (before "
                             f"{by[(model, '1 raw')]['before']['p50']:.2f}) |")
                ideal = floor["graph_p50_c1"] + 0.15
                lines.append(f"| {model} | c=1, tensor out: p50 <= the empty handler running the same graph + "
                             f"0.15 ms | {side.name} | {'yes' if c1['p50'] <= ideal else 'no'} | {c1['p50']:.2f} vs "
                             f"{floor['graph_p50_c1']:.2f} + 0.15 = {ideal:.2f} ms |")
            else:
                ratio = c64["server_cpu_us_per_image"] / r["cpu_us_per_image"]
                lines.append(f"| {model} | c=64: server CPU per image <= 1.2x raw | {side.name} | "
                             f"{'yes' if ratio <= 1.2 else 'no'} | {c64['server_cpu_us_per_image']:.0f} vs "
                             f"{r['cpu_us_per_image']:.0f} us = {ratio:.2f}x |")
    return "\n".join(lines) + "\n"


def _spread(med: dict[str, Any], key: str, fmt: str) -> str:
    low, high = med[f"{key}_spread"]
    return f"[{format(low, fmt)}-{format(high, fmt)}]"


def _figure(result: dict[str, Any], key: str) -> float:
    if key == "p50":
        return result["latencies_ms"]["p50"]
    return result.get(key, 0.0)


def _markdown(args: argparse.Namespace, argv: list[str] | None, info: dict[str, Any], sides: list[Side],
              rows: list[tuple[str, int, dict[str, dict[str, float]]]]) -> str:
    lines = ["# Serving before and after, on the same machine", "",
             (f"Produced by `python -m scripts.serving_ab {' '.join(argv if argv is not None else sys.argv[1:])}` on "
             f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}: `latentforge serve` of commit `{args.before}` "
             "(before) and of this checkout (after), default settings unless the side says otherwise, started in "
             "turns on the same models, Generate (PNG, or float32 tensors where the row says raw) from "
             "`latentforge bench`'s load generator over "
             f"{args.channels} connection(s), {args.duration:g} s per run, the median of {args.rounds} rounds per "
             "side."), "",
             (f"Machine: {info['cpu']}, {info['cores']} cores, {info['memory_gib']} GiB, Python {info['python']}, "
             f"onnxruntime {info['onnxruntime']}, grpcio {info['grpcio']}; load average at start "
             f"{info['load_average_start']} (shared: compare sides of one model and load). The load generator "
             "runs on the same cores."), "",
             ("Server CPU is the server's processes together (with `--processes`, the supervisor and its server "
             "processes); Redis CPU is the redis-server's, on the same machine, for the sides that use one."), "",
             "Each figure is the median of the rounds, with the lowest and highest in brackets.", "",
             "| model | clients x count, output | side | images/s | x before | server CPU us/img | vs before | "
             "Redis CPU us/img | p50 ms |",
             "|---|---|---|---|---|---|---|---|---|"]
    for model, (c, count, fmt), med in rows:
        b = med["before"]
        for side in sides:
            m = med[side.name]
            redis_cpu = f"{m['redis_cpu_us_per_image']:.0f}" if side.redis else "-"
            lines.append(f"| {model} | {c} x {count} {fmt} | {side.name} | {m['images_per_s']:.0f} "
                         f"{_spread(m, 'images_per_s', '.0f')} | {m['images_per_s'] / b['images_per_s']:.2f} | "
                         f"{m['server_cpu_us_per_image']:.0f} {_spread(m, 'server_cpu_us_per_image', '.0f')} | "
                         f"{100 * (m['server_cpu_us_per_image'] / b['server_cpu_us_per_image'] - 1):+.0f}% | "
                         f"{redis_cpu} | {m['p50']:.2f} {_spread(m, 'p50', '.2f')} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    raise SystemExit(main())
