"""Stylize inputs for the generation pipeline: the content and style images as RGB arrays of any
size up to a limit, the mask (1 = stylise), alpha, a mix's weights, style ids, and a style's
statistics as the bytes the cache keeps. What a request may send is written in the proto
(``StylizeRequest``, ``StyleEntry``); every check here raises INVALID_ARGUMENT saying what to fix.

Style ids: an image's is the SHA-256 of its bytes as sent (a PNG file; for a tensor, its shape and
data, see ``image_id``), so the same image always has the same id; a mix's is a SHA-256 of its
parts' ids and normalised weights, the same in any order.
"""

from __future__ import annotations

import hashlib
import io
import math
from typing import Sequence

import numpy as np
from PIL import Image, UnidentifiedImageError

from latentforge.completion import MaskError, box_mask
from services.errors import InvalidArgument
from services.generation.cache import STYLE_ID_PATTERN
from services.generation.completion import png_mask, tensor_mask
from services.generation.requests import HolesInput, ImageInput, MaskInput, StyleInput, TensorInput

MIN_SIDE = 8  # the smallest image side a style graph takes (its encoder pools and pads by reflection)


def check_alpha(alpha: float | None) -> float:
    """The style's strength, 1 when absent; INVALID_ARGUMENT outside [0, 1]."""
    if alpha is None:
        return 1.0
    a = float(alpha)
    if not math.isfinite(a) or not 0.0 <= a <= 1.0:
        raise InvalidArgument(f"alpha must be in [0, 1] (0 = the content, 1 = full style), got {alpha}")
    return a


def weights(styles: Sequence[StyleInput]) -> np.ndarray:
    """Each style's share of the mix (weights divided by their sum; absent = 1), float64."""
    raw = np.array([1.0 if s.weight is None else float(s.weight) for s in styles], dtype=np.float64)
    for k, w in enumerate(raw):
        if not math.isfinite(w) or w < 0:
            raise InvalidArgument(f"styles[{k}].weight must be finite and >= 0, got {w}")
    total = float(raw.sum())
    if not total > 0:
        raise InvalidArgument(f"the style weights sum to {total}; they must sum to a positive number "
                              "(leave a weight unset for 1)")
    return raw / total


def check_style_id(style_id: str, k: int) -> str:
    """A style id as the server gives them (64 lowercase hex digits)."""
    if not STYLE_ID_PATTERN.match(style_id):
        raise InvalidArgument(f"styles[{k}].style_id must be 64 lowercase hex digits as returned by Stylize "
                              f"(the SHA-256 of the style image), got {style_id[:80]!r}")
    return style_id


def image_id(item: ImageInput) -> str:
    """The style id of an image: SHA-256 (hex) of the PNG bytes; of a tensor, of the ASCII text
    ``f32:C,H,W:`` (its shape) followed by its data bytes."""
    if isinstance(item, TensorInput):
        head = f"f32:{','.join(str(int(d)) for d in item.shape)}:".encode()
        return hashlib.sha256(head + item.data).hexdigest()
    assert isinstance(item, bytes)
    return hashlib.sha256(item).hexdigest()


def mix_id(ids: Sequence[str], shares: np.ndarray) -> str:
    """A mix's style id: SHA-256 of its parts sorted by id, each ``<id>*<share>`` (share with 9
    significant digits), so the same parts and weights give the same id in any order."""
    text = "mix:" + ";".join(sorted(f"{i}*{float(w):.9g}" for i, w in zip(ids, shares)))
    return hashlib.sha256(text.encode()).hexdigest()


def rgb_image(item: ImageInput, max_pixels: int, what: str) -> np.ndarray:
    """An input image as float32 (3, H, W) in [0, 1]: a PNG of any mode as RGB, or a float32
    (3, H, W) tensor (clipped to [0, 1]); sides of at least MIN_SIDE, at most ``max_pixels``."""
    if isinstance(item, TensorInput):
        return _tensor_rgb(item, max_pixels, what)
    if not isinstance(item, bytes) or not item:
        raise InvalidArgument(f"{what} is missing; set its png or tensor")
    try:
        with Image.open(io.BytesIO(item), formats=("PNG",)) as img:
            _check_size(img.width, img.height, max_pixels, what)
            img.load()
            pixels = np.asarray(img.convert("RGB"), dtype=np.uint8)
    except InvalidArgument:
        raise
    except (UnidentifiedImageError, Image.DecompressionBombError, OSError, ValueError, SyntaxError) as exc:
        raise InvalidArgument(f"{what}: the bytes could not be decoded as PNG: {exc}") from None
    return np.ascontiguousarray(np.transpose(pixels, (2, 0, 1)), dtype=np.float32) / np.float32(255.0)


def shrink(image: np.ndarray, max_side: int) -> np.ndarray:
    """A (3, H, W) image scaled down (Lanczos, aspect kept) so its longer side is at most
    ``max_side``; unchanged when it is already."""
    _, h, w = image.shape
    if max(h, w) <= max_side:
        return image
    scale = max_side / max(h, w)
    size = (max(MIN_SIDE, round(w * scale)), max(MIN_SIDE, round(h * scale)))
    channels = [np.asarray(Image.fromarray(np.ascontiguousarray(c, dtype=np.float32), mode="F")
                           .resize(size, Image.Resampling.LANCZOS), dtype=np.float32) for c in image]
    return np.clip(np.stack(channels), 0.0, 1.0)


def mask_array(mask: MaskInput, height: int, width: int) -> np.ndarray:
    """The request's mask as float32 (1, H, W), 1 = stylise, 0 = keep the content; all ones when
    absent. PNG and tensor: white / >= 0.5 is stylised; holes: the rectangles are stylised."""
    if mask is None:
        return np.ones((1, height, width), dtype=np.float32)
    try:
        if isinstance(mask, HolesInput):
            if not mask.boxes:
                raise MaskError("holes is empty; give at least one rectangle to stylise, or no mask")
            return 1.0 - box_mask(height, width, mask.boxes)
        m = tensor_mask(mask) if isinstance(mask, TensorInput) else png_mask(mask)
        if m.ndim == 2:
            m = m[None]
        if m.ndim != 3 or m.shape[0] != 1:
            raise MaskError(f"a mask is one channel (H, W) or (1, H, W); got shape {tuple(m.shape)}")
        if m.shape[1:] != (height, width):
            raise MaskError(f"the mask is {m.shape[2]}x{m.shape[1]} but the content is {width}x{height}; "
                            "send a mask of the content's size")
        if not np.all(np.isfinite(m)):
            raise MaskError("the mask holds NaN or infinite values")
        return (m >= 0.5).astype(np.float32)
    except MaskError as exc:
        raise InvalidArgument(f"mask: {exc}") from None


def pack_stats(mean: np.ndarray, std: np.ndarray) -> bytes:
    """A style's statistics as the cache keeps them: mean then std, float32 little-endian."""
    return np.ascontiguousarray(mean, dtype="<f4").tobytes() + np.ascontiguousarray(std, dtype="<f4").tobytes()


def unpack_stats(data: bytes, size: int | None) -> tuple[np.ndarray, np.ndarray] | None:
    """The (mean, std) of ``pack_stats`` as float32 (S,); None when they do not have ``size``
    values each (a size of None takes any)."""
    flat = np.frombuffer(data, dtype="<f4").astype(np.float32)
    half = flat.size // 2
    if flat.size % 2 or half == 0 or (size is not None and half != size):
        return None
    return flat[:half], flat[half:]


def _check_size(width: int, height: int, max_pixels: int, what: str) -> None:
    if width * height > max_pixels:
        raise InvalidArgument(f"{what} is {width}x{height} = {width * height} pixels; the server takes at most "
                              f"{max_pixels} (stylize_max_pixels); send a smaller image")
    if min(width, height) < MIN_SIDE:
        raise InvalidArgument(f"{what} is {width}x{height}; each side must be at least {MIN_SIDE} pixels")


def _tensor_rgb(t: TensorInput, max_pixels: int, what: str) -> np.ndarray:
    if t.dtype not in ("float32", ""):
        raise InvalidArgument(f"{what}: tensor dtype {t.dtype!r} is not supported; send float32")
    if len(t.shape) != 3 or t.shape[0] != 3:
        raise InvalidArgument(f"{what}: a tensor image is (3, H, W) RGB, got shape {tuple(t.shape)}")
    _, h, w = (int(d) for d in t.shape)
    _check_size(w, h, max_pixels, what)
    if len(t.data) != 3 * h * w * 4:
        raise InvalidArgument(f"{what}: tensor data has {len(t.data)} bytes; shape (3, {h}, {w}) float32 needs "
                              f"{3 * h * w * 4}")
    arr = np.frombuffer(t.data, dtype="<f4").reshape(3, h, w)
    if not np.all(np.isfinite(arr)):
        raise InvalidArgument(f"{what}: the tensor holds NaN or infinite values")
    return np.clip(arr, 0.0, 1.0).astype(np.float32)
