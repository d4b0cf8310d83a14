"""Colour operations on float RGB images in [0, 1], shaped (3, H, W), in NumPy (no torch): what the
style-transfer service does to a result (keep the content's colours) and what the style meter
compares against (a classical colour transfer).

* ``preserve_color(content, stylized)``: the stylised image's luminance with the content's
  chrominance (YCbCr, BT.601), the "luminance-only transfer" of Gatys et al. 2016 (Preserving
  colour in neural artistic style transfer): strokes and texture from the style, colours from
  the content.
* ``reinhard_transfer(content, style)``: Reinhard, Ashikhmin, Gooch & Shirley 2001 (Color
  transfer between images): each channel of the content in the decorrelated l-alpha-beta space
  shifted and scaled to the style's mean and standard deviation. The baseline a learned
  stylisation must beat on style match.
"""

from __future__ import annotations

import numpy as np

# BT.601 full-range RGB <-> YCbCr (JPEG's), on [0, 1] values.
_YCBCR = np.array([[0.299, 0.587, 0.114],
                   [-0.168736, -0.331264, 0.5],
                   [0.5, -0.418688, -0.081312]], dtype=np.float64)
_YCBCR_INV = np.linalg.inv(_YCBCR)

# Reinhard et al. 2001: RGB -> LMS cone space, then log10, then l-alpha-beta.
_RGB2LMS = np.array([[0.3811, 0.5783, 0.0402],
                     [0.1967, 0.7244, 0.0782],
                     [0.0241, 0.1288, 0.8444]], dtype=np.float64)
_LMS2LAB = np.diag([1 / np.sqrt(3), 1 / np.sqrt(6), 1 / np.sqrt(2)]) @ np.array(
    [[1, 1, 1], [1, 1, -2], [1, -1, 0]], dtype=np.float64)
_EPS = 1e-6


def _check_rgb(image: np.ndarray, what: str) -> np.ndarray:
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[0] != 3:
        raise ValueError(f"{what} must be an RGB image shaped (3, H, W), got {image.shape}")
    return image.astype(np.float64, copy=False)


def _apply(matrix: np.ndarray, image: np.ndarray) -> np.ndarray:
    """A 3x3 colour matrix applied to every pixel of a (3, H, W) image."""
    return np.tensordot(matrix, image, axes=([1], [0]))


def rgb_to_ycbcr(image: np.ndarray) -> np.ndarray:
    """(3, H, W) RGB in [0, 1] to Y in [0, 1] and Cb, Cr centred on 0."""
    return _apply(_YCBCR, _check_rgb(image, "image"))


def ycbcr_to_rgb(image: np.ndarray) -> np.ndarray:
    return _apply(_YCBCR_INV, np.asarray(image, dtype=np.float64))


def preserve_color(content: np.ndarray, stylized: np.ndarray) -> np.ndarray:
    """The stylised image's luminance (Y) with the content's colour (Cb, Cr), clipped to [0, 1],
    float32. Both images are (3, H, W) RGB of the same size."""
    content = _check_rgb(content, "the content image")
    stylized = _check_rgb(stylized, "the stylised image")
    if content.shape != stylized.shape:
        raise ValueError(f"the content {content.shape} and the stylised image {stylized.shape} differ in size")
    mixed = rgb_to_ycbcr(content)
    mixed[0] = rgb_to_ycbcr(stylized)[0]
    return np.clip(ycbcr_to_rgb(mixed), 0.0, 1.0).astype(np.float32)


def rgb_to_lab(image: np.ndarray) -> np.ndarray:
    """(3, H, W) RGB in [0, 1] to Reinhard's l-alpha-beta (log cone responses, decorrelated)."""
    lms = _apply(_RGB2LMS, _check_rgb(image, "image"))
    return _apply(_LMS2LAB, np.log10(np.maximum(lms, _EPS)))


def lab_to_rgb(image: np.ndarray) -> np.ndarray:
    lms = np.power(10.0, _apply(np.linalg.inv(_LMS2LAB), np.asarray(image, dtype=np.float64)))
    return _apply(np.linalg.inv(_RGB2LMS), lms)


def reinhard_transfer(content: np.ndarray, style: np.ndarray) -> np.ndarray:
    """The content recoloured after the style (Reinhard et al. 2001): in l-alpha-beta, each
    channel standardised and given the style's mean and standard deviation. float32 in [0, 1];
    the two images may differ in size."""
    source, target = rgb_to_lab(content), rgb_to_lab(style)
    axes = (1, 2)
    mu_s, sd_s = source.mean(axes, keepdims=True), source.std(axes, keepdims=True)
    mu_t, sd_t = target.mean(axes, keepdims=True), target.std(axes, keepdims=True)
    moved = (source - mu_s) * (sd_t / np.maximum(sd_s, _EPS)) + mu_t
    return np.clip(lab_to_rgb(moved), 0.0, 1.0).astype(np.float32)


__all__ = ["lab_to_rgb", "preserve_color", "reinhard_transfer", "rgb_to_lab", "rgb_to_ycbcr", "ycbcr_to_rgb"]
