"""What SubmitJob refuses before a job is queued, on a real TrainingService: float options that
are not finite (every one of every family), data of a kind the family does not take; and what
it still answers: a retried submit whose data set was deleted since returns its job. A job that
fails at run time names its data set in its reason, never a folder of the server."""

from __future__ import annotations

import io
import math
import zipfile
from pathlib import Path

import grpc
import numpy as np
import pytest
from PIL import Image

from google.protobuf.descriptor import FieldDescriptor

from services.training.client import TrainingClient, job_spec, state_name
from services.training.families import COMMON_MESSAGE, FAMILY_MESSAGES, option_fields
from tests.helpers.training import start_training_server, tiny_job


def _float_options() -> list[tuple[str, str]]:
    """(family, option) for every float option a JobSpec carries: the common ones (with dcgan)
    and each family's own."""
    double = {FieldDescriptor.TYPE_DOUBLE, FieldDescriptor.TYPE_FLOAT}
    found = [("dcgan", n) for n, f in option_fields(COMMON_MESSAGE).items() if f.type in double]
    for family, message in FAMILY_MESSAGES.items():
        found += [(family, n) for n, f in option_fields(message).items() if f.type in double]
    return found


def _png(size: int = 16, colour: tuple[int, int, int] = (200, 30, 30)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (size, size), colour).save(buf, "PNG")
    return buf.getvalue()


def _small_images_zip(path: Path, count: int = 20) -> Path:
    rng = np.random.default_rng(0)
    with zipfile.ZipFile(path, "w") as zf:
        for i in range(count):
            buf = io.BytesIO()
            Image.fromarray(rng.integers(0, 255, (16, 16, 3), dtype=np.uint8)).save(buf, "PNG")
            zf.writestr(f"tiles/{i:03d}.png", buf.getvalue())
    return path


def test_every_float_option_must_be_finite_at_submit(tmp_path: Path):
    """hold_out NaN, a DCGAN lr of infinity, and every other float option, NaN
    and both infinities: INVALID_ARGUMENT naming the option; nothing is queued."""
    server = start_training_server(tmp_path / "data", tmp_path / "models")
    options = _float_options()
    assert ("dcgan", "hold_out") in options and ("dcgan", "lr") in options and len(options) > 20
    try:
        with TrainingClient(server.target) as client:
            for family, name in options:
                for value in (math.nan, math.inf, -math.inf):
                    dataset = "kanjivg:digits" if family == "sketch-rnn" else "mnist5k"
                    with pytest.raises(grpc.RpcError) as err:
                        client.submit(job_spec(family, dataset, steps=2, **{name: value}))
                    details = err.value.details()
                    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT, (family, name, value, details)
                    assert f"{name} must be a finite number" in details, (family, name, value, details)
            assert client.list_all() == []
    finally:
        server.stop()


def test_data_of_the_wrong_kind_is_refused_at_submit(tmp_path: Path):
    """sketch-rnn on images and dcgan on pen strokes, an image family on one
    uploaded image: INVALID_ARGUMENT naming the family and the data set. The one-style family
    takes that image, and an image set."""
    image = tmp_path / "art.png"
    image.write_bytes(_png(64))
    server = start_training_server(tmp_path / "data", tmp_path / "models")
    try:
        with TrainingClient(server.target) as client:
            client.upload_dataset(image, "art")
            for family, dataset, holds in (("sketch-rnn", "mnist5k", "a set of images"),
                                           ("dcgan", "kanjivg:simple", "pen strokes"),
                                           ("vae", "art", "one image"), ("adain", "kanjivg:digits", "pen strokes")):
                with pytest.raises(grpc.RpcError) as err:
                    client.submit(job_spec(family, dataset, steps=2))
                details = err.value.details()
                assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT, (family, dataset, details)
                assert details.startswith(f"{family} trains on ") and f"data set {dataset!r} holds {holds}" in details
            assert client.list_all() == []
            for dataset in ("art", "mnist5k"):
                job = client.submit(job_spec("style", dataset, steps=1))
                client.cancel(job.job_id)
    finally:
        server.stop()


def test_a_failure_reason_names_the_data_set_not_a_server_folder(tmp_path: Path):
    """A job the trainer refuses at run time (its images are smaller than the job's
    min_image_size) fails with a reason that names the uploaded data set; its log lines too."""
    data_dir = tmp_path / "data"
    archive = _small_images_zip(tmp_path / "tiles.zip")
    server = start_training_server(data_dir, tmp_path / "models")
    try:
        with TrainingClient(server.target) as client:
            client.upload_dataset(archive, "tiles")
            job = client.submit(tiny_job("dcgan", dataset="tiles", min_image_size=32))
            done = client.wait(job.job_id, timeout_s=300)
            assert state_name(done.state) == "FAILED"
            assert "tiles" in done.reason and "smaller than 32 px" in done.reason, done.reason
            assert str(data_dir.resolve()) not in done.reason and "datasets/" not in done.reason, done.reason
            logs = [e.log.text for e in client.watch(job.job_id) if e.WhichOneof("event") == "log"]
            assert logs and not any(str(data_dir.resolve()) in line for line in logs), logs
    finally:
        server.stop()


def test_a_retried_submit_returns_its_job_after_the_data_set_was_deleted(tmp_path: Path):
    archive = _small_images_zip(tmp_path / "tiles.zip")
    server = start_training_server(tmp_path / "data", tmp_path / "models")
    try:
        with TrainingClient(server.target) as client:
            client.upload_dataset(archive, "tiles")
            spec = tiny_job("dcgan", dataset="tiles", image_size=16, steps=2, idempotency_key="tiles-once")
            job = client.submit(spec)
            client.cancel(job.job_id)
            client.wait(job.job_id, timeout_s=300)
            client.delete_dataset("tiles")
            again = client.submit(spec)
            assert again.job_id == job.job_id
            with pytest.raises(grpc.RpcError) as err:  # a new submit on the deleted data set
                client.submit(tiny_job("dcgan", dataset="tiles", image_size=16, steps=2))
            assert err.value.code() == grpc.StatusCode.NOT_FOUND and "tiles" in err.value.details()
    finally:
        server.stop()
