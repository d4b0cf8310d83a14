"""Image grids as PNG files (Pillow), for samples and reconstructions."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
from PIL import Image


def to_grid(images: torch.Tensor, columns: int | None = None, pad: int = 2) -> Image.Image:
    """Tile images (N, C, H, W) in [0, 1] into one picture, `columns` per row (default square)."""
    arr = (images.detach().cpu().clamp(0, 1).numpy() * 255.0 + 0.5).astype(np.uint8)
    n, c, h, w = arr.shape
    cols = columns or math.ceil(math.sqrt(n))
    rows = math.ceil(n / cols)
    canvas = np.full((rows * (h + pad) + pad, cols * (w + pad) + pad, c), 255, np.uint8)
    for i in range(n):
        r, k = divmod(i, cols)
        y, x = pad + r * (h + pad), pad + k * (w + pad)
        canvas[y : y + h, x : x + w] = arr[i].transpose(1, 2, 0)
    return Image.fromarray(canvas[..., 0] if c == 1 else canvas, mode="L" if c == 1 else "RGB")


def save_grid(images: torch.Tensor, path: Path, columns: int | None = None) -> Path:
    """Write a grid PNG atomically (temp file + rename) so readers never see half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    to_grid(images, columns).save(tmp, format="PNG")
    tmp.replace(path)
    return path
