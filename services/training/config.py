"""Settings of the training server (``latentforge serve-training``), one typed table.

``TrainingConfig`` extends the settings every RPC server has (``services.rpc.settings``) with
where jobs live, where they publish, and the runner's limits. Precedence, highest first:
command line > ``LATENTFORGE_*`` environment > config file (JSON or TOML; keys at top level
or under a ``[training]`` table) > defaults. ``TRAINING_FIELDS`` are the ones that are the
training service's own (``latentforge serve --training`` takes them beside the serving ones).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Mapping

from services.rpc.settings import ServerSettings, load_settings, setting

# Pillow's own decompression-bomb limit (PIL.Image.MAX_IMAGE_PIXELS), which a job's process keeps:
# the server's pixel limit may not pass it, or it would accept images its jobs refuse.
PILLOW_MAX_PIXELS = 89_478_485


@dataclass(frozen=True)
class TrainingConfig(ServerSettings):
    """Everything ``latentforge serve-training`` can be told."""

    FILE_TABLE: ClassVar[str | None] = "training"

    port: int = setting(50052, "gRPC port; 0 picks a free one")
    metrics_port: int | None = setting(9091, "Prometheus /metrics port; 0 picks a free one; none: no endpoint")
    data_dir: Path = setting(Path("training-data"), "the job store (SQLite) and each job's run folder")
    models: Path = setting(Path("models"), "model repository root that finished jobs publish into")
    max_concurrent_jobs: int = setting(1, "jobs that train at once; later ones wait in a FIFO queue")
    max_queued_jobs: int = setting(16, "jobs that may wait in the queue before SubmitJob answers RESOURCE_EXHAUSTED")
    max_steps: int = setting(1_000_000, "the most steps a job may ask for")
    max_time_budget_s: float = setting(7 * 86_400.0, "the longest time budget a job may ask for, in seconds")
    max_nproc: int = setting(8, "the most processes one job may ask for (torchrun)")
    max_retries: int = setting(5, "the most retries a job may ask for")
    resume_on_start: bool = setting(True, "on start, continue jobs that were running when the service stopped "
                                          "from their last checkpoint; off: mark them FAILED")
    min_free_disk_bytes: int = setting(1 << 30, "SubmitJob, ResumeJob, UploadDataset and each job's start "
                                                "need this much free space in --data-dir")
    max_dataset_bytes: int = setting(2 << 30, "the largest upload (UploadDataset), in bytes")
    max_dataset_files: int = setting(200_000, "the most files an uploaded archive may hold")
    max_dataset_unpacked_bytes: int = setting(8 << 30, "the most bytes an uploaded archive may unpack to (or an "
                                                       ".npz's arrays declare)")
    max_image_pixels: int = setting(50_000_000, "the most pixels (width x height) an uploaded image may declare; "
                                                "larger ones are refused before they are decoded")
    max_check_memory_bytes: int = setting(4 << 30, "address space of the process that unpacks and reads an "
                                                   "upload; an upload that needs more is refused")
    poll_interval_s: float = setting(0.5, "how often a running job's run folder is read for new events, in seconds")
    stop_grace_s: float = setting(30.0, "on shutdown: how long running jobs get to write a checkpoint after "
                                        "SIGTERM before they are killed")

    def checks(self) -> list[tuple[bool, str]]:
        return [
            *super().checks(),
            (self.max_concurrent_jobs >= 1, "max_concurrent_jobs must be >= 1"),
            (self.max_queued_jobs >= 0, "max_queued_jobs must be >= 0"),
            (self.max_steps >= 1, "max_steps must be >= 1"),
            (self.max_time_budget_s > 0, "max_time_budget_s must be > 0"),
            (self.max_nproc >= 1, "max_nproc must be >= 1"),
            (self.max_retries >= 0, "max_retries must be >= 0"),
            (self.min_free_disk_bytes >= 0, "min_free_disk_bytes must be >= 0"),
            (self.max_dataset_bytes >= 1, "max_dataset_bytes must be >= 1"),
            (self.max_dataset_files >= 1, "max_dataset_files must be >= 1"),
            (self.max_dataset_unpacked_bytes >= 1, "max_dataset_unpacked_bytes must be >= 1"),
            (1 <= self.max_image_pixels <= PILLOW_MAX_PIXELS, f"max_image_pixels must be 1..{PILLOW_MAX_PIXELS} "
                                                              "(Pillow's own limit, which the jobs keep)"),
            (self.max_check_memory_bytes >= 256 << 20, "max_check_memory_bytes must be >= 268435456 (256 MiB): the "
                                                        "check's Python, NumPy and Pillow need about 150 MiB"),
            (self.poll_interval_s > 0, "poll_interval_s must be > 0"),
            (self.stop_grace_s >= 0, "stop_grace_s must be >= 0"),
        ]


# The training service's own settings (not the server's, not shared with the serving ones).
TRAINING_FIELDS = tuple(f.name for f in dataclasses.fields(TrainingConfig)
                        if f.name not in {g.name for g in dataclasses.fields(ServerSettings)} and f.name != "models")


def load_training_config(config_file: Path | None = None, environ: Mapping[str, str] | None = None,
                         overrides: Mapping[str, Any] | None = None) -> TrainingConfig:
    """The training server's settings: defaults < file < environment < overrides."""
    return load_settings(TrainingConfig, config_file, environ, overrides)
