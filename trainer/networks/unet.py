"""U-Net completion generator: (masked image, mask, z) -> image, sized from the image shape.

An encoder of strided 4x4 convolutions halves the image down to its base resolution (28 ->
14 -> 7, 64 -> 32 -> 16 -> 8 -> 4; see trainer.networks.sizing), a decoder of transposed
convolutions doubles it back, and each decoder stage reads the encoder's features of its
resolution beside its own (skip connections, Ronneberger et al. 2015): the known pixels
reach the output through the skips, the bottleneck carries what the hole should hold.

The latent z enters where the network decides what to draw:

* ``bottleneck``: z projected to a few base x base feature planes, concatenated to the
  bottleneck features before the decoder.
* ``film``: also a per-channel scale and shift from z at every decoder stage (feature-wise
  linear modulation, Perez et al. 2018), so z reaches the fine scales near the output too.

The input is the image with its hole zeroed and the mask as one more plane (1 = known,
0 = hole); the output is the full image in [0, 1] (sigmoid). Compositing the known pixels
back is the caller's job (the family's `complete`, and the exported graph).
"""

from __future__ import annotations

import torch
from torch import nn

from trainer.families.configs import Z_INJECTIONS
from trainer.networks.dcgan import dcgan_init
from trainer.networks.sizing import plan_resolution

MAX_WIDTH_FACTOR = 8  # channels stop doubling at 8x the base width
Z_PLANES = 8  # feature planes z is projected to at the bottleneck


class _Up(nn.Module):
    """Double the resolution, read the encoder's skip features, optionally modulated by z."""

    def __init__(self, ch_in: int, ch_skip: int, ch_out: int, latent_dim: int, film: bool) -> None:
        super().__init__()
        self.up = nn.Sequential(nn.ConvTranspose2d(ch_in, ch_out, 4, 2, 1, bias=False), nn.BatchNorm2d(ch_out),
                                nn.ReLU(True))
        self.merge = nn.Sequential(nn.Conv2d(ch_out + ch_skip, ch_out, 3, 1, 1, bias=False), nn.BatchNorm2d(ch_out),
                                   nn.ReLU(True))
        self.film = nn.Linear(latent_dim, 2 * ch_out) if film else None
        if self.film is not None:  # starts as the identity: scale 1, shift 0
            nn.init.normal_(self.film.weight, 0.0, 0.02)
            nn.init.zeros_(self.film.bias)

    def forward(self, x: torch.Tensor, skip: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        x = self.merge(torch.cat([self.up(x), skip], dim=1))
        if self.film is not None:
            scale, shift = self.film(z)[:, :, None, None].chunk(2, dim=1)
            x = x * (1.0 + scale) + shift
        return x


class CompletionUNet(nn.Module):
    """(image with its hole zeroed (N, C, H, W), mask (N, 1, H, W), z (N, latent_dim)) -> image
    (N, C, H, W) in [0, 1] over the whole frame."""

    def __init__(self, latent_dim: int, shape: tuple[int, int, int], width: int = 32,
                 z_inject: str = "bottleneck") -> None:
        super().__init__()
        if z_inject not in Z_INJECTIONS:
            raise ValueError(f"unknown z injection {z_inject!r}; choose from {', '.join(Z_INJECTIONS)}")
        channels, size, _ = shape
        base, stages = plan_resolution(size)
        widths = [width * min(2 ** i, MAX_WIDTH_FACTOR) for i in range(stages + 1)]  # per resolution, fine -> coarse
        self.stem = nn.Sequential(nn.Conv2d(channels + 1, widths[0], 3, 1, 1), nn.LeakyReLU(0.2, True))
        self.down = nn.ModuleList(
            nn.Sequential(nn.Conv2d(widths[i], widths[i + 1], 4, 2, 1, bias=False), nn.BatchNorm2d(widths[i + 1]),
                          nn.LeakyReLU(0.2, True))
            for i in range(stages)
        )
        self.base = base
        self.z_proj = nn.Linear(latent_dim, Z_PLANES * base * base)
        deepest = widths[stages]
        self.bottleneck = nn.Sequential(nn.Conv2d(deepest + Z_PLANES, deepest, 3, 1, 1, bias=False),
                                        nn.BatchNorm2d(deepest), nn.ReLU(True))
        film = z_inject == "film"
        self.up = nn.ModuleList(_Up(widths[i + 1], widths[i], widths[i], latent_dim, film)
                                for i in reversed(range(stages)))
        self.head = nn.Conv2d(widths[0], channels, 3, 1, 1)
        self.latent_dim = latent_dim
        self.apply(dcgan_init)  # DCGAN's: conv weights N(0, 0.02), BatchNorm scales N(1, 0.02)

    def forward(self, masked: torch.Tensor, mask: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        x = self.stem(torch.cat([masked, mask], dim=1))
        skips = [x]
        for layer in self.down:
            x = layer(x)
            skips.append(x)
        skips.pop()  # the deepest features go on through the bottleneck, not as a skip
        planes = self.z_proj(z).view(-1, Z_PLANES, self.base, self.base)
        x = self.bottleneck(torch.cat([x, planes], dim=1))
        for layer in self.up:
            x = layer(x, skips.pop(), z)
        return torch.sigmoid(self.head(x))


class CompletionGraph(nn.Module):
    """What the exporter exports: (image in [0, 1], mask, z) -> the image with its known pixels
    kept exactly and its hole filled by the generator."""

    def __init__(self, generator: CompletionUNet) -> None:
        super().__init__()
        self.generator = generator

    def forward(self, image: torch.Tensor, mask: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        generated = self.generator(image * mask, mask, z)
        return mask * image + (1.0 - mask) * generated
