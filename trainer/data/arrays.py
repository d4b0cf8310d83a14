"""NumPy array files: .npy (images only) or .npz (images, optional labels and class names).

Images may be (N,H,W), (N,H,W,C) or (N,C,H,W) with C in {1, 3}, uint8 or floats in [0, 1].
An .npz names them `images` (or `x`, `X`, `arr_0`), its labels `labels` (or `y`) and, if it
likes, the class names `class_names` (otherwise classes are named by their index). Object
arrays (pickled Python objects) are refused, never unpickled.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from trainer.data.base import DataError, DataOptions, DataSource, TrainingData
from trainer.data.npz_headers import declared_members
from trainer.data.shaping import conform

SUFFIXES = (".npz", ".npy")


class ArrayFile(DataSource):
    name = "arrays"
    summary = "a .npz/.npy file of images (and labels)"
    path_kind = ".npz/.npy file"

    def claims(self, spec: str) -> bool:
        path = Path(spec)
        return path.is_file() and path.suffix in SUFFIXES

    def load(self, spec: str, options: DataOptions) -> TrainingData:
        return conform(load_array_file(Path(spec)), options)


def load_array_file(path: Path) -> TrainingData:
    """The images (and labels, class names) of a .npy or .npz file; DataError says what is wrong,
    object arrays (pickles) included: they are never unpickled here."""
    if path.suffix == ".npz":
        objects = [m.name for m in declared_members(path) if m.dtype is not None and m.dtype.hasobject]
        if objects:
            raise DataError(f"{path}: object arrays (pickled Python objects) are not accepted ({_names(objects)}); "
                            "save the images (and labels) as uint8 or float arrays")
    try:
        loaded = np.load(path, allow_pickle=False)
        labels = None
        class_names: list[str] = []
        if isinstance(loaded, np.lib.npyio.NpzFile):
            with loaded:
                array, labels, class_names = _npz_arrays(loaded, path)
        else:
            array = loaded
    except (DataError, MemoryError):
        raise
    except Exception as exc:  # numpy raises several types for corrupt files (and for an object .npy)
        raise DataError(f"{path}: not a readable NumPy file ({exc})") from None
    images = array_to_nchw(np.asarray(array), str(path))
    if labels is not None and len(labels) != len(images):
        raise DataError(f"{path}: {len(labels)} labels for {len(images)} images")
    return TrainingData(source=str(path), images=images, labels=labels, class_names=class_names)


def _npz_arrays(loaded: np.lib.npyio.NpzFile, path: Path) -> tuple[np.ndarray, np.ndarray | None, list[str]]:
    """The image array, the labels (or None) and the class names of an .npz."""
    keys = list(loaded.keys())
    image_key = next((k for k in ("images", "x", "X", "arr_0") if k in keys), None)
    if image_key is None:
        raise DataError(f"{path}: no image array; name it 'images' or 'x' (found {_names(keys)})")
    array = loaded[image_key]
    labels = None
    label_key = next((k for k in ("labels", "y") if k in keys), None)
    if label_key is not None:
        raw = np.asarray(loaded[label_key]).reshape(-1)
        if not np.issubdtype(raw.dtype, np.integer):
            raise DataError(f"{path}: labels must be integers, got {raw.dtype}")
        labels = raw.astype(np.int64)
    class_names = [str(n) for n in np.asarray(loaded["class_names"]).reshape(-1)] if "class_names" in keys else []
    return array, labels, class_names


def _names(names: list[str], shown: int = 5) -> str:
    """A few names, and how many more there are."""
    text = ", ".join(repr(n) for n in names[:shown])
    return text + (f" and {len(names) - shown} more" if len(names) > shown else "") if names else "no arrays"


def array_to_nchw(array: np.ndarray, where: str) -> np.ndarray:
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
        images = array.astype(np.float32)
        images /= 255.0  # in place: one float copy of the data, not two
        return images
    if not np.issubdtype(array.dtype, np.floating):
        raise DataError(f"{where}: images must be uint8 or float, got {array.dtype}")
    array = array.astype(np.float32, copy=False)
    if not np.isfinite(array).all():
        raise DataError(f"{where}: images contain NaN or infinity")
    lo, hi = float(array.min()), float(array.max())
    if lo < 0.0 or hi > 1.0:
        raise DataError(f"{where}: float images must lie in [0, 1]; found [{lo:.3g}, {hi:.3g}]")
    return array
