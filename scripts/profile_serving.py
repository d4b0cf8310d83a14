"""Where the server's CPU goes per Generate request: a profile under load, beside the gRPC floor.

Three measurements, each against a server in its own process on loopback, driven by the
project's load generator (``tools.loadgen``, what ``latentforge bench`` runs):

1. the gRPC floor: an empty grpc.aio unary handler on the Generate path (no interceptor, no
   parsing, an empty answer), the server options of ``services.rpc.server``;
2. the GenerationService with its default settings (``latentforge serve``, access log on, logs
   to /dev/null), unprofiled: server CPU per request at each concurrency, split into the event
   loop thread and the other threads (batch workers running ONNX Runtime and PNG encoding, gRPC's
   own threads), with ONNX Runtime alone (``tools.ortbench``) at the mean batch size served;
3. the same server with cProfile on its event-loop thread for one run at the profiled
   concurrency: the top functions by own time, and by cumulative time.

It also times the first requests after health says SERVING (warm-up must come before that).
Usage::

    python -m scripts.profile_serving --models out/bench-serving/models --model mnist-dcgan \\
        --concurrency 1,64 --duration 5 --out docs/benchmarks/serving_profile.md
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import os
import pstats
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Self

from scripts.bench_serving import _free_port, stop_process, wait_serving
from services.rpc.server import freeze_heap, loop_factory
from services.rpc.settings import EVENT_LOOPS

ROOT = Path(__file__).resolve().parent.parent
_TICK = os.sysconf("SC_CLK_TCK")


# ---- the server processes ----------------------------------------------------------------------

def _serve_empty(port: int, version_dir: str | None = None, event_loop: str = "asyncio") -> None:
    """The floor: grpc.aio with one unary handler on the Generate path that answers nothing, on
    the event loop ``event_loop`` ("asyncio" or "uvloop").

    With ``version_dir``, the handler also runs the version's decode graph once on one latent
    (ONNX Runtime with the server's session settings, on the event loop) and answers a
    GenerateResponse of one tensor sample: the least a server can do per count=1 call.
    """
    import grpc

    from tools.loadgen import GENERATE

    answer, feeds, model = b"", None, None
    if version_dir is not None:
        import numpy as np

        from latentforge.runtime import ModelRuntime, OrtSettings
        from latentforge.v1 import generation_pb2 as pb
        from services.generation.config import ServeConfig

        model = ModelRuntime.open(Path(version_dir), OrtSettings.from_config(ServeConfig()))
        feeds = {"z": np.random.default_rng(0).standard_normal((1, model.manifest.latent_dim)).astype(np.float32)}
        if model.manifest.num_classes:
            feeds["labels"] = np.zeros(1, np.int64)
        image = model.run_task("decode", feeds)["image"][0]
        response = pb.GenerateResponse(model=model.name, version=model.version, seed=1)
        sample = response.samples.add(sample_id="x" * 22, seed=1)
        sample.image.tensor.CopyFrom(pb.Tensor(dtype="float32", shape=list(image.shape), data=image.tobytes()))
        answer = response.SerializeToString()

    async def empty(request: bytes, context: Any) -> bytes:
        if model is not None:
            model.run_task("decode", feeds)
        return answer

    class Handler(grpc.GenericRpcHandler):
        def service(self, details: Any) -> Any:
            if details.method == GENERATE:
                return grpc.unary_unary_rpc_method_handler(empty)
            return None

    async def main() -> None:
        server = grpc.aio.server(options=[("grpc.so_reuseport", 0)])
        server.add_generic_rpc_handlers((Handler(),))
        server.add_insecure_port(f"127.0.0.1:{port}")
        await server.start()
        await server.wait_for_termination()

    with asyncio.Runner(loop_factory=loop_factory(event_loop)) as runner:
        runner.run(main())


def _serve_profiled(models: str, port: int, profile_out: str, extra: dict[str, Any]) -> None:
    """The GenerationService with default settings; SIGUSR1 starts cProfile on the event-loop
    thread, SIGUSR2 stops it and writes the stats to ``profile_out``."""
    from services.generation.config import load_config
    from services.rpc.logs import configure_logging
    from services.generation.server import GenerationServer

    config = load_config(overrides={"models": Path(models), "host": "127.0.0.1", "port": port,
                                    "reload_interval_s": 0, **extra})
    configure_logging(config.log_level, config.log_json)  # to stderr, which the parent sends to /dev/null
    profiler = cProfile.Profile()

    def stop_profile() -> None:
        profiler.disable()
        profiler.dump_stats(profile_out)

    async def main() -> None:
        server = GenerationServer(config)
        await server.start()
        await server.wait_started()
        freeze_heap()  # as run_until_signal does
        loop = asyncio.get_running_loop()
        done = asyncio.Event()
        loop.add_signal_handler(signal.SIGUSR1, profiler.enable)
        loop.add_signal_handler(signal.SIGUSR2, stop_profile)
        loop.add_signal_handler(signal.SIGTERM, done.set)
        await done.wait()
        await server.stop(1.0)

    with asyncio.Runner(loop_factory=loop_factory(config.event_loop)) as runner:
        runner.run(main())


class Process:
    """One of the servers above as a child process of this script."""

    def __init__(self, *args: str, root: Path = ROOT) -> None:
        """``root``: the checkout whose code the server runs (another commit's, for a before/after)."""
        self.port = _free_port()
        self.proc = subprocess.Popen([sys.executable, "-m", "scripts.profile_serving", *args, "--port", str(self.port)],
                                     cwd=root, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                     env={**os.environ, "PYTHONPATH": str(root)})
        self.serving_at = self._wait_serving()

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    def _wait_serving(self, timeout_s: float = 120.0) -> float:
        """Until the server answers SERVING (the empty one: until its port answers at all)."""
        try:
            return wait_serving(self.proc, self.target, timeout_s, poll_s=0.02, no_health=True)
        except RuntimeError:
            self.stop()
            raise

    def cpu_by_thread(self) -> tuple[float, float]:
        """CPU seconds so far of the main (event-loop) thread and of all other threads."""
        main = total = 0.0
        for tid in os.listdir(f"/proc/{self.proc.pid}/task"):
            try:
                with open(f"/proc/{self.proc.pid}/task/{tid}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            seconds = (int(fields[11]) + int(fields[12])) / _TICK
            total += seconds
            if int(tid) == self.proc.pid:
                main = seconds
        return main, total - main

    def stop(self) -> None:
        stop_process(self.proc)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


# ---- measurements --------------------------------------------------------------------------------

def _load(server: Process, model: str, concurrency: int, count: int, duration: float, fmt: str,
          warmup: float = 1.0) -> dict[str, Any]:
    from tools.loadgen import LoadSpec, ServerCpu, run_load

    spec = LoadSpec(target=server.target, model=model, concurrency=concurrency, count=count, duration_s=duration,
                    warmup_s=warmup, fmt=fmt)
    before = server.cpu_by_thread()
    result = asyncio.run(run_load(spec, ServerCpu(pid=server.proc.pid))).to_dict()
    after = server.cpu_by_thread()
    # The split covers the warm-up second too; it is given as shares of the whole.
    main, other = after[0] - before[0], after[1] - before[1]
    result["loop_thread_share"] = main / (main + other) if main + other else None
    return result


def _batches(metrics_port: int, model: str) -> tuple[float, float]:
    """(rows, ONNX Runtime calls) of ``model``'s image graph so far, from the server's /metrics."""
    import re
    import urllib.request

    text = urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5).read().decode()
    found = {"sum": 0.0, "count": 0.0}
    pattern = r'^latentforge_batch_size_(sum|count)\{[^}]*model="' + re.escape(model) + r'"[^}]*\}\s+(\S+)$'
    for kind, value in re.findall(pattern, text, re.MULTILINE):
        found[kind] += float(value)
    return found["sum"], found["count"]


def _first_requests(server: Process, model: str, n: int = 5) -> list[float]:
    """Latency (ms) of the first ``n`` lone requests after SERVING, then a burst of 64 at once."""
    import grpc

    from latentforge.v1 import generation_pb2 as pb
    from tools.loadgen import GENERATE

    request = pb.GenerateRequest(model=model, count=1).SerializeToString()

    async def run() -> list[float]:
        async with grpc.aio.insecure_channel(server.target) as channel:
            await channel.channel_ready()  # the connection is not counted
            call = channel.unary_unary(GENERATE)
            out = []
            for _ in range(n):
                t0 = time.perf_counter()
                await call(request, timeout=30)
                out.append((time.perf_counter() - t0) * 1000)
            t0 = time.perf_counter()
            await asyncio.gather(*(call(request, timeout=30) for _ in range(64)))
            out.append((time.perf_counter() - t0) * 1000)
            return out

    return asyncio.run(run())


def _profile_table(path: Path, requests: int, top: int, sort: str) -> str:
    """The top functions of a cProfile dump, per request, as a markdown table."""
    stats = pstats.Stats(str(path))
    rows = sorted(stats.stats.items(), key=lambda kv: kv[1][2 if sort == "tottime" else 3], reverse=True)[:top]  # type: ignore[attr-defined]
    lines = ["| own us/req | cumulative us/req | calls/req | function |", "|---|---|---|---|"]
    for (file, line, func), (_cc, nc, tt, ct, _callers) in rows:
        where = file.replace(str(ROOT) + "/", "")
        for marker in ("site-packages/", "lib/python3"):
            if marker in where:
                where = where.split(marker, 1)[1]
        name = func if file == "~" else f"{where}:{line} {func}"
        lines.append(f"| {tt / requests * 1e6:.1f} | {ct / requests * 1e6:.1f} | {nc / requests:.2f} | `{name}` |")
    return "\n".join(lines)


def _raw(models: Path, model: str, batch: int) -> dict[str, Any]:
    from services.generation.config import ServeConfig
    from latentforge.runtime import OrtSettings
    from tools.ortbench import load_model, measure_batch

    config = ServeConfig()
    m = load_model(models / model / "1", OrtSettings.from_config(config))
    return {"batch": batch, "at_batch": measure_batch(m, batch, config.workers, 2.0).cpu_us_per_image,
            "batch1_p50_ms": measure_batch(m, 1, 1, 2.0).call_ms["p50"]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="role")
    e = sub.add_parser("_empty", help=argparse.SUPPRESS)
    e.add_argument("--port", type=int, required=True)
    e.add_argument("--version-dir", help="also run this version's decode graph per call")
    e.add_argument("--event-loop", choices=EVENT_LOOPS, default="asyncio")  # auto: uvloop
    s = sub.add_parser("_serve", help=argparse.SUPPRESS)
    s.add_argument("--models", required=True)
    s.add_argument("--profile-out", required=True)
    s.add_argument("--settings", default="{}")
    s.add_argument("--port", type=int, required=True)
    parser.add_argument("--models", type=Path, default=ROOT / "out" / "bench-serving" / "models",
                        help="model repository (scripts.bench_serving builds the demo one)")
    parser.add_argument("--model", default="mnist-dcgan")
    parser.add_argument("--concurrency", default="1,64", help="comma-separated; the last one is profiled")
    parser.add_argument("--count", type=int, default=1)
    parser.add_argument("--format", choices=("png", "raw"), default="png")
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per run")
    parser.add_argument("--top", type=int, default=20)
    parser.add_argument("--settings", default="{}", help="JSON of ServeConfig overrides, e.g. '{\"access_log\": false}'")
    parser.add_argument("--out", type=Path, help="write the markdown report here (default: print it)")
    args = parser.parse_args(argv)
    if args.role == "_empty":
        _serve_empty(args.port, args.version_dir, args.event_loop)
        return 0
    if args.role == "_serve":
        _serve_profiled(args.models, args.port, args.profile_out, json.loads(args.settings))
        return 0
    if not (args.models / args.model).is_dir():
        parser.error(f"no model {args.model!r} in {args.models}; build the demo models with scripts.bench_serving")
    levels = [int(c) for c in args.concurrency.split(",")]
    profiled_c = levels[-1]
    report: dict[str, Any] = {"runs": {}}
    print("empty grpc.aio handler ...", flush=True)
    with Process("_empty") as floor:
        report["floor"] = _load(floor, args.model, profiled_c, 1, args.duration, args.format)
    dump = Path(f"/tmp/profile_serving_{os.getpid()}.prof")
    metrics_port = _free_port()
    settings = json.dumps({"metrics_host": "127.0.0.1", "metrics_port": metrics_port, **json.loads(args.settings)})
    with Process("_serve", "--models", str(args.models), "--profile-out", str(dump),
                 "--settings", settings) as server:
        report["first_ms"] = _first_requests(server, args.model)
        for c in levels:
            print(f"c={c} ...", flush=True)
            before = _batches(metrics_port, args.model)
            report["runs"][c] = _load(server, args.model, c, args.count, args.duration, args.format)
            after = _batches(metrics_port, args.model)
            calls = after[1] - before[1]
            report["runs"][c]["mean_batch"] = (after[0] - before[0]) / calls if calls else None
        print(f"c={profiled_c} profiled ...", flush=True)
        server.proc.send_signal(signal.SIGUSR1)
        profiled = _load(server, args.model, profiled_c, args.count, args.duration, args.format, warmup=0.0)
        server.proc.send_signal(signal.SIGUSR2)
        for _ in range(100):
            if dump.is_file() and dump.stat().st_size:
                break
            time.sleep(0.05)
        time.sleep(0.2)
    raw = _raw(args.models, args.model, max(1, round(report["runs"][profiled_c]["mean_batch"] or args.count)))
    text = _markdown(args, report, profiled, dump, raw)
    dump.unlink(missing_ok=True)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)
        print(f"wrote {args.out}")
    else:
        print(text)
    return 0


def _markdown(args: argparse.Namespace, report: dict[str, Any], profiled: dict[str, Any], dump: Path,
              raw: dict[str, Any]) -> str:
    floor = report["floor"]
    floor_us = floor["server_cpu_s"] / max(1, floor["requests"]) * 1e6
    lines = [
        "# Serving profile: server CPU per Generate request",
        "",
        (f"Produced by `python -m scripts.profile_serving --model {args.model} --concurrency {args.concurrency} "
        f"--count {args.count} --duration {args.duration:g}` on {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, "
        f"load average {os.getloadavg()[0]:.2f} ({os.cpu_count()} cores, shared: figures are noisy; compare "
        "rows of one run)."),
        "",
        (f"Format {args.format}; server: `latentforge serve` defaults{'' if args.settings == '{}' else ' + ' + args.settings} "
        "(access log on, logs to /dev/null). Server CPU is the server process's CPU time over the run "
        "(the load generator's warm-up second excluded) per request; loop share is the event-loop "
        "thread's part of it (the rest: batch workers running ONNX Runtime and PNG encoding, gRPC's threads)."),
        "",
        "| run | req/s | p50 ms | p99 ms | server CPU us/req | loop thread share | mean batch |",
        "|---|---|---|---|---|---|---|",
        (f"| empty grpc.aio handler, c={floor['spec']['concurrency']} (gRPC floor) | {floor['requests_per_s']:.0f} | "
        f"{floor['latencies_ms'].get('p50', 0):.2f} | {floor['latencies_ms'].get('p99', 0):.2f} | {floor_us:.0f} | "
        f"{(floor['loop_thread_share'] or 0) * 100:.0f}% | - |"),
    ]
    for c, r in report["runs"].items():
        us = r["server_cpu_s"] / max(1, r["requests"]) * 1e6
        lines.append(f"| Generate count={args.count} c={c} | {r['requests_per_s']:.0f} | {r['latencies_ms'].get('p50', 0):.2f} | "
                     f"{r['latencies_ms'].get('p99', 0):.2f} | {us:.0f} | {(r['loop_thread_share'] or 0) * 100:.0f}% | "
                     f"{r['mean_batch'] or 0:.1f} |")
    us = profiled["server_cpu_s"] / max(1, profiled["requests"]) * 1e6
    lines.append(f"| same, cProfile on the loop thread | {profiled['requests_per_s']:.0f} | "
                 f"{profiled['latencies_ms'].get('p50', 0):.2f} | {profiled['latencies_ms'].get('p99', 0):.2f} | {us:.0f} | "
                 f"{(profiled['loop_thread_share'] or 0) * 100:.0f}% | |")
    lines += [
        "",
        (f"ONNX Runtime alone on the same file and settings: {raw['at_batch']:.0f} us CPU/image at batch "
        f"{raw['batch']} (the mean batch at c={profiled['spec']['concurrency']}); a lone batch-1 call takes {raw['batch1_p50_ms']:.2f} ms (p50)."),
        "",
        "First requests after health said SERVING (ms, lone requests one after another, then a burst of 64 at once): "
        + ", ".join(f"{x:.1f}" for x in report["first_ms"]) + ".",
        "",
        "## The path of one count=1 Generate",
        "",
        "1. gRPC's poller thread hands the call to the event loop (gRPC's own hand-off, in the floor above).",
        ("2. Event loop: request id, in-flight gauge, the plan (model version, checks, seed), one append to "
        "the model's queue (the request's feeds deferred: its latents are not drawn yet). Batches form on "
        "the next loop iteration, when a batch worker is free."),
        "3. Loop -> worker thread: one executor hand-off per batch, shared by every request in it.",
        ("4. Worker: each request's latents drawn from its seeds (PCG64), one ONNX Runtime call for the "
        "batch, the outputs encoded (one PNG encoder call for the rows of all requests that share it), "
        "then each request's records made and its GenerateResponse built and serialised."),
        "5. Worker -> loop: one `call_soon_threadsafe` per batch; its callback resolves every request's future.",
        ("6. Event loop: the samples stored (one `put_many` per request; `samples_stored` appended to the "
        "serialised answer), the trailers, the access-log line, the latency and count metrics."),
        "",
        "So a request makes no thread hop of its own beyond gRPC's: two per batch (there and back).",
        "",
        f"## Event-loop thread, c={profiled['spec']['concurrency']}: top {args.top} by own time",
        "",
        ("cProfile slows what it measures (each Python call costs more), so the absolute figures are "
        "inflated; the ranking is what matters. C code (gRPC's Cython layer, ONNX Runtime) shows up under "
        "the Python function that calls it. Per request = divided by the requests answered while profiling."),
        "",
        _profile_table(dump, profiled["requests"], args.top, "tottime"),
        "",
        f"## Event-loop thread: top {args.top} by cumulative time",
        "",
        _profile_table(dump, profiled["requests"], args.top, "cumtime"),
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
