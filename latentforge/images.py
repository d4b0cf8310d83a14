"""Images: value-range mapping, PNG encode/decode, grids and strips (Pillow, no torch).

Models work on float32 (C, H, W) arrays in a value range such as [-1, 1]; PNGs hold 8-bit
pixels. Every conversion between the two lives here.
"""

from __future__ import annotations

import functools
import io
import math
import struct
import zlib
from typing import Sequence

import numpy as np
from PIL import Image, UnidentifiedImageError

# A decoded input image larger than this is refused before Pillow allocates it.
MAX_INPUT_PIXELS = 4096 * 4096


class ImageError(ValueError):
    """An input image cannot be used (not decodable, wrong size or shape)."""


def to_uint8(image: np.ndarray, value_range: tuple[float, float]) -> np.ndarray:
    """Map float (..., C, H, W) in value_range to uint8 (..., H, W, C), clipped and rounded.

    Works on one image or a whole batch, so a batch is mapped in one vectorised pass.
    """
    lo, hi = value_range
    scaled = (np.asarray(image, dtype=np.float32) - lo) * (255.0 / (hi - lo))
    pixels = np.clip(np.rint(scaled), 0, 255).astype(np.uint8)
    return np.moveaxis(pixels, -3, -1)


def from_uint8(pixels: np.ndarray, value_range: tuple[float, float]) -> np.ndarray:
    """Map uint8 (H, W, C) to float32 (C, H, W) in value_range."""
    lo, hi = value_range
    scaled = pixels.astype(np.float32) * ((hi - lo) / 255.0) + lo
    return np.ascontiguousarray(np.transpose(scaled, (2, 0, 1)), dtype=np.float32)


def to_pil(image: np.ndarray, value_range: tuple[float, float]) -> Image.Image:
    """A float (C, H, W) image as a Pillow image (mode L for 1 channel, RGB for 3)."""
    pixels = to_uint8(image, value_range)
    if pixels.shape[2] == 1:
        return Image.fromarray(pixels[:, :, 0], mode="L")
    if pixels.shape[2] == 3:
        return Image.fromarray(pixels, mode="RGB")
    raise ImageError(f"cannot make a picture of {pixels.shape[2]} channels (need 1 or 3)")


_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PNG_COLOR_TYPES = {1: 0, 3: 2}  # channels -> PNG colour type (grey, RGB)
_IEND = b"\x00\x00\x00\x00IEND\xaeB`\x82"


def _png_chunk(tag: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)


def png_from_pixels(pixels: np.ndarray, compress_level: int = 1) -> bytes:
    """PNG bytes of uint8 (H, W, C) pixels, C = 1 or 3, written directly with zlib.

    An 8-bit PNG is a header, the rows each prefixed by a filter byte (0: none), deflated, and
    an end marker; writing that here costs a fraction of Pillow's generic save path, which
    matters when every served image is encoded. Deflate runs with the run-length strategy: on
    unfiltered image rows it compresses about as well as the default and twice as fast.
    """
    h, w, c = pixels.shape
    raw = np.empty((h, w * c + 1), dtype=np.uint8)
    raw[:, 0] = 0
    raw[:, 1:] = pixels.reshape(h, w * c)
    deflate = zlib.compressobj(compress_level, zlib.DEFLATED, 15, 8, zlib.Z_RLE)
    body = deflate.compress(raw.tobytes()) + deflate.flush()
    return _png_head(h, w, c) + _png_chunk(b"IDAT", body) + _IEND


@functools.lru_cache(maxsize=64)
def _png_head(h: int, w: int, c: int) -> bytes:
    """Signature and header chunk of an 8-bit image of this size: the same for every image of a model."""
    if c not in _PNG_COLOR_TYPES:
        raise ImageError(f"cannot make a picture of {c} channels (need 1 or 3)")
    return _PNG_SIGNATURE + _png_chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, _PNG_COLOR_TYPES[c], 0, 0, 0))


def encode_png(image: np.ndarray, value_range: tuple[float, float], compress_level: int = 1) -> bytes:
    """PNG bytes of a float (C, H, W) image; low compression since latency matters more."""
    return png_from_pixels(to_uint8(image, value_range), compress_level)


def encode_pngs(images: np.ndarray, value_range: tuple[float, float], compress_level: int = 1) -> list[bytes]:
    """PNG bytes of each float (C, H, W) image of a batch (N, C, H, W); pixels mapped in one go."""
    return [png_from_pixels(p, compress_level) for p in to_uint8(images, value_range)]


def decode_png(data: bytes, shape: tuple[int, int, int], value_range: tuple[float, float]) -> np.ndarray:
    """Float32 (C, H, W) in value_range from image bytes, converted to shape's channel count.

    Raises ImageError when the bytes are not an image or its size differs from shape.
    """
    channels, height, width = shape
    try:
        with Image.open(io.BytesIO(data), formats=("PNG",)) as img:
            if img.width * img.height > MAX_INPUT_PIXELS:
                raise ImageError(f"image is {img.width}x{img.height}; this model takes {width}x{height}")
            img.load()
            if (img.width, img.height) != (width, height):
                raise ImageError(
                    f"image is {img.width}x{img.height} pixels; this model takes {width}x{height}"
                )
            converted = img.convert("L" if channels == 1 else "RGB")
    except ImageError:
        raise
    except (UnidentifiedImageError, Image.DecompressionBombError, OSError, ValueError, SyntaxError) as exc:
        raise ImageError(f"image bytes could not be decoded as PNG: {exc}") from None
    pixels = np.asarray(converted, dtype=np.uint8)
    if pixels.ndim == 2:
        pixels = pixels[:, :, None]
    return from_uint8(pixels, value_range)


def tile(images: Sequence[np.ndarray], columns: int, value_range: tuple[float, float], padding: int = 2) -> Image.Image:
    """Float (C, H, W) images tiled row-major into one picture with ``columns`` per row."""
    if not images:
        raise ImageError("nothing to tile")
    pictures = [to_pil(img, value_range) for img in images]
    width, height = pictures[0].size
    columns = max(1, min(columns, len(pictures)))
    rows = math.ceil(len(pictures) / columns)
    sheet = Image.new(
        pictures[0].mode,
        (columns * width + (columns + 1) * padding, rows * height + (rows + 1) * padding),
    )
    for k, pic in enumerate(pictures):
        r, c = divmod(k, columns)
        sheet.paste(pic, (padding + c * (width + padding), padding + r * (height + padding)))
    return sheet


def grid(images: Sequence[np.ndarray], value_range: tuple[float, float], padding: int = 2) -> Image.Image:
    """A near-square grid of images."""
    return tile(images, math.ceil(math.sqrt(len(images))), value_range, padding)


def strip(images: Sequence[np.ndarray], value_range: tuple[float, float], padding: int = 2) -> Image.Image:
    """Images side by side in one row (e.g. interpolation frames)."""
    return tile(images, len(images), value_range, padding)


def save_gif(images: Sequence[np.ndarray], value_range: tuple[float, float], path: str, frame_ms: int = 100, scale: int = 4) -> None:
    """An animated GIF of the images, looping, each frame enlarged ``scale`` times."""
    frames = [to_pil(img, value_range) for img in images]
    if scale > 1:
        frames = [f.resize((f.width * scale, f.height * scale), Image.NEAREST) for f in frames]
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=frame_ms, loop=0)
