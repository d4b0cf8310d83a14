"""Sample and reconstruction grids as PNG files, drawn with the same tiling the service uses."""

from __future__ import annotations

import math
from pathlib import Path

import torch

from latentforge.images import tile


def save_grid(images: torch.Tensor, path: Path, columns: int | None = None) -> Path:
    """Write images (N, C, H, W) in [0, 1] as one grid PNG, atomically (temp file + rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    arrays = list(images.detach().cpu().float().numpy())
    tmp = path.with_name(f".{path.name}.tmp")
    tile(arrays, columns or math.ceil(math.sqrt(len(arrays))), (0.0, 1.0)).save(tmp, format="PNG")
    tmp.replace(path)
    return path
