"""Differentiable augmentation for GANs on small data (DiffAugment, Zhao et al. 2020).

With a few thousand real images the discriminator soon memorises them and its feedback to
the generator degrades. DiffAugment applies one policy of random transforms to real and
generated images alike before the discriminator sees them, in both the discriminator's and
the generator's step: D only ever sees augmented images, so it cannot tell real from fake by
the augmentation, and since every op is differentiable in its input the generator is trained
through it and still learns to draw un-augmented images.

Policies are comma-separated op names: ``color`` (brightness, contrast, and saturation for
RGB), ``translation`` (shift by up to 1/8 of the size, zero-filled), ``cutout`` (one square
of half the size zeroed). Images are in [-1, 1].
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from trainer.families.configs import augment_ops


def _color(x: torch.Tensor) -> torch.Tensor:
    n = x.shape[0]
    x = x + (torch.rand(n, 1, 1, 1, device=x.device, dtype=x.dtype) - 0.5)
    if x.shape[1] == 3:
        mean = x.mean(dim=1, keepdim=True)
        x = (x - mean) * (torch.rand(n, 1, 1, 1, device=x.device, dtype=x.dtype) * 2) + mean
    mean = x.mean(dim=[1, 2, 3], keepdim=True)
    return (x - mean) * (torch.rand(n, 1, 1, 1, device=x.device, dtype=x.dtype) + 0.5) + mean


def _translation(x: torch.Tensor, ratio: float = 0.125) -> torch.Tensor:
    n, _, h, w = x.shape
    sh, sw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    dy = torch.randint(-sh, sh + 1, (n, 1, 1), device=x.device)
    dx = torch.randint(-sw, sw + 1, (n, 1, 1), device=x.device)
    gy, gx = torch.meshgrid(torch.arange(h, device=x.device), torch.arange(w, device=x.device), indexing="ij")
    ys = torch.clamp(gy[None] + dy + 1, 0, h + 1)
    xs = torch.clamp(gx[None] + dx + 1, 0, w + 1)
    padded = F.pad(x, [1, 1, 1, 1])  # zero border: shifted-in pixels are 0 (mid-grey in [-1, 1])
    idx = torch.arange(n, device=x.device)[:, None, None]
    return padded.permute(0, 2, 3, 1)[idx, ys, xs].permute(0, 3, 1, 2).contiguous()


def _cutout(x: torch.Tensor, ratio: float = 0.5) -> torch.Tensor:
    n, _, h, w = x.shape
    ch, cw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    cy = torch.randint(0, h + (1 - ch % 2), (n, 1, 1), device=x.device)
    cx = torch.randint(0, w + (1 - cw % 2), (n, 1, 1), device=x.device)
    gy, gx = torch.meshgrid(torch.arange(ch, device=x.device), torch.arange(cw, device=x.device), indexing="ij")
    ys = torch.clamp(gy[None] + cy - ch // 2, 0, h - 1)
    xs = torch.clamp(gx[None] + cx - cw // 2, 0, w - 1)
    mask = torch.ones(n, h, w, device=x.device, dtype=x.dtype)
    mask[torch.arange(n, device=x.device)[:, None, None], ys, xs] = 0
    return x * mask[:, None]


OPS = {"color": _color, "translation": _translation, "cutout": _cutout}


def parse_policy(policy: str) -> tuple[str, ...]:
    """Op names of a policy string ("" or "none" = no augmentation); ValueError on unknown ops."""
    names = augment_ops(policy)
    unknown = [p for p in names if p not in OPS]
    if unknown:
        raise ValueError(f"unknown augmentation {', '.join(unknown)}; known: {', '.join(OPS)}")
    return names


def diff_augment(x: torch.Tensor, policy: tuple[str, ...]) -> torch.Tensor:
    """Apply the policy's ops in order, each with fresh random parameters per image (drawn
    from torch's global generator, so a resumed run draws the same ones)."""
    for name in policy:
        x = OPS[name](x)
    return x
