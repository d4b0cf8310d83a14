"""The data sources by which --data is read: the one place a source is registered.

Add a source: a `DataSource` subclass (see trainer.data.base) in its own module, listed in
SOURCES below. Sources are asked in order; the first that claims a --data value reads it.
Every source's result passes the same checks here (labels in range, class names, the stroke-5
contract of trainer.data.strokes), so a family can trust what a `TrainingData` says it holds.

Two sources read .npz files: SketchNpz claims the stroke files (a `train` array and no image
array, see trainer.data.sketch_npz) and comes first; ArrayFile reads every other .npz as images.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from trainer.data.arrays import ArrayFile
from trainer.data.base import DataError, DataOptions, DataSource, TrainingData
from trainer.data.builtin import MNIST5K
from trainer.data.folder import ImageFolder
from trainer.data.kanjivg import KanjiVGSet
from trainer.data.single_image import SingleImage
from trainer.data.sketch_npz import SketchNpz
from trainer.data.strokes import check_stroke5
from trainer.data.style_images import StyleSet

SOURCES: list[DataSource] = [MNIST5K, KanjiVGSet(), StyleSet(), ImageFolder(), SingleImage(), SketchNpz(), ArrayFile()]


def find_source(spec: str) -> DataSource:
    """The source that reads `spec`, or a DataError naming what --data may be."""
    for source in SOURCES:
        if source.claims(spec):
            return source
    paths = " or ".join(s.path_kind for s in SOURCES if s.path_kind)
    if Path(spec).exists():
        raise DataError(f"{spec}: unsupported data file; use a {paths}")
    names = ", ".join(repr(n) for s in SOURCES for n in s.builtin_names())
    raise DataError(f"data {spec!r} is neither {names} nor an existing {paths}")


def data_kind(spec: str) -> str:
    """The kind of data (a key of trainer.data.base.DATA_KINDS) that `spec` gives, without
    reading it: its source's. DataError as find_source."""
    return find_source(spec).kind


def describe_sources() -> str:
    """One line per source, for --help."""
    return "; ".join(s.summary for s in SOURCES)


def load_data(spec: str, image_size: int | None = None, channels: int | None = None,
              min_image_size: int = 8, max_seq_len: int | None = None) -> TrainingData:
    """Load and check a data source by name or path; raises DataError before any training work.

    max_seq_len caps stroke drawings (longer ones are left out and counted); None = the source's cap.
    """
    data = find_source(spec).load(spec, DataOptions(image_size, channels, min_image_size, max_seq_len))
    return _checked(data)


def _checked(data: TrainingData) -> TrainingData:
    arrays = data.arrays()
    if not arrays or (data.images is None and data.strokes is None):
        raise DataError(f"{data.source}: the source gave no images or strokes")
    n = len(data)
    uneven = {name: len(a) for name, a in arrays.items() if len(a) != n}
    if uneven:
        raise DataError(f"{data.source}: {n} examples but {uneven}")
    if data.strokes is not None:
        if data.lengths is None:
            raise DataError(f"{data.source}: strokes without lengths")
        check_stroke5(data.strokes, data.lengths, data.source)
        if data.stroke_scale is None or not data.stroke_scale > 0:
            raise DataError(f"{data.source}: strokes without a positive stroke_scale")
    if data.labels is not None:
        labels = data.labels
        if labels.size and int(labels.min()) < 0:
            raise DataError(f"{data.source}: labels must be >= 0 (found {int(labels.min())})")
        top = int(labels.max()) + 1 if labels.size else 0
        if not data.class_names:
            data.class_names = [str(i) for i in range(top)]
        elif top > len(data.class_names):
            raise DataError(f"{data.source}: label {top - 1} but only {len(data.class_names)} class names")
        data.labels = labels.astype(np.int64, copy=False)
    elif data.class_names:
        raise DataError(f"{data.source}: class names without labels")
    return data
