"""A small synchronous Python client of TrainingService; answers are the proto messages.

    with TrainingClient("localhost:50052") as client:
        job = client.submit(job_spec("dcgan", "mnist5k", model_name="mnist-dcgan", publish=True,
                                     steps=300, width=32))
        for event in client.watch(job.job_id):
            print(event)

``job_spec`` builds a JobSpec from the trainer's option names: each goes to the common
TrainingOptions or to the family's options message, whichever declares it. The families and
their messages come from the proto (``services.training.families``), so every family the
service trains can be submitted. ``upload_dataset``
sends a folder (zipped on the fly), a zip, a tar(.gz) or an .npz in chunks:

    with TrainingClient("localhost:50052") as client:
        client.upload_dataset("shapes/", "shapes")
        job = client.submit(job_spec("dcgan", "shapes", conditional=True, steps=300))
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import zipfile
from pathlib import Path
from typing import Any, Iterator

from latentforge.v1 import training_pb2 as pb
from latentforge.v1 import training_pb2_grpc as pb_grpc
from services.rpc.security import client_channel
from services.training.families import COMMON_MESSAGE, FAMILY_MESSAGES, option_fields, set_family_options

STATES = {name: pb.JobState.Value(f"JOB_STATE_{name}") for name in
          ("QUEUED", "STARTING", "RUNNING", "SUCCEEDED", "FAILED", "CANCELLED")}
TERMINAL = {STATES["SUCCEEDED"], STATES["FAILED"], STATES["CANCELLED"]}
CHUNK_BYTES = 1 << 20
# The upload format of a file by its name's ending.
FORMAT_SUFFIXES = {".zip": pb.DATASET_FORMAT_ZIP, ".tar": pb.DATASET_FORMAT_TAR, ".tar.gz": pb.DATASET_FORMAT_TAR,
                   ".tgz": pb.DATASET_FORMAT_TAR, ".npz": pb.DATASET_FORMAT_NPZ, ".png": pb.DATASET_FORMAT_IMAGE,
                   ".jpg": pb.DATASET_FORMAT_IMAGE, ".jpeg": pb.DATASET_FORMAT_IMAGE}


def upload_format(path: Path) -> int:
    """The DatasetFormat of a file by its name (.zip, .tar, .tar.gz, .tgz, .npz; .png, .jpg, .jpeg: one image)."""
    name = path.name.lower()
    for suffix, fmt in FORMAT_SUFFIXES.items():
        if name.endswith(suffix):
            return fmt
    raise ValueError(f"{path}: upload a folder, a .zip, a .tar(.gz), an .npz or one .png/.jpg image")


def zip_folder(folder: Path, out: Path) -> Path:
    """Zip ``folder``'s files (paths relative to it; subfolders are classes) into ``out``."""
    files = sorted(p for p in folder.rglob("*") if p.is_file() and not p.is_symlink())
    if not files:
        raise ValueError(f"{folder}: the folder holds no files")
    with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as zf:  # images are compressed already
        for path in files:
            zf.write(path, path.relative_to(folder).as_posix())
    return out


def file_chunks(path: Path, header: pb.DatasetHeader, chunk_bytes: int = CHUNK_BYTES) -> Iterator[pb.DatasetChunk]:
    """The DatasetChunks of a file: the header with its first bytes, then the rest."""
    with open(path, "rb") as f:
        first = True
        while True:
            data = f.read(chunk_bytes)
            if not data and not first:
                return
            yield pb.DatasetChunk(header=header, data=data) if first else pb.DatasetChunk(data=data)
            first = False


def state_name(state: int) -> str:
    """QUEUED, RUNNING, ... of a JobState value."""
    return pb.JobState.Name(state).removeprefix("JOB_STATE_")


def job_spec(family: str, dataset: str = "mnist5k", *, model_name: str = "", publish: bool = False,
             idempotency_key: str = "", max_retries: int = 0, nproc: int = 1, **options: Any) -> pb.JobSpec:
    """A JobSpec; ``options`` are trainer options by name (steps=300, width=32, lr=1e-3, ...).
    ValueError names an unknown family (given options) or an option the family does not have."""
    common = {k: v for k, v in options.items() if k in option_fields(COMMON_MESSAGE)}
    rest = {k: v for k, v in options.items() if k not in common}
    spec = pb.JobSpec(family=family, dataset=dataset, model_name=model_name, publish=publish,
                      idempotency_key=idempotency_key, max_retries=max_retries, nproc=nproc)
    if common:
        spec.options.CopyFrom(COMMON_MESSAGE(**common))
    if rest or family in FAMILY_MESSAGES:  # an unknown family without options: the server names it
        set_family_options(spec, family, rest)
    return spec


class TrainingClient:
    """Blocking client; one channel, reused. Errors surface as grpc.RpcError."""

    def __init__(self, target: str, timeout_s: float = 30.0, *, tls: bool = False, tls_ca: Path | None = None,
                 tls_cert: Path | None = None, tls_key: Path | None = None, token: str | None = None,
                 max_message_bytes: int = 64 * 1024 * 1024) -> None:
        """Plaintext by default; TLS when `tls` or a TLS file is given (mTLS with cert + key);
        `token` is sent as ``authorization: Bearer <token>`` on every call."""
        self.target = target
        self.timeout_s = timeout_s
        self._channel = client_channel(target, tls=tls, ca=tls_ca, cert=tls_cert, key=tls_key, token=token, options=[
            ("grpc.max_receive_message_length", max_message_bytes)])
        self.stub = pb_grpc.TrainingServiceStub(self._channel)

    def close(self) -> None:
        self._channel.close()

    def __enter__(self) -> "TrainingClient":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def submit(self, spec: pb.JobSpec) -> pb.Job:
        return self.stub.SubmitJob(spec, timeout=self.timeout_s)

    def get(self, job_id: str) -> pb.Job:
        return self.stub.GetJob(pb.GetJobRequest(job_id=job_id), timeout=self.timeout_s)

    def list(self, state: str | None = None, model_name: str = "", page_size: int = 0,
             page_token: str = "") -> pb.ListJobsResponse:
        """One page of jobs, newest first (``state``: QUEUED, RUNNING, ...)."""
        return self.stub.ListJobs(pb.ListJobsRequest(state=STATES[state] if state else 0, model_name=model_name,
                                                     page_size=page_size, page_token=page_token),
                                  timeout=self.timeout_s)

    def list_all(self, state: str | None = None, model_name: str = "") -> list[pb.Job]:
        """Every job, following the pages."""
        jobs, token = [], ""
        while True:
            page = self.list(state, model_name, 0, token)
            jobs += page.jobs
            token = page.next_page_token
            if not token:
                return jobs

    def cancel(self, job_id: str) -> pb.Job:
        return self.stub.CancelJob(pb.CancelJobRequest(job_id=job_id), timeout=self.timeout_s)

    def resume(self, job_id: str) -> pb.Job:
        return self.stub.ResumeJob(pb.ResumeJobRequest(job_id=job_id), timeout=self.timeout_s)

    def watch(self, job_id: str, from_seq: int = 0, timeout_s: float | None = None) -> Iterator[pb.JobEvent]:
        """The job's events from ``from_seq`` until it has ended (``timeout_s``: for the whole stream)."""
        return self.stub.WatchJob(pb.WatchJobRequest(job_id=job_id, from_seq=from_seq), timeout=timeout_s)

    def upload_dataset(self, path: Path | str, name: str, timeout_s: float | None = None,
                       chunk_bytes: int = CHUNK_BYTES) -> pb.Dataset:
        """Upload a folder of images (zipped on the fly; one subfolder per class gives labels), a
        zip, a tar(.gz), an .npz or one PNG/JPEG image (a style image) as data set ``name``; returns it
        as the server stored it."""
        path = Path(path)
        if path.is_dir():
            with tempfile.TemporaryDirectory(prefix="latentforge-upload-") as tmp:
                return self.upload_dataset(zip_folder(path, Path(tmp) / f"{name}.zip"), name, timeout_s, chunk_bytes)
        fmt = upload_format(path)
        digest = hashlib.sha256()
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(CHUNK_BYTES), b""):
                digest.update(block)
        header = pb.DatasetHeader(name=name, format=fmt, sha256=digest.hexdigest(), size_bytes=os.path.getsize(path))
        return self.stub.UploadDataset(file_chunks(path, header, chunk_bytes), timeout=timeout_s)

    def list_datasets(self) -> pb.ListDatasetsResponse:
        """The uploaded data sets (and the built-in names)."""
        return self.stub.ListDatasets(pb.ListDatasetsRequest(), timeout=self.timeout_s)

    def delete_dataset(self, name: str) -> pb.Dataset:
        return self.stub.DeleteDataset(pb.DeleteDatasetRequest(name=name), timeout=self.timeout_s)

    def families(self) -> pb.ListFamiliesResponse:
        """The families a job may train and every option, with the trainer's defaults and help."""
        return self.stub.ListFamilies(pb.ListFamiliesRequest(), timeout=self.timeout_s)

    def wait(self, job_id: str, timeout_s: float | None = None) -> pb.Job:
        """Watch until the job has ended; returns it."""
        for _ in self.watch(job_id, timeout_s=timeout_s):
            pass
        return self.get(job_id)
