"""Seed -> latent, the one documented algorithm, and the other latent arithmetic.

The algorithm is part of the public API (see the top of ``proto/latentforge/v1/generation.proto``):
a client in any language can rebuild a sample's latent from its seed. Change it only with a new
API version.
"""

from __future__ import annotations

import math

import numpy as np

SEED_MODULUS = 2**64
# Below this, truncation redraws become very slow (most draws are rejected); the proto says so.
MIN_TRUNCATION = 0.05
# The largest float32 below 1: a prior's uniform is clipped to it, as float32 rounding could reach 1.0.
UNIFORM_MAX = float(np.nextafter(np.float32(1.0), np.float32(0.0)))


def sample_seed(base_seed: int, index: int) -> int:
    """Seed of sample ``index`` of a request with base seed ``base_seed``: (s + i) mod 2^64."""
    return (int(base_seed) + int(index)) % SEED_MODULUS


def latent_from_seed(seed: int, latent_dim: int, truncation: float | None = None) -> np.ndarray:
    """The latent of ``seed``: PCG64 standard normal, truncation redraws, cast to float32.

    ``rng = Generator(PCG64(seed))``; ``z = rng.standard_normal(latent_dim)`` (float64); while any
    ``|z[j]| > truncation``, those positions are redrawn in index order from the same ``rng``;
    the result is ``z.astype(float32)``.
    """
    return _latent64(seed, latent_dim, truncation).astype(np.float32)


def _latent64(seed: int, latent_dim: int, truncation: float | None,
              rng: np.random.Generator | None = None) -> np.ndarray:
    """``latent_from_seed`` before the cast to float32 (drawn from ``rng`` when given: the
    generator of ``seed``, which the caller goes on drawing from)."""
    if not 0 <= seed < SEED_MODULUS:
        raise ValueError(f"seed must be in [0, 2**64), got {seed}")
    if latent_dim < 1:
        raise ValueError(f"latent_dim must be >= 1, got {latent_dim}")
    rng = rng if rng is not None else np.random.Generator(np.random.PCG64(seed))
    z = rng.standard_normal(latent_dim)
    if truncation is not None:
        psi = float(truncation)
        if not math.isfinite(psi) or psi < MIN_TRUNCATION:
            raise ValueError(f"truncation must be finite and >= {MIN_TRUNCATION}, got {truncation}")
        while True:
            redraw = np.flatnonzero(np.abs(z) > psi)
            if redraw.size == 0:
                break
            z[redraw] = rng.standard_normal(redraw.size)
    return z


def latents_from_seeds(
    base_seed: int, count: int, latent_dim: int, truncation: float | None = None
) -> tuple[list[int], np.ndarray]:
    """Seeds and stacked latents ``(count, latent_dim)`` of samples 0..count-1 of a request."""
    seeds = [sample_seed(base_seed, i) for i in range(count)]
    z = np.empty((count, latent_dim), dtype=np.float32)
    for i, s in enumerate(seeds):
        z[i] = _latent64(s, latent_dim, truncation)  # cast to float32 as it is stored, as astype would
    return seeds, z


def prior_inputs_from_seeds(
    base_seed: int, count: int, latent_dim: int, truncation: float | None = None
) -> tuple[list[int], np.ndarray, np.ndarray]:
    """Seeds, noise ``(count, latent_dim)`` and ``u`` ``(count,)`` of a model with a learned prior.

    Per sample, from one ``rng = Generator(PCG64(seed))``: ``noise`` exactly as
    ``latent_from_seed(seed, latent_dim, truncation)`` draws its latent, then ``u =
    rng.random()`` (float64 in [0, 1)), both cast to float32. The model's ``prior`` graph maps
    them to the latent: ``z = prior(noise, u)``. Truncation therefore shrinks ``noise`` only.
    """
    seeds = [sample_seed(base_seed, i) for i in range(count)]
    noise = np.empty((count, latent_dim), dtype=np.float32)
    u = np.empty(count, dtype=np.float32)
    for i, s in enumerate(seeds):
        if not 0 <= s < SEED_MODULUS:
            raise ValueError(f"seed must be in [0, 2**64), got {s}")
        rng = np.random.Generator(np.random.PCG64(s))
        noise[i] = _latent64(s, latent_dim, truncation, rng)
        u[i] = min(rng.random(), UNIFORM_MAX)  # float32 rounding must not reach 1.0
    return seeds, noise, u


def lerp(a: np.ndarray, b: np.ndarray, steps: int) -> np.ndarray:
    """``steps`` points from a to b on the straight line, both ends included."""
    t = np.linspace(0.0, 1.0, steps)[:, None]
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    return ((1.0 - t) * a64 + t * b64).astype(np.float32)


def slerp(a: np.ndarray, b: np.ndarray, steps: int, eps: float = 1e-6) -> np.ndarray:
    """``steps`` points from a to b on the great circle (norms interpolated along); lerp if
    a and b are (anti)parallel or zero, where the arc is undefined."""
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    na, nb = np.linalg.norm(a64), np.linalg.norm(b64)
    if na == 0.0 or nb == 0.0:
        return lerp(a, b, steps)
    omega = math.acos(float(np.clip(np.dot(a64 / na, b64 / nb), -1.0, 1.0)))
    if omega < eps or math.pi - omega < eps:
        return lerp(a, b, steps)
    t = np.linspace(0.0, 1.0, steps)[:, None]
    so = math.sin(omega)
    out = (np.sin((1.0 - t) * omega) / so) * a64 + (np.sin(t * omega) / so) * b64
    return out.astype(np.float32)


def variations(parent: np.ndarray, base_seed: int, count: int, strength: float) -> tuple[list[int], np.ndarray]:
    """Latents ``parent + strength * latent_from_seed(seed_i)``, seed_i = (base + i) mod 2^64."""
    seeds, noise = latents_from_seeds(base_seed, count, parent.shape[-1])
    out = parent.astype(np.float64)[None, :] + float(strength) * noise.astype(np.float64)
    return seeds, out.astype(np.float32)


def check_latent(values: np.ndarray, latent_dim: int) -> np.ndarray:
    """A client-supplied latent as float32 (latent_dim,); ValueError saying what is wrong."""
    z = np.asarray(values, dtype=np.float32).reshape(-1)
    if z.size != latent_dim:
        raise ValueError(f"latent has {z.size} values; this model needs latent_dim={latent_dim}")
    if not np.all(np.isfinite(z)):
        raise ValueError("latent contains NaN or infinite values; all values must be finite")
    return z
