"""The style-transfer meter's two image measures: how much of the style an output took, and how
much of the content's structure it kept.

* **Style match.** Feature statistics (per-channel mean and standard deviation) of a network
  that training never sees: one layer of random filters at several scales (the texture model of
  Ustyuzhaninov et al. 2016/2017), another architecture and another seed than the training
  encoder's (``trainer.networks.style.RandomEncoder``), so an output cannot score by fitting
  the very features it was trained on. ``style_match`` is the share of the gap closed between
  the content image (0) and another crop of the style image (1): 1 means the output's texture
  statistics are as close to the style as the style's own other crop.
* **Content kept.** SSIM (Wang et al. 2004, an 11x11 Gaussian window of sigma 1.5) between the
  Sobel edge magnitudes of the content and of the output, in luminance, each scaled by its own
  99th percentile: 1 when every edge is where it was, whatever the colours and the contrast.

Images are float RGB in [0, 1], shaped (3, H, W) (NumPy) for one image.
"""

from __future__ import annotations

import numpy as np
import torch
from torch.nn import functional as F

METER_SEED = 20_170_101  # not a training seed: the meter's own filters
SCALES = (3, 5, 7, 11, 15, 23)  # filter sizes of the one random layer
FILTERS_PER_SCALE = 64


class TextureFeatures:
    """One layer of random filters at several scales, ReLU, with a fixed seed."""

    def __init__(self, seed: int = METER_SEED, scales: tuple[int, ...] = SCALES,
                 filters: int = FILTERS_PER_SCALE) -> None:
        generator = torch.Generator().manual_seed(seed)
        self.banks = []
        for size in scales:
            weight = torch.randn(filters, 3, size, size, generator=generator)
            weight -= weight.mean(dim=(1, 2, 3), keepdim=True)  # no response to flat colour alone
            weight /= weight.flatten(1).norm(dim=1)[:, None, None, None]
            self.banks.append(weight)

    @torch.no_grad()
    def statistics(self, image: np.ndarray) -> np.ndarray:
        """Per-filter mean and standard deviation of the ReLU responses, one vector."""
        x = torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32))[None] - 0.5
        out = []
        for weight in self.banks:
            pad = weight.shape[-1] // 2
            response = F.relu(F.conv2d(F.pad(x, (pad, pad, pad, pad), mode="reflect"), weight))
            out += [response.mean(dim=(2, 3)), response.std(dim=(2, 3))]
        return torch.cat(out, dim=1)[0].numpy().astype(np.float64)


def style_distance(features: TextureFeatures, a: np.ndarray, b: np.ndarray) -> float:
    """The distance between two images' texture statistics (Euclidean, per statistic)."""
    sa, sb = features.statistics(a), features.statistics(b)
    return float(np.sqrt(np.mean((sa - sb) ** 2)))


def style_match(features: TextureFeatures, content: np.ndarray, output: np.ndarray, style: np.ndarray,
                style_other: np.ndarray) -> float:
    """The share of the gap closed from the content (0) to another crop of the style (1)."""
    start = style_distance(features, content, style)
    floor = style_distance(features, style_other, style)
    gap = start - floor
    if gap <= 1e-12:
        raise ValueError("the content already matches the style as well as its own other crop; pick another pair")
    return (start - style_distance(features, output, style)) / gap


def luminance(image: np.ndarray) -> np.ndarray:
    """BT.601 luma of a (3, H, W) RGB image (a (H, W) image passes through)."""
    image = np.asarray(image, dtype=np.float64)
    if image.ndim == 2:
        return image
    return 0.299 * image[0] + 0.587 * image[1] + 0.114 * image[2]


def sobel_magnitude(gray: np.ndarray) -> np.ndarray:
    """The Sobel gradient magnitude of a (H, W) image, borders by reflection."""
    p = np.pad(gray, 1, mode="reflect")
    gx = (p[:-2, 2:] + 2 * p[1:-1, 2:] + p[2:, 2:]) - (p[:-2, :-2] + 2 * p[1:-1, :-2] + p[2:, :-2])
    gy = (p[2:, :-2] + 2 * p[2:, 1:-1] + p[2:, 2:]) - (p[:-2, :-2] + 2 * p[:-2, 1:-1] + p[:-2, 2:])
    return np.hypot(gx, gy)


def _gaussian_filter(image: np.ndarray, sigma: float = 1.5, radius: int = 5) -> np.ndarray:
    offsets = np.arange(-radius, radius + 1)
    kernel = np.exp(-(offsets ** 2) / (2 * sigma ** 2))
    kernel /= kernel.sum()
    p = np.pad(image, radius, mode="reflect")
    rows = sum(k * p[:, radius + o: p.shape[1] - radius + o] for k, o in zip(kernel, offsets))
    return sum(k * rows[radius + o: rows.shape[0] - radius + o, :] for k, o in zip(kernel, offsets))


def ssim(a: np.ndarray, b: np.ndarray, data_range: float | None = None) -> float:
    """Mean SSIM of two (H, W) images (Gaussian window, sigma 1.5, K1 0.01, K2 0.03)."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"SSIM needs images of one size, got {a.shape} and {b.shape}")
    if data_range is None:
        data_range = max(float(a.max() - a.min()), float(b.max() - b.min()), 1e-12)
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    mu_a, mu_b = _gaussian_filter(a), _gaussian_filter(b)
    var_a = _gaussian_filter(a * a) - mu_a ** 2
    var_b = _gaussian_filter(b * b) - mu_b ** 2
    cov = _gaussian_filter(a * b) - mu_a * mu_b
    index = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a ** 2 + mu_b ** 2 + c1) * (var_a + var_b + c2))
    return float(index.mean())


def _edge_map(image: np.ndarray) -> np.ndarray:
    """Sobel magnitude of the luminance, scaled by its own 99th percentile and clipped to [0, 1]:
    where the edges are, whatever the contrast a style gave them."""
    edges = sobel_magnitude(luminance(image))
    scale = float(np.percentile(edges, 99))
    return np.clip(edges / scale, 0.0, 1.0) if scale > 1e-12 else np.zeros_like(edges)


def content_kept(content: np.ndarray, output: np.ndarray) -> float:
    """SSIM between the edge maps of the content and the output (``_edge_map``)."""
    return ssim(_edge_map(content), _edge_map(output), data_range=1.0)


__all__ = ["TextureFeatures", "content_kept", "luminance", "sobel_magnitude", "ssim", "style_distance",
           "style_match"]
