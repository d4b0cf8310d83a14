"""Convolutional VAE: encoder image -> (mu, logvar), decoder z [+ label] -> pixel logits.

The decoder returns logits; the family applies the sigmoid (and the exporter bakes it in),
so Bernoulli (BCE-with-logits) and Gaussian (squared error on the sigmoid) reconstruction
share one network and the exported decoder always yields images in [0, 1].

A class-conditional decoder (``num_classes > 0``) embeds the label and feeds it beside z to
its first layer. The encoder stays unconditional: the image already shows its class, so
q(z|x) can keep to what the label does not say (the KL term makes coding the class in z a
cost the decoder's free label avoids), and encoding needs no label.
"""

from __future__ import annotations

import torch
from torch import nn

from trainer.networks.sizing import plan_resolution

LABEL_EMBEDDING = 32  # size of a conditional decoder's label embedding


def conv_features(channels: int, size: int, width: int) -> tuple[nn.Sequential, int]:
    """Strided 4x4 convolutions down to the base resolution, flattened; returns (net, its output size)."""
    base, stages = plan_resolution(size)
    layers: list[nn.Module] = []
    ch_in, ch = channels, width
    for _ in range(stages):
        layers += [nn.Conv2d(ch_in, ch, 4, 2, 1), nn.LeakyReLU(0.2, True)]
        ch_in, ch = ch, ch * 2
    return nn.Sequential(*layers, nn.Flatten()), ch_in * base * base


class Encoder(nn.Module):
    """image (N, C, H, W) in [0, 1] -> mu, logvar (N, latent_dim)."""

    def __init__(self, latent_dim: int, shape: tuple[int, int, int], width: int = 32) -> None:
        super().__init__()
        channels, size, _ = shape
        self.features, flat = conv_features(channels, size, width)
        self.head = nn.Linear(flat, 2 * latent_dim)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mu, logvar = self.head(self.features(x)).chunk(2, dim=1)
        return mu, logvar


class Decoder(nn.Module):
    """z (N, latent_dim) [+ labels int64 (N,) when num_classes > 0] -> pixel logits (N, C, H, W)."""

    def __init__(self, latent_dim: int, shape: tuple[int, int, int], width: int = 32, num_classes: int = 0) -> None:
        super().__init__()
        channels, size, _ = shape
        base, stages = plan_resolution(size)
        ch = width * 2 ** (stages - 1)
        self.base, self.ch = base, ch
        self.num_classes = num_classes
        if num_classes > 0:
            self.embed = nn.Embedding(num_classes, LABEL_EMBEDDING)
        extra = LABEL_EMBEDDING if num_classes > 0 else 0
        self.fc = nn.Sequential(nn.Linear(latent_dim + extra, ch * base * base), nn.ReLU(True))
        layers: list[nn.Module] = []
        for _ in range(stages - 1):
            layers += [nn.ConvTranspose2d(ch, ch // 2, 4, 2, 1), nn.ReLU(True)]
            ch //= 2
        layers += [nn.ConvTranspose2d(ch, channels, 4, 2, 1)]
        self.net = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        if self.num_classes > 0:
            if labels is None:
                raise ValueError("a conditional decoder needs labels beside z")
            z = torch.cat([z, self.embed(labels)], dim=1)
        return self.net(self.fc(z).view(-1, self.ch, self.base, self.base))


class ConvVAE(nn.Module):
    """Encoder + decoder in one module, so one forward covers a training step (DDP-friendly)."""

    def __init__(self, latent_dim: int, shape: tuple[int, int, int], width: int = 32, num_classes: int = 0) -> None:
        super().__init__()
        self.encoder = Encoder(latent_dim, shape, width)
        self.decoder = Decoder(latent_dim, shape, width, num_classes)
        self.latent_dim = latent_dim

    def forward(self, x: torch.Tensor, eps: torch.Tensor,
                labels: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Reparameterised pass: returns (logits, mu, logvar) with z = mu + eps * sigma."""
        mu, logvar = self.encoder(x)
        z = mu + eps * torch.exp(0.5 * logvar)
        return self.decoder(z, labels), mu, logvar


class ImageDecoder(nn.Module):
    """What the exporter writes: z [+ labels] -> image in [0, 1] (the sigmoid of the logits)."""

    def __init__(self, decoder: Decoder) -> None:
        super().__init__()
        self.decoder = decoder

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        return torch.sigmoid(self.decoder(z, labels))
