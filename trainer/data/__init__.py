"""Training data: sources (trainer.data.sources), what they return, and batches.

Every source becomes one in-memory `TrainingData` (images as float32 (N, C, H, W) in [0, 1],
labels and class names when the source has them); each model family maps that to its own
range. All checks run before training starts and fail with a DataError that says what is
wrong and how to fix it.
"""

from trainer.data.base import DATA_KINDS, FIELDS, DataError, DataOptions, DataSource, DataSpec, TrainingData
from trainer.data.batch import Batch
from trainer.data.sources import SOURCES, data_kind, describe_sources, find_source, load_data

__all__ = ["Batch", "DATA_KINDS", "DataError", "DataOptions", "DataSource", "DataSpec", "FIELDS", "SOURCES",
           "TrainingData", "data_kind", "describe_sources", "find_source", "load_data"]
