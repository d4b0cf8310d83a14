"""Data sets a job may name: the trainer's built-in sets and the ones clients upload.

A client names a data set, never a path on the server; ``DatasetLibrary.resolve`` is the one
place a name becomes what ``latentforge train --data`` reads. Uploads arrive in chunks into a
staging folder under ``<data-dir>/datasets/.uploads``; the bytes are counted against the size
limit and hashed as they come, the sha256 is compared at the end, and the file is unpacked and
read with the trainer's loader in a child process (``services.training.dataset_check``, with
its memory, pixel, size and disk limits). Only then does the staging folder become
``<data-dir>/datasets/<id>`` and the record go into the store. Whatever goes wrong (a full
disk included: RESOURCE_EXHAUSTED), the staging folder is removed, and the ``.uploads`` folder
with it once empty: nothing of a refused upload stays.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import re
import shutil
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import AsyncIterator, Callable

from latentforge.manifest import NAME_PATTERN
from services.errors import AlreadyExists, FailedPrecondition, InvalidArgument, NotFound, ResourceExhausted
from services.rpc.logs import event, get_logger
from services.training.archives import remove
from services.training.config import TrainingConfig
from services.training.disk import disk_full_is_a_limit
from services.training.metrics import TrainingMetrics
from services.training.store import DatasetRecord, JobStore

log = get_logger("training")

FORMATS = ("zip", "tar", "npz", "image")  # "image": one PNG or JPEG file (a style image)
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
UPLOADS = ".uploads"


def builtin_datasets() -> list[str]:
    """Names of the trainer's built-in data sets (mnist5k, kanjivg and its subsets)."""
    from trainer.data.sources import SOURCES

    return [name for s in SOURCES for name in s.builtin_names()]


@dataclass(frozen=True)
class UploadHeader:
    """What the first chunk of an upload says: the name, the format (zip, tar, npz), the
    sha256 of the whole file and, when the client knows it, its size (0: not said)."""

    name: str
    format: str
    sha256: str
    size_bytes: int = 0


class DatasetLibrary:
    """The uploaded data sets: their folders under ``<data-dir>/datasets`` and their records."""

    def __init__(self, config: TrainingConfig, store: JobStore, metrics: TrainingMetrics, data_dir: Path,
                 python: str | None = None, *, check_disk: Callable[[str, int], None]) -> None:
        """``check_disk(what, needed_bytes)``: the job manager's disk-space check, which raises
        ResourceExhausted when ``needed_bytes`` would not fit beside the space kept free."""
        self.config = config
        self.check_disk = check_disk
        self.store = store
        self.metrics = metrics
        self.python = python or sys.executable
        self.data_dir = data_dir
        self.root = data_dir / "datasets"
        self._uploading: set[str] = set()

    def start(self) -> None:
        """Remove what an earlier service process left half done: staging folders, and folders
        whose record was never written (or was deleted before the files were)."""
        self.root.mkdir(parents=True, exist_ok=True)
        remove(self.root / UPLOADS)
        known = {r.dataset_id for r in self.store.datasets()}
        for child in self.root.iterdir():
            if child.name not in known:
                remove(child)
        self._refresh_metrics()

    # ---- names ------------------------------------------------------------------------------

    def resolve(self, name: str) -> str:
        """The --data value of a data set name; NotFound names the known ones."""
        if not name:
            raise InvalidArgument(f"dataset is required; use one of {', '.join(self.names())}")
        if name in builtin_datasets():
            return name
        record = self.store.dataset(name)
        if record is not None:
            return str(self.root / record.dataset_id / record.path)
        raise NotFound(f"unknown data set {name!r}; known data sets: {', '.join(self.names())} "
                       "(UploadDataset adds one)")

    def kind(self, name: str) -> str:
        """The kind of data a known data set holds (trainer.data.base.DATA_KINDS), read from its
        name or its files' layout, not from its contents."""
        from trainer.data import DataError, data_kind

        try:
            return data_kind(self.resolve(name))
        except DataError:
            raise FailedPrecondition(f"data set {name!r} cannot be read any more; delete it and upload it "
                                     "again") from None

    def names(self) -> list[str]:
        return builtin_datasets() + [r.name for r in self.store.datasets()]

    def list(self) -> list[DatasetRecord]:
        """The uploaded data sets, oldest first."""
        return self.store.datasets()

    def get(self, name: str) -> DatasetRecord:
        record = self.store.dataset(name) if name else None
        if record is None:
            if name in builtin_datasets():
                raise FailedPrecondition(f"{name!r} is a built-in data set, not an uploaded one")
            raise NotFound(f"no uploaded data set {name!r}; ListDatasets lists them")
        return record

    # ---- delete -----------------------------------------------------------------------------

    def delete(self, name: str, users: list[str]) -> DatasetRecord:
        """Delete an uploaded data set that no job in ``users`` (queued or running jobs naming
        it) still needs."""
        record = self.get(name)
        if users:
            raise FailedPrecondition(f"data set {name!r} is used by job(s) {', '.join(users)} that are queued or "
                                     "running; cancel them or wait until they end")
        self.store.delete_dataset(name)
        folder = self.root / record.dataset_id
        trash = self.root / UPLOADS / f"deleted-{record.dataset_id}"
        trash.parent.mkdir(parents=True, exist_ok=True)
        folder.rename(trash)
        shutil.rmtree(trash, ignore_errors=True)
        self._remove_uploads_folder()
        event(log, "dataset_deleted", dataset=name, dataset_id=record.dataset_id)
        self._refresh_metrics()
        return record

    # ---- upload -----------------------------------------------------------------------------

    async def upload(self, header: UploadHeader, chunks: AsyncIterator[bytes]) -> DatasetRecord:
        """Receive, verify, unpack and check an upload; the stored record. Nothing stays on error."""
        outcome = "aborted"
        try:
            record = await self._upload(header, chunks)
            outcome = "accepted"
            return record
        except (InvalidArgument, NotFound, FailedPrecondition):
            outcome = "invalid"
            raise
        except ResourceExhausted:
            outcome = "too_large"
            raise
        except AlreadyExists:
            outcome = "exists"
            raise
        finally:
            self.metrics.uploads.labels(outcome).inc()

    def _check_header(self, header: UploadHeader) -> None:
        c = self.config
        if not NAME_PATTERN.match(header.name):
            raise InvalidArgument(f"data set name {header.name!r} must match {NAME_PATTERN.pattern} (lower case, "
                                  "digits, . _ -)")
        if header.name in builtin_datasets():
            raise InvalidArgument(f"{header.name!r} is the name of a built-in data set; choose another")
        if header.format not in FORMATS:
            raise InvalidArgument(f"format {header.format or '(unset)'!r} is not one of {', '.join(FORMATS)}")
        if not _SHA256.match(header.sha256):
            raise InvalidArgument("sha256 must be the upload's SHA-256 as 64 lower-case hex digits")
        if header.size_bytes < 0:
            raise InvalidArgument(f"size_bytes must be >= 0 (got {header.size_bytes})")
        if header.size_bytes > c.max_dataset_bytes:
            raise ResourceExhausted(f"the upload is {header.size_bytes} bytes; this server takes at most "
                                    f"{c.max_dataset_bytes}")

    async def _upload(self, header: UploadHeader, chunks: AsyncIterator[bytes]) -> DatasetRecord:
        c = self.config
        self._check_header(header)
        existing = self.store.dataset(header.name)
        if existing is not None:
            if existing.sha256 == header.sha256:
                return existing  # a retried upload of the same file
            raise AlreadyExists(f"a data set named {header.name!r} exists already with other contents; delete it "
                                "first or choose another name")
        if header.name in self._uploading:
            raise AlreadyExists(f"a data set named {header.name!r} is being uploaded now")
        self.check_disk("the upload", header.size_bytes)
        self._uploading.add(header.name)
        staging = self.root / UPLOADS / uuid.uuid4().hex
        try:
            staging.mkdir(parents=True)
            upload = staging / ("data.npz" if header.format == "npz" else "upload")
            digest = hashlib.sha256()
            size = 0
            with disk_full_is_a_limit("the upload"), open(upload, "wb") as out:
                async for data in chunks:
                    size += len(data)
                    self.metrics.upload_bytes.inc(len(data))
                    if size > c.max_dataset_bytes:
                        raise ResourceExhausted(f"the upload is larger than this server's limit of "
                                                f"{c.max_dataset_bytes} bytes")
                    digest.update(data)
                    out.write(data)
            if size == 0:
                raise InvalidArgument("the upload is empty; send the file's bytes in the chunks")
            if digest.hexdigest() != header.sha256:
                raise InvalidArgument(f"the upload's sha256 is {digest.hexdigest()}, not the declared {header.sha256}; "
                                      "the file changed or was cut short: upload it again")
            summary = await self._check(upload, header.format, staging / "images")
            if header.format in ("zip", "tar"):
                upload.unlink()
            dataset_id = uuid.uuid4().hex[:16]
            record = DatasetRecord(
                name=header.name, dataset_id=dataset_id, sha256=header.sha256, format=header.format,
                size_bytes=size, count=summary["count"], shape=tuple(summary["shape"]),
                class_names=tuple(summary["class_names"]), skipped_files=summary["skipped_files"],
                created=time.time(), path=str(Path(summary["data"]).relative_to(staging)))
            folder = self.root / dataset_id
            staging.rename(folder)
            try:
                self.store.add_dataset(record)
            except BaseException:  # a full store, say: the files go with the record
                remove(folder)
                raise
        finally:
            remove(staging)
            self._remove_uploads_folder()
            self._uploading.discard(header.name)
        event(log, "dataset_uploaded", dataset=record.name, dataset_id=record.dataset_id, bytes=size,
              count=record.count, classes=len(record.class_names), skipped=record.skipped_files)
        self._refresh_metrics()
        return record

    def _remove_uploads_folder(self) -> None:
        """Remove the staging folder ``.uploads`` when no upload uses it any more."""
        try:
            (self.root / UPLOADS).rmdir()
        except OSError:  # absent, or another upload's staging folder is in it
            pass

    async def _check(self, upload: Path, fmt: str, folder: Path) -> dict:
        """Unpack and read the upload in a child process (``services.training.dataset_check``)
        bounded by the server's limits; logs the child's peak memory."""
        from services.training.runner import PROJECT_ROOT

        c = self.config
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(PROJECT_ROOT),
                                                                          os.environ.get("PYTHONPATH")])),
               # One thread: the check needs no more, and each thread's arena counts against its memory.
               "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
        started = time.monotonic()
        proc = await asyncio.create_subprocess_exec(
            self.python, "-m", "services.training.dataset_check", str(upload), fmt, str(folder),
            "--max-files", str(c.max_dataset_files), "--max-bytes", str(c.max_dataset_unpacked_bytes),
            "--max-pixels", str(c.max_image_pixels), "--max-memory-bytes", str(c.max_check_memory_bytes),
            "--keep-free", str(c.min_free_disk_bytes),
            cwd=str(PROJECT_ROOT), env=env, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE)
        try:
            out, err = await proc.communicate()
        except BaseException:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
            raise
        lines = out.decode("utf-8", "replace").strip().splitlines()
        try:
            result = json.loads(lines[-1])
        except (IndexError, ValueError):
            event(log, "dataset_check_failed", level=logging.ERROR, exit_code=proc.returncode,
                  stderr=err.decode("utf-8", "replace")[-2000:])
            raise InvalidArgument(f"the upload could not be read: its check ended with exit status {proc.returncode} "
                                  f"without an answer (as a file that needs more than the check's "
                                  f"{c.max_check_memory_bytes} bytes of memory can)") from None
        event(log, "dataset_checked", format=fmt, ok=result["ok"], peak_rss_bytes=result.get("peak_rss_bytes"),
              seconds=round(time.monotonic() - started, 3))
        if not result["ok"]:
            if result.get("limit"):
                raise ResourceExhausted(result["error"])
            raise InvalidArgument(f"the upload was refused: {result['error']}")
        return result

    def _refresh_metrics(self) -> None:
        self.metrics.datasets.set(len(self.store.datasets()))

