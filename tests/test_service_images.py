"""The PNG writer: what Pillow reads back is exactly the pixels, for grey and colour images."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from latentforge.images import (
    ImageError,
    encode_png,
    encode_pngs,
    png_from_pixels,
    to_uint8,
)


@pytest.mark.parametrize("shape,mode", [((1, 28, 28), "L"), ((3, 64, 64), "RGB"), ((3, 5, 9), "RGB")])
@pytest.mark.parametrize("level", [0, 1, 9])
def test_pngs_decode_to_exactly_the_pixels(shape, mode, level):
    image = np.random.default_rng(0).uniform(-1.2, 1.2, shape).astype(np.float32)
    data = encode_png(image, (-1.0, 1.0), level)
    with Image.open(io.BytesIO(data)) as img:
        img.load()
        assert img.format == "PNG" and img.mode == mode and img.size == (shape[2], shape[1])
        pixels = np.asarray(img)
    np.testing.assert_array_equal(pixels.reshape(shape[1], shape[2], -1), to_uint8(image, (-1.0, 1.0)))
    batch = np.stack([image, -image])
    assert encode_pngs(batch, (-1.0, 1.0), level) == [data, encode_png(-image, (-1.0, 1.0), level)]


def test_other_channel_counts_are_refused():
    with pytest.raises(ImageError, match="2 channels"):
        png_from_pixels(np.zeros((4, 4, 2), np.uint8))


def test_a_decompression_bomb_and_non_png_formats_are_refused_cleanly():
    """A tiny PNG header claiming 20000x20000 pixels, and a JPEG: ImageError, not a crash."""
    import io
    import struct
    import zlib

    from PIL import Image

    from latentforge.images import ImageError, decode_png

    ihdr = struct.pack(">IIBBBBB", 20000, 20000, 8, 0, 0, 0, 0)
    chunk = struct.pack(">I", len(ihdr)) + b"IHDR" + ihdr + struct.pack(">I", zlib.crc32(b"IHDR" + ihdr))
    with pytest.raises(ImageError):
        decode_png(b"\x89PNG\r\n\x1a\n" + chunk, (1, 28, 28), (0.0, 1.0))
    buf = io.BytesIO()
    Image.new("L", (28, 28)).save(buf, format="JPEG")
    with pytest.raises(ImageError, match="PNG"):
        decode_png(buf.getvalue(), (1, 28, 28), (0.0, 1.0))
