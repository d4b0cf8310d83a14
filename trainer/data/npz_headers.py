"""What an .npz declares before any array is read: each member's .npy header (shape, dtype) and
the zip's declared size, read without decompressing the arrays' data.

NumPy allocates an array from its header's shape before it reads a byte of data, and a few KB
of deflated zeros can declare gigabytes; so a reader of untrusted files checks these figures
against its limits first (services.training.dataset_check), and refuses object arrays
(pickles) where it wants numbers (trainer.data.arrays).
"""

from __future__ import annotations

import math
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np

from trainer.data.base import DataError


@dataclass(frozen=True)
class DeclaredMember:
    """One member of an .npz as its headers describe it."""

    name: str  # the array's name (the member's file name without ".npy")
    file_size: int  # uncompressed size the zip declares (zipfile refuses to read past it)
    shape: tuple[int, ...] | None  # None: the member is no .npy file
    dtype: np.dtype | None

    @property
    def nbytes(self) -> int:
        """What reading it takes at least: the array the header declares (NumPy allocates it
        first), or the declared file size (object arrays, whose pickles it bounds; other files)."""
        if self.shape is None or self.dtype is None or self.dtype.hasobject:
            return self.file_size
        return max(self.file_size, math.prod(self.shape) * self.dtype.itemsize)

    def describe(self) -> str:
        if self.shape is None:
            return f"{self.name!r} ({self.file_size} bytes)"
        return f"{self.name!r} ({'x'.join(map(str, self.shape)) or 'scalar'} {self.dtype})"


def read_header(f: BinaryIO) -> tuple[tuple[int, ...], bool, np.dtype]:
    """(shape, fortran_order, dtype) of the .npy file at ``f``'s position (NumPy's own reader,
    with its bound on the header's length)."""
    version = np.lib.format.read_magic(f)
    if version == (1, 0):
        return np.lib.format.read_array_header_1_0(f)
    return np.lib.format.read_array_header_2_0(f)


def declared_members(path: Path) -> list[DeclaredMember]:
    """Every member of the .npz at ``path``, from its headers; DataError when it is no zip or a
    .npy member's header cannot be read."""
    try:
        with zipfile.ZipFile(path) as zf:
            return [_member(zf, info) for info in zf.infolist() if not info.is_dir()]
    except (zipfile.BadZipFile, OSError, EOFError, NotImplementedError, RuntimeError) as exc:
        raise DataError(f"{path}: not a readable .npz ({type(exc).__name__}: {exc})") from None


def _member(zf: zipfile.ZipFile, info: zipfile.ZipInfo) -> DeclaredMember:
    if not info.filename.endswith(".npy"):
        return DeclaredMember(info.filename, info.file_size, None, None)
    name = info.filename[:-4]
    try:
        with zf.open(info) as raw:
            shape, _, dtype = read_header(raw)
    except ValueError as exc:
        raise DataError(f"{zf.filename}: {name!r} is not a readable NumPy array ({exc})") from None
    return DeclaredMember(name, info.file_size, tuple(int(d) for d in shape), dtype)
