"""A small disk for the tests of a full one: a tmpfs of a given size mounted on a folder, and ways
to fill it and watch how much of it is used."""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import pytest


@contextmanager
def small_disk(folder: Path, size_bytes: int) -> Iterator[Path]:
    """A tmpfs of ``size_bytes`` mounted on ``folder`` while the block runs. Skips the test, saying
    why, where this process may not mount one (mounting needs root or CAP_SYS_ADMIN)."""
    folder.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs for the full-disk test needs root")
    try:
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_bytes},mode=0755", "tmpfs", str(folder)],
                              capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as exc:
        pytest.skip(f"cannot mount a tmpfs here: {exc}")
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip() or f'mount exit {done.returncode}'}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], capture_output=True, timeout=30)


def fill(folder: Path, leave_bytes: int, name: str = "filler") -> Path:
    """A file in ``folder`` that leaves about ``leave_bytes`` of its disk free."""
    path = folder / name
    size = shutil.disk_usage(folder).free - leave_bytes
    with open(path, "wb") as f:
        if size > 0:
            os.posix_fallocate(f.fileno(), 0, size)
    return path


class PeakUsage:
    """The most bytes used on ``folder``'s disk while the block runs, read every few ms."""

    def __init__(self, folder: Path, interval_s: float = 0.002) -> None:
        self.folder = folder
        self.interval_s = interval_s
        self.peak_bytes = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def __enter__(self) -> "PeakUsage":
        self.peak_bytes = shutil.disk_usage(self.folder).used
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)

    def _watch(self) -> None:
        while not self._stop.is_set():
            self.peak_bytes = max(self.peak_bytes, shutil.disk_usage(self.folder).used)
            self._stop.wait(self.interval_s)
