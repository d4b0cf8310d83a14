"""Convolutional VAE: encoder image -> (mu, logvar), decoder z -> pixel logits.

The decoder returns logits; the family applies the sigmoid (and the exporter bakes it in),
so Bernoulli (BCE-with-logits) and Gaussian (MSE on the sigmoid) reconstruction share one
network and the exported decoder always yields images in [0, 1].
"""

from __future__ import annotations

import torch
from torch import nn

from trainer.networks.sizing import plan_resolution


class Encoder(nn.Module):
    """image (N, C, H, W) in [0, 1] -> mu, logvar (N, latent_dim)."""

    def __init__(self, latent_dim: int, shape: tuple[int, int, int], width: int = 32) -> None:
        super().__init__()
        channels, size, _ = shape
        base, stages = plan_resolution(size)
        layers: list[nn.Module] = []
        ch_in, ch = channels, width
        for _ in range(stages):
            layers += [nn.Conv2d(ch_in, ch, 4, 2, 1), nn.LeakyReLU(0.2, True)]
            ch_in, ch = ch, ch * 2
        self.features = nn.Sequential(*layers, nn.Flatten())
        self.head = nn.Linear(ch_in * base * base, 2 * latent_dim)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mu, logvar = self.head(self.features(x)).chunk(2, dim=1)
        return mu, logvar


class Decoder(nn.Module):
    """z (N, latent_dim) -> pixel logits (N, C, H, W)."""

    def __init__(self, latent_dim: int, shape: tuple[int, int, int], width: int = 32) -> None:
        super().__init__()
        channels, size, _ = shape
        base, stages = plan_resolution(size)
        ch = width * 2 ** (stages - 1)
        self.base, self.ch = base, ch
        self.fc = nn.Sequential(nn.Linear(latent_dim, ch * base * base), nn.ReLU(True))
        layers: list[nn.Module] = []
        for _ in range(stages - 1):
            layers += [nn.ConvTranspose2d(ch, ch // 2, 4, 2, 1), nn.ReLU(True)]
            ch //= 2
        layers += [nn.ConvTranspose2d(ch, channels, 4, 2, 1)]
        self.net = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(self.fc(z).view(-1, self.ch, self.base, self.base))


class ConvVAE(nn.Module):
    """Encoder + decoder in one module, so one forward covers a training step (DDP-friendly)."""

    def __init__(self, latent_dim: int, shape: tuple[int, int, int], width: int = 32) -> None:
        super().__init__()
        self.encoder = Encoder(latent_dim, shape, width)
        self.decoder = Decoder(latent_dim, shape, width)
        self.latent_dim = latent_dim

    def forward(self, x: torch.Tensor, eps: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Reparameterised pass: returns (logits, mu, logvar) with z = mu + eps * sigma."""
        mu, logvar = self.encoder(x)
        z = mu + eps * torch.exp(0.5 * logvar)
        return self.decoder(z), mu, logvar
