"""DCGAN generator and discriminator (Radford et al., 2016), sized from the image shape.

Generator: z -> ConvTranspose(base x base) -> [ConvTranspose 4/2/1 + BatchNorm + ReLU]* ->
ConvTranspose to C channels -> tanh, so images lie in [-1, 1].
Discriminator: strided Conv 4/2/1 + LeakyReLU(0.2) (BatchNorm after the first) -> one
logit from a base x base convolution.

Options, each off by default so that the plain networks (and their checkpoints) stay as they
were:

* ``spectral_norm`` (discriminator): every layer's weight divided by its largest singular
  value (Miyato et al. 2018), which bounds D's Lipschitz constant; it replaces D's BatchNorm,
  and the convolutions get biases since nothing normalises after them.
* ``num_classes > 0`` (class-conditional): the generator adds a learned per-class vector to z
  and its BatchNorm layers take a per-class scale and shift (conditional batch norm, de Vries
  et al. 2017; Miyato & Koyama 2018); the discriminator sees the label as one-hot input
  planes beside the image and adds a projection term, ``<embed(y), sum-pooled features>``, to
  its logit (projection discriminator, Miyato & Koyama 2018). With the projection alone, or
  conditional batch norm alone, the label's effect starts near zero and, in a few thousand
  steps on mnist5k, samples followed their label little better than chance; the label at
  both ends' inputs makes it count from the first step (docs/benchmarks/quality.md).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm as _spectral_norm

from trainer.networks.sizing import plan_resolution

# The initial scale of the generator's per-class offset of z (z ~ N(0, 1)). At 1.0 the class
# swamped z and each class collapsed to a few images within 500 steps (recall 0 on mnist5k);
# at 0.3 samples follow their label and keep their variety (docs/benchmarks/quality.md).
LABEL_EMBED_STD = 0.3


def dcgan_init(module: nn.Module) -> None:
    """DCGAN's initialisation: conv weights N(0, 0.02), BatchNorm weights N(1, 0.02)."""
    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
        nn.init.normal_(module.weight, 0.0, 0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.BatchNorm2d) and module.affine:
        nn.init.normal_(module.weight, 1.0, 0.02)
        nn.init.zeros_(module.bias)


class ConditionalBatchNorm2d(nn.Module):
    """BatchNorm without its own affine, followed by a scale and shift looked up per class."""

    def __init__(self, channels: int, num_classes: int) -> None:
        super().__init__()
        self.norm = nn.BatchNorm2d(channels, affine=False)
        self.scale = nn.Embedding(num_classes, channels)
        self.shift = nn.Embedding(num_classes, channels)
        nn.init.normal_(self.scale.weight, 1.0, 0.02)
        nn.init.zeros_(self.shift.weight)

    def forward(self, x: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return self.norm(x) * self.scale(labels)[:, :, None, None] + self.shift(labels)[:, :, None, None]


class Generator(nn.Module):
    """z (N, latent_dim) [+ labels (N,) int64 when num_classes > 0] -> image (N, C, H, W) in [-1, 1]."""

    def __init__(self, latent_dim: int, shape: tuple[int, int, int], width: int = 64, num_classes: int = 0) -> None:
        super().__init__()
        channels, size, _ = shape
        base, stages = plan_resolution(size)
        ch = width * 2 ** (stages - 1)

        def norm(c: int) -> nn.Module:
            return ConditionalBatchNorm2d(c, num_classes) if num_classes > 0 else nn.BatchNorm2d(c)

        layers: list[nn.Module] = [
            nn.ConvTranspose2d(latent_dim, ch, base, 1, 0, bias=False),
            norm(ch),
            nn.ReLU(True),
        ]
        for _ in range(stages - 1):
            layers += [nn.ConvTranspose2d(ch, ch // 2, 4, 2, 1, bias=False), norm(ch // 2), nn.ReLU(True)]
            ch //= 2
        layers += [nn.ConvTranspose2d(ch, channels, 4, 2, 1, bias=False), nn.Tanh()]
        self.net = nn.Sequential(*layers)
        self.latent_dim = latent_dim
        self.num_classes = num_classes
        self.apply(dcgan_init)
        if num_classes > 0:  # a per-class offset of z
            self.label_embed = nn.Embedding(num_classes, latent_dim)
            nn.init.normal_(self.label_embed.weight, 0.0, LABEL_EMBED_STD)

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        x = z[:, :, None, None]
        if self.num_classes == 0:
            return self.net(x)
        if labels is None:
            raise ValueError("a conditional generator needs labels")
        x = x + self.label_embed(labels)[:, :, None, None]
        for layer in self.net:
            x = layer(x, labels) if isinstance(layer, ConditionalBatchNorm2d) else layer(x)
        return x


class Discriminator(nn.Module):
    """image (N, C, H, W) in [-1, 1] [+ labels (N,) int64 when num_classes > 0] -> real/fake logit (N,)."""

    def __init__(self, shape: tuple[int, int, int], width: int = 64, spectral_norm: bool = False,
                 num_classes: int = 0) -> None:
        super().__init__()
        channels, size, _ = shape
        base, stages = plan_resolution(size)
        bias = spectral_norm  # with no BatchNorm after a convolution, it needs its own bias
        ch = width
        inputs = channels + num_classes  # a conditional D reads the label as one-hot planes
        layers: list[nn.Module] = [nn.Conv2d(inputs, ch, 4, 2, 1, bias=bias), nn.LeakyReLU(0.2, True)]
        for _ in range(stages - 1):
            layers.append(nn.Conv2d(ch, ch * 2, 4, 2, 1, bias=bias))
            if not spectral_norm:
                layers.append(nn.BatchNorm2d(ch * 2))
            layers.append(nn.LeakyReLU(0.2, True))
            ch *= 2
        layers.append(nn.Conv2d(ch, 1, base, 1, 0, bias=bias))
        self.net = nn.Sequential(*layers)
        self.num_classes = num_classes
        if num_classes > 0:
            self.embed = nn.Embedding(num_classes, ch)
            nn.init.normal_(self.embed.weight, 0.0, 0.02)
        self.apply(dcgan_init)
        if spectral_norm:  # after the initialisation: the parametrisation computes `weight` from it
            for layer in [*self.net, getattr(self, "embed", None)]:
                if isinstance(layer, (nn.Conv2d, nn.Embedding)):
                    _spectral_norm(layer)

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        if self.num_classes == 0:
            return self.net(x).flatten()
        if labels is None:
            raise ValueError("a conditional discriminator needs labels")
        planes = nn.functional.one_hot(labels, self.num_classes).to(x.dtype)[:, :, None, None]
        x = torch.cat([x, planes.expand(-1, -1, *x.shape[2:])], dim=1)
        features = self.net[:-1](x)
        logit = self.net[-1](features).flatten()
        return logit + (self.embed(labels) * features.sum(dim=(2, 3))).sum(dim=1)
