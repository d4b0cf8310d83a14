"""Bringing images to the size and channels a run asks for: resize, centre-crop, convert."""

from __future__ import annotations

import numpy as np

from trainer.data.base import DataError, DataOptions, TrainingData


def resize_center_crop(img, size: int):
    """Scale the short side to `size` (Lanczos), then crop the centre square."""
    from PIL import Image

    w, h = img.size
    scale = size / min(w, h)
    nw, nh = max(size, round(w * scale)), max(size, round(h * scale))
    img = img.resize((nw, nh), Image.Resampling.LANCZOS)
    left, top = (nw - size) // 2, (nh - size) // 2
    return img.crop((left, top, left + size, top + size))


def is_colour(img) -> bool:
    """Whether a PIL image holds colour (palette images with a grey palette do not)."""
    return img.mode not in ("1", "L", "LA", "I", "I;16", "F") and not (
        img.mode == "P" and img.palette is not None and img.palette.mode == "L"
    )


def conform(data: TrainingData, options: DataOptions) -> TrainingData:
    """Bring array images to the requested channels and square size (labels are kept)."""
    images = data.images
    assert images is not None
    n, c, h, w = images.shape
    if min(h, w) < options.min_image_size:
        raise DataError(f"{data.source}: images are {h}x{w}, smaller than {options.min_image_size} px on a side")
    if options.channels is not None and options.channels != c:
        if options.channels == 1:
            images = (images * np.array([0.299, 0.587, 0.114], np.float32)[None, :, None, None]).sum(
                1, keepdims=True
            )
        else:
            images = np.repeat(images, 3, axis=1)
    target = options.image_size or min(h, w)
    if (h, w) != (target, target):
        from PIL import Image

        resized = np.empty((n, images.shape[1], target, target), np.float32)
        for i in range(n):
            for ch in range(images.shape[1]):
                resized[i, ch] = np.asarray(resize_center_crop(Image.fromarray(images[i, ch], mode="F"), target))
        images = np.clip(resized, 0.0, 1.0)
    data.images = np.ascontiguousarray(images)
    return data
