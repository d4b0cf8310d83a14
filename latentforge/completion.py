"""Image completion shared by the trainer, the quality meter and the service: masks, and the
iterative method that lets any model with an encoder and a decoder complete an image.

Masks follow one convention everywhere (``latentforge.manifest.MASK_CONVENTION``): float32
``(1, H, W)``, 1 = known pixel, 0 = hole. NumPy only: the serving install uses this module.

The iterative method (for VAEs and autoencoders; a completion model does it in one graph):
start from the image with its hole filled with noise (a model with a learned prior: with the
best-fitting of a few prior samples, ``prior_fill``), then repeat: encode, decode, put the
known pixels back. A VAE's latent is drawn from its posterior on each round, with noise that
shrinks to none on the last round, so candidates differ in what they settle on and the last
round decodes the posterior mean; an autoencoder's candidates differ only by the noise they
start from.
"""

from __future__ import annotations

from typing import Awaitable, Callable, NamedTuple, Sequence

import numpy as np

from latentforge.latents import UNIFORM_MAX
from latentforge.manifest import FIRST_CANDIDATE_MODE, Manifest

# Kinds of held-out mask the quality table reports, in its column order.
EVAL_MASKS = ("top", "bottom", "centre", "strokes")


class MaskError(ValueError):
    """A mask does not fit its image, or leaves nothing to complete or nothing to go on."""


def box_mask(height: int, width: int, boxes: Sequence[tuple[int, int, int, int]]) -> np.ndarray:
    """A mask with each (x, y, w, h) box a hole; MaskError for a box outside the image or empty."""
    mask = np.ones((1, height, width), dtype=np.float32)
    for k, (x, y, w, h) in enumerate(boxes):
        if w <= 0 or h <= 0:
            raise MaskError(f"box {k} ({x},{y},{w},{h}) must have a positive width and height")
        if x < 0 or y < 0 or x + w > width or y + h > height:
            raise MaskError(f"box {k} ({x},{y},{w},{h}) reaches outside the {width}x{height} image")
        mask[0, y:y + h, x:x + w] = 0.0
    return mask


def check_mask(mask: np.ndarray, height: int, width: int) -> np.ndarray:
    """A mask as float32 (1, H, W) of 0s and 1s (values >= 0.5 are known); MaskError when it has
    the wrong size, holds NaN, has no hole or no known pixel."""
    m = np.asarray(mask, dtype=np.float32)
    if m.ndim == 2:
        m = m[None]
    if m.ndim != 3 or m.shape[0] != 1:
        raise MaskError(f"a mask is one channel (H, W) or (1, H, W); got shape {tuple(np.shape(mask))}")
    if m.shape[1:] != (height, width):
        raise MaskError(f"the mask is {m.shape[2]}x{m.shape[1]} but the image is {width}x{height}; "
                        "send a mask of the image's size")
    if not np.all(np.isfinite(m)):
        raise MaskError("the mask holds NaN or infinite values")
    m = (m >= 0.5).astype(np.float32)
    if m.min() == 1.0:
        raise MaskError("the mask has no hole (every pixel is known, 1); mark the pixels to fill with 0")
    if m.max() == 0.0:
        raise MaskError("the mask has no known pixel (every pixel is 0); completion needs part of the image")
    return m


def composite(generated: np.ndarray, image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Known pixels from ``image``, the hole from ``generated`` (arrays broadcast over N and C)."""
    return (mask * image + (1.0 - mask) * generated).astype(np.float32)


# --- masks for training and for the quality table ------------------------------------------------

def half_mask(height: int, width: int, side: str) -> np.ndarray:
    """The ``side`` ("top", "bottom", "left", "right") half of the image is the hole."""
    mask = np.ones((1, height, width), dtype=np.float32)
    if side == "top":
        mask[0, : height // 2] = 0
    elif side == "bottom":
        mask[0, height // 2:] = 0
    elif side == "left":
        mask[0, :, : width // 2] = 0
    elif side == "right":
        mask[0, :, width // 2:] = 0
    else:
        raise ValueError(f"unknown side {side!r}")
    return mask


def centre_mask(height: int, width: int) -> np.ndarray:
    """A centred square hole, half the image's side."""
    h, w = height // 2, width // 2
    return box_mask(height, width, [((width - w) // 2, (height - h) // 2, w, h)])


def rect_mask(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """One random rectangle hole, a quarter to a half of each side."""
    h = int(rng.integers(max(1, height // 4), height // 2 + 1))
    w = int(rng.integers(max(1, width // 4), width // 2 + 1))
    y = int(rng.integers(0, height - h + 1))
    x = int(rng.integers(0, width - w + 1))
    return box_mask(height, width, [(x, y, w, h)])


def stroke_mask(rng: np.random.Generator, height: int, width: int, strokes: tuple[int, int] = (1, 4)) -> np.ndarray:
    """Free-form brush strokes as holes: a few random polylines drawn with a round brush whose
    width scales with the image (as free-form inpainting masks are drawn, Yu et al. 2019)."""
    size = min(height, width)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    hole = np.zeros((height, width), dtype=bool)
    for _ in range(int(rng.integers(strokes[0], strokes[1] + 1))):
        radius = float(rng.uniform(0.05, 0.12)) * size
        y, x = float(rng.uniform(0, height)), float(rng.uniform(0, width))
        for _ in range(int(rng.integers(2, 6))):
            angle = float(rng.uniform(0, 2 * np.pi))
            length = float(rng.uniform(0.15, 0.4)) * size
            y2 = float(np.clip(y + length * np.sin(angle), 0, height - 1))
            x2 = float(np.clip(x + length * np.cos(angle), 0, width - 1))
            for t in np.linspace(0.0, 1.0, max(2, int(length / max(radius / 2, 0.5)) + 1)):
                cy, cx = y + t * (y2 - y), x + t * (x2 - x)
                hole |= (yy - cy) ** 2 + (xx - cx) ** 2 <= radius ** 2
            y, x = y2, x2
    if hole.all():
        hole[: height // 2] = False
    if not hole.any():
        hole[height // 2, width // 2] = True
    return (~hole).astype(np.float32)[None]


def eval_mask(kind: str, height: int, width: int, rng: np.random.Generator) -> np.ndarray:
    """A mask of one of ``EVAL_MASKS`` kinds (``rng`` draws the strokes)."""
    if kind in ("top", "bottom"):
        return half_mask(height, width, kind)
    if kind == "centre":
        return centre_mask(height, width)
    if kind == "strokes":
        return stroke_mask(rng, height, width)
    raise ValueError(f"unknown mask kind {kind!r}; choose from {', '.join(EVAL_MASKS)}")


def training_masks(rng: np.random.Generator, n: int, height: int, width: int) -> np.ndarray:
    """n masks (n, 1, H, W) for training: a mix of random rectangles, free-form strokes and
    half-image masks (each side), a third each."""
    out = np.empty((n, 1, height, width), dtype=np.float32)
    sides = ("top", "bottom", "left", "right")
    for i in range(n):
        pick = rng.random()
        if pick < 1 / 3:
            out[i] = rect_mask(rng, height, width)
        elif pick < 2 / 3:
            out[i] = stroke_mask(rng, height, width)
        else:
            out[i] = half_mask(height, width, sides[int(rng.integers(0, 4))])
    return out


# --- the iterative method ----------------------------------------------------------------------

Encode = Callable[[np.ndarray], Awaitable[tuple[np.ndarray, np.ndarray | None]]]
Decode = Callable[[np.ndarray], Awaitable[np.ndarray]]
Prior = Callable[[np.ndarray, np.ndarray], Awaitable[np.ndarray]]  # (noise, u) -> z
# Prior draws searched for each candidate's first filling when the model has a learned prior
# (docs/benchmarks/vae_quality.md measured 8 to 64: 16 completed the most digits right).
PRIOR_SEARCH = 16


def mode_first(manifest: Manifest) -> bool:
    """Whether a completion model's candidate 0 is its z = 0 filling (``FIRST_CANDIDATE_MODE``)."""
    return manifest.conventions.get("first_candidate") == FIRST_CANDIDATE_MODE


def candidate_noise(seeds: Sequence[int], latent_dim: int, shape: tuple[int, int, int],
                    value_range: tuple[float, float], search: int = 0) -> CandidateNoise:
    """Each candidate's noise from its seed: ``rng = numpy.random.default_rng(seed)``, then
    ``eps = rng.standard_normal(latent_dim)`` (the latent of the seed, as Generate draws it, untruncated)
    and ``fill = rng.uniform(lo, hi, shape)`` (its first filling of the hole); with ``search`` > 0
    (a model with a learned prior), then ``search`` times ``rng.standard_normal(latent_dim)`` and
    ``rng.random()``: the prior's inputs of the draws ``prior_fill`` searches."""
    k = len(seeds)
    eps = np.empty((k, latent_dim), dtype=np.float32)
    fill = np.empty((k, *shape), dtype=np.float32)
    noise = np.empty((k, search, latent_dim), dtype=np.float32)
    u = np.empty((k, search), dtype=np.float32)
    for i, seed in enumerate(seeds):
        rng = np.random.default_rng(int(seed))
        eps[i] = rng.standard_normal(latent_dim)
        fill[i] = rng.uniform(value_range[0], value_range[1], shape)
        for j in range(search):
            noise[i, j] = rng.standard_normal(latent_dim)
            u[i, j] = min(rng.random(), UNIFORM_MAX)
    return CandidateNoise(eps, fill, noise, u)


class CandidateNoise(NamedTuple):
    """What the iterative method draws per candidate (``candidate_noise``)."""

    eps: np.ndarray  # (K, latent_dim): the posterior noise of every round
    fill: np.ndarray  # (K, C, H, W): the first filling of the hole
    search_noise: np.ndarray  # (K, S, latent_dim) and
    search_u: np.ndarray  # (K, S): the prior's inputs of the S draws prior_fill searches (S may be 0)


async def prior_fill(prior: Prior, decode: Decode, image: np.ndarray, mask: np.ndarray, noise: np.ndarray,
                     u: np.ndarray) -> np.ndarray:
    """First fillings (K, C, H, W) for a model with a learned prior: each candidate's S prior draws
    (``noise`` (K, S, D), ``u`` (K, S)) decoded, and the one whose known pixels are nearest the
    image's (squared error; the first on ties) kept. The rounds then start from a whole plausible
    image that agrees with what is known, instead of noise."""
    k, s, d = noise.shape
    z = await prior(noise.reshape(k * s, d), u.reshape(k * s))
    drawn = (await decode(np.asarray(z, dtype=np.float32))).reshape(k, s, *image.shape)
    errors = (((drawn - image[None, None]) ** 2) * mask[None, None]).reshape(k, s, -1).sum(axis=2)
    return drawn[np.arange(k), errors.argmin(axis=1)].astype(np.float32)


async def iterative_complete(encode: Encode, decode: Decode, image: np.ndarray, mask: np.ndarray,
                             eps: np.ndarray, fill: np.ndarray, iterations: int) -> tuple[np.ndarray, np.ndarray]:
    """Complete ``image`` (C, H, W) under ``mask`` (1, H, W) once per row of ``eps``/``fill``.

    Each round encodes the current images, picks latents (a VAE's: its posterior mean plus its
    posterior spread times ``eps``, scaled from 1 on the first round down to 0 on the last), decodes
    them and puts the known pixels back. Returns (images (K, C, H, W), latents (K, latent_dim)), the
    latents being those the last round decoded.
    """
    if iterations < 1:
        raise ValueError(f"iterations must be >= 1, got {iterations}")
    x = composite(fill, image[None], mask[None])
    z = eps
    for t in range(iterations):
        mu, logvar = await encode(x)
        scale = 1.0 if iterations == 1 else (iterations - 1 - t) / (iterations - 1)
        z = mu if logvar is None or scale == 0.0 else mu + scale * np.exp(0.5 * logvar) * eps
        z = z.astype(np.float32)
        x = composite(await decode(z), image[None], mask[None])
    return x, z
