"""In-process servers on loopback ports (``ServerThread``), model repositories to serve
(published versions, tampered versions, hand-built conditional and autoencoder models), and
gates that hold a batch slot."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import json
import shutil
import threading
from pathlib import Path
from typing import Any, Callable

import numpy as np

from latentforge.runtime import decode_feeds

GEN = {"model": "mnist-dcgan", "version": "1", "graph": "generator"}


def loopback_config(**overrides: Any):
    """Loopback, free ports, no reload: a ServeConfig for tests."""
    from services.generation.config import ServeConfig

    base = dict(host="127.0.0.1", port=0, metrics_host="127.0.0.1", metrics_port=0, reload_interval_s=0.0)
    base.update(overrides)
    return dataclasses.replace(ServeConfig(), **base).validate()


def start_server(models: Path, wait_started: bool = True, **overrides) -> "ServerThread":
    """A GenerationServer on ``models`` (loopback, free ports), after its first repository scan."""
    from services.generation.server import GenerationServer

    config = loopback_config(models=models, **overrides)
    return ServerThread(lambda: GenerationServer(config)).start(wait_started)


class ServerThread:
    """An RpcServer (any services on it) on its own event loop in a daemon thread."""

    def __init__(self, build: Callable[[], Any]) -> None:
        self.build = build
        self.loop = asyncio.new_event_loop()
        self.server: Any = None
        self._stopper: threading.Thread | None = None
        self._thread = threading.Thread(target=self.loop.run_forever, name="lf-server", daemon=True)

    def start(self, wait_started: bool = True, timeout_s: float = 60.0) -> "ServerThread":
        """Start, and (by default) wait until each service's startup work has had its first go."""
        self._thread.start()

        async def boot() -> Any:
            server = self.build()
            await server.start()
            if wait_started:
                await asyncio.wait_for(server.wait_started(), timeout_s)
            return server

        self.server = asyncio.run_coroutine_threadsafe(boot(), self.loop).result(timeout_s + 10)
        return self

    @property
    def target(self) -> str:
        assert self.server is not None
        return f"127.0.0.1:{self.server.port}"

    @property
    def http_url(self) -> str:
        """The HTTP/JSON surface's base URL (a server started with ``http_port``)."""
        assert self.server is not None and self.server.http_port
        return f"http://127.0.0.1:{self.server.http_port}"

    @property
    def metrics_url(self) -> str:
        assert self.server is not None and self.server.metrics_port
        return f"http://127.0.0.1:{self.server.metrics_port}/metrics"

    def call(self, coro: Any, timeout_s: float = 30.0) -> Any:
        """Run a coroutine on the server's loop and return its result."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout_s)

    def begin_stop(self, grace_s: float) -> threading.Thread:
        """Drain and stop the server on a thread of its own (``stop`` then waits for it)."""
        server = self.server
        self._stopper = threading.Thread(target=lambda: self.call(server.stop(grace_s), timeout_s=grace_s + 20))
        self._stopper.start()
        return self._stopper

    def stop(self) -> None:
        if self._stopper is not None:
            self._stopper.join(60)
        elif self.server is not None:
            self.call(self.server.stop(0.5))
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        self.loop.close()


def broken_copy(model_repo: Path, dest: Path) -> Path:
    """The model repository plus a version 2 of mnist-dcgan whose file fails its checksum."""
    shutil.copytree(model_repo, dest)
    v2 = dest / "mnist-dcgan" / "2"
    shutil.copytree(dest / "mnist-dcgan" / "1", v2)
    manifest = json.loads((v2 / "manifest.json").read_text())
    manifest["version"] = 2
    (v2 / "manifest.json").write_text(json.dumps(manifest))
    with open(v2 / "generator.onnx", "ab") as f:
        f.write(b"corrupt")
    return dest


def publish_version(model_dir: Path, version: int, source: int = 1, tamper: str | None = None) -> Path:
    """Write ``model_dir/<version>`` as the exporter does (staged, then renamed): a copy of
    ``source`` with its manifest renumbered; ``tamper`` = "sha256" (bytes changed after hashing)
    or "onnx" (not an ONNX file, with a matching sha256)."""
    from latentforge.manifest import sha256_file

    staged = model_dir / f".staging-{version}"
    shutil.copytree(model_dir / str(source), staged)
    manifest = json.loads((staged / "manifest.json").read_text())
    manifest["version"] = version
    graph = staged / "generator.onnx"
    if tamper == "sha256":
        with open(graph, "ab") as fh:
            fh.write(b"tampered")
    elif tamper == "onnx":
        graph.write_bytes(graph.read_bytes()[: graph.stat().st_size // 2])  # cut short
        manifest["files"]["generator.onnx"] = {"sha256": sha256_file(graph), "bytes": graph.stat().st_size}
    (staged / "manifest.json").write_text(json.dumps(manifest))
    target = model_dir / str(version)
    staged.rename(target)
    return target


def write_conditional_model(repo: Path, name: str = "cond-toy", num_classes: int = 10, latent_dim: int = 8) -> Path:
    """A tiny class-conditional generator built directly in ONNX, so service tests need no
    training run: image = tanh((z + embedding[label]) @ W), 1x6x6. Real ONNX Runtime, real
    manifest; ``labels`` is optional (class 0 when left out), as a conditional VAE's decoder has it
    (the trained conditional models are served in tests/test_ae_vae.py and test_gan_options.py)."""
    from onnx import TensorProto, helper, numpy_helper

    from latentforge.manifest import OutputSpec, Signature, TensorSpec

    rng = np.random.default_rng(0)
    inits = [numpy_helper.from_array(rng.standard_normal((num_classes, latent_dim)).astype(np.float32), "emb"),
             numpy_helper.from_array(rng.standard_normal((latent_dim, 36)).astype(np.float32), "w"),
             numpy_helper.from_array(np.array([-1, 1, 6, 6], np.int64), "shape")]
    nodes = [helper.make_node("Gather", ["emb", "labels"], ["e"], axis=0),
             helper.make_node("Add", ["z", "e"], ["h"]),
             helper.make_node("MatMul", ["h", "w"], ["m"]),
             helper.make_node("Tanh", ["m"], ["t"]),
             helper.make_node("Reshape", ["t", "shape"], ["image"])]
    graph = helper.make_graph(
        nodes, "cond", [helper.make_tensor_value_info("z", TensorProto.FLOAT, ["N", latent_dim]),
                        helper.make_tensor_value_info("labels", TensorProto.INT64, ["N"])],
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 1, 6, 6])], initializer=inits)
    signature = Signature(
        inputs=(TensorSpec("z", "float32", ("N", latent_dim)), TensorSpec("labels", "int64", ("N",), optional=True)),
        outputs=(TensorSpec("image", "float32", ("N", 1, 6, 6)),))
    return write_hand_built_model(
        repo / name / "1", {"generator": (graph, signature)}, name=name, kind="gan", latent_dim=latent_dim,
        num_classes=num_classes, output=OutputSpec(channels=1, height=6, width=6, value_range=(-1.0, 1.0)),
        tasks={"sample": "generator", "decode": "generator"}, classes=tuple(f"class-{k}" for k in range(num_classes)))


def write_autoencoder_model(repo: Path, name: str = "ae-toy", latent_dim: int = 4) -> Path:
    """A tiny deterministic autoencoder built directly in ONNX, so service tests need no training
    run (the trained `ae` family is served in tests/test_ae_vae.py): encoder image (N, 1, 6, 6) -> mu = flatten(image) @ E, decoder z -> image = sigmoid(z @ D).
    Its manifest declares encode and decode but no sample task: it has no prior."""
    from onnx import TensorProto, helper, numpy_helper

    from latentforge.manifest import OutputSpec, Signature, TensorSpec

    rng = np.random.default_rng(1)
    image_info = helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 1, 6, 6])
    encoder = helper.make_graph(
        [helper.make_node("Reshape", ["image", "flat"], ["x"]), helper.make_node("MatMul", ["x", "e"], ["mu"])],
        "ae_encoder", [image_info], [helper.make_tensor_value_info("mu", TensorProto.FLOAT, ["N", latent_dim])],
        initializer=[numpy_helper.from_array(np.array([-1, 36], np.int64), "flat"),
                     numpy_helper.from_array(rng.standard_normal((36, latent_dim)).astype(np.float32) / 6, "e")])
    decoder = helper.make_graph(
        [helper.make_node("MatMul", ["z", "d"], ["m"]), helper.make_node("Sigmoid", ["m"], ["s"]),
         helper.make_node("Reshape", ["s", "shape"], ["image"])],
        "ae_decoder", [helper.make_tensor_value_info("z", TensorProto.FLOAT, ["N", latent_dim])], [image_info],
        initializer=[numpy_helper.from_array(rng.standard_normal((latent_dim, 36)).astype(np.float32), "d"),
                     numpy_helper.from_array(np.array([-1, 1, 6, 6], np.int64), "shape")])
    image = TensorSpec("image", "float32", ("N", 1, 6, 6))
    latent = TensorSpec("mu", "float32", ("N", latent_dim))
    return write_hand_built_model(
        repo / name / "1",
        {"encoder": (encoder, Signature(inputs=(image,), outputs=(latent,))),
         "decoder": (decoder, Signature(inputs=(TensorSpec("z", "float32", ("N", latent_dim)),), outputs=(image,)))},
        name=name, kind="ae", latent_dim=latent_dim, num_classes=0,
        output=OutputSpec(channels=1, height=6, width=6, value_range=(0.0, 1.0)),
        tasks={"encode": "encoder", "decode": "decoder"})


def write_hand_built_model(version_dir: Path, graphs: dict, **fields) -> Path:
    """A version folder of ONNX graphs built in code (role -> (GraphProto, Signature)) with a
    format-2 manifest: ``fields`` are the manifest's (name, kind, tasks...), files and
    signatures are filled in here."""
    import onnx
    from onnx import helper

    from latentforge.manifest import FileEntry, Manifest, Parity, sha256_file

    version_dir.mkdir(parents=True)
    files, signatures = {}, {}
    for role, (graph, signature) in graphs.items():
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
        onnx.checker.check_model(model, full_check=True)
        path = version_dir / f"{role}.onnx"
        onnx.save(model, str(path))
        files[path.name] = FileEntry(sha256=sha256_file(path), bytes=path.stat().st_size)
        signatures[role] = signature
    manifest = Manifest(
        version=int(version_dir.name), graphs={role: f"{role}.onnx" for role in graphs}, files=files,
        signatures=signatures, opset=18, parity=Parity(max_abs_error=0.0, tolerance=1e-4, batch_sizes=(1,)),
        source_checkpoint={}, created=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"), **fields)
    (version_dir / "manifest.json").write_text(manifest.to_json())
    return version_dir


def load_model(repo: Path, name: str):
    from latentforge.runtime import OrtSettings
    from services.generation.metrics import Metrics
    from services.generation.model_repository import ModelRepository

    metrics = Metrics()
    repository = ModelRepository(repo, metrics, OrtSettings())
    repository.refresh()
    return repository.resolve(name), metrics


class Gate:
    """A finish callable that holds its worker thread until released: it keeps a batch slot busy."""

    def __init__(self) -> None:
        self.entered, self.release = threading.Event(), threading.Event()

    def __call__(self, outputs: dict[str, np.ndarray]) -> list:
        self.entered.set()
        self.release.wait(10)
        return list(next(iter(outputs.values())))


def hold_a_batch_slot(server, gate: Gate):
    """Occupy the server's only batch slot with a request whose finish waits on ``gate``."""
    model = server.server.generation.repository.resolve("mnist-dcgan")
    # Two rows: more than a lone request that runs at once on the event loop (inline_rows), so
    # it takes a batch slot on a worker thread like any queued request.
    z = np.zeros((2, model.manifest.latent_dim), np.float32)

    async def start():
        return asyncio.ensure_future(runner_decode(server.server.generation.runner, model, z, finish=gate))

    future = server.call(start())
    assert gate.entered.wait(10)
    return future


def decode(model, z: np.ndarray, labels: np.ndarray | None = None) -> np.ndarray:
    """A model's decode graph on latents [and labels], by the task's contract names."""
    return model.run_task("decode", decode_feeds(z, labels))["image"]


def encode(model, images: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """A model's encode graph: (mu, logvar or None)."""
    out = model.run_task("encode", {"image": images})
    return out["mu"], out.get("logvar")


async def runner_decode(runner, model, z: np.ndarray, labels: np.ndarray | None = None, finish=None,
                        deadline: float | None = None):
    """The decode graph through a runner (its image rows, or finish's list)."""
    out = await runner.run(model, model.graph_for("decode"), decode_feeds(z, labels), finish, deadline)
    return out if finish is not None else out["image"]
