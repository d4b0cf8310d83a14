"""A full disk under a real TrainingService: the data folder lies on a small tmpfs the test mounts
(skipped, saying why, where mounting is not allowed). An upload larger than the free space is
refused with RESOURCE_EXHAUSTED and leaves nothing; a running job that cannot write its
checkpoint ends FAILED saying there is no space left, and continues from its last checkpoint
once space is freed; the service keeps answering and the SQLite store stays whole and readable."""

from __future__ import annotations

import hashlib
import sqlite3
from pathlib import Path

import grpc
import numpy as np
import pytest

from latentforge.v1 import training_pb2 as pb
from services.training.client import TrainingClient, job_spec, state_name
from tests.helpers.disks import fill, small_disk
from tests.helpers.training import start_training_server

MiB = 1 << 20

# A small job whose checkpoints come far enough apart for the test to fill the disk between them.
JOB = dict(steps=300, checkpoint_every=150, batch_size=16, width=8, sample_every=1000, log_every=10, grid_size=4,
           threads=1, eval_every=0, conditional=False)


def _left(data_dir: Path) -> list[str]:
    return sorted(str(p.relative_to(data_dir)) for p in (data_dir / "datasets").rglob("*"))


def _wait_for_checkpoint(client: TrainingClient, job_id: str, step: int) -> None:
    for item in client.watch(job_id, timeout_s=300):
        kind = item.WhichOneof("event")
        if kind == "checkpoint" and item.checkpoint.step >= step:
            return
        if kind == "state" and state_name(item.state.state) in ("SUCCEEDED", "FAILED", "CANCELLED"):
            raise AssertionError(f"the job ended before its step {step} checkpoint: {item.state.reason}")
    raise AssertionError("the watch ended before the checkpoint")


def test_a_full_disk_is_refused_survived_and_resumed_from(tmp_path: Path):
    with small_disk(tmp_path / "disk", 48 * MiB) as disk:
        data_dir = disk / "data"
        server = start_training_server(data_dir, tmp_path / "models")
        try:
            with TrainingClient(server.target) as client:
                # An upload larger than the disk: RESOURCE_EXHAUSTED, nothing kept; refused at
                # once when it declares its size, when the disk fills otherwise.
                noise = np.random.default_rng(0).integers(0, 255, 64 * MiB, dtype=np.uint8).tobytes()
                for declared, words in ((len(noise), "not enough disk space"), (0, "no space left")):
                    header = pb.DatasetHeader(name="noise", format=pb.DATASET_FORMAT_NPZ, size_bytes=declared,
                                              sha256=hashlib.sha256(noise).hexdigest())
                    chunks = [pb.DatasetChunk(header=header)]
                    chunks += [pb.DatasetChunk(data=noise[i:i + MiB]) for i in range(0, len(noise), MiB)]
                    with pytest.raises(grpc.RpcError) as err:
                        client.stub.UploadDataset(iter(chunks), timeout=120)
                    assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, err.value.details()
                    assert words in err.value.details(), err.value.details()
                    assert _left(data_dir) == []

                # A job whose second checkpoint finds the disk full ends FAILED saying so.
                job = client.submit(job_spec("dcgan", "mnist5k", **JOB))
                _wait_for_checkpoint(client, job.job_id, 150)
                checkpoint = data_dir / "jobs" / job.job_id / "run" / "checkpoints" / "step_00000150.pt"
                filler = fill(disk, leave_bytes=checkpoint.stat().st_size // 2)
                failed = client.wait(job.job_id, timeout_s=300)
                assert state_name(failed.state) == "FAILED", failed.reason
                assert "no space left" in failed.reason.lower(), failed.reason
                assert str(data_dir) not in failed.reason
                assert not list(checkpoint.parent.glob(".*tmp*")), "a half-written checkpoint stayed"

                # Meanwhile the service answers: reads as ever, a submit on the full disk is a limit.
                more = fill(disk, leave_bytes=0, name="more")
                assert client.get(job.job_id).state == failed.state
                assert [j.job_id for j in client.list_all()] == [job.job_id]
                assert len(client.families().families) >= 7
                with pytest.raises(grpc.RpcError) as err:
                    client.submit(job_spec("dcgan", "mnist5k", **JOB))
                assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, err.value.details()
                assert "no space left" in err.value.details()
                assert [j.job_id for j in client.list_all()] == [job.job_id]

                # Space freed: the job resumes from its step 150 checkpoint and ends.
                filler.unlink()
                more.unlink()
                client.resume(job.job_id)
                done = client.wait(job.job_id, timeout_s=300)
                assert state_name(done.state) == "SUCCEEDED", done.reason
                assert done.step == 300 and [a.from_step for a in done.attempts] == [0, 150]
                seqs = [e.seq for e in client.watch(job.job_id)]
                assert seqs == list(range(1, len(seqs) + 1))
        finally:
            server.stop()
        with sqlite3.connect(f"file:{data_dir / 'jobs.sqlite3'}?mode=ro", uri=True) as db:
            assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
            assert db.execute("SELECT state FROM jobs").fetchall() == [("SUCCEEDED",)]
