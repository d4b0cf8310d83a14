"""One training batch, as a family's `train_step` receives it."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch


@dataclass
class Batch:
    """The fields the data source fills, on the training device; the others are None.

    images: float32 (B, C, H, W) in [0, 1]; labels: int64 (B,); masks: float32 (B, 1, H, W),
    1 = known pixel; strokes: float32 (B, T, 5); lengths: int64 (B,).
    """

    images: torch.Tensor | None = None
    labels: torch.Tensor | None = None
    masks: torch.Tensor | None = None
    strokes: torch.Tensor | None = None
    lengths: torch.Tensor | None = None

    def __len__(self) -> int:
        for f in fields(self):
            value = getattr(self, f.name)
            if value is not None:
                return int(value.shape[0])
        return 0
