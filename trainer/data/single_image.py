"""One image file (PNG, JPEG, ...) as a data set: random crops of it, for a one-style model.

A style transfer network trains on one style image (`latentforge train --model style
--style-image art.png`, or a TrainingService job whose uploaded data set is one image). The
training loop draws batches of examples, so the image becomes CROPS random square crops, each
side between half the image's short side and the whole of it (the style seen at several
scales), resized to --image-size (default DEFAULT_SIZE), with a fixed seed so two loads give the
same pixels. Unlabelled; grey images stay one channel unless --channels says otherwise.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from trainer.data.base import DataError, DataOptions, DataSource, TrainingData
from trainer.data.decoding import decode_image
from trainer.data.folder import IMAGE_SUFFIXES
from trainer.data.shaping import conform, is_colour

CROPS = 128  # crops of the image: enough for any batch size up to it
DEFAULT_SIZE = 256  # crop size when --image-size is not given (the style data sets' default)


class SingleImage(DataSource):
    """An image file: CROPS random crops of it."""

    name = "image"
    kind = "image"
    summary = f"one image file (PNG, JPEG, ...: {CROPS} random crops of it, e.g. a style image)"
    path_kind = "image file"

    def claims(self, spec: str) -> bool:
        path = Path(spec)
        return path.suffix.lower() in IMAGE_SUFFIXES and path.is_file()

    def load(self, spec: str, options: DataOptions) -> TrainingData:
        return load_image(Path(spec), options)


def load_image(path: Path, options: DataOptions) -> TrainingData:
    """CROPS random square crops of the image at ``path``, resized to the run's image size."""
    from PIL import UnidentifiedImageError

    from trainer.data.style_images import NamedImage, _to_unit_nchw, random_crops

    try:
        image = decode_image(path)
    except DataError:  # DataTooLarge: past the pixel limit, refused before decoding
        raise
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise DataError(f"{path}: not a readable image ({exc})") from None
    if min(image.size) < max(options.min_image_size, 1):
        raise DataError(f"{path}: the image is {image.size[0]}x{image.size[1]}, smaller than "
                        f"{options.min_image_size} px on a side")
    size = options.image_size or DEFAULT_SIZE
    colour = is_colour(image)
    named = NamedImage(name=path.name, pixels=np.asarray(image.convert("RGB")), package="", file=str(path),
                       licence="", upstream="")
    crops, _ = random_crops([named], CROPS, size)
    images = _to_unit_nchw(crops)
    if not colour and options.channels is None:
        images = np.ascontiguousarray(images[:, :1])
    return conform(TrainingData(source=str(path), images=images), options)
