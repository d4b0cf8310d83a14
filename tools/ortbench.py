"""The limit a server is measured against: ONNX Runtime alone, in-process, on a version's files.

It loads the version exactly as the server does (sha256 check, ``OrtSettings``: same variant,
threads and session options) and runs the image graph at batch sizes 1..256 from ``threads``
Python threads at once - the number of batches the server runs at once - and reports images/s,
CPU time per image and latency for each, and the best. A single-thread batch-1 run gives the
latency floor of one lone request.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from latentforge.runtime import ModelRuntime, OrtSettings, decode_feeds
from tools.stats import percentiles

DEFAULT_BATCH_SIZES = (1, 2, 4, 8, 16, 32, 64, 128, 256)


@dataclass(frozen=True)
class RawPoint:
    """ONNX Runtime at one batch size."""

    batch_size: int
    threads: int
    calls: int
    images_per_s: float
    cpu_us_per_image: float
    call_ms: dict[str, float]  # per-call latency percentiles


def load_model(version_dir: Path, settings: OrtSettings) -> ModelRuntime:
    """A version folder loaded exactly as the server loads it (same checks, then a warm-up)."""
    from services.generation.model_repository import load_version

    return load_version(Path(version_dir), settings)


def measure_batch(model: ModelRuntime, batch_size: int, threads: int, duration_s: float, max_calls: int = 100_000,
                  seed: int = 0) -> RawPoint:
    """``threads`` threads calling the image graph on ``batch_size`` rows for ``duration_s``."""
    m = model.manifest
    z = np.random.default_rng(seed).standard_normal((batch_size, m.latent_dim)).astype(np.float32)
    labels = np.zeros(batch_size, np.int64) if m.num_classes else None
    model.run_task("decode", decode_feeds(z, labels))["image"]  # warm this shape
    latencies: list[list[float]] = [[] for _ in range(threads)]
    stop_at = time.perf_counter() + duration_s
    budget = {"calls": max_calls}
    lock = threading.Lock()

    def worker(k: int) -> None:
        out = latencies[k]
        while time.perf_counter() < stop_at:
            with lock:
                if budget["calls"] <= 0:
                    return
                budget["calls"] -= 1
            t0 = time.perf_counter()
            model.run_task("decode", decode_feeds(z, labels))["image"]
            out.append((time.perf_counter() - t0) * 1000.0)

    cpu0, t0 = time.process_time(), time.perf_counter()
    pool = [threading.Thread(target=worker, args=(k,), daemon=True) for k in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    calls = sum(len(x) for x in latencies)
    images = calls * batch_size
    return RawPoint(batch_size=batch_size, threads=threads, calls=calls,
                    images_per_s=round(images / wall, 2) if wall > 0 else 0.0,
                    cpu_us_per_image=round(cpu / images * 1e6, 2) if images else 0.0,
                    call_ms=percentiles([v for x in latencies for v in x]))


def run_raw(version_dir: Path, settings: OrtSettings, threads: int, batch_sizes: Sequence[int] = DEFAULT_BATCH_SIZES,
            duration_s: float = 2.0, max_calls: int = 100_000) -> dict[str, Any]:
    """The whole raw measurement of one version folder, as a JSON-able dict."""
    model = load_model(Path(version_dir), settings)
    points = [measure_batch(model, b, threads, duration_s, max_calls) for b in batch_sizes]
    best = max(points, key=lambda p: p.images_per_s)
    lone = measure_batch(model, 1, 1, duration_s, max_calls)
    return {
        "mode": "raw",
        "model_path": str(version_dir),
        "model": model.name,
        "version": model.version,
        "image_shape": list(model.image_shape),
        "provider": model.provider,
        "files": model.files,
        "variant": model.variant or "plain",
        "settings": asdict(settings),
        "threads": threads,
        "points": [asdict(p) for p in points],
        "best": asdict(best),
        "batch1_single_thread": asdict(lone),
        "load_average": list(os.getloadavg()),
        "cpu_count": os.cpu_count(),
    }

