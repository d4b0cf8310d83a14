"""ONNX Runtime sessions of one model version, and the runner that calls them off the loop.

``OnnxModel`` owns the sessions of a version folder (generator, or decoder + encoder) and runs
them synchronously. A runner (``InferenceRunner``) is what the servicer awaits: ``DirectRunner``
here sends each request's rows to the worker threads; ``services.batching.BatchingRunner`` merges
concurrent requests into shared batches behind the same interface.
"""

from __future__ import annotations

import abc
import asyncio
import threading
import time
from concurrent.futures import Executor
from pathlib import Path
from typing import Sequence

import numpy as np

from latentforge.manifest import Manifest
from services.errors import ServiceError
from services.logging_setup import event, get_logger
from services.metrics import Metrics

log = get_logger("inference")

CUDA = "CUDAExecutionProvider"
CPU = "CPUExecutionProvider"


def choose_providers(requested: Sequence[str] = ()) -> list[str]:
    """Providers to ask ONNX Runtime for: the requested ones that exist, else CUDA if present, else CPU."""
    import onnxruntime as ort

    available = ort.get_available_providers()
    if requested:
        chosen = [p for p in requested if p in available]
        if not chosen:
            raise ValueError(f"none of the providers {list(requested)} is available; available: {available}")
    else:
        chosen = [CUDA] if CUDA in available else []
    if CPU not in chosen:
        chosen.append(CPU)
    return chosen


class OnnxModel:
    """The loaded sessions of one model version. Thread-safe: ORT sessions allow concurrent run()."""

    def __init__(self, manifest: Manifest, version_dir: Path, providers: Sequence[str], intra_op_threads: int = 0) -> None:
        import onnxruntime as ort

        self.manifest = manifest
        self.version_dir = Path(version_dir)
        options = ort.SessionOptions()
        if intra_op_threads > 0:
            options.intra_op_num_threads = intra_op_threads
        options.log_severity_level = 3
        self.sessions: dict[str, ort.InferenceSession] = {}
        for role, fname in manifest.graphs.items():
            if role not in ("generator", "decoder", "encoder"):
                continue
            self.sessions[role] = ort.InferenceSession(
                str(self.version_dir / fname), sess_options=options, providers=list(providers)
            )
        image_session = self.sessions[manifest.image_graph]
        self.provider: str = image_session.get_providers()[0]
        self._takes_labels = any(i.name == "labels" for i in image_session.get_inputs())
        if manifest.num_classes > 0 and not self._takes_labels:
            raise ValueError(f"{manifest.image_graph} graph has no 'labels' input but num_classes > 0")

    @property
    def name(self) -> str:
        return self.manifest.name

    @property
    def version(self) -> int:
        return self.manifest.version

    @property
    def value_range(self) -> tuple[float, float]:
        return self.manifest.output.value_range

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return self.manifest.output.shape

    @property
    def can_encode(self) -> bool:
        return self.manifest.kind == "vae" and "encoder" in self.sessions

    def supported_methods(self) -> list[str]:
        """RPC names this model accepts."""
        methods = ["Generate", "GenerateStream", "Interpolate", "Variations", "GetSample"]
        if self.can_encode:
            methods += ["Encode", "Reconstruct"]
        return methods

    def run_image(self, z: np.ndarray, labels: np.ndarray | None = None) -> np.ndarray:
        """Latents (N, latent_dim) [+ labels (N,)] -> images (N, C, H, W) float32."""
        feeds = {"z": np.ascontiguousarray(z, dtype=np.float32)}
        if self._takes_labels:
            if labels is None:
                labels = np.zeros(len(z), dtype=np.int64)
            feeds["labels"] = np.ascontiguousarray(labels, dtype=np.int64)
        (images,) = self.sessions[self.manifest.image_graph].run(["image"], feeds)
        expected = (len(z), *self.image_shape)
        if images.shape != expected:
            raise ServiceError(f"model {self.name} v{self.version} returned shape {images.shape}, manifest says {expected}")
        return images

    def run_encoder(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Images (N, C, H, W) -> (mu, logvar), each (N, latent_dim)."""
        mu, logvar = self.sessions["encoder"].run(["mu", "logvar"], {"image": np.ascontiguousarray(images, dtype=np.float32)})
        return mu, logvar

    def warm_up(self) -> None:
        """One call per graph, so the first request does not pay for lazy initialisation;
        also checks the graphs' output shapes against the manifest."""
        m = self.manifest
        z = np.zeros((2, m.latent_dim), dtype=np.float32)
        images = self.run_image(z, np.zeros(2, dtype=np.int64) if m.num_classes else None)
        if self.can_encode:
            mu, logvar = self.run_encoder(images)
            if mu.shape != (2, m.latent_dim) or logvar.shape != (2, m.latent_dim):
                raise ValueError(f"encoder returned {mu.shape}/{logvar.shape}, expected (2, {m.latent_dim})")


class InferenceRunner(abc.ABC):
    """What the servicer awaits to run a model. Implementations decide how rows are batched."""

    def __init__(self, executor: Executor, metrics: Metrics, max_batch_size: int) -> None:
        self.executor = executor
        self.metrics = metrics
        self.max_batch_size = max_batch_size

    @abc.abstractmethod
    async def decode(self, model: OnnxModel, z: np.ndarray, labels: np.ndarray | None) -> np.ndarray:
        """Latents -> images, (N, C, H, W)."""

    @abc.abstractmethod
    async def encode(self, model: OnnxModel, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Images -> (mu, logvar)."""

    async def close(self) -> None:
        """Stop background work."""

    def _timed_image(self, model: OnnxModel, z: np.ndarray, labels: np.ndarray | None) -> np.ndarray:
        """Blocking: run the image graph in chunks of max_batch_size, recording metrics."""
        out = []
        graph = model.manifest.image_graph
        for start in range(0, len(z), self.max_batch_size):
            zz = z[start:start + self.max_batch_size]
            ll = None if labels is None else labels[start:start + self.max_batch_size]
            t0 = time.perf_counter()
            out.append(model.run_image(zz, ll))
            self._record(model, graph, len(zz), time.perf_counter() - t0)
        return out[0] if len(out) == 1 else np.concatenate(out)

    def _timed_encoder(self, model: OnnxModel, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        mus, logvars = [], []
        for start in range(0, len(images), self.max_batch_size):
            chunk = images[start:start + self.max_batch_size]
            t0 = time.perf_counter()
            mu, logvar = model.run_encoder(chunk)
            self._record(model, "encoder", len(chunk), time.perf_counter() - t0)
            mus.append(mu)
            logvars.append(logvar)
        return np.concatenate(mus), np.concatenate(logvars)

    def _record(self, model: OnnxModel, graph: str, rows: int, seconds: float) -> None:
        v = str(model.version)
        self.metrics.batch_size.labels(model.name, v, graph).observe(rows)
        self.metrics.inference_duration.labels(model.name, v, graph, model.provider).observe(seconds)


class DirectRunner(InferenceRunner):
    """Each request runs on its own in a worker thread (no merging across requests)."""

    async def _submit(self, model: OnnxModel, fn, *args):
        labels = (model.name, str(model.version))
        depth = self.metrics.queue_depth.labels(*labels)
        queued_at = time.perf_counter()
        lock = threading.Lock()
        state = {"left_queue": False}

        def leave_queue() -> None:
            with lock:
                if not state["left_queue"]:
                    state["left_queue"] = True
                    depth.dec()

        def call():
            leave_queue()
            self.metrics.queue_wait.labels(*labels).observe(time.perf_counter() - queued_at)
            return fn(*args)

        depth.inc()
        try:
            return await asyncio.get_running_loop().run_in_executor(self.executor, call)
        finally:
            leave_queue()  # a cancelled request that never ran

    async def decode(self, model: OnnxModel, z: np.ndarray, labels: np.ndarray | None) -> np.ndarray:
        return await self._submit(model, self._timed_image, model, z, labels)

    async def encode(self, model: OnnxModel, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return await self._submit(model, self._timed_encoder, model, images)


def log_loaded(model: OnnxModel) -> None:
    """The one log line that says which provider runs a model."""
    event(log, "model_loaded", model=model.name, version=model.version, kind=model.manifest.kind,
          provider=model.provider, graphs=sorted(model.sessions))
