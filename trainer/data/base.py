"""What a data source returns and what the rest of the trainer learns about it.

`TrainingData` holds the examples as NumPy arrays, one per batch field (images, labels,
masks, strokes, lengths; absent fields are None), plus class names and provenance. Its
`spec` (a `DataSpec`) is the part a family is built from and a checkpoint stores: shapes,
fields and classes, without the examples.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np

# Fields a source may fill, in the order of trainer.data.batch.Batch.
FIELDS = ("images", "labels", "masks", "strokes", "lengths")

# The kinds of data a source gives (DataSource.kind) and a family takes (FamilyEntry.data_kinds),
# each with the words a message uses and the batch field it fills.
DATA_KINDS = {"images": "a set of images", "image": "one image", "strokes": "pen strokes"}
KIND_FIELDS = {"images": "images", "image": "images", "strokes": "strokes"}


class DataError(ValueError):
    """The training data cannot be used; the message says why and what to do."""


class DataTooLarge(DataError):
    """The data passes a size limit (an image's declared pixels): a limit, not a broken file."""


@dataclass(frozen=True)
class DataOptions:
    """How the run asks a source to shape its examples (from TrainConfig)."""

    image_size: int | None = None  # square size; None keeps the source's own (folders: 64)
    channels: int | None = None  # 1 or 3; None keeps the source's own
    min_image_size: int = 8  # smaller source images are refused
    max_seq_len: int | None = None  # stroke sources: longer drawings are left out; None = the source's cap


@dataclass
class TrainingData:
    """Examples as arrays, one per batch field, all with the same first dimension.

    images: float32 (N, C, H, W) in [0, 1]; labels: int64 (N,) in [0, len(class_names));
    masks: float32 (N, 1, H, W), 1 = known pixel; strokes: float32 (N, T, 5) pen strokes
    with lengths: int64 (N,) valid steps per sequence (the stroke-5 contract is in
    trainer.data.strokes: offsets divided by `stroke_scale`, padded to T = max_seq_len).
    """

    source: str
    images: np.ndarray | None = None
    labels: np.ndarray | None = None
    masks: np.ndarray | None = None
    strokes: np.ndarray | None = None
    lengths: np.ndarray | None = None
    class_names: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # unreadable files that were left out
    stroke_scale: float | None = None  # strokes: the std of the raw dx, dy that divided them
    too_long: int = 0  # strokes: drawings left out for being longer than the cap

    def arrays(self) -> dict[str, np.ndarray]:
        """The fields this data fills, by batch field name."""
        return {name: getattr(self, name) for name in FIELDS if getattr(self, name) is not None}

    @property
    def main(self) -> np.ndarray:
        """The array a model learns to generate: images, or strokes for a sequence source."""
        return self.images if self.images is not None else self.strokes  # type: ignore[return-value]

    @property
    def shape(self) -> tuple[int, ...]:
        """The shape of one example of the main array, e.g. (C, H, W)."""
        return tuple(int(d) for d in self.main.shape[1:])

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def max_seq_len(self) -> int | None:
        """T, the padded length of every stroke sequence; None without strokes."""
        return None if self.strokes is None else int(self.strokes.shape[1])

    def __len__(self) -> int:
        return int(self.main.shape[0])

    @property
    def spec(self) -> "DataSpec":
        return DataSpec(source=self.source, count=len(self), shape=self.shape, fields=tuple(self.arrays()),
                        class_names=tuple(self.class_names), skipped_files=len(self.skipped),
                        stroke_scale=self.stroke_scale, too_long=self.too_long)


@dataclass(frozen=True)
class DataSpec:
    """What a family is built from and a checkpoint stores about its data."""

    source: str
    count: int
    shape: tuple[int, ...]  # one example of the main field: images (C, H, W), strokes (T, 5)
    fields: tuple[str, ...] = ("images",)  # the batch fields the data fills
    class_names: tuple[str, ...] = ()  # empty when the data has no labels
    skipped_files: int = 0
    stroke_scale: float | None = None  # strokes: what divided the raw dx, dy (their std); None for images
    too_long: int = 0  # strokes: drawings left out for being longer than the cap

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def max_seq_len(self) -> int | None:
        """T of the stroke sequences (strokes are (T, 5)); None for image data."""
        return self.shape[0] if "strokes" in self.fields else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "count": self.count,
            "shape": list(self.shape),
            "fields": list(self.fields),
            "num_classes": self.num_classes,
            "class_names": list(self.class_names),
            "skipped_files": self.skipped_files,
            "stroke_scale": self.stroke_scale,
            "max_seq_len": self.max_seq_len,  # derived from shape; written for readers of the file
            "too_long": self.too_long,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "DataSpec":
        known = {f.name for f in fields(cls)}  # keys added later default when an old checkpoint lacks them
        return cls(**{
            **{k: v for k, v in data.items() if k in known},
            "shape": tuple(data["shape"]),
            "fields": tuple(data.get("fields", ("images",))),
            "class_names": tuple(data.get("class_names", ())),
        })


class DataSource(ABC):
    """A kind of training data. Register one in trainer.data.sources.SOURCES."""

    name: str = ""  # short name, e.g. "mnist5k", "folder"
    summary: str = ""  # what --data names to use it, for help
    path_kind: str | None = None  # for sources read from a path: what it is ("folder"); None = by name
    kind: str = "images"  # the kind of data it gives, a key of DATA_KINDS

    def builtin_names(self) -> tuple[str, ...]:
        """The --data names of a built-in set (e.g. 'kanjivg' and its subsets); () for a path source."""
        return () if self.path_kind else (self.name,)

    @abstractmethod
    def claims(self, spec: str) -> bool:
        """Whether this source reads `spec` (a --data value)."""

    @abstractmethod
    def load(self, spec: str, options: DataOptions) -> TrainingData:
        """Read and check all of it; raise DataError saying what is wrong and how to fix it."""
