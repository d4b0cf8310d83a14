"""NumPy array files: .npy (images only) or .npz (images, optional labels and class names).

Images may be (N,H,W), (N,H,W,C) or (N,C,H,W) with C in {1, 3}, uint8 or floats in [0, 1].
An .npz names them `images` (or `x`, `X`, `arr_0`), its labels `labels` (or `y`) and, if it
likes, the class names `class_names` (otherwise classes are named by their index).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from trainer.data.base import DataError, DataOptions, DataSource, TrainingData
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
    try:
        loaded = np.load(path, allow_pickle=False)
    except Exception as exc:  # numpy raises several types for corrupt files
        raise DataError(f"{path}: not a readable NumPy file ({exc})") from None
    labels = None
    class_names: list[str] = []
    if isinstance(loaded, np.lib.npyio.NpzFile):
        keys = list(loaded.keys())
        image_key = next((k for k in ("images", "x", "X", "arr_0") if k in keys), None)
        if image_key is None:
            raise DataError(f"{path}: no image array; name it 'images' or 'x' (found {keys})")
        array = loaded[image_key]
        label_key = next((k for k in ("labels", "y") if k in keys), None)
        if label_key is not None:
            raw = np.asarray(loaded[label_key]).reshape(-1)
            if not np.issubdtype(raw.dtype, np.integer):
                raise DataError(f"{path}: labels must be integers, got {raw.dtype}")
            labels = raw.astype(np.int64)
        if "class_names" in keys:
            class_names = [str(n) for n in np.asarray(loaded["class_names"]).reshape(-1)]
    else:
        array = loaded
    images = array_to_nchw(np.asarray(array), str(path))
    if labels is not None and len(labels) != len(images):
        raise DataError(f"{path}: {len(labels)} labels for {len(images)} images")
    return TrainingData(source=str(path), images=images, labels=labels, class_names=class_names)


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
