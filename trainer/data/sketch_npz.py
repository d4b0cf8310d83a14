"""sketch-rnn's own .npz stroke files (as the QuickDraw sketchrnn downloads give): train/valid/test.

Such a file holds `train`, `valid` and `test` arrays of stroke-3 drawings (each an (L, 3) int16
array of (dx, dy, pen_lift)), stored as NumPy object arrays. The trainer learns from `train`;
the sizes of `valid` and `test` are logged.

Which .npz source reads a file: a .npz with a `train` array and none of the image names
(`images`, `x`, `X`, `arr_0`) is a stroke file and read here; every other .npz is an image
file (trainer.data.arrays). The decision reads only the archive's member names.

Object arrays are pickles, and unpickling runs code named in the file: these are unpickled with
an allow-list that admits NumPy arrays and dtypes only, so a file from elsewhere cannot run code.
Drawings longer than the cap (DEFAULT_MAX_SEQ_LEN, sketch-rnn's 250, or DataOptions.max_seq_len)
are left out and counted; dx, dy are divided by the std of the kept drawings' offsets.
"""

from __future__ import annotations

import io
import logging
import pickle
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from trainer.data.base import DataError, DataOptions, DataSource, TrainingData
from trainer.data.strokes import check_stroke3, normalize, scale_factor, stroke3_to_stroke5

log = logging.getLogger(__name__)

SPLITS = ("train", "valid", "test")
IMAGE_KEYS = ("images", "x", "X", "arr_0")  # names that make a .npz an image file (trainer.data.arrays)
DEFAULT_MAX_SEQ_LEN = 250  # sketch-rnn's max_seq_len for QuickDraw

_RECONSTRUCT = np.zeros(1).__reduce__()[0]  # numpy's array unpickling function, wherever it lives
_ALLOWED: dict[tuple[str, str], Any] = {
    ("numpy.core.multiarray", "_reconstruct"): _RECONSTRUCT,
    ("numpy._core.multiarray", "_reconstruct"): _RECONSTRUCT,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
}


class _ArraysOnly(pickle.Unpickler):
    """Unpickles NumPy arrays and nothing else."""

    def find_class(self, module: str, name: str) -> Any:
        try:
            return _ALLOWED[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(f"refused to load {module}.{name}: only NumPy arrays are allowed") from None


def npz_members(path: Path) -> list[str] | None:
    """The array names in a .npz, read from the archive's index only; None if it is no zip archive."""
    try:
        with zipfile.ZipFile(path) as z:
            return [n[:-4] for n in z.namelist() if n.endswith(".npy")]
    except (zipfile.BadZipFile, OSError):
        return None


def is_stroke_npz(path: Path) -> bool:
    """Whether a .npz is a sketch-rnn stroke file: a `train` array and no image array."""
    names = npz_members(path) if path.is_file() and path.suffix == ".npz" else None
    return names is not None and "train" in names and not any(k in names for k in IMAGE_KEYS)


def read_member(path: Path, name: str) -> np.ndarray:
    """One array of a .npz; object arrays are unpickled with the NumPy-only allow-list."""
    with zipfile.ZipFile(path) as z, z.open(f"{name}.npy") as raw:
        f = io.BytesIO(raw.read())
    version = np.lib.format.read_magic(f)
    read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
    _, _, dtype = read_header(f)
    if not dtype.hasobject:
        f.seek(0)
        return np.lib.format.read_array(f, allow_pickle=False)
    value = _ArraysOnly(f, encoding="latin1").load()  # latin1: files written by Python 2, as sketch-rnn's
    if not isinstance(value, np.ndarray):
        raise DataError(f"{path}: {name!r} holds a {type(value).__name__}, not an array of drawings")
    return value


class SketchNpz(DataSource):
    name = "sketch-npz"
    kind = "strokes"
    summary = "a sketch-rnn .npz of stroke-3 drawings (train/valid/test, as QuickDraw's)"
    path_kind = "sketch-rnn stroke .npz"

    def claims(self, spec: str) -> bool:
        return is_stroke_npz(Path(spec))

    def load(self, spec: str, options: DataOptions) -> TrainingData:
        return load_sketch_npz(Path(spec), options.max_seq_len)


def load_sketch_npz(path: Path, max_seq_len: int | None = None) -> TrainingData:
    """The `train` drawings of a sketch-rnn .npz as stroke-5 training data."""
    names = npz_members(path) or []
    splits: dict[str, np.ndarray] = {}
    for split in SPLITS:
        if split in names:
            try:
                splits[split] = read_member(path, split)
            except (pickle.UnpicklingError, ValueError, EOFError, OSError, zipfile.BadZipFile) as exc:
                raise DataError(f"{path}: cannot read {split!r} ({exc})") from None
    train = splits["train"]
    if train.dtype != object and train.ndim == 2 and train.shape[1] == 3:
        raise DataError(
            f"{path}: 'train' is one (L, 3) array; it must hold many drawings: an object array of "
            "(L, 3) arrays (as sketch-rnn's files) or an (N, L, 3) array"
        )
    cap = max_seq_len or DEFAULT_MAX_SEQ_LEN
    where = f"{path}:train"
    kept, too_long = check_stroke3(list(train), where, cap)
    scale = scale_factor(kept)
    strokes, lengths = stroke3_to_stroke5(normalize(kept, scale), max(len(d) for d in kept))
    sizes = ", ".join(f"{s} {len(a)}" for s, a in splits.items())
    log.info("%s: %s drawings; training on train (%d kept, %d longer than %d left out)",
             path, sizes, len(kept), too_long, cap)
    return TrainingData(source=str(path), strokes=strokes, lengths=lengths, stroke_scale=scale, too_long=too_long)
