"""The one-style transformer network (Johnson, Alahi & Fei-Fei 2016), at half width, with the
changes later work found better: instance normalisation (Ulyanov et al. 2016) instead of batch
normalisation, reflection padding, and nearest-neighbour upsampling followed by a convolution
instead of transposed convolutions (no checkerboard artefacts, Odena et al. 2016).

``FixedStylizer`` is what is exported and served: content, ``alpha`` and a mask to the stylised
image for any height and width (padded by reflection to the network's stride inside the graph,
cropped back), alpha and mask applied as blends in pixel space.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

STRIDE = 4  # two stride-2 downsamplings


def _conv(cin: int, cout: int, kernel: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, kernel, stride=stride, padding=kernel // 2, padding_mode="reflect")


def _block(cin: int, cout: int, kernel: int, stride: int = 1) -> list[nn.Module]:
    return [_conv(cin, cout, kernel, stride), nn.InstanceNorm2d(cout, affine=True), nn.ReLU()]


class Residual(nn.Module):
    """Two 3x3 convolutions with instance normalisation, added to the input."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(*_block(channels, channels, 3), _conv(channels, channels, 3),
                                  nn.InstanceNorm2d(channels, affine=True))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class TransformerNet(nn.Module):
    """Image (N, 3, H, W) in [0, 1], H and W multiples of STRIDE, to an image in [0, 1] (sigmoid).
    Johnson et al.'s layout: 9x9 conv at ``width``, two stride-2 convs (2x, 4x width), ``blocks``
    residual blocks, two upsamplings, 9x9 conv to RGB."""

    def __init__(self, width: int = 16, blocks: int = 5) -> None:
        super().__init__()
        w1, w2, w3 = width, 2 * width, 4 * width
        self.net = nn.Sequential(
            *_block(3, w1, 9), *_block(w1, w2, 3, 2), *_block(w2, w3, 3, 2),
            *(Residual(w3) for _ in range(blocks)),
            nn.Upsample(scale_factor=2, mode="nearest"), *_block(w3, w2, 3),
            nn.Upsample(scale_factor=2, mode="nearest"), *_block(w2, w1, 3),
            _conv(w1, 3, 9),
        )

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.net(image - 0.5))


class FixedStylizer(nn.Module):
    """The exported one-style graph: content (N, 3, H, W) in [0, 1], ``alpha`` (N,) in [0, 1] and a
    mask (N, 1, H, W), 1 where to stylise, to ``alpha * stylised + (1 - alpha) * content`` where the
    mask is set and the content elsewhere, clamped to [0, 1]. Any H and W (>= 8)."""

    def __init__(self, net: TransformerNet) -> None:
        super().__init__()
        self.net = net

    def forward(self, content: torch.Tensor, alpha: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return fixed_stylize(self.net, content, alpha, mask)


def pad_to_stride(image: torch.Tensor, stride: int = STRIDE) -> torch.Tensor:
    """The image padded by reflection at the bottom and right to multiples of ``stride``."""
    height, width = image.shape[-2], image.shape[-1]
    pad_h = (stride - height % stride) % stride
    pad_w = (stride - width % stride) % stride
    return F.pad(image, (0, pad_w, 0, pad_h), mode="reflect")


def fixed_stylize(net: nn.Module, content: torch.Tensor, alpha: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The one-style network on any size, with alpha and mask blended in pixel space (see FixedStylizer)."""
    height, width = content.shape[-2], content.shape[-1]
    stylised = net(pad_to_stride(content))[..., :height, :width]
    a = alpha.reshape(-1, 1, 1, 1)
    image = a * stylised + (1 - a) * content
    return (mask * image + (1 - mask) * content).clamp(0.0, 1.0)


__all__ = ["STRIDE", "FixedStylizer", "Residual", "TransformerNet", "fixed_stylize", "pad_to_stride"]
