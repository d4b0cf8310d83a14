"""MLServer as a peer in the serving benchmark: its environment, its settings, its process, its load.

MLServer (Seldon's Python model server: V2 inference protocol over gRPC, adaptive batching)
serves the very ONNX file ``latentforge serve`` would load, through a small custom runtime
(``scripts/peers/mlserver_onnx/runtime.py``) with the same ONNX Runtime session settings. It
lives in its own virtual environment (``.venv-peer``, from ``mlserver-requirements.txt``) so it
never touches the project's dependencies; this module runs in the project's environment and
only starts it as a subprocess.

Settings written (everything else is MLServer's default, e.g. ``debug`` on = an access log per
RPC, like the project's): ``parallel_workers`` = the project's batch workers (2 inference
processes, each running one batch at a time on ``intra_op_threads`` ONNX Runtime threads),
adaptive batching with ``max_batch_size`` 64 requests and ``max_batch_time`` 1 ms (the project:
64 rows, 1 ms), ``metrics_endpoint`` off (no Prometheus server or per-RPC metrics interceptor),
loopback ports. MLServer's REST server cannot be turned off; it idles. The load is the project's
closed-loop generator (``tools.loadgen``) sending V2 ``ModelInfer`` requests (``scripts.peers.v2``)
with the latents as raw bytes, which MLServer answers with raw output bytes.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Self

import numpy as np

from scripts.peers import v2
from tools.loadgen import TreeCpu

ROOT = Path(__file__).resolve().parents[2]
PEERS = Path(__file__).resolve().parent
VENV = ROOT / ".venv-peer"
REQUIREMENTS = PEERS / "mlserver-requirements.txt"
RUNTIME_DIR = PEERS / "mlserver_onnx"
RUNTIME_CLASS = "runtime.LatentOnnxRuntime"


# ---- environment -----------------------------------------------------------------------------------

def env_ready(venv: Path = VENV) -> bool:
    """Whether the peer environment has been installed (by ``make bench-peer-setup`` or ``ensure_env``)."""
    return (venv / ".installed").is_file() and (venv / "bin" / "mlserver").is_file()


def ensure_env(venv: Path = VENV, python: str | None = None) -> Path:
    """Create the peer's virtual environment from the pinned requirements unless it exists."""
    if env_ready(venv):
        return venv
    base = python or shutil.which("python3") or sys.executable
    print(f"creating {venv} (MLServer, pinned in {REQUIREMENTS.relative_to(ROOT)}) ...", flush=True)
    subprocess.run([base, "-m", "venv", str(venv)], check=True)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet"]
    subprocess.run([*pip, "--upgrade", "pip"], check=True)
    subprocess.run([*pip, "-r", str(REQUIREMENTS)], check=True)
    (venv / ".installed").touch()
    return venv


def versions(venv: Path = VENV) -> dict[str, str]:
    """MLServer's and its ONNX Runtime's versions in the peer environment."""
    out = subprocess.run([str(venv / "bin" / "python"), "-c",
                          ("import json, mlserver, onnxruntime; print(json.dumps({'mlserver': mlserver.__version__, "
                           "'onnxruntime': onnxruntime.__version__}))")],
                         check=True, capture_output=True, text=True).stdout
    return json.loads(out)


# ---- what to serve ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class PeerModel:
    """One model version as the peer serves it: the project's file and session settings."""

    name: str
    file: str  # absolute path of the .onnx file the project's server loads for the decode task
    variant: str
    latent_dim: int
    num_classes: int = 0  # > 0: class-conditional, the requests carry a "labels" tensor too
    input: str = "z"
    output: str = "image"
    intra_op_threads: int = 1
    graph_optimization: str = "all"
    spinning: bool = False
    cpu_mem_arena: bool = True
    workers: int = 2  # the project's batch workers -> MLServer parallel_workers
    max_batch_size: int = 64
    max_batch_time_s: float = 0.001


def resolve_model(version_dir: Path, config: Any = None) -> PeerModel:
    """The file and session settings ``latentforge serve`` (default settings, or ``config``) would use
    for the version's decode graph."""
    from latentforge.manifest import Manifest
    from services.generation.config import ServeConfig
    from latentforge.runtime import OrtSettings

    config = config or ServeConfig()
    settings = OrtSettings.from_config(config, providers=("CPUExecutionProvider",))
    manifest = Manifest.read(Path(version_dir))
    role = manifest.image_graph
    fname, variant = settings.graph_file(manifest, role)
    return PeerModel(name=manifest.name, file=str((Path(version_dir) / fname).resolve()), variant=variant or "plain",
                     latent_dim=manifest.latent_dim, num_classes=manifest.num_classes, intra_op_threads=settings.intra_op_threads,
                     graph_optimization=settings.graph_optimization, spinning=settings.spinning,
                     cpu_mem_arena=settings.cpu_mem_arena, workers=config.workers,
                     max_batch_size=config.max_batch_size, max_batch_time_s=config.max_queue_delay_ms / 1000.0)


def write_settings(folder: Path, model: PeerModel, grpc_port: int, http_port: int, metrics_port: int) -> None:
    """MLServer's ``settings.json`` and the model's ``model-settings.json`` in ``folder``."""
    server = {"host": "127.0.0.1", "http_port": http_port, "grpc_port": grpc_port, "metrics_port": metrics_port,
              "metrics_endpoint": None, "parallel_workers": model.workers,
              "grpc_max_message_length": 256 * 1024 * 1024, "load_models_at_startup": True,
              "environments_dir": str(folder / ".envs"), "metrics_dir": str(folder / ".metrics")}
    extra = {"file": model.file, "input": model.input, "output": model.output,
             "intra_op_threads": model.intra_op_threads, "graph_optimization": model.graph_optimization,
             "spinning": model.spinning, "cpu_mem_arena": model.cpu_mem_arena}
    settings = {"name": model.name, "implementation": RUNTIME_CLASS, "max_batch_size": model.max_batch_size,
                "max_batch_time": model.max_batch_time_s, "parameters": {"version": "1", "extra": extra}}
    (folder / model.name).mkdir(parents=True, exist_ok=True)
    (folder / "settings.json").write_text(json.dumps(server, indent=2) + "\n")
    (folder / model.name / "model-settings.json").write_text(json.dumps(settings, indent=2) + "\n")


# ---- process ----------------------------------------------------------------------------------------

def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class MLServerProcess:
    """``mlserver start`` on a temporary folder with the settings above, on loopback ports."""

    def __init__(self, model: PeerModel, venv: Path = VENV, timeout_s: float = 180.0) -> None:
        self.model = model
        self.folder = Path(tempfile.mkdtemp(prefix="mlserver-peer-"))
        self.port = _free_port()
        write_settings(self.folder, model, self.port, _free_port(), _free_port())
        env = {**os.environ, "PYTHONPATH": str(RUNTIME_DIR)}
        env.pop("VIRTUAL_ENV", None)
        self.log = open(self.folder / "mlserver.log", "wb")  # noqa: SIM115 - closed by stop()
        self.proc = subprocess.Popen([str(venv / "bin" / "mlserver"), "start", str(self.folder)], cwd=self.folder,
                                     env=env, stdout=self.log, stderr=subprocess.STDOUT)
        self.cpu = TreeCpu(self.proc.pid)
        try:
            self._wait_ready(timeout_s)
        except BaseException:
            self.stop()
            raise

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    def _wait_ready(self, timeout_s: float) -> None:
        import grpc

        deadline = time.monotonic() + timeout_s
        with grpc.insecure_channel(self.target) as channel:
            ready = channel.unary_unary(v2.MODEL_READY, request_serializer=v2.ModelReadyRequest.SerializeToString,
                                        response_deserializer=v2.ModelReadyResponse.FromString)
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"mlserver exited with {self.proc.returncode}; log: {self.tail()}")
                try:
                    if ready(v2.ModelReadyRequest(name=self.model.name), timeout=1).ready:
                        return
                except grpc.RpcError:
                    pass
                time.sleep(0.2)
        raise RuntimeError(f"mlserver did not load {self.model.name} within {timeout_s:g} s; log: {self.tail()}")

    def tail(self, n: int = 2000) -> str:
        self.log.flush()
        return (self.folder / "mlserver.log").read_bytes()[-n:].decode(errors="replace")

    def stop(self) -> None:
        """SIGTERM (MLServer stops its workers), then SIGKILL to the whole tree if it hangs."""
        if self.proc.poll() is None:
            pids = self.cpu.pids()
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                for pid in pids:
                    try:
                        os.kill(pid, 9)
                    except OSError:
                        pass
                self.proc.wait(5)
        self.log.close()
        shutil.rmtree(self.folder, ignore_errors=True)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


# ---- load -----------------------------------------------------------------------------------------

def infer_payload(model: str, latent_dim: int, count: int, num_classes: int = 0, seed: int = 0) -> bytes:
    """One serialised ModelInfer request: ``count`` standard-normal latents as a (count, latent_dim)
    tensor ``z``, and for a class-conditional model labels ``i mod num_classes`` as ``labels`` (count,)
    int64 (the project's server labels sample i by its seed mod num_classes when none is asked for)."""
    tensors = {"z": np.random.default_rng(seed).standard_normal((count, latent_dim)).astype(np.float32)}
    if num_classes:
        tensors["labels"] = np.arange(count, dtype=np.int64) % num_classes
    return v2.infer_request(model, tensors).SerializeToString()


async def run_v2_load(target: str, model: str, latent_dim: int, *, concurrency: int, count: int, duration_s: float,
                      warmup_s: float, num_classes: int = 0, server_cpu: Any = None,
                      timeout_s: float = 30.0) -> dict[str, Any]:
    """The project's closed-loop load generator (same clients, same accounting) sending V2 ModelInfer
    requests to ``target``; returns the same dict as ``tools.loadgen.LoadResult.to_dict``."""
    import grpc

    from tools.loadgen import LoadSpec, ServerCpu, _drive

    spec = LoadSpec(target=target, model=model, concurrency=concurrency, count=count, duration_s=duration_s,
                    warmup_s=warmup_s, fmt="raw", timeout_s=timeout_s).validate()
    options = [("grpc.max_receive_message_length", 256 * 1024 * 1024), ("grpc.use_local_subchannel_pool", 1)]
    channel = grpc.aio.insecure_channel(target, options=options)
    try:
        try:
            await asyncio.wait_for(channel.channel_ready(), timeout=timeout_s)
        except TimeoutError:
            raise ConnectionError(f"no server at {target} within {timeout_s:g} s") from None
        payload = infer_payload(model, latent_dim, count, num_classes)
        call = channel.unary_unary(v2.MODEL_INFER)  # bytes in, bytes out: nothing parsed
        result = await _drive(spec, [call], payload, count, server_cpu or ServerCpu())
    finally:
        await channel.close()
    out = result.to_dict()
    out["spec"].update(method="ModelInfer", protocol="V2 gRPC")
    return out


def check_answer(target: str, model: PeerModel, count: int = 2) -> tuple[int, ...]:
    """One ModelInfer call, parsed: the output's shape (count, C, H, W); raises when it is not an image batch."""
    import grpc

    with grpc.insecure_channel(target, options=[("grpc.max_receive_message_length", 256 * 1024 * 1024)]) as ch:
        infer = ch.unary_unary(v2.MODEL_INFER, request_serializer=lambda b: b,
                               response_deserializer=v2.ModelInferResponse.FromString)
        response = infer(infer_payload(model.name, model.latent_dim, count, model.num_classes), timeout=30)
    image = v2.output_arrays(response)[model.output]
    if image.ndim != 4 or image.shape[0] != count or not np.isfinite(image).all():
        raise RuntimeError(f"unexpected answer from the peer: {image.shape}")
    return tuple(image.shape)


def describe(model: PeerModel, info: dict[str, str]) -> dict[str, Any]:
    """What the peer rows were measured with, for serving.json."""
    return {"server": f"MLServer {info.get('mlserver')}", "onnxruntime": info.get("onnxruntime"),
            "runtime": RUNTIME_CLASS, "settings": asdict(model) | {"file": Path(model.file).name},
            "written": {"parallel_workers": model.workers, "max_batch_size": model.max_batch_size,
                        "max_batch_time": model.max_batch_time_s, "metrics_endpoint": None}}
