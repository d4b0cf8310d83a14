"""What the cache keeps about one sample, and its ids and keys: ``SampleRecord`` (the latent and
its metadata; ``meta()`` and ``from_parts()`` are its stored form: metadata as JSON-able values,
the latent as float32 little-endian bytes), ``SAMPLE_ID_PATTERN`` and ``new_sample_id()`` for
sample ids, ``render_key()`` for the rendered-output cache: (model, version, latent, output
parameters) -> encoded image bytes, and ``STYLE_ID_PATTERN`` and ``style_key()`` for style
statistics.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

SAMPLE_ID_PATTERN = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


def render_key(model: str, version: int, latent: np.ndarray, label: int | None, output: str) -> str:
    """Key of one rendered output: model, version, a hash of the exact latent bytes, the label
    and the output parameters (e.g. "png1" = PNG at zlib level 1, "f32" = raw tensor)."""
    digest = hashlib.blake2b(np.ascontiguousarray(latent, dtype="<f4").tobytes(), digest_size=16).hexdigest()
    return f"{model}:{version}:{output}:{'' if label is None else label}:{digest}"


STYLE_ID_PATTERN = re.compile(r"^[0-9a-f]{64}$")


def style_key(model: str, version: int, style_id: str) -> str:
    """Key of a style's statistics: the model version that encoded it and its style id (the
    SHA-256 of the style image's bytes, or a mix's id); the cache adds ``<namespace>:v1:style:``."""
    return f"{model}:{version}:{style_id}"


def new_sample_id() -> str:
    """A fresh random id (22 URL-safe characters, 128 bits)."""
    return secrets.token_urlsafe(16)


@dataclass(frozen=True)
class SampleRecord:
    """What the cache keeps about one sample."""

    sample_id: str
    model: str
    version: int
    latent: np.ndarray  # float32 (latent_dim,)
    origin: str  # "generate", "interpolate", "encode", "variation", "complete", "stylize" (no latent)
    seed: int | None = None
    label: int | None = None
    truncation: float | None = None
    parent_id: str | None = None
    created: float = field(default_factory=time.time)
    # Completion samples: the input they were completed from (image then mask, float32
    # little-endian bytes, see services.generation.completion), so Variations keep its known pixels.
    context: bytes | None = None

    def meta(self) -> dict[str, Any]:
        """Metadata without the latent, as JSON-able values."""
        return {
            "model": self.model,
            "version": self.version,
            "origin": self.origin,
            "seed": self.seed,
            "label": self.label,
            "truncation": self.truncation,
            "parent_id": self.parent_id,
            "created": self.created,
            "latent_dim": int(self.latent.size),
        }

    @classmethod
    def from_parts(cls, sample_id: str, latent_bytes: bytes, meta: dict[str, Any],
                   context: bytes | None = None) -> "SampleRecord":
        latent = np.frombuffer(latent_bytes, dtype="<f4").astype(np.float32)
        return cls(
            sample_id=sample_id,
            model=str(meta["model"]),
            version=int(meta["version"]),
            latent=latent,
            origin=str(meta.get("origin", "")),
            seed=None if meta.get("seed") is None else int(meta["seed"]),
            label=None if meta.get("label") is None else int(meta["label"]),
            truncation=None if meta.get("truncation") is None else float(meta["truncation"]),
            parent_id=meta.get("parent_id"),
            created=float(meta.get("created", 0.0)),
            context=context,
        )
