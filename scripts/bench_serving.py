"""Serving benchmark: the gRPC service under load beside ONNX Runtime alone, on the demo models.

    python -m scripts.bench_serving [--out docs/benchmarks] [--duration 8]
    python -m scripts.bench_serving --smoke --models DIR --model-names mnist-dcgan --out /tmp/x

Builds what it needs unless given ``--models`` (a 28x28 DCGAN trained briefly on mnist5k and a
64x64x3 DCGAN on generated colour images, exported with their ORT-optimised variants; weights'
quality does not matter for throughput), then for each model measures: the raw limit
(``latentforge bench --raw``), the server under count=1 load at rising concurrency (including
over capacity), bulk count=64 load, a small queue limit at concurrency 512, and the cached paths
(GetSample from Redis, a repeated seed from the rendered-output cache). The server runs as its
own process with its default settings; the load generator runs here, on the same cores. Writes
``serving.md`` (machine, tables, targets met or missed), ``serving.json`` and ``serving.png``.

Beside it, a peer: MLServer serving the same ONNX file through a small custom runtime
(``scripts/peers``), in its own environment ``.venv-peer`` (``make bench-peer-setup``; created
here when missing), at the same count=1 concurrencies and the same bulk load, against the
project's rows with raw tensor output. ``--no-peer`` leaves it out; ``--smoke`` runs it only
when ``.venv-peer`` already exists.

Then scripts/bench_stylize.py (``stylize.md``, ``stylize.json``: the Stylize RPC's latency on a
style model), with ``--smoke`` and ``--out`` passed on; ``--no-stylize`` leaves it out.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
DEMO_MODELS = ("mnist-dcgan", "rgb64-dcgan")


@dataclass(frozen=True)
class Plan:
    """What to measure and for how long."""

    duration_s: float = 8.0
    warmup_s: float = 1.0
    concurrency: tuple[int, ...] = (1, 4, 16, 64, 128, 256, 512)
    bulk: tuple[int, int] = (4, 64)  # (concurrency, count)
    small_queue: int = 64  # max_queue_size of the over-capacity run with rejections
    backoff_s: float = 0.05  # a refused client's first pause in that run (doubling, to 1 s)
    raw_sizes: tuple[int, ...] = (1, 2, 4, 8, 16, 32, 64, 128, 256)
    raw_duration_s: float = 2.0
    cached_duration_s: float = 5.0
    render_counts: tuple[int, ...] = (1, 16)  # Generate sizes of the rendered-output cache runs

    @classmethod
    def smoke(cls) -> "Plan":
        return cls(duration_s=0.4, warmup_s=0.1, concurrency=(1, 8), bulk=(2, 4), small_queue=2, backoff_s=0.01,
                   raw_sizes=(1, 4), raw_duration_s=0.1, cached_duration_s=0.3, render_counts=(1,))


def _cli(*args: str, quiet: bool = True) -> None:
    """Run a ``latentforge`` sub-command from the repository root."""
    out = subprocess.DEVNULL if quiet else None
    subprocess.run([sys.executable, "-m", "latentforge", *args], cwd=ROOT, check=True, stdout=out)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_serving(proc: subprocess.Popen, target: str, timeout_s: float = 120.0, poll_s: float = 0.1,
                 no_health: bool = False) -> float:
    """Until the server at ``target`` answers SERVING on grpc.health.v1 (``no_health``: until its
    port answers at all, for a server without the health service); the monotonic time it did.
    Raises RuntimeError when ``proc`` exits first or ``timeout_s`` passes."""
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    deadline = time.monotonic() + timeout_s
    with grpc.insecure_channel(target) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"the server exited with {proc.returncode}")
            try:
                if stub.Check(health_pb2.HealthCheckRequest(), timeout=1).status == health_pb2.HealthCheckResponse.SERVING:
                    return time.monotonic()
            except grpc.RpcError as exc:
                if no_health and exc.code() == grpc.StatusCode.UNIMPLEMENTED:
                    return time.monotonic()
            time.sleep(poll_s)
    raise RuntimeError("the server did not become ready")


def stop_process(proc: subprocess.Popen) -> None:
    """SIGTERM (the server drains), then SIGKILL after 20 s."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def machine() -> dict[str, Any]:
    """What the numbers were measured on."""
    import grpc
    import onnxruntime

    cpu = "unknown"
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    mem_gib = None
    try:
        kib = next(int(line.split()[1]) for line in open("/proc/meminfo") if line.startswith("MemTotal"))
        mem_gib = round(kib / 2**20, 1)
    except (OSError, StopIteration):
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "memory_gib": mem_gib, "os": platform.platform(),
            "python": platform.python_version(), "onnxruntime": onnxruntime.__version__, "grpcio": grpc.__version__,
            "load_average_start": [round(x, 2) for x in os.getloadavg()]}


# ---- models ------------------------------------------------------------------------------------

def _colour_images(folder: Path, n: int = 256, size: int = 64) -> None:
    """Smooth random colour pictures (gradients and blobs) as PNGs: training data for the 64x64 model."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:size, 0:size] / size
    for k in range(n):
        img = np.zeros((size, size, 3))
        for c in range(3):
            a, b, p = rng.uniform(-3, 3, 3)
            cx, cy, r = rng.uniform(0, 1, 3)
            blob = np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (0.05 + r / 5))
            img[:, :, c] = 0.5 + 0.25 * np.sin(a * xx + b * yy + p) + 0.25 * blob
        Image.fromarray(np.clip(img * 255, 0, 255).astype(np.uint8), "RGB").save(folder / f"{k:04d}.png")


def build_models(work: Path, steps: int = 20) -> Path:
    """The two demo models, trained briefly and exported with their ORT-optimised (and fp16)
    variants; kept in ``work`` and reused by later runs."""
    repo = work / "models"
    data = {"mnist-dcgan": ("mnist5k", []), "rgb64-dcgan": (str(work / "rgb64-images"), ["--image-size", "64"])}
    for name, (source, extra) in data.items():
        if (repo / name / "1" / "manifest.json").is_file():
            continue
        if name == "rgb64-dcgan" and not (work / "rgb64-images").is_dir():
            _colour_images(work / "rgb64-images")
        run = work / "runs" / name
        if run.exists():
            shutil.rmtree(run)
        print(f"training {name} for {steps} steps ...", flush=True)
        _cli("train", "--model", "dcgan", "--data", source, *extra, "--steps", str(steps), "--out", str(run),
             "--sample-every", str(steps), "--checkpoint-every", str(steps))
        _cli("export", str(run), "--repo", str(repo), "--name", name, "--ort-optimized", "--fp16")
    return repo


# ---- processes -----------------------------------------------------------------------------------

class Redis:
    """A throwaway redis-server on a loopback port, no persistence."""

    def __init__(self) -> None:
        self.port = _free_port()
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--maxmemory", "256mb", "--maxmemory-policy", "volatile-lru"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError("redis-server did not start")

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)


class Server:
    """``latentforge serve`` as its own process on loopback ports, with default settings plus ``extra``."""

    def __init__(self, models: Path, *extra: str) -> None:
        # The HTTP/JSON port is on in every run: the gRPC rows are measured with it open.
        self.port, self.metrics_port, self.http_port = _free_port(), _free_port(), _free_port()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "latentforge", "serve", "--models", str(models), "--host", "127.0.0.1",
             "--port", str(self.port), "--metrics-port", str(self.metrics_port), "--http-port", str(self.http_port),
             *extra],
            cwd=ROOT, env={**os.environ, "LATENTFORGE_RELOAD_INTERVAL_S": "0"},
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self._wait_serving()

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def metrics_url(self) -> str:
        return f"http://127.0.0.1:{self.metrics_port}/metrics"

    @property
    def http_target(self) -> str:
        return f"127.0.0.1:{self.http_port}"

    def _wait_serving(self, timeout_s: float = 120.0) -> None:
        try:
            wait_serving(self.proc, self.target, timeout_s)
        except RuntimeError:
            self.stop()
            raise

    def stop(self) -> None:
        stop_process(self.proc)

    def __enter__(self) -> "Server":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()


# ---- measurements ----------------------------------------------------------------------------------

def measure_raw(version_dir: Path, plan: Plan) -> dict[str, Any]:
    """ONNX Runtime alone on the version, with the server's default session settings."""
    from services.generation.config import ServeConfig
    from latentforge.runtime import OrtSettings
    from tools.ortbench import run_raw

    config = ServeConfig()
    return run_raw(version_dir, OrtSettings.from_config(config), threads=config.workers,
                   batch_sizes=plan.raw_sizes, duration_s=plan.raw_duration_s)


def measure_load(server: Server, model: str, plan: Plan, label: str, **spec: Any) -> dict[str, Any]:
    """One closed-loop run against ``server`` (its HTTP/JSON port with ``protocol="http"``); the
    load generator runs in this process."""
    from tools.loadgen import LoadSpec, ServerCpu, run_load

    spec.setdefault("duration_s", plan.duration_s)
    spec.setdefault("warmup_s", plan.warmup_s)
    target = server.http_target if spec.get("protocol") == "http" else server.target
    load = LoadSpec(target=target, model=model, **spec)
    result = asyncio.run(run_load(load, ServerCpu(pid=server.proc.pid))).to_dict()
    return _printed(result, label)


def _printed(result: dict[str, Any], label: str) -> dict[str, Any]:
    """``result`` labelled, after printing its one-line summary."""
    result["label"] = label
    lat = result["latencies_ms"]
    print(f"  {label:<28} {result['images_per_s']:>9.1f} img/s {result['requests_per_s']:>9.1f} req/s  "
          f"p50 {lat.get('p50', 0):8.2f}  p99 {lat.get('p99', 0):8.2f} ms  errors {result['errors'] or '-'}  "
          f"server {result['server_cpu_us_per_image'] or 0:.0f} us/img  load {result['load_average'][0]:.2f}",
          flush=True)
    return result


def bench_model(repo: Path, model: str, plan: Plan, redis: Redis | None) -> dict[str, Any]:
    """Every measurement of one model."""
    print(f"{model}: raw ONNX Runtime ...", flush=True)
    raw = measure_raw(repo / model / "1", plan)
    print(f"  raw best {raw['best']['images_per_s']:.1f} img/s at batch {raw['best']['batch_size']}, "
          f"{raw['best']['cpu_us_per_image']:.1f} us CPU/img", flush=True)
    out: dict[str, Any] = {"raw": raw, "sweep": [], "extra": {}}
    with Server(repo) as server:
        for c in plan.concurrency:
            out["sweep"].append(measure_load(server, model, plan, f"count=1 c={c}", concurrency=c, count=1))
        c, n = plan.bulk
        out["extra"]["bulk"] = measure_load(server, model, plan, f"count={n} c={c}", concurrency=c, count=n)
        # The same count=1 load as c=64 unary calls, each client's requests on one Session stream instead.
        cs = max(x for x in plan.concurrency if x <= 64)
        out["extra"]["session"] = measure_load(server, model, plan, f"count=1 c={cs} Session", concurrency=cs,
                                               count=1, session=True)
        # The same count=1 Generate over HTTP/JSON (POST /v1/generate, base64 PNG in JSON), one
        # keep-alive connection per client, beside the gRPC rows of the same concurrency.
        for c in (1, cs):
            out["extra"][f"http_c{c}"] = measure_load(server, model, plan, f"count=1 c={c} HTTP/JSON", concurrency=c,
                                                      count=1, protocol="http")
        # The same loads with raw float32 tensors out (format TENSOR): what the peer is compared with.
        out["tensor"] = {"sweep": [measure_load(server, model, plan, f"count=1 c={c} tensor", concurrency=c, count=1,
                                                fmt="raw") for c in plan.concurrency],
                         "bulk": measure_load(server, model, plan, f"count={n} c={c} tensor", concurrency=c, count=n,
                                              fmt="raw")}
        for n in plan.render_counts:
            suffix = "" if n == 1 else str(n)
            out["extra"][f"render_computed{suffix}"] = measure_load(
                server, model, plan, f"count={n} c=1 random seeds", concurrency=1, count=n,
                duration_s=plan.cached_duration_s)
            out["extra"][f"render_cached{suffix}"] = measure_load(
                server, model, plan, f"count={n} c=1 repeated seed", concurrency=1, count=n, seed_mode="fixed",
                duration_s=plan.cached_duration_s)
        if redis is None:
            out["extra"]["get_sample"] = measure_load(server, model, plan, "GetSample c=1 (memory)", concurrency=1,
                                                      method="GetSample", duration_s=plan.cached_duration_s)
    # The gRPC floor: an empty grpc.aio handler on the Generate path, the same count=1 c=1 load.
    from scripts.profile_serving import Process

    with Process("_empty") as empty:
        out["extra"]["floor"] = _printed(run_floor(empty.target, empty.proc.pid, model, plan, "png"),
                                         "count=1 c=1 empty handler")
    # The same handler running the model's graph once per call (tensor out): the least a server can do.
    with Process("_empty", "--version-dir", str(repo / model / "1")) as empty:
        out["extra"]["floor_graph"] = _printed(run_floor(empty.target, empty.proc.pid, model, plan, "raw"),
                                               "count=1 c=1 empty handler + graph, tensor")
    with Server(repo, "--max-queue-size", str(plan.small_queue)) as server:
        c = plan.concurrency[-1]
        out["extra"]["small_queue"] = measure_load(
            server, model, plan, f"c={c} queue {plan.small_queue}, backoff", concurrency=c, count=1,
            backoff_s=plan.backoff_s)
        out["extra"]["small_queue"]["max_queue_size"] = plan.small_queue
    if redis is not None:
        with Server(repo, "--redis-url", redis.url) as server:
            out["extra"]["get_sample"] = measure_load(server, model, plan, "GetSample c=1 (Redis)", concurrency=1,
                                                      method="GetSample", duration_s=plan.cached_duration_s)
    return out


def run_floor(target: str, pid: int, model: str, plan: Plan, fmt: str) -> dict[str, Any]:
    """count=1 c=1 against an empty handler (``scripts.profile_serving``'s ``_empty`` server)."""
    from tools.loadgen import LoadSpec, ServerCpu, run_load

    spec = LoadSpec(target=target, model=model, concurrency=1, count=1, duration_s=plan.duration_s,
                    warmup_s=plan.warmup_s, fmt=fmt)
    return asyncio.run(run_load(spec, ServerCpu(pid=pid))).to_dict()


def bench_peer(repo: Path, model: str, plan: Plan, venv: Path) -> dict[str, Any]:
    """MLServer on the same file with the same session settings, under the same count=1 and bulk loads."""
    from scripts.peers import mlserver as peer

    try:
        spec = peer.resolve_model(repo / model / "1")
    except ValueError as exc:
        print(f"{model}: no peer rows ({exc})", flush=True)
        return {"skipped": str(exc)}
    info = peer.versions(venv)
    print(f"{model}: MLServer {info['mlserver']} (onnxruntime {info['onnxruntime']}) ...", flush=True)
    out: dict[str, Any] = {"about": peer.describe(spec, info), "sweep": []}

    def load(server: Any, label: str, c: int, n: int) -> dict[str, Any]:
        result = asyncio.run(peer.run_v2_load(server.target, spec.name, spec.latent_dim, concurrency=c, count=n,
                                              duration_s=plan.duration_s, warmup_s=plan.warmup_s,
                                              num_classes=spec.num_classes, server_cpu=server.cpu))
        return _printed(result, label)

    with peer.MLServerProcess(spec, venv) as server:
        out["about"]["output_shape"] = list(peer.check_answer(server.target, spec))
        for c in plan.concurrency:
            out["sweep"].append(load(server, f"count=1 c={c} MLServer", c, 1))
        c, n = plan.bulk
        out["bulk"] = load(server, f"count={n} c={c} MLServer", c, n)
    return out


def peer_comparison(r: dict[str, Any]) -> list[dict[str, Any]]:
    """latentforge (tensor output) over MLServer at count=1 c=64 (or the nearest concurrency run) and in
    bulk: images/s ratio (> 1: the project serves more) and server CPU/image ratio (< 1: it spends less)."""
    peer, ours = r.get("peer") or {}, r.get("tensor") or {}
    if not peer.get("sweep") or not ours.get("sweep"):
        return []
    by_c = {p["spec"]["concurrency"]: p for p in ours["sweep"]}
    peer_by_c = {p["spec"]["concurrency"]: p for p in peer["sweep"]}
    common = sorted(set(by_c) & set(peer_by_c))
    pairs = []
    if common:
        c = min(common, key=lambda k: (abs(k - 64), -k))
        pairs.append((f"count=1 c={c}", by_c[c], peer_by_c[c]))
    if ours.get("bulk") and peer.get("bulk"):
        b = ours["bulk"]["spec"]
        pairs.append((f"count={b['count']} c={b['concurrency']}", ours["bulk"], peer["bulk"]))
    rows = []
    for load, a, b in pairs:
        cpu_a, cpu_b = a["server_cpu_us_per_image"], b["server_cpu_us_per_image"]
        rows.append({"load": load, "latentforge_images_per_s": a["images_per_s"], "peer_images_per_s": b["images_per_s"],
                     "images_per_s_ratio": round(a["images_per_s"] / b["images_per_s"], 3) if b["images_per_s"] else None,
                     "latentforge_cpu_us_per_image": cpu_a, "peer_cpu_us_per_image": cpu_b,
                     "cpu_per_image_ratio": round(cpu_a / cpu_b, 3) if cpu_a and cpu_b else None,
                     "latentforge_p99_ms": a["latencies_ms"].get("p99"), "peer_p99_ms": b["latencies_ms"].get("p99")})
    return rows


# ---- targets, table, plot ------------------------------------------------------------------------

def targets(model: str, r: dict[str, Any], max_queue_size: int = 1024, max_batch: int = 64) -> list[dict[str, Any]]:
    """The issue's targets for one model, each with its figure and whether it was met."""
    raw = r["raw"]
    best, lone = raw["best"], raw["batch1_single_thread"]
    by_c = {p["spec"]["concurrency"]: p for p in r["sweep"]}
    rows: list[dict[str, Any]] = []

    def add(name: str, met: bool | None, figure: str) -> None:
        rows.append({"model": model, "target": name, "met": met, "figure": figure})

    if 64 in by_c:
        p = by_c[64]
        cpu = p["server_cpu_us_per_image"]
        ratio = cpu / best["cpu_us_per_image"] if cpu else None
        add("count=1, c=64: server CPU/image <= 1.3x raw", None if ratio is None else ratio <= 1.3,
            f"{cpu:.0f} vs {best['cpu_us_per_image']:.0f} us = {ratio:.2f}x" if ratio else "n/a")
        share = p["images_per_s"] / best["images_per_s"]
        add("count=1, c=64: images/s >= 0.6x raw best", share >= 0.6,
            f"{p['images_per_s']:.0f} vs {best['images_per_s']:.0f} = {share:.2f}x; load generator "
            f"{100 * p['client_cpu_share']:.0f}% of the CPUs")
    bulk = r["extra"].get("bulk")
    if bulk:
        share = bulk["images_per_s"] / best["images_per_s"]
        add(f"count={bulk['spec']['count']}, c={bulk['spec']['concurrency']}: images/s >= 0.9x raw best",
            share >= 0.9, f"{bulk['images_per_s']:.0f} vs {best['images_per_s']:.0f} = {share:.2f}x")
    if 1 in by_c:
        p50, floor = by_c[1]["latencies_ms"]["p50"], lone["call_ms"]["p50"]
        add("c=1, count=1: p50 <= raw batch-1 + 2 ms", p50 <= floor + 2.0, f"{p50:.2f} vs {floor:.2f} + 2 ms")
        empty, graph = r["extra"].get("floor"), r["extra"].get("floor_graph")
        tensor = {p["spec"]["concurrency"]: p for p in r.get("tensor", {}).get("sweep", [])}.get(1)
        if empty and tensor:
            grpc_p50, served = empty["latencies_ms"]["p50"], tensor["latencies_ms"]["p50"]
            limit = grpc_p50 + floor + 0.15
            add("c=1, count=1, tensor: p50 <= empty grpc.aio handler p50 + raw batch-1 + 0.15 ms", served <= limit,
                f"{served:.2f} vs {grpc_p50:.2f} + {floor:.2f} + 0.15 = {limit:.2f} ms")
        if graph and tensor:
            least, served = graph["latencies_ms"]["p50"], tensor["latencies_ms"]["p50"]
            add("c=1, count=1, tensor: p50 <= empty handler running the graph + 0.15 ms", served <= least + 0.15,
                f"{served:.2f} vs {least:.2f} + 0.15 = {least + 0.15:.2f} ms")
    if len(by_c) > 1:
        top = max(by_c)
        peak = max(p["images_per_s"] for p in by_c.values())
        over = by_c[top]
        add(f"c={top}: throughput within 10% of peak", over["images_per_s"] >= 0.9 * peak,
            f"{over['images_per_s']:.0f} vs peak {peak:.0f} = {over['images_per_s'] / peak:.2f}x")
        drain_ms = 1000.0 * (min(top, max_queue_size) + max_batch) / max(over["images_per_s"], 1e-9)
        p99 = over["latencies_ms"]["p99"]
        add(f"c={top}: p99 bounded by the queue", p99 <= drain_ms,
            f"p99 {p99:.0f} ms vs queue drain {drain_ms:.0f} ms, errors {over['errors'] or 'none'}")
    small = r["extra"].get("small_queue")
    if small:
        rejected = small["latencies_by_code_ms"].get("RESOURCE_EXHAUSTED", {})
        ok = small["latencies_by_code_ms"].get("OK", {})
        q = small["max_queue_size"]
        drain_ms = 1000.0 * (q + max_batch) / max(small["images_per_s"], 1e-9)
        met = bool(rejected) and rejected.get("p99", 1e9) <= 50.0 and ok.get("p99", 1e9) <= drain_ms
        add(f"c={small['spec']['concurrency']}, queue {q}: excess refused fast, p99 bounded", met,
            f"{small['errors'].get('RESOURCE_EXHAUSTED', 0)} refused, p99 {rejected.get('p99', 0):.1f} ms; "
            f"OK p99 {ok.get('p99', 0):.0f} ms (drain {drain_ms:.0f} ms); {small['images_per_s']:.0f} img/s")
    gs = r["extra"].get("get_sample")
    if gs:
        p50 = gs["latencies_ms"]["p50"]
        add("GetSample p50 <= 1 ms", p50 <= 1.0, f"{p50:.3f} ms ({gs['label'].split('(')[-1].rstrip(')')})")
    for suffix in ("", "16"):
        comp, cached = r["extra"].get(f"render_computed{suffix}"), r["extra"].get(f"render_cached{suffix}")
        if comp and cached:
            speed = comp["latencies_ms"]["p50"] / cached["latencies_ms"]["p50"]
            add(f"repeated Generate (count={suffix or 1}) from render cache >= 5x faster", speed >= 5.0,
                f"p50 {cached['latencies_ms']['p50']:.2f} vs {comp['latencies_ms']['p50']:.2f} ms = {speed:.1f}x")
    return rows


def _fmt(v: Any, digits: int = 1) -> str:
    return "-" if v is None else f"{v:.{digits}f}"


_TABLE_HEAD = [("| load | req/s | images/s | / raw best | p50 ms | p90 ms | p99 ms | max ms | errors | "
                "server CPU us/img | / raw CPU | client CPU share | load avg |"),
               "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]


def _row(p: dict[str, Any], best: dict[str, Any]) -> str:
    """One load result as a table row; ``best`` is the raw ONNX Runtime best point it is set against."""
    lat = p["latencies_ms"]
    cpu = p["server_cpu_us_per_image"]
    errors = ", ".join(f"{k} {v}" for k, v in p["errors"].items()) or "-"
    return (f"| {p['label']} | {p['requests_per_s']:.0f} | {p['images_per_s']:.0f} | "
            f"{p['images_per_s'] / best['images_per_s']:.2f} | {_fmt(lat.get('p50'), 2)} | {_fmt(lat.get('p90'), 2)} | "
            f"{_fmt(lat.get('p99'), 2)} | {_fmt(lat.get('max'), 1)} | {errors} | {_fmt(cpu, 0)} | "
            f"{_fmt(cpu / best['cpu_us_per_image'] if cpu else None, 2)} | {100 * (p['client_cpu_share'] or 0):.0f}% | "
            f"{p['load_average'][0]:.2f} |")


def peer_section(model: str, r: dict[str, Any]) -> list[str]:
    """The model's rows with raw tensor output, latentforge and MLServer side by side, and their ratios."""
    ours, peer = r.get("tensor"), r.get("peer")
    if not ours:
        return []
    best = r["raw"]["best"]
    lines = [f"### {model}: raw tensors out, latentforge vs MLServer", ""]
    if not peer or peer.get("skipped"):
        lines += [f"No MLServer rows ({(peer or {}).get('skipped', 'not run: --no-peer, or --smoke without .venv-peer')}).",
                  ""]
    else:
        about = peer["about"]
        lines += [(f"{about['server']} (onnxruntime {about['onnxruntime']}) serving `{about['settings']['file']}` "
                  f"through `{about['runtime']}` with the project's session settings "
                  f"({about['settings']['intra_op_threads']} intra-op thread(s) per call), "
                  f"`parallel_workers` {about['written']['parallel_workers']}, adaptive batching "
                  f"`max_batch_size` {about['written']['max_batch_size']} requests, `max_batch_time` "
                  f"{1000 * about['written']['max_batch_time']:g} ms, metrics endpoint off. Its requests carry the "
                  "latents, (count, latent_dim) float32 (and, for a class-conditional model, labels i mod classes, "
                  "int64) as raw bytes over V2 gRPC `ModelInfer`, and get the raw "
                  "output tensor back; the project's rows are `Generate` with format TENSOR, where the server also "
                  "draws the latents from seeds and stores each sample in its cache. Server CPU for MLServer is its "
                  "whole process tree (the server and its inference worker processes)."), ""]
    lines += _TABLE_HEAD
    peer_rows = {p["label"].replace(" MLServer", ""): p for p in (peer or {}).get("sweep", []) + (
        [peer["bulk"]] if peer and peer.get("bulk") else [])}
    for p in ours["sweep"] + [ours["bulk"]]:
        lines.append(_row({**p, "label": f"{p['label'].replace(' tensor', '')} latentforge"}, best))
        twin = peer_rows.get(p["label"].replace(" tensor", ""))
        if twin:
            lines.append(_row(twin, best))
    lines.append("")
    comparison = peer_comparison(r)
    if comparison:
        parts = [f"at {c['load']} latentforge serves {_fmt(c['images_per_s_ratio'], 2)}x MLServer's images/s "
                 f"({c['latentforge_images_per_s']:.0f} vs {c['peer_images_per_s']:.0f}) at "
                 f"{_fmt(c['cpu_per_image_ratio'], 2)}x its server CPU per image "
                 f"({_fmt(c['latentforge_cpu_us_per_image'], 0)} vs {_fmt(c['peer_cpu_us_per_image'], 0)} us), "
                 f"p99 {_fmt(c['latentforge_p99_ms'], 1)} vs {_fmt(c['peer_p99_ms'], 1)} ms"
                 for c in comparison]
        lines += ["Compared: " + "; ".join(parts) + ". MLServer's batch limit counts requests, the project's "
                  "rows, so a bulk batch there may hold up to 64 requests of 64 rows.", ""]
    return lines


def markdown(results: dict[str, Any], command: str) -> str:
    """The results page: machine, raw limits, load tables, targets."""
    m = results["machine"]
    lines = ["# Serving benchmark", "",
             f"Produced by `{command}` on {results['date']}.", "",
             f"Machine: {m['cpu']}, {m['cores']} cores, {m['memory_gib']} GiB, {m['os']}, Python {m['python']}, "
             f"onnxruntime {m['onnxruntime']}, grpcio {m['grpcio']}. Load average (1, 5, 15 min) at start "
             f"{m['load_average_start']}, at end {m.get('load_average_end')}; the machine is shared, so other work "
             "may run during a measurement: each row gives the 1-minute load average beside it.", "",
             "The server is `latentforge serve` with its default settings in its own process (in-process "
             "sample cache; 2 batch workers x 1 ONNX Runtime thread on 2 cores, at nice +10 below the gRPC loop; "
             "max batch 64, max queue delay "
             "1 ms, queue 1024 requests; per-RPC access log on; uvloop). The closed-loop load generator (`latentforge "
             "bench`) runs on the same cores; its CPU share is in the table. Raw = ONNX Runtime alone on the same "
             "file with the same session settings from as many threads as the server has batch workers "
             "(`latentforge bench --raw`). Server CPU is the server process's CPU time per image served. "
             "\"queue 64, backoff\" is a server started with `--max-queue-size 64` under 512 clients that, "
             "like a gRPC retry policy, pause after RESOURCE_EXHAUSTED (50 ms, doubling to 1 s, reset by a "
             "success); its latency columns cover all answers, the targets table splits them by status. "
             "The server's HTTP/JSON port is open in every run; the \"HTTP/JSON\" rows send the same Generate "
             "as proto3 JSON to it (`latentforge bench --protocol http`), one keep-alive connection per client.",
             ""]
    for model, r in results["models"].items():
        raw = r["raw"]
        best, lone = raw["best"], raw["batch1_single_thread"]
        lines += [f"## {model} ({'x'.join(map(str, raw['image_shape']))}, {raw['variant']} graph)", "",
                  f"Raw ONNX Runtime: best **{best['images_per_s']:.0f} images/s** at batch {best['batch_size']} "
                  f"({best['cpu_us_per_image']:.0f} us CPU/image); a lone batch-1 call takes "
                  f"{lone['call_ms']['p50']:.2f} ms (p50).", "",
                  "| batch | " + " | ".join(str(p["batch_size"]) for p in raw["points"]) + " |",
                  "|---|" + "---|" * len(raw["points"]),
                  "| images/s | " + " | ".join(f"{p['images_per_s']:.0f}" for p in raw["points"]) + " |",
                  "| CPU us/image | " + " | ".join(f"{p['cpu_us_per_image']:.0f}" for p in raw["points"]) + " |", "",
                  *_TABLE_HEAD]
        http_rows = tuple(k for k in r["extra"] if k.startswith("http_c"))
        rows = list(r["sweep"]) + [r["extra"][k] for k in ("floor", "floor_graph", "bulk", "session", *http_rows,
                                                             "small_queue",
                                                             "render_computed", "render_cached",
                                                             "render_computed16", "render_cached16", "get_sample")
                                   if k in r["extra"]]
        lines += [_row(p, best) for p in rows]
        lines.append("")
        lines += peer_section(model, r)
    lines += ["## Targets", "", "| model | target | met | figure |", "|---|---|---|---|"]
    for t in results["targets"]:
        met = "n/a" if t["met"] is None else ("met" if t["met"] else "**missed**")
        lines.append(f"| {t['model']} | {t['target']} | {met} | {t['figure']} |")
    lines += ["", "![throughput and p99 against concurrency](serving.png)", ""]
    return "\n".join(lines + one_channel(results.get("one_channel")) + before_after(results.get("before_after")))


def one_channel(text: str | None) -> list[str]:
    """The one-channel table (``scripts.loop_cost``'s page, serving_loop.md), carried over: many
    count=1 calls on one channel, event-loop CPU per call beside the empty grpc.aio handler, this
    version against an earlier one, measured in one run."""
    if not text:
        return []
    body = "\n".join(line for line in text.split("\n\n## ")[0].split("\n") if not line.startswith("# "))
    return ["## One channel, many small calls", "", "From [serving_loop.md](serving_loop.md), carried over when "
            "this page was written:", "", *body.strip().split("\n"), ""]


def before_after(text: str | None) -> list[str]:
    """The latest before/after comparison (``scripts.serving_ab``'s page), its tables carried over:
    a change's figures measured beside the server it replaces, on the same machine at once."""
    if not text:
        return []
    body = text.split("\n", 1)[1] if text.startswith("# ") else text
    return ["## Before and after", "", "From [serving_before_after.md](serving_before_after.md), carried over "
            "when this page was written:", "", *body.replace("\n## ", "\n### ").strip().split("\n"), ""]


def plot(results: dict[str, Any], path: Path) -> None:
    """Throughput (with the raw best as a line) and p99 latency against concurrency, per model."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4.2))
    for k, (model, r) in enumerate(results["models"].items()):
        colour = f"C{k}"
        cs = [p["spec"]["concurrency"] for p in r["sweep"]]
        ax1.plot(cs, [p["images_per_s"] for p in r["sweep"]], "o-", color=colour, label=f"{model} served")
        ax1.axhline(r["raw"]["best"]["images_per_s"], color=colour, ls="--", label=f"{model} raw ORT best")
        ax2.plot(cs, [p["latencies_ms"]["p99"] for p in r["sweep"]], "o-", color=colour, label=model)
        peer = (r.get("peer") or {}).get("sweep")
        if peer:
            answered = [p for p in peer if p["latencies_ms"]]  # none when no answer came within the run
            pcs = [p["spec"]["concurrency"] for p in answered]
            ax1.plot(pcs, [p["images_per_s"] for p in answered], "x:", color=colour,
                     label=f"{model} MLServer (tensors)")
            ax2.plot(pcs, [p["latencies_ms"]["p99"] for p in answered], "x:", color=colour, label=f"{model} MLServer")
    for ax in (ax1, ax2):
        ax.set_xscale("log", base=2)
        ax.set_xlabel("concurrent clients (count=1 requests)")
        ax.grid(alpha=0.3)
    ax1.set_yscale("log")
    ax1.set_ylabel("images/s")
    ax1.set_title("throughput: served vs ONNX Runtime alone")
    ax2.set_yscale("log")
    ax2.set_ylabel("p99 latency (ms)")
    ax2.set_title("p99 latency")
    ax1.legend(fontsize=7)
    ax2.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def peer_env(args: argparse.Namespace) -> Path | None:
    """MLServer's environment, made now when missing; None without peer rows (``--no-peer``, or
    ``--smoke`` when the environment does not exist yet)."""
    from scripts.peers import mlserver as peer

    venv = args.peer_venv or peer.VENV
    if args.no_peer or (args.smoke and not peer.env_ready(venv)):
        return None
    return peer.ensure_env(venv)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "benchmarks", help="where serving.md/.json/.png go")
    parser.add_argument("--work", type=Path, default=ROOT / "out" / "bench-serving", help="models and data are kept here")
    parser.add_argument("--models", type=Path, help="use this repository instead of building the demo models")
    parser.add_argument("--model-names", default=",".join(DEMO_MODELS), help="comma-separated model names")
    parser.add_argument("--duration", type=float, help="seconds per load point (default 8)")
    parser.add_argument("--smoke", action="store_true", help="a few seconds in all, to check the tooling works")
    parser.add_argument("--no-redis", action="store_true", help="skip the Redis GetSample run")
    parser.add_argument("--no-peer", action="store_true", help="leave out the MLServer rows")
    parser.add_argument("--peer-venv", type=Path, help="MLServer's environment (default .venv-peer, made when missing)")
    parser.add_argument("--no-stylize", action="store_true", help="leave out scripts/bench_stylize.py")
    args = parser.parse_args(argv)
    plan = Plan.smoke() if args.smoke else Plan()
    if args.duration:
        plan = Plan(**{**plan.__dict__, "duration_s": args.duration})
    sys.path.insert(0, str(ROOT))
    info = machine()
    repo = args.models or build_models(args.work)
    peer_venv = peer_env(args)
    redis = None if args.no_redis or not shutil.which("redis-server") else Redis()
    results: dict[str, Any] = {"machine": info, "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                               "plan": plan.__dict__, "models": {}, "targets": []}
    try:
        for model in [m for m in args.model_names.split(",") if m]:
            results["models"][model] = r = bench_model(repo, model, plan, redis)
            if peer_venv is not None:
                r["peer"] = bench_peer(repo, model, plan, peer_venv)
                r["peer_comparison"] = peer_comparison(r)
            results["targets"] += targets(model, r)
    finally:
        if redis is not None:
            redis.stop()
    info["load_average_end"] = [round(x, 2) for x in os.getloadavg()]
    args.out.mkdir(parents=True, exist_ok=True)
    command = "python -m scripts.bench_serving" + (" --smoke" if args.smoke else "") + (
        " --no-peer" if args.no_peer else "")
    ab = args.out / "serving_before_after.md"
    results["before_after"] = ab.read_text() if ab.is_file() else None
    loop = args.out / "serving_loop.md"
    results["one_channel"] = loop.read_text() if loop.is_file() else None
    (args.out / "serving.json").write_text(json.dumps(results, indent=2) + "\n")
    (args.out / "serving.md").write_text(markdown(results, command))
    plot(results, args.out / "serving.png")
    print(f"wrote {args.out / 'serving.md'}, serving.json, serving.png")
    for t in results["targets"]:
        print(f"  {t['model']:<12} {'MET   ' if t['met'] else 'MISSED' if t['met'] is False else 'n/a   '} "
              f"{t['target']}: {t['figure']}")
    if not args.no_stylize:  # Stylize latency on a style model of its own: stylize.md and stylize.json
        subprocess.run([sys.executable, "-m", "scripts.bench_stylize", "--out", str(args.out), "--work",
                        str(args.work / "stylize"), *(["--smoke"] if args.smoke else [])], cwd=ROOT, check=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
