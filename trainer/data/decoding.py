"""Decoding image files that may be hostile: the declared size is checked before any pixel is.

An image file states its width and height in its header, and a small file (a PNG of one colour)
can state 8000x8000 or more, which decodes to hundreds of megabytes. ``decode_image`` reads the
header, refuses an image past Pillow's decompression-bomb limit (``PIL.Image.MAX_IMAGE_PIXELS``:
Pillow's default, or the limit a server sets in its check process) with DataTooLarge, and only
then decodes it.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import TYPE_CHECKING

from trainer.data.base import DataTooLarge

if TYPE_CHECKING:
    from PIL import Image


def decode_image(path: Path) -> "Image.Image":
    """The decoded image at ``path`` (the caller closes it). DataTooLarge when its declared pixel
    count passes ``Image.MAX_IMAGE_PIXELS``; Pillow's own errors (unreadable, truncated) as they come."""
    from PIL import Image

    with warnings.catch_warnings():  # past the limit is refused below, not warned about
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            img = Image.open(path)
        except Image.DecompressionBombError:  # Pillow's own refusal, at twice the limit
            img = None
    limit = Image.MAX_IMAGE_PIXELS
    if img is None or (limit and img.width * img.height > limit):
        size = "" if img is None else f" ({img.width}x{img.height} = {img.width * img.height:,})"
        if img is not None:
            img.close()
        raise DataTooLarge(f"{path}: the image declares more pixels{size} than the limit of {limit:,}; scale it down")
    try:
        img.load()
    except BaseException:
        img.close()
        raise
    return img
