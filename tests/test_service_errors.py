"""Bad requests get the right gRPC status and a message that says what to fix; the server
keeps serving afterwards."""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import grpc
import numpy as np
import pytest
from PIL import Image

from latentforge.v1 import generation_pb2 as pb
from latentforge.v1 import generation_pb2_grpc as pb_grpc
from tests.helpers.servers import broken_copy, start_server

INVALID, NOT_FOUND, UNAVAILABLE = (grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND,
                                   grpc.StatusCode.UNAVAILABLE)


def _png(size=(28, 28), mode="L") -> bytes:
    buf = io.BytesIO()
    Image.new(mode, size).save(buf, format="PNG")
    return buf.getvalue()


def _nan_tensor() -> pb.Image:
    arr = np.full((1, 28, 28), np.nan, dtype="<f4")
    return pb.Image(tensor=pb.Tensor(dtype="float32", shape=[1, 28, 28], data=arr.tobytes()))


BAD_REQUESTS = [
    # (method, request, code, words the message must contain)
    ("Generate", pb.GenerateRequest(model="no-such-model", count=1), NOT_FOUND, "unknown model"),
    ("Generate", pb.GenerateRequest(model="mnist-dcgan", version=7, count=1), NOT_FOUND, "no version 7"),
    ("Generate", pb.GenerateRequest(model="mnist-dcgan", count=0), INVALID, "count must be between 1 and"),
    ("Generate", pb.GenerateRequest(model="mnist-dcgan", count=-3), INVALID, "count must be between 1 and"),
    ("Generate", pb.GenerateRequest(model="mnist-dcgan", count=65), INVALID, "count must be between 1 and 64"),
    ("Generate", pb.GenerateRequest(model="mnist-dcgan", count=1, label=0), INVALID, "unconditional"),
    ("Generate", pb.GenerateRequest(model="mnist-dcgan", count=1, truncation=float("nan")), INVALID, "truncation"),
    ("Generate", pb.GenerateRequest(model="mnist-dcgan", count=1, truncation=0.0), INVALID, "truncation"),
    ("Generate", pb.GenerateRequest(model="mnist-dcgan", count=1, format=9), INVALID, "output format"),
    ("GenerateStream", pb.GenerateRequest(model="mnist-dcgan", count=0), INVALID, "count must be"),
    ("GenerateStream", pb.GenerateRequest(model="nope", count=1), NOT_FOUND, "unknown model"),
    ("GetSample", pb.GetSampleRequest(sample_id="doesNotExist123"), NOT_FOUND, "unknown or expired sample id"),
    ("GetSample", pb.GetSampleRequest(sample_id=""), INVALID, "sample_id must be"),
    ("GetSample", pb.GetSampleRequest(sample_id="../../etc"), INVALID, "sample_id must be"),
    ("Variations", pb.VariationsRequest(sample_id="doesNotExist123", count=2, strength=0.5), NOT_FOUND, "sample id"),
    ("Interpolate", pb.InterpolateRequest(model="mnist-dcgan", start=pb.Endpoint(seed=1), steps=4), INVALID,
     "end endpoint is missing"),
    ("Interpolate", pb.InterpolateRequest(model="mnist-dcgan", start=pb.Endpoint(seed=1), end=pb.Endpoint(seed=2),
                                          steps=1), INVALID, "steps must be between 2"),
    ("Interpolate", pb.InterpolateRequest(model="mnist-dcgan", start=pb.Endpoint(latent=pb.Latent(values=[0.0] * 3)),
                                          end=pb.Endpoint(seed=2), steps=3), INVALID, "latent_dim="),
    ("Interpolate", pb.InterpolateRequest(model="mnist-dcgan", start=pb.Endpoint(seed=1),
                                          end=pb.Endpoint(latent=pb.Latent(values=[float("inf")] * 100)), steps=3),
     INVALID, "NaN or infinite"),
    ("Interpolate", pb.InterpolateRequest(model="mnist-dcgan", start=pb.Endpoint(sample_id="gone0000"),
                                          end=pb.Endpoint(seed=2), steps=3), NOT_FOUND, "sample id"),
    ("Encode", pb.EncodeRequest(model="mnist-dcgan", images=[pb.Image(png=_png())]), INVALID, "no encoder from images to latents"),
    ("Reconstruct", pb.ReconstructRequest(model="mnist-dcgan", images=[pb.Image(png=_png())]), INVALID, "no encoder from images to latents"),
    ("Encode", pb.EncodeRequest(model="mnist-vae", images=[pb.Image(png=b"not a png")]), INVALID,
     "images[0]: image bytes could not be decoded"),
    ("Encode", pb.EncodeRequest(model="mnist-vae", images=[pb.Image(png=_png()), pb.Image(png=_png((32, 32)))]),
     INVALID, "images[1]: image is 32x32 pixels; this model takes 28x28"),
    ("Encode", pb.EncodeRequest(model="mnist-vae", images=[]), INVALID, "number of images"),
    ("Encode", pb.EncodeRequest(model="mnist-vae", images=[pb.Image()]), INVALID, "image is empty"),
    ("Encode", pb.EncodeRequest(model="mnist-vae", images=[_nan_tensor()]), INVALID, "NaN"),
    ("Reconstruct", pb.ReconstructRequest(model="mnist-vae", images=[pb.Image(tensor=pb.Tensor(
        dtype="float32", shape=[1, 28, 27], data=b"\0" * 4 * 28 * 27))]), INVALID, "does not match"),
]


@pytest.mark.parametrize("method,request_,code,words", BAD_REQUESTS,
                         ids=[f"{m}-{c.name}-{i}" for i, (m, _, c, _) in enumerate(BAD_REQUESTS)])
def test_bad_request_gets_status_and_server_keeps_serving(memory_server, method, request_, code, words):
    with grpc.insecure_channel(memory_server.target) as channel:
        stub = pb_grpc.GenerationServiceStub(channel)
        with pytest.raises(grpc.RpcError) as info:
            response = getattr(stub, method)(request_, timeout=30)
            if method == "GenerateStream":
                list(response)
        assert info.value.code() == code
        assert words in info.value.details()
        assert "Traceback" not in info.value.details()
        ok = stub.Generate(pb.GenerateRequest(model="mnist-dcgan", count=1, seed=1), timeout=30)
        assert len(ok.samples) == 1


def test_variations_strength_out_of_range(memory_server):
    with grpc.insecure_channel(memory_server.target) as channel:
        stub = pb_grpc.GenerationServiceStub(channel)
        sid = stub.Generate(pb.GenerateRequest(model="mnist-dcgan", count=1), timeout=30).samples[0].sample_id
        for strength in (-0.1, 11.0, float("nan")):
            with pytest.raises(grpc.RpcError) as info:
                stub.Variations(pb.VariationsRequest(sample_id=sid, count=1, strength=strength), timeout=30)
            assert info.value.code() == INVALID and "strength" in info.value.details()


def test_no_model_loaded_is_unavailable_and_not_serving(tmp_path: Path):
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    server = start_server(tmp_path)  # an empty repository
    try:
        with grpc.insecure_channel(server.target) as channel:
            stub = pb_grpc.GenerationServiceStub(channel)
            with pytest.raises(grpc.RpcError) as info:
                stub.Generate(pb.GenerateRequest(model="mnist-dcgan", count=1), timeout=30)
            assert info.value.code() == UNAVAILABLE and "no model is loaded" in info.value.details()
            health = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=""), timeout=10)
            assert health.status == health_pb2.HealthCheckResponse.NOT_SERVING
            assert stub.ListModels(pb.ListModelsRequest(), timeout=30).models == []
    finally:
        server.stop()


def test_a_version_failing_its_sha256_is_refused_and_the_rest_serve(model_repo: Path, tmp_path: Path):
    server = start_server(broken_copy(model_repo, tmp_path / "models"))
    try:
        from services.generation.client import GenerationClient

        with GenerationClient(server.target) as client:
            versions = [(m.name, m.version) for m in client.list_models()]
            assert ("mnist-dcgan", 1) in versions and ("mnist-dcgan", 2) not in versions
            assert client.generate("mnist-dcgan", 1).version == 1
        failures = server.server.registry.get_sample_value(
            "latentforge_model_load_failures_total", {"model": "mnist-dcgan"})
        assert failures == 1.0
    finally:
        server.stop()


def test_new_versions_are_picked_up_and_pinning_works(model_repo: Path, tmp_path: Path):
    repo = tmp_path / "models"
    shutil.copytree(model_repo / "mnist-dcgan", repo / "mnist-dcgan")
    server = start_server(repo, reload_interval_s=0.2)
    try:
        from services.generation.client import GenerationClient

        with GenerationClient(server.target) as client:
            assert client.generate("mnist-dcgan", 1).version == 1
            staged = repo / "mnist-dcgan" / ".staging-2"
            shutil.copytree(repo / "mnist-dcgan" / "1", staged)
            manifest = json.loads((staged / "manifest.json").read_text())
            manifest["version"] = 2
            (staged / "manifest.json").write_text(json.dumps(manifest))
            staged.rename(repo / "mnist-dcgan" / "2")  # complete or absent, as the exporter does
            import time

            deadline = time.monotonic() + 10
            while client.generate("mnist-dcgan", 1).version != 2:
                assert time.monotonic() < deadline, "version 2 was not picked up"
                time.sleep(0.1)
            assert client.generate("mnist-dcgan", 1, version=1).version == 1
            latest = {(m.version, m.latest) for m in client.list_models()}
            assert latest == {(1, False), (2, True)}
    finally:
        server.stop()
