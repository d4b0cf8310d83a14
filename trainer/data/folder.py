"""A folder of images (PNG, JPG, ...) of any size, searched recursively.

Policy: files that cannot be decoded are skipped and counted (the count is reported and
stored in the run's metadata); images smaller than the minimum size and folders that mix
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

from trainer.data.base import DataError, DataOptions, DataSource, TrainingData
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
    from PIL import Image, UnidentifiedImageError

    files = sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise DataError(f"{folder}: no images found (looked for {', '.join(sorted(IMAGE_SUFFIXES))})")
    classes = class_of(folder, files)
    size = options.image_size or DEFAULT_FOLDER_SIZE
    min_size = options.min_image_size
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
        if min(image.size) < max(min_size, 1):
            too_small.append(f"{path.name} ({image.size[0]}x{image.size[1]})")
            continue
        decoded.append((path, image))
    if too_small:
        raise DataError(
            f"{folder}: {len(too_small)} image(s) smaller than {min_size} px on a side, "
            f"e.g. {', '.join(too_small[:3])}; remove them or lower --min-image-size"
        )
    if not decoded:
        raise DataError(f"{folder}: none of the {len(files)} image files could be read, e.g. {skipped[0]}")
    if skipped:
        log.warning("skipped %d unreadable file(s) in %s, e.g. %s", len(skipped), folder, skipped[0])
    channels = options.channels
    if channels is None:
        kinds = {is_colour(img) for _, img in decoded}
        if len(kinds) > 1:
            n_colour = sum(is_colour(img) for _, img in decoded)
            raise DataError(
                f"{folder}: mixes {n_colour} colour and {len(decoded) - n_colour} grayscale images; "
                "pass --channels 3 (convert all to RGB) or --channels 1 (grayscale)"
            )
        channels = 3 if kinds.pop() else 1
    mode = "RGB" if channels == 3 else "L"
    out = np.empty((len(decoded), channels, size, size), dtype=np.float32)
    for i, (_, img) in enumerate(decoded):
        arr = np.asarray(resize_center_crop(img.convert(mode), size), dtype=np.float32) / 255.0
        out[i] = arr[None] if channels == 1 else arr.transpose(2, 0, 1)
    data = TrainingData(source=str(folder), images=out, skipped=skipped)
    if classes is not None:
        names, label_of = classes
        data.labels = np.array([label_of[path] for path, _ in decoded], dtype=np.int64)
        data.class_names = names
    return data
