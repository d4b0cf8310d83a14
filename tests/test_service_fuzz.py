"""Property-based fuzzing of every RPC on a real server (hypothesis).

Random and malformed requests (huge and negative counts, unknown enum values, NaN/inf and
wrong-length latents, empty, garbage and huge images, raw tensors with wrong dtypes and
shapes, unknown ids, oversized messages) must each get OK or a proper status with a useful
message: never UNKNOWN or INTERNAL, never a stack trace or a file path, no dead worker, and
bounded memory; a valid request right after still succeeds.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import grpc
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from latentforge.v1 import generation_pb2 as pb
from latentforge.v1 import generation_pb2_grpc as pb_grpc

pytestmark = pytest.mark.slow

ALLOWED = {
    grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.NOT_FOUND,
    grpc.StatusCode.RESOURCE_EXHAUSTED,
    grpc.StatusCode.OUT_OF_RANGE,
}
EXAMPLES = 60  # per RPC; the suite runs 9 RPC strategies
CASES = {"count": 0}
LEAK_MARKERS = re.compile(r"Traceback|File \"|\.py\b|/work/|/tmp/|site-packages")

models = st.sampled_from(["mnist-dcgan", "mnist-vae", "", "nope", "MNIST-DCGAN", "a" * 300, "../etc/passwd"])
versions = st.one_of(st.none(), st.integers(-(2**63), 2**63 - 1), st.sampled_from([0, 1, 2]))
counts = st.one_of(st.integers(-(2**31), 2**31 - 1), st.integers(-2, 70))
seeds = st.one_of(st.none(), st.integers(0, 2**64 - 1))
floats = st.floats(allow_nan=True, allow_infinity=True, width=32)
enums = st.integers(-5, 10)  # includes unknown enum values (proto3 keeps them)
ids = st.one_of(st.text(max_size=80), st.sampled_from(["", "0" * 32, "zz", "s_" + "a" * 40]))
latents = st.lists(floats, max_size=130)


def _png(draw_bytes: bytes) -> bytes:
    return b"\x89PNG\r\n\x1a\n" + draw_bytes


images = st.one_of(
    st.builds(lambda b: pb.Image(png=b), st.binary(max_size=200)),
    st.builds(lambda b: pb.Image(png=_png(b)), st.binary(max_size=200)),
    st.just(pb.Image()),  # neither png nor tensor
    st.builds(
        lambda dtype, shape, data: pb.Image(tensor=pb.Tensor(dtype=dtype, shape=shape, data=data)),
        st.sampled_from(["float32", "float64", "uint8", "int64", "", "complex128", "f4"]),
        st.lists(st.integers(-3, 2**40), max_size=5),
        st.binary(max_size=4000),
    ),
    st.builds(  # right dtype and shape, hostile values
        lambda vals: pb.Image(tensor=pb.Tensor(dtype="float32", shape=[1, 28, 28],
                                               data=np.asarray(vals, "<f4").tobytes())),
        st.lists(floats, min_size=784, max_size=784),
    ),
)


def _optional(message, **fields) -> None:
    for key, value in fields.items():
        if value is not None:
            setattr(message, key, value)


@st.composite
def generate_requests(draw):
    r = pb.GenerateRequest(model=draw(models), count=draw(counts), format=draw(enums),
                           return_latents=draw(st.booleans()))
    _optional(r, version=draw(versions), seed=draw(seeds), truncation=draw(st.one_of(st.none(), floats)),
              label=draw(st.one_of(st.none(), st.integers(-(2**31), 2**31 - 1))))
    return r


@st.composite
def endpoints(draw):
    kind = draw(st.sampled_from(["id", "seed", "latent", "none"]))
    if kind == "id":
        return pb.Endpoint(sample_id=draw(ids))
    if kind == "seed":
        return pb.Endpoint(seed=draw(st.integers(0, 2**64 - 1)))
    if kind == "latent":
        return pb.Endpoint(latent=pb.Latent(values=draw(latents)))
    return pb.Endpoint()


@st.composite
def interpolate_requests(draw):
    r = pb.InterpolateRequest(model=draw(models), start=draw(endpoints()), end=draw(endpoints()),
                              steps=draw(counts), method=draw(enums), format=draw(enums))
    _optional(r, version=draw(versions), truncation=draw(st.one_of(st.none(), floats)))
    return r


@st.composite
def encode_requests(draw):
    r = pb.EncodeRequest(model=draw(models), images=draw(st.lists(images, max_size=5)))
    _optional(r, version=draw(versions))
    return r


@st.composite
def reconstruct_requests(draw):
    r = pb.ReconstructRequest(model=draw(models), images=draw(st.lists(images, max_size=5)), format=draw(enums))
    _optional(r, version=draw(versions))
    return r


@st.composite
def variations_requests(draw):
    r = pb.VariationsRequest(sample_id=draw(ids), count=draw(counts), strength=draw(floats), format=draw(enums))
    _optional(r, seed=draw(seeds))
    return r


RPCS = {
    "Generate": generate_requests(),
    "GenerateStream": generate_requests(),
    "Interpolate": interpolate_requests(),
    "Encode": encode_requests(),
    "Reconstruct": reconstruct_requests(),
    "Variations": variations_requests(),
    "GetSample": st.builds(lambda i: pb.GetSampleRequest(sample_id=i), ids),
    "ListModels": st.builds(lambda n: pb.ListModelsRequest(name=n), st.text(max_size=100)),
}


def _rss_bytes() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def _check(call) -> None:
    CASES["count"] += 1
    try:
        call()
    except grpc.RpcError as err:
        code, details = err.code(), err.details() or ""
        assert code in ALLOWED, f"{code}: {details}"
        assert len(details) >= 10, f"{code} with an unhelpful message {details!r}"
        assert not LEAK_MARKERS.search(details), f"internal detail leaked: {details!r}"


@pytest.fixture(scope="module")
def stub(memory_server):
    channel = grpc.insecure_channel(memory_server.target)
    yield pb_grpc.GenerationServiceStub(channel)
    channel.close()


@pytest.mark.parametrize("rpc", sorted(RPCS))
def test_fuzz_rpc(stub, rpc: str):
    method = getattr(stub, rpc)

    @settings(max_examples=EXAMPLES, deadline=None, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(RPCS[rpc])
    def run(request) -> None:
        if rpc == "GenerateStream":
            _check(lambda: list(method(request, timeout=30)))
        else:
            _check(lambda: method(request, timeout=30))

    run()
    # The server still answers a valid request right after.
    assert len(stub.Generate(pb.GenerateRequest(model="mnist-dcgan", count=2, seed=1), timeout=30).samples) == 2


def test_oversized_message_is_resource_exhausted(memory_server, stub):
    """A request above the server's receive limit: RESOURCE_EXHAUSTED, and the next call works."""
    limit = memory_server.server.config.max_message_bytes
    huge = pb.EncodeRequest(model="mnist-vae", images=[pb.Image(png=b"\0" * (limit + 1024))])
    channel = grpc.insecure_channel(memory_server.target, options=[("grpc.max_send_message_length", -1)])
    try:
        with pytest.raises(grpc.RpcError) as info:
            pb_grpc.GenerationServiceStub(channel).Encode(huge, timeout=30)
        assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    finally:
        channel.close()
    assert stub.ListModels(pb.ListModelsRequest(), timeout=10).models


def test_memory_stays_bounded_under_fuzzing(stub):
    """After every fuzz case above, a further burst of bad and good calls grows RSS by < 64 MiB."""
    before = _rss_bytes()
    rng = np.random.default_rng(0)
    for i in range(300):
        latent = rng.standard_normal(100).astype(np.float32)
        if i % 3 == 0:
            latent[rng.integers(0, 100)] = math.nan
        _check(lambda: stub.Interpolate(pb.InterpolateRequest(
            model="mnist-dcgan", start=pb.Endpoint(latent=pb.Latent(values=latent)),
            end=pb.Endpoint(seed=i), steps=4), timeout=30))
        _check(lambda: stub.Generate(pb.GenerateRequest(model="mnist-dcgan", count=int(rng.integers(-5, 80))),
                                     timeout=30))
    growth = _rss_bytes() - before
    print(f"fuzz cases run: {CASES['count']}; RSS growth over the last 600: {growth / 2**20:.1f} MiB")
    assert growth < 64 * 2**20
