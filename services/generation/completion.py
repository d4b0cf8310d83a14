"""Completion inputs for the generation pipeline: the request's mask as an array, and the input
a completion sample keeps in the cache (its image and mask), so that its Variations keep the
known pixels. The masks and the iterative method themselves are ``latentforge.completion``.
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image, UnidentifiedImageError

from latentforge.completion import MaskError, box_mask, check_mask
from latentforge.images import MAX_INPUT_PIXELS
from services.errors import InvalidArgument
from services.generation.requests import HolesInput, MaskInput, TensorInput

DEFAULT_ITERATIONS = 8  # rounds of the iterative method when a request leaves it 0
MAX_ITERATIONS = 64


def mask_array(mask: MaskInput, height: int, width: int) -> np.ndarray:
    """The request's mask as float32 (1, H, W), 1 = known; INVALID_ARGUMENT saying what is wrong."""
    try:
        if isinstance(mask, HolesInput):
            if not mask.boxes:
                raise MaskError("holes is empty; give at least one rectangle to fill")
            m = box_mask(height, width, mask.boxes)
        elif isinstance(mask, TensorInput):
            m = tensor_mask(mask)
        elif isinstance(mask, bytes):
            m = png_mask(mask)
        else:
            raise MaskError("mask is missing; set its png, tensor or holes")
        return check_mask(m, height, width)
    except MaskError as exc:
        raise InvalidArgument(f"mask: {exc}") from None


def iterations(value: int) -> int:
    """Rounds of the iterative method a request asks for (0 = the default)."""
    if value == 0:
        return DEFAULT_ITERATIONS
    if not 1 <= value <= MAX_ITERATIONS:
        raise InvalidArgument(f"iterations must be between 1 and {MAX_ITERATIONS} (or 0 for {DEFAULT_ITERATIONS}), "
                              f"got {value}")
    return int(value)


def pack_context(image: np.ndarray, mask: np.ndarray) -> bytes:
    """A completion's input as bytes for the cache: the image (C, H, W) then the mask (1, H, W),
    float32 little-endian."""
    return np.ascontiguousarray(image, dtype="<f4").tobytes() + np.ascontiguousarray(mask, dtype="<f4").tobytes()


def unpack_context(data: bytes, shape: tuple[int, int, int]) -> tuple[np.ndarray, np.ndarray] | None:
    """The (image, mask) of ``pack_context``; None when the bytes do not fit the model's shape."""
    c, h, w = shape
    flat = np.frombuffer(data, dtype="<f4")
    if flat.size != (c + 1) * h * w:
        return None
    return flat[: c * h * w].reshape(c, h, w).astype(np.float32), flat[c * h * w:].reshape(1, h, w).astype(np.float32)


def tensor_mask(t: TensorInput) -> np.ndarray:
    """A mask tensor as the client sent it, as a float32 array of its shape; MaskError when its
    bytes do not fit."""
    if t.dtype not in ("float32", ""):
        raise MaskError(f"tensor dtype {t.dtype!r} is not supported; send float32")
    count = int(np.prod(t.shape)) if t.shape else 0
    if len(t.data) != count * 4:
        raise MaskError(f"tensor data has {len(t.data)} bytes; shape {tuple(t.shape)} float32 needs {count * 4}")
    return np.frombuffer(t.data, dtype="<f4").reshape(tuple(t.shape))


def png_mask(data: bytes) -> np.ndarray:
    """A mask PNG read as grayscale: float32 (1, H, W), 1 where a pixel is >= 128 (white)."""
    try:
        with Image.open(io.BytesIO(data), formats=("PNG",)) as img:
            if img.width * img.height > MAX_INPUT_PIXELS:
                raise MaskError(f"the mask PNG is {img.width}x{img.height}, larger than any model's image")
            pixels = np.asarray(img.convert("L"), dtype=np.uint8)
    except MaskError:
        raise
    except (UnidentifiedImageError, Image.DecompressionBombError, OSError, ValueError, SyntaxError) as exc:
        raise MaskError(f"the mask bytes could not be decoded as PNG: {exc}") from None
    return (pixels >= 128).astype(np.float32)[None]
