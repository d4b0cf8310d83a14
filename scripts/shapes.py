"""A small colour image set made on the spot: coloured shapes on coloured grounds, one subfolder
per shape, so that a colour model can be trained (and its quality measured by class) with no
download.

    python -m scripts.shapes OUT_DIR [--per-class 500] [--size 64] [--seed 0]

Each image holds one shape (circle, cross, ring, square, triangle) of random size, position
and colour on a background of another colour with a soft vertical gradient; shapes are drawn
at four times the size and reduced, so their edges are smooth.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

SHAPES = ("circle", "cross", "ring", "square", "triangle")  # sorted: a folder's classes are its sorted subfolders
_SUPERSAMPLE = 4


def _colour(rng: np.random.Generator) -> np.ndarray:
    """A saturated colour: a random hue at high value, as RGB in [0, 255]."""
    hue = rng.uniform(0, 1)
    rgb = np.array([abs(hue * 6 - 3) - 1, 2 - abs(hue * 6 - 2), 2 - abs(hue * 6 - 4)]).clip(0, 1)
    saturation, value = rng.uniform(0.6, 1.0), rng.uniform(0.7, 1.0)
    return (value * (1 - saturation + saturation * rgb) * 255).round()


def _ground(rng: np.random.Generator, size: int, fg: np.ndarray) -> np.ndarray:
    """A background far from the shape's colour (darker, another hue), with a vertical gradient."""
    while True:
        bg = _colour(rng) * rng.uniform(0.15, 0.5)
        if np.abs(bg - fg).sum() > 200:
            break
    ramp = np.linspace(0.8, 1.2, size)[:, None, None]
    return np.clip(bg[None, None, :] * ramp, 0, 255) * np.ones((size, size, 3))


def draw(shape: str, rng: np.random.Generator, size: int = 64) -> Image.Image:
    """One image of `shape`: random colour, size, position (and rotation for the triangle)."""
    big = size * _SUPERSAMPLE
    fg = _colour(rng)
    canvas = Image.fromarray(_ground(rng, big, fg).astype(np.uint8), "RGB")
    pen = ImageDraw.Draw(canvas)
    r = rng.uniform(0.22, 0.36) * big
    cx, cy = (rng.uniform(r + 0.04 * big, big - r - 0.04 * big) for _ in range(2))
    fill = tuple(int(c) for c in fg)
    if shape == "circle":
        pen.ellipse([cx - r, cy - r, cx + r, cy + r], fill=fill)
    elif shape == "square":
        s = r * 0.85
        pen.rectangle([cx - s, cy - s, cx + s, cy + s], fill=fill)
    elif shape == "triangle":
        turn = rng.uniform(0, 2 * math.pi)
        pen.polygon([(cx + r * math.cos(turn + k * 2 * math.pi / 3), cy + r * math.sin(turn + k * 2 * math.pi / 3))
                     for k in range(3)], fill=fill)
    elif shape == "ring":
        pen.ellipse([cx - r, cy - r, cx + r, cy + r], outline=fill, width=int(r * 0.35))
    elif shape == "cross":
        w = r * 0.3
        pen.rectangle([cx - r, cy - w, cx + r, cy + w], fill=fill)
        pen.rectangle([cx - w, cy - r, cx + w, cy + r], fill=fill)
    else:
        raise ValueError(f"unknown shape {shape!r}; known: {', '.join(SHAPES)}")
    return canvas.resize((size, size), Image.Resampling.LANCZOS)


def write(out: Path, per_class: int = 500, size: int = 64, seed: int = 0) -> Path:
    """Write `per_class` PNGs of each shape under out/<shape>/; returns out."""
    rng = np.random.default_rng(seed)
    for shape in SHAPES:
        folder = out / shape
        folder.mkdir(parents=True, exist_ok=True)
        for k in range(per_class):
            draw(shape, rng, size).save(folder / f"{k:05d}.png")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", type=Path)
    parser.add_argument("--per-class", type=int, default=500)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    write(args.out, args.per_class, args.size, args.seed)
    print(f"wrote {args.per_class * len(SHAPES)} images of {', '.join(SHAPES)} under {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
