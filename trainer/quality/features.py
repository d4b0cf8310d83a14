"""The meter: a small feature network trained by the project, once per data set, and its cache.

Scores such as FID need a feature space. Instead of downloading Inception weights, the
project trains its own small network on the training data itself, deterministically, on CPU:

- labelled data (mnist5k): a CNN classifier; its penultimate layer (128 ReLU units) gives
  the features and its softmax gives class reads;
- unlabelled data (an image folder): a convolutional autoencoder; its 128-d bottleneck gives
  the features.

The network is trained on a fixed 80/20 split of the data. The 80% ("training split") is the
reference the samples are compared with; the 20% ("held-out") shows what real images the
network never saw score, i.e. the floor a perfect generator would reach.

The trained network and the features of both splits are cached in one file named by a key
that hashes the data's sha256, the meter's version and its settings: changed data, a new
meter version or other settings train a new one, the same ones load it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from trainer.checkpoint import atomic_write_bytes
from trainer.data import TrainingData, load_data

log = logging.getLogger(__name__)

# Bump when the networks, their training or the cached content change: old caches then retrain.
METER_VERSION = 1
CACHE_FORMAT = "latentforge-quality-meter"
CACHE_ENV = "LATENTFORGE_CACHE_DIR"
MIN_IMAGES = 50


class QualityError(ValueError):
    """Quality cannot be measured as asked; the message says why and what to do."""


@dataclass(frozen=True)
class MeterSettings:
    """How the feature network is trained; part of the cache key."""

    steps: int = 1200  # optimisation steps (batch 64: ~19 epochs of mnist5k's 4,000 training digits)
    batch_size: int = 64
    lr: float = 2e-3
    held_out: float = 0.2  # share of the data kept out of training: the floor's real images
    seed: int = 0  # split, weights, batch order and shifts
    threads: int = 1  # torch threads while training: a fixed count keeps the result reproducible
    width: int = 16  # channels of the first convolution
    kernel: int = 5  # convolution kernel size
    feature_dim: int = 128
    max_shift: int = 2  # random translation (pixels) of training batches

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


DEFAULT_SETTINGS = MeterSettings()


def default_cache_dir() -> Path:
    """Where meters are cached: $LATENTFORGE_CACHE_DIR/quality, else ~/.cache/latentforge/quality."""
    root = os.environ.get(CACHE_ENV)
    return (Path(root) if root else Path.home() / ".cache" / "latentforge") / "quality"


def data_sha256(data: TrainingData) -> str:
    """sha256 of the data as the trainer sees it: shape, pixels and labels."""
    digest = hashlib.sha256()
    digest.update(json.dumps(list(data.images.shape)).encode())
    digest.update(np.ascontiguousarray(data.images, dtype=np.float32).tobytes())
    if data.labels is not None:
        digest.update(b"labels")
        digest.update(np.ascontiguousarray(data.labels, dtype=np.int64).tobytes())
    return digest.hexdigest()


def split_indices(n: int, held_out: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A fixed random split of range(n): (training indices, held-out indices), each sorted."""
    order = np.random.default_rng(seed).permutation(n)
    n_held = max(1, int(round(n * held_out)))
    return np.sort(order[n_held:]), np.sort(order[:n_held])


# --- networks ---------------------------------------------------------------------------------

class Encoder(nn.Module):
    """Two strided convolutions and a linear layer: images in [0, 1] -> feature_dim values."""

    def __init__(self, channels: int, width: int, feature_dim: int, kernel: int = 5) -> None:
        super().__init__()
        pad = kernel // 2
        self.convs = nn.Sequential(
            nn.Conv2d(channels, width, kernel, 2, pad), nn.ReLU(),
            nn.Conv2d(width, 2 * width, kernel, 2, pad), nn.ReLU(),
        )
        self.fc = nn.Linear(2 * width * 49, feature_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.convs(x)
        if x.shape[-2:] != (7, 7):  # 28x28 inputs give 7x7; pool other sizes to it
            x = F.adaptive_avg_pool2d(x, 7)
        return self.fc(x.flatten(1))


class Decoder(nn.Module):
    """feature_dim values -> image logits of the given shape (autoencoder meters)."""

    def __init__(self, shape: tuple[int, int, int], width: int, feature_dim: int) -> None:
        super().__init__()
        c, h, w = shape
        self.shape = shape
        self.h4, self.w4 = -(-h // 4), -(-w // 4)
        self.width = width
        self.fc = nn.Linear(feature_dim, 2 * width * self.h4 * self.w4)
        self.up = nn.Sequential(
            nn.ReLU(),
            nn.ConvTranspose2d(2 * width, width, 4, 2, 1), nn.ReLU(),
            nn.ConvTranspose2d(width, c, 4, 2, 1),
        )

    def forward(self, f: torch.Tensor) -> torch.Tensor:
        x = self.up(self.fc(f).view(-1, 2 * self.width, self.h4, self.w4))
        _, h, w = self.shape
        if x.shape[-2:] != (h, w):
            x = F.interpolate(x, size=(h, w), mode="bilinear", align_corners=False)
        return x


class FeatureNet(nn.Module):
    """A classifier (``kind="classifier"``) or an autoencoder (``kind="autoencoder"``) sharing one encoder."""

    def __init__(self, kind: str, shape: tuple[int, int, int], num_classes: int, settings: MeterSettings) -> None:
        super().__init__()
        if kind not in ("classifier", "autoencoder"):
            raise QualityError(f"unknown meter kind {kind!r}")
        self.kind = kind
        self.encoder = Encoder(shape[0], settings.width, settings.feature_dim, settings.kernel)
        if kind == "classifier":
            self.head: nn.Module = nn.Sequential(nn.Dropout(0.2), nn.Linear(settings.feature_dim, num_classes))
        else:
            self.head = Decoder(shape, settings.width, settings.feature_dim)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        f = self.encoder(x)
        return F.relu(f) if self.kind == "classifier" else f

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Class logits (classifier) or reconstruction logits (autoencoder)."""
        return self.head(self.features(x))


# --- the meter --------------------------------------------------------------------------------

@dataclass
class Meter:
    """A trained feature network with the features of its data's training and held-out splits."""

    net: FeatureNet
    kind: str
    shape: tuple[int, int, int]
    num_classes: int  # 0 for an autoencoder meter
    source: str
    data_sha256: str
    key: str
    path: Path
    settings: MeterSettings
    train_features: np.ndarray  # (N_train, D) float32
    held_out_features: np.ndarray  # (N_held, D) float32
    held_out_probs: np.ndarray | None  # (N_held, K) softmax of the classifier
    held_out_labels: np.ndarray | None
    train_seconds: float
    origin: str  # "trained" (this call trained it) or "cache"
    memo: dict[Any, Any] = field(default_factory=dict, repr=False)  # derived values (statistics, floors)

    @property
    def labelled(self) -> bool:
        return self.kind == "classifier"

    @property
    def held_out_accuracy(self) -> float | None:
        if self.held_out_probs is None or self.held_out_labels is None:
            return None
        return float((self.held_out_probs.argmax(1) == self.held_out_labels).mean())

    @torch.no_grad()
    def embed(self, images: np.ndarray | torch.Tensor, batch_size: int = 1000) -> tuple[np.ndarray, np.ndarray | None]:
        """Features (N, D) and, for a classifier, softmax class reads (N, K) of images in [0, 1]."""
        x = images if isinstance(images, torch.Tensor) else torch.from_numpy(np.asarray(images))
        x = x.detach().to("cpu", torch.float32)
        if x.ndim != 4 or tuple(x.shape[1:]) != tuple(self.shape):
            raise QualityError(
                f"images of shape {tuple(x.shape[1:])} cannot be scored against {self.source}, "
                f"whose images are {tuple(self.shape)} (C, H, W)"
            )
        if x.shape[0] == 0:
            raise QualityError("no images to score")
        if not torch.isfinite(x).all():
            raise QualityError("images contain NaN or infinity")
        lo, hi = float(x.min()), float(x.max())
        if lo < -0.01 or hi > 1.01:
            raise QualityError(f"images must lie in [0, 1] (found [{lo:.3g}, {hi:.3g}]); map the model's range first")
        self.net.eval()
        feats, probs = [], []
        for chunk in x.split(batch_size):
            f = self.net.features(chunk)
            feats.append(f.numpy())
            if self.labelled:
                probs.append(torch.softmax(self.net.head(f), dim=1).numpy())
        return np.concatenate(feats), (np.concatenate(probs) if probs else None)


def meter_key(data_sha: str, kind: str, num_classes: int, shape: tuple[int, ...], settings: MeterSettings) -> str:
    """The cache key: hashes everything that shapes the trained meter."""
    spec = {
        "meter_version": METER_VERSION,
        "data_sha256": data_sha,
        "kind": kind,
        "num_classes": num_classes,
        "shape": list(shape),
        "settings": settings.to_dict(),
    }
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:20]


def load_meter(data: TrainingData, cache_dir: Path | None = None, settings: MeterSettings = DEFAULT_SETTINGS) -> Meter:
    """The meter for this data: read from the cache, or trained and cached when absent or stale.

    A file lock makes concurrent callers (e.g. the ranks of a distributed run) train it once.
    """
    if len(data) < MIN_IMAGES:
        raise QualityError(f"{data.source}: {len(data)} images are too few to measure quality (need {MIN_IMAGES})")
    kind, num_classes = _kind_of(data)
    sha = data_sha256(data)
    key = meter_key(sha, kind, num_classes, data.shape, settings)
    folder = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    path = folder / f"{_slug(data.source)}-{key}.pt"
    folder.mkdir(parents=True, exist_ok=True)
    with _locked(path.with_name(path.name + ".lock")):
        if path.is_file():
            try:
                return _read(path, key)
            except QualityError as exc:
                log.warning("%s; training the meter again", exc)
        meter = _train(data, kind, num_classes, sha, key, path, settings)
        atomic_write_bytes(path, lambda fh: torch.save(_to_payload(meter), fh))
        return meter


_LOADED: dict[tuple[Any, ...], Meter] = {}


def meter_for(
    spec: str,
    image_size: int | None = None,
    channels: int | None = None,
    min_image_size: int = 8,
    cache_dir: Path | None = None,
    settings: MeterSettings = DEFAULT_SETTINGS,
) -> Meter:
    """The meter for a data source named as the trainer names it, loaded once per process."""
    folder = (Path(cache_dir) if cache_dir is not None else default_cache_dir()).resolve()
    memo_key = (spec, image_size, channels, min_image_size, str(folder), settings)
    meter = _LOADED.get(memo_key)
    if meter is None:
        data = load_data(spec, image_size, channels, min_image_size)
        meter = _LOADED[memo_key] = load_meter(data, folder, settings)
    return meter


def _kind_of(data: TrainingData) -> tuple[str, int]:
    if data.labels is None:
        return "autoencoder", 0
    labels = np.asarray(data.labels)
    if labels.min() < 0:
        raise QualityError(f"{data.source}: labels must be >= 0 (found {labels.min()})")
    num_classes = int(labels.max()) + 1
    if num_classes < 2:
        return "autoencoder", 0
    return "classifier", num_classes


def _slug(source: str) -> str:
    name = Path(source.rstrip("/")).name or "data"
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name)[:40]


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    try:
        import fcntl
    except ImportError:  # not POSIX: no lock, at worst two processes train the same meter
        yield
        return
    with open(path, "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _train(data: TrainingData, kind: str, num_classes: int, sha: str, key: str, path: Path,
           settings: MeterSettings) -> Meter:
    """Train the feature net on the training split; deterministic for given data and settings."""
    log.info("training the quality meter (%s) for %s: %d steps", kind, data.source, settings.steps)
    started = time.perf_counter()
    train_idx, held_idx = split_indices(len(data), settings.held_out, settings.seed)
    images = torch.from_numpy(np.ascontiguousarray(data.images, dtype=np.float32))
    labels = torch.from_numpy(np.asarray(data.labels, dtype=np.int64)) if kind == "classifier" else None
    threads = torch.get_num_threads()
    torch.set_num_threads(settings.threads)
    try:
        with torch.random.fork_rng(devices=[]):  # leave the caller's random stream untouched
            torch.manual_seed(settings.seed)
            net = FeatureNet(kind, data.shape, num_classes, settings)
            gen = torch.Generator().manual_seed(settings.seed)
            opt = torch.optim.Adam(net.parameters(), lr=settings.lr, foreach=True)
            # Cosine decay to zero: the last steps settle the weights, for steadier features.
            schedule = torch.optim.lr_scheduler.CosineAnnealingLR(opt, settings.steps)
            pool = torch.from_numpy(train_idx)
            s = settings.max_shift
            net.train()
            for _ in range(settings.steps):
                idx = pool[torch.randint(0, len(pool), (settings.batch_size,), generator=gen)]
                x = images[idx]
                if s > 0:
                    dy, dx = torch.randint(0, 2 * s + 1, (2,), generator=gen).tolist()
                    h, w = x.shape[-2:]
                    x = F.pad(x, (s, s, s, s), mode="replicate")[..., dy : dy + h, dx : dx + w]
                if labels is not None:
                    loss = F.cross_entropy(net(x), labels[idx])
                else:
                    loss = F.mse_loss(torch.sigmoid(net(x)), x)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                schedule.step()
        net.eval()
        meter = Meter(
            net=net, kind=kind, shape=data.shape, num_classes=num_classes, source=data.source,
            data_sha256=sha, key=key, path=path, settings=settings,
            train_features=np.empty((0, settings.feature_dim), np.float32),
            held_out_features=np.empty((0, settings.feature_dim), np.float32),
            held_out_probs=None,
            held_out_labels=data.labels[held_idx].astype(np.int64) if labels is not None else None,
            train_seconds=0.0, origin="trained",
        )
        meter.train_features, _ = meter.embed(images[train_idx])
        meter.held_out_features, meter.held_out_probs = meter.embed(images[held_idx])
    finally:
        torch.set_num_threads(threads)
    meter.train_seconds = round(time.perf_counter() - started, 2)
    log.info("quality meter trained in %.1f s (last loss %.4f): %s", meter.train_seconds, loss.item(), path)
    return meter


def _to_payload(meter: Meter) -> dict[str, Any]:
    return {
        "format": CACHE_FORMAT,
        "meter_version": METER_VERSION,
        "key": meter.key,
        "kind": meter.kind,
        "shape": list(meter.shape),
        "num_classes": meter.num_classes,
        "source": meter.source,
        "data_sha256": meter.data_sha256,
        "settings": meter.settings.to_dict(),
        "train_seconds": meter.train_seconds,
        "state_dict": meter.net.state_dict(),
        "train_features": torch.from_numpy(meter.train_features),
        "held_out_features": torch.from_numpy(meter.held_out_features),
        "held_out_probs": None if meter.held_out_probs is None else torch.from_numpy(meter.held_out_probs),
        "held_out_labels": None if meter.held_out_labels is None else torch.from_numpy(meter.held_out_labels),
    }


def _read(path: Path, key: str) -> Meter:
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for truncated or foreign files
        raise QualityError(f"cached meter {path} is unreadable ({type(exc).__name__}: {exc})") from None
    if not isinstance(payload, dict) or payload.get("format") != CACHE_FORMAT or payload.get("key") != key:
        raise QualityError(f"cached meter {path} is not the meter for key {key}")
    try:
        settings = MeterSettings(**payload["settings"])
        shape = tuple(int(v) for v in payload["shape"])
        net = FeatureNet(payload["kind"], shape, int(payload["num_classes"]), settings)  # type: ignore[arg-type]
        net.load_state_dict(payload["state_dict"])
        net.eval()
        probs, labels = payload["held_out_probs"], payload["held_out_labels"]
        return Meter(
            net=net, kind=payload["kind"], shape=shape, num_classes=int(payload["num_classes"]),  # type: ignore[arg-type]
            source=payload["source"], data_sha256=payload["data_sha256"], key=key, path=path, settings=settings,
            train_features=payload["train_features"].numpy(),
            held_out_features=payload["held_out_features"].numpy(),
            held_out_probs=None if probs is None else probs.numpy(),
            held_out_labels=None if labels is None else labels.numpy(),
            train_seconds=float(payload["train_seconds"]), origin="cache",
        )
    except (KeyError, TypeError, ValueError, RuntimeError) as exc:
        raise QualityError(f"cached meter {path} is malformed ({type(exc).__name__}: {exc})") from None
