"""DCGAN generator and discriminator (Radford et al., 2016), sized from the image shape.

Generator: z -> ConvTranspose(base x base) -> [ConvTranspose 4/2/1 + BatchNorm + ReLU]* ->
ConvTranspose to C channels -> tanh, so images lie in [-1, 1].
Discriminator: strided Conv 4/2/1 + LeakyReLU(0.2) (BatchNorm after the first) -> one
logit from a base x base convolution.
"""

from __future__ import annotations

import torch
from torch import nn

from trainer.networks.sizing import plan_resolution


def dcgan_init(module: nn.Module) -> None:
    """DCGAN's initialisation: conv weights N(0, 0.02), BatchNorm weights N(1, 0.02)."""
    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
        nn.init.normal_(module.weight, 0.0, 0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.BatchNorm2d):
        nn.init.normal_(module.weight, 1.0, 0.02)
        nn.init.zeros_(module.bias)


class Generator(nn.Module):
    """z (N, latent_dim) -> image (N, C, H, W) in [-1, 1]."""

    def __init__(self, latent_dim: int, shape: tuple[int, int, int], width: int = 64) -> None:
        super().__init__()
        channels, size, _ = shape
        base, stages = plan_resolution(size)
        ch = width * 2 ** (stages - 1)
        layers: list[nn.Module] = [
            nn.ConvTranspose2d(latent_dim, ch, base, 1, 0, bias=False),
            nn.BatchNorm2d(ch),
            nn.ReLU(True),
        ]
        for _ in range(stages - 1):
            layers += [nn.ConvTranspose2d(ch, ch // 2, 4, 2, 1, bias=False), nn.BatchNorm2d(ch // 2), nn.ReLU(True)]
            ch //= 2
        layers += [nn.ConvTranspose2d(ch, channels, 4, 2, 1, bias=False), nn.Tanh()]
        self.net = nn.Sequential(*layers)
        self.latent_dim = latent_dim
        self.apply(dcgan_init)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z[:, :, None, None])


class Discriminator(nn.Module):
    """image (N, C, H, W) in [-1, 1] -> real/fake logit (N,)."""

    def __init__(self, shape: tuple[int, int, int], width: int = 64) -> None:
        super().__init__()
        channels, size, _ = shape
        base, stages = plan_resolution(size)
        ch = width
        layers: list[nn.Module] = [nn.Conv2d(channels, ch, 4, 2, 1, bias=False), nn.LeakyReLU(0.2, True)]
        for _ in range(stages - 1):
            layers += [nn.Conv2d(ch, ch * 2, 4, 2, 1, bias=False), nn.BatchNorm2d(ch * 2), nn.LeakyReLU(0.2, True)]
            ch *= 2
        layers += [nn.Conv2d(ch, 1, base, 1, 0, bias=False)]
        self.net = nn.Sequential(*layers)
        self.apply(dcgan_init)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).flatten()
