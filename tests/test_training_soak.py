"""A bounded soak of the job API: ``latentforge serve-training`` (a child process) under concurrent
submits (idempotent retries among them), cancels, resumes, watches that reconnect from a random
``from_seq``, and uploads (accepted, refused, deleted). Every call must answer OK or a status its
situation allows. At the end every job has reached a terminal state with contiguous event
numbers, and nothing has leaked: no process, no file descriptor, no temporary file or folder.

Duration: ``LATENTFORGE_TRAINING_SOAK_S`` seconds of load (default 60); the jobs are tiny (a few
dozen steps at 16x16) and run one at a time, so the machine stays usable.
"""

from __future__ import annotations

import io
import os
import random
import signal
import threading
import time
import zipfile
from collections import Counter
from pathlib import Path
from typing import Any, Callable

import grpc
import numpy as np
import pytest
from PIL import Image

from latentforge.v1 import training_pb2 as pb
from services.training.client import TrainingClient, job_spec, state_name
from tests.helpers.processes import TrainingServeProcess, wait_until

pytestmark = pytest.mark.slow

SOAK_S = float(os.environ.get("LATENTFORGE_TRAINING_SOAK_S", "60"))
JOB = dict(steps=24, batch_size=8, width=8, image_size=16, checkpoint_every=6, sample_every=12, log_every=4,
           grid_size=4, threads=1, eval_every=0, conditional=False)
TERMINAL = {"SUCCEEDED", "FAILED", "CANCELLED"}
FD_SLACK = 6  # descriptors the server may hold beyond its warm state (a gRPC connection or two)
OK = grpc.StatusCode.OK
FAILED_PRECONDITION, RESOURCE_EXHAUSTED, NOT_FOUND, INVALID, ALREADY_EXISTS = (
    grpc.StatusCode.FAILED_PRECONDITION, grpc.StatusCode.RESOURCE_EXHAUSTED, grpc.StatusCode.NOT_FOUND,
    grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.ALREADY_EXISTS)


def _tiles_zip(seed: int) -> bytes:
    """A zip of 12 small colour images (an accepted upload)."""
    rng = np.random.default_rng(seed)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for i in range(12):
            png = io.BytesIO()
            Image.fromarray(rng.integers(0, 255, (16, 16, 3), dtype=np.uint8)).save(png, "PNG")
            zf.writestr(f"tiles/{i:02d}.png", png.getvalue())
    return buf.getvalue()


def _upload(stub: Any, name: str, data: bytes) -> pb.Dataset:
    import hashlib

    header = pb.DatasetHeader(name=name, format=pb.DATASET_FORMAT_ZIP, sha256=hashlib.sha256(data).hexdigest())
    return stub.UploadDataset(iter([pb.DatasetChunk(header=header, data=data)]), timeout=60)


def _descendants(pid: int) -> list[int]:
    """Processes below ``pid`` (Linux /proc)."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").glob("[0-9]*"):
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    found, frontier = [], [pid]
    while frontier:
        children = [p for p, parent in parents.items() if parent in frontier]
        found += children
        frontier = children
    return found


def _fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


class Soak:
    """The load: each kind of call in a thread of its own, every outcome checked."""

    def __init__(self, target: str, deadline: float) -> None:
        self.client = TrainingClient(target, timeout_s=60)
        self.stub = self.client.stub
        self.deadline = deadline
        self.lock = threading.Lock()
        self.outcomes: Counter = Counter()
        self.unexpected: list[str] = []
        self.jobs: list[str] = []
        self.keys: dict[str, tuple[pb.JobSpec, str]] = {}  # idempotency key -> (spec, job id)
        self.datasets: list[str] = []
        self.uploads = 0

    def call(self, name: str, fn: Callable[[], Any], allowed: set[tuple[grpc.StatusCode, str]] = frozenset()) -> Any:
        """One call; OK is always fine, another status only as an ``allowed`` (code, words) pair."""
        try:
            result, code, details = fn(), OK, ""
        except grpc.RpcError as exc:
            result, code, details = None, exc.code(), exc.details() or ""
        with self.lock:
            self.outcomes[(name, code.name)] += 1
            if code != OK and not any(code == c and words in details for c, words in allowed):
                self.unexpected.append(f"{name}: {code.name}: {details}")
        return result

    def pick(self, items: list[str], rng: random.Random) -> str | None:
        with self.lock:
            return rng.choice(items) if items else None

    def loop(self, seed: int, pause_s: float, step: Callable[[random.Random], None]) -> None:
        rng = random.Random(seed)
        while time.monotonic() < self.deadline:
            step(rng)
            time.sleep(pause_s * (0.5 + rng.random()))

    def submit(self, rng: random.Random) -> None:
        if self.keys and rng.random() < 0.25:  # a retried submit: the same job comes back
            key = self.pick(list(self.keys), rng)
            spec, job_id = self.keys[key]
            job = self.call("submit (retry)", lambda: self.stub.SubmitJob(spec, timeout=60))
            if job is not None and job.job_id != job_id:
                self.unexpected.append(f"retried submit {key} gave job {job.job_id}, not {job_id}")
            return
        dataset = self.pick(self.datasets, rng) if rng.random() < 0.4 else "mnist5k"
        key = f"key-{rng.getrandbits(40):x}" if rng.random() < 0.5 else ""
        spec = job_spec("dcgan", dataset or "mnist5k", idempotency_key=key, **JOB)
        job = self.call("submit", lambda: self.stub.SubmitJob(spec, timeout=60),
                        {(RESOURCE_EXHAUSTED, "queue is full"), (NOT_FOUND, "unknown data set")})
        if job is not None:
            with self.lock:
                self.jobs.append(job.job_id)
                if key:
                    self.keys[key] = (spec, job.job_id)

    def cancel(self, rng: random.Random) -> None:
        job_id = self.pick(self.jobs, rng)
        if job_id:
            self.call("cancel", lambda: self.client.cancel(job_id), {(FAILED_PRECONDITION, "only queued or running")})

    def resume(self, rng: random.Random) -> None:
        """Resume a job: one seen CANCELLED or FAILED must be taken (unless the queue is full or
        its data set went), any other refused as not resumable."""
        job_id = self.pick(self.jobs, rng)
        if not job_id:
            return
        ended = state_name(self.client.get(job_id).state) in ("CANCELLED", "FAILED")
        allowed = {(RESOURCE_EXHAUSTED, "queue is full"), (FAILED_PRECONDITION, "was deleted")}
        if not ended:
            allowed.add((FAILED_PRECONDITION, "only CANCELLED or FAILED"))
        self.call("resume (ended)" if ended else "resume", lambda: self.client.resume(job_id), allowed)

    def watch(self, rng: random.Random) -> None:
        """A watch from a random from_seq, dropped after a few events: what it saw is contiguous."""
        job_id = self.pick(self.jobs, rng)
        if not job_id:
            return
        last = self.client.get(job_id).last_seq
        from_seq = rng.randint(0, last + 2)
        call = self.stub.WatchJob(pb.WatchJobRequest(job_id=job_id, from_seq=from_seq), timeout=3)
        seqs: list[int] = []

        def read() -> None:
            for item in call:
                seqs.append(item.seq)
                if len(seqs) >= rng.randint(1, 30):
                    call.cancel()
                    return

        self.call("watch", read, {(grpc.StatusCode.CANCELLED, ""), (grpc.StatusCode.DEADLINE_EXCEEDED, "")})
        if seqs and seqs != list(range(max(1, from_seq), max(1, from_seq) + len(seqs))):
            self.unexpected.append(f"watch {job_id} from {from_seq}: seqs {seqs[:10]}")

    def upload(self, rng: random.Random) -> None:
        roll = rng.random()
        if roll < 0.5:
            with self.lock:
                self.uploads += 1
                name = f"tiles-{self.uploads}"
            if self.call("upload", lambda: _upload(self.stub, name, _tiles_zip(self.uploads))) is not None:
                with self.lock:
                    self.datasets.append(name)
        elif roll < 0.7:
            self.call("upload (corrupt)", lambda: _upload(self.stub, "broken", b"PK\x03\x04 not a zip" * 50),
                      {(INVALID, "not a readable zip")})
        else:
            name = self.pick(self.datasets, rng)
            if name and self.call("delete", lambda: self.client.delete_dataset(name),
                                  {(FAILED_PRECONDITION, "is used by job")}) is not None:
                with self.lock:
                    self.datasets.remove(name)

    def run(self) -> None:
        plan = [(self.submit, 0.6), (self.cancel, 1.5), (self.resume, 1.2), (self.watch, 0.3), (self.watch, 0.3),
                (self.upload, 1.0)]
        threads = [threading.Thread(target=self.loop, args=(k, pause, step), daemon=True)
                   for k, (step, pause) in enumerate(plan)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(SOAK_S + 120)


def test_soak_of_the_job_api_leaves_nothing_behind(tmp_path: Path):
    data_dir, tmp = tmp_path / "data", tmp_path / "tmp"
    tmp.mkdir()
    server = TrainingServeProcess(data_dir, tmp_path / "models", "--max-concurrent-jobs", "1",
                                  "--max-queued-jobs", "6", "--stop-grace-s", "10", env={"TMPDIR": str(tmp)})
    try:
        with TrainingClient(server.target, timeout_s=60) as client:
            # Warm up: one job and one upload, so the server holds what it keeps holding.
            warm = client.submit(job_spec("dcgan", "mnist5k", **JOB))
            assert state_name(client.wait(warm.job_id, timeout_s=300).state) == "SUCCEEDED"
            _upload(client.stub, "warm", _tiles_zip(0))
            client.delete_dataset("warm")
            fds_warm = _fds(server.proc.pid)

            soak = Soak(server.target, time.monotonic() + SOAK_S)
            soak.jobs.append(warm.job_id)
            soak.run()
            print(f"\nsoak {SOAK_S:.0f} s: {len(soak.jobs)} jobs, {soak.uploads} uploads; "
                  + ", ".join(f"{n} {c} x{k}" for (n, c), k in sorted(soak.outcomes.items())))
            assert soak.unexpected == [], soak.unexpected[:20]

            # Wind down: cancel what is left, then every job must end.
            def all_ended() -> bool:
                jobs = client.list_all()
                for job in jobs:
                    if state_name(job.state) not in TERMINAL:
                        try:
                            client.cancel(job.job_id)
                        except grpc.RpcError:
                            pass
                return all(state_name(j.state) in TERMINAL for j in jobs)

            wait_until(all_ended, 300, "every job to reach a terminal state")
            jobs = client.list_all()
            assert {j.job_id for j in jobs} == set(soak.jobs)
            for job in jobs:
                seqs = [e.seq for e in client.watch(job.job_id, timeout_s=60)]
                assert seqs == list(range(1, job.last_seq + 1)), (job.job_id, seqs[:5], job.last_seq)
            datasets = {d.dataset_id for d in client.list_datasets().datasets}

            # Nothing leaked: processes, descriptors, temporary files and folders.
            wait_until(lambda: _descendants(server.proc.pid) == [], 30, "the job processes to be gone")
            wait_until(lambda: _fds(server.proc.pid) <= fds_warm + FD_SLACK, 30,
                       f"the server's descriptors back near {fds_warm} (now {_fds(server.proc.pid)})")
        assert sorted(p.name for p in (data_dir / "datasets").iterdir()) == sorted(datasets)
        assert sorted(p.name for p in (data_dir / "jobs").iterdir()) == sorted(soak.jobs)
        strays = [p for p in data_dir.rglob("*") if ".tmp" in p.name or p.name == ".uploads"]
        # TMPDIR holds nothing of the service's (torch keeps its compiler cache there, by its own name).
        assert strays == [] and [p for p in tmp.iterdir() if not p.name.startswith("torchinductor_")] == []
    finally:
        server.kill(signal.SIGTERM)
    needle = str(data_dir).encode()
    for entry in Path("/proc").glob("[0-9]*"):
        try:
            assert needle not in (entry / "cmdline").read_bytes(), f"process {entry.name} outlived the soak"
        except OSError:
            continue
