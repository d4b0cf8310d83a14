"""In-process servers on loopback ports and model repositories to serve (published versions,
tampered versions, a hand-built conditional model), and gates that hold a batch slot."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import shutil
import threading
from pathlib import Path

import numpy as np

GEN = {"model": "mnist-dcgan", "version": "1", "graph": "generator"}


def start_server(models: Path, **overrides):
    from services.server import ServerThread, loopback_config

    return ServerThread(loopback_config(models=models, **overrides)).start()


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
    """A small class-conditional generator built directly in ONNX (the trainer has no conditional
    family yet): image = tanh((z + embedding[label]) @ W), 1x6x6. Real ONNX Runtime, real manifest."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    from latentforge.manifest import (
        FileEntry,
        Manifest,
        OutputSpec,
        Parity,
        Signature,
        TensorSpec,
        sha256_file,
    )

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
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    onnx.checker.check_model(model, full_check=True)
    version_dir = repo / name / "1"
    version_dir.mkdir(parents=True)
    onnx.save(model, str(version_dir / "generator.onnx"))
    path = version_dir / "generator.onnx"
    manifest = Manifest(
        name=name, version=1, kind="gan", latent_dim=latent_dim, num_classes=num_classes,
        output=OutputSpec(channels=1, height=6, width=6, value_range=(-1.0, 1.0)),
        graphs={"generator": "generator.onnx"},
        tasks={"sample": "generator", "decode": "generator"},
        signatures={"generator": Signature(
            inputs=(TensorSpec("z", "float32", ("N", latent_dim)), TensorSpec("labels", "int64", ("N",), optional=True)),
            outputs=(TensorSpec("image", "float32", ("N", 1, 6, 6)),))},
        classes=tuple(f"class-{k}" for k in range(num_classes)),
        files={"generator.onnx": FileEntry(sha256=sha256_file(path), bytes=path.stat().st_size)},
        opset=18, parity=Parity(max_abs_error=0.0, tolerance=1e-4, batch_sizes=(1,)), source_checkpoint={},
        created=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"))
    (version_dir / "manifest.json").write_text(manifest.to_json())
    return version_dir


def load_model(repo: Path, name: str):
    from services.inference import OrtSettings
    from services.metrics import Metrics
    from services.model_repository import ModelRepository

    metrics = Metrics()
    repository = ModelRepository(repo, metrics, OrtSettings())
    repository.refresh()
    return repository.resolve(name), metrics


class Gate:
    """A finish callable that holds its worker thread until released: it keeps a batch slot busy."""

    def __init__(self) -> None:
        self.entered, self.release = threading.Event(), threading.Event()

    def __call__(self, images: np.ndarray) -> list:
        self.entered.set()
        self.release.wait(10)
        return list(images)


def hold_a_batch_slot(server, gate: Gate):
    """Occupy the server's only batch slot with a request whose finish waits on ``gate``."""
    model = server.server.repository.resolve("mnist-dcgan")
    z = np.zeros((1, model.manifest.latent_dim), np.float32)

    async def start():
        return asyncio.ensure_future(server.server.runner.decode(model, z, None, finish=gate))

    future = server.call(start())
    assert gate.entered.wait(10)
    return future
