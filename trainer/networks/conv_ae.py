"""Convolutional autoencoder: encoder image -> code z, decoder z -> pixel logits.

The same convolution stacks as the VAE's (trainer.networks.conv_vae), with a deterministic
code instead of a posterior. The module also tracks the mean and spread of the codes it
produces in training (buffers, saved with the weights): the autoencoder has no prior, so
training grids decode latents drawn from that fitted Gaussian rather than from N(0, I).
"""

from __future__ import annotations

import torch
from torch import nn

from trainer.networks.conv_vae import Decoder, conv_features

CODE_MOMENTUM = 0.01  # weight of the newest batch in the running code statistics


class CodeEncoder(nn.Module):
    """image (N, C, H, W) in [0, 1] -> code (N, latent_dim)."""

    def __init__(self, latent_dim: int, shape: tuple[int, int, int], width: int = 32) -> None:
        super().__init__()
        channels, size, _ = shape
        self.features, flat = conv_features(channels, size, width)
        self.head = nn.Linear(flat, latent_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


class ConvAE(nn.Module):
    """Encoder + decoder in one module (one forward per training step, DDP-friendly)."""

    def __init__(self, latent_dim: int, shape: tuple[int, int, int], width: int = 32) -> None:
        super().__init__()
        self.encoder = CodeEncoder(latent_dim, shape, width)
        self.decoder = Decoder(latent_dim, shape, width)
        self.latent_dim = latent_dim
        self.register_buffer("code_mean", torch.zeros(latent_dim))
        self.register_buffer("code_std", torch.ones(latent_dim))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Returns (logits, code); in training mode, folds the batch's codes into the running statistics."""
        code = self.encoder(x)
        if self.training and code.shape[0] > 1:
            with torch.no_grad():
                self.code_mean.lerp_(code.mean(0), CODE_MOMENTUM)
                self.code_std.lerp_(code.std(0), CODE_MOMENTUM)
        return self.decoder(code), code
