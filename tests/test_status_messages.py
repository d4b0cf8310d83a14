"""Status messages stay short on both services: a message built from what a client sent (a long
name, an archive of thousands of long names, many bad options) reaches the client as its own
status, cut to ``MAX_MESSAGE_CHARS`` and saying how much was left out, never as a stream broken
by gRPC's metadata limit."""

from __future__ import annotations

import hashlib
import zipfile
from pathlib import Path

import grpc
import pytest

from latentforge.v1 import generation_pb2 as gen_pb
from latentforge.v1 import generation_pb2_grpc as gen_grpc
from latentforge.v1 import training_pb2 as pb
from services.rpc.status import MAX_MESSAGE_CHARS, short_message
from services.training.client import TrainingClient
from tests.helpers.servers import start_server
from tests.helpers.training import start_training_server, tiny_job


def test_short_message_keeps_whole_problems_and_counts_the_rest():
    many = "; ".join(f"option_{i} must be >= 0 (got -1)" for i in range(100))
    cut = short_message(many)
    assert len(cut) <= MAX_MESSAGE_CHARS and cut.startswith("option_0 must be")
    kept = cut.split("; ... and ")[0].split("; ")
    assert cut.endswith(f"; ... and {100 - len(kept)} more problems")
    one = short_message("x" * 20_000)
    assert len(one) == MAX_MESSAGE_CHARS and one.endswith("more characters)")
    assert short_message("fine") == "fine"


def test_generation_service_cuts_a_long_status_message(tmp_path: Path):
    models = tmp_path / "models"
    models.mkdir()
    server = start_server(models)
    try:
        with grpc.insecure_channel(server.target) as channel:
            stub = gen_grpc.GenerationServiceStub(channel)
            with pytest.raises(grpc.RpcError) as err:
                stub.ListModels(gen_pb.ListModelsRequest(name="m" * 20_000), timeout=30)
        assert err.value.code() == grpc.StatusCode.NOT_FOUND, err.value.details()
        assert len(err.value.details()) <= MAX_MESSAGE_CHARS
        assert err.value.details().startswith("unknown model 'mmm") and "more characters" in err.value.details()
    finally:
        server.stop()


def test_training_service_cuts_long_status_messages(tmp_path: Path):
    """A zip of 3,000 long names uploaded as an .npz, a long data set name at
    submit, and a spec with many bad options."""
    archive = tmp_path / "names.npz"
    with zipfile.ZipFile(archive, "w") as zf:
        for i in range(3000):
            zf.writestr(f"{'n' * 200}_{i:04d}.npy", b"")
    data = archive.read_bytes()
    server = start_training_server(tmp_path / "data", tmp_path / "models")
    try:
        with TrainingClient(server.target) as client:
            header = pb.DatasetHeader(name="names", format=pb.DATASET_FORMAT_NPZ,
                                      sha256=hashlib.sha256(data).hexdigest())
            with pytest.raises(grpc.RpcError) as err:
                client.stub.UploadDataset(iter([pb.DatasetChunk(header=header, data=data)]), timeout=60)
            assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT, err.value.details()
            assert len(err.value.details()) <= MAX_MESSAGE_CHARS and "not a readable NumPy array" in err.value.details()

            with pytest.raises(grpc.RpcError) as err:
                client.submit(tiny_job("dcgan", dataset="d" * 20_000))
            assert err.value.code() == grpc.StatusCode.NOT_FOUND, err.value.details()
            assert len(err.value.details()) <= MAX_MESSAGE_CHARS and "more characters" in err.value.details()

            bad = dict(steps=-1, batch_size=-1, sample_every=-1, checkpoint_every=-1, log_every=-1, grid_size=-1,
                       eval_samples=-1, keep_checkpoints=-1, threads=-1, min_image_size=-1, eval_every=-1,
                       lr=-1.0, beta2=-1.0, grad_clip=-1.0, ema_decay=-1.0, r1_gamma=-1.0, r1_every=-1,
                       latent_dim=-1, width=-1, device_data_max_bytes=-1)
            with pytest.raises(grpc.RpcError) as err:
                client.submit(tiny_job("dcgan", **bad))
            details = err.value.details()
            assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT, details
            assert len(details) <= MAX_MESSAGE_CHARS and details.rstrip("s").endswith("more problem"), details
    finally:
        server.stop()
