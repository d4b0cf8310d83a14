"""A folder of images (PNG, JPG, ...) of any size, searched recursively.

Policy: files that cannot be decoded are skipped and counted (the count is reported and
stored in the run's metadata); images smaller than the minimum size, images that declare more
pixels than Pillow's decompression-bomb limit (trainer.data.decoding) and folders that mix
grayscale and colour without --channels are refused. Images are resized (short side) and
centre-cropped to --image-size (default 64).

Labels: when every image lies in a first-level subfolder and there are at least two of
them, each subfolder is a class (named after it, in sorted order); otherwise the images
are unlabelled.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from trainer.data.base import DataError, DataOptions, DataSource, DataTooLarge, TrainingData
from trainer.data.decoding import decode_image
from trainer.data.shaping import is_colour, resize_center_crop

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff"}
DEFAULT_FOLDER_SIZE = 64


class ImageFolder(DataSource):
    name = "folder"
    summary = "a folder of images (one subfolder per class gives labels)"
    path_kind = "folder"

    def claims(self, spec: str) -> bool:
        return Path(spec).is_dir()

    def load(self, spec: str, options: DataOptions) -> TrainingData:
        return load_folder(Path(spec), options)


def class_of(folder: Path, files: list[Path]) -> tuple[list[str], dict[Path, int]] | None:
    """Class names and each file's class when the folder is laid out one subfolder per class."""
    parts = [f.relative_to(folder).parts for f in files]
    if any(len(p) != 2 for p in parts):
        return None
    names = sorted({p[0] for p in parts})
    if len(names) < 2:
        return None
    index = {name: i for i, name in enumerate(names)}
    return names, {f: index[p[0]] for f, p in zip(files, parts)}


def load_folder(folder: Path, options: DataOptions) -> TrainingData:
    """Every image of ``folder``, each decoded and brought to the run's size at once (only one
    full-size image is held at a time, so memory does not grow with the images' size)."""
    from PIL import UnidentifiedImageError

    files = sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise DataError(f"{folder}: no images found (looked for {', '.join(sorted(IMAGE_SUFFIXES))})")
    classes = class_of(folder, files)
    size = options.image_size or DEFAULT_FOLDER_SIZE
    min_size = options.min_image_size
    mode = {1: "L", 3: "RGB"}.get(options.channels)  # None: each image's own (all must agree)
    kept: list[tuple[Path, np.ndarray, bool]] = []  # (file, size x size pixels, was colour)
    skipped: list[str] = []
    too_small: list[str] = []
    for path in files:
        try:
            img = decode_image(path)
        except DataTooLarge as exc:
            raise DataTooLarge(str(exc).replace(str(path), f"{folder}: {path.relative_to(folder)}")) from None
        except (UnidentifiedImageError, OSError, ValueError) as exc:
            skipped.append(f"{path.name}: {exc}")
            continue
        try:
            if min(img.size) < max(min_size, 1):
                too_small.append(f"{path.name} ({img.size[0]}x{img.size[1]})")
                continue
            colour = is_colour(img)
            target = mode or ("RGB" if colour else "L")
            small = resize_center_crop(img if img.mode == target else img.convert(target), size)
        finally:
            img.close()  # frees the pixels now (leaving a `with` block only closes the file)
        kept.append((path, np.asarray(small), colour))
    if too_small:
        raise DataError(
            f"{folder}: {len(too_small)} image(s) smaller than {min_size} px on a side, "
            f"e.g. {', '.join(too_small[:3])}; remove them or lower --min-image-size"
        )
    if not kept:
        raise DataError(f"{folder}: none of the {len(files)} image files could be read, e.g. {skipped[0]}")
    if skipped:
        log.warning("skipped %d unreadable file(s) in %s, e.g. %s", len(skipped), folder, skipped[0])
    channels = options.channels
    if channels is None:
        n_colour = sum(colour for _, _, colour in kept)
        if 0 < n_colour < len(kept):
            raise DataError(
                f"{folder}: mixes {n_colour} colour and {len(kept) - n_colour} grayscale images; "
                "pass --channels 3 (convert all to RGB) or --channels 1 (grayscale)"
            )
        channels = 3 if n_colour else 1
    out = np.empty((len(kept), channels, size, size), dtype=np.float32)
    for i, (_, pixels, _) in enumerate(kept):
        arr = pixels.astype(np.float32) / 255.0
        out[i] = arr[None] if channels == 1 else arr.transpose(2, 0, 1)
    data = TrainingData(source=str(folder), images=out, skipped=skipped)
    if classes is not None:
        names, label_of = classes
        data.labels = np.array([label_of[path] for path, _, _ in kept], dtype=np.int64)
        data.class_names = names
    return data
