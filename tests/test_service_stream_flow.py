"""GenerateStream past the per-request limit, with flow control, against a real server on an
exported model: up to ``max_stream_count`` samples, each the sample Generate gives for the same
seed and index; a client that stops reading holds the server back (it renders the next chunk
only once the transport took the last one); a client that cancels stops generation.

The window, documented in generation.proto: the server is ahead of the client's reads by at most
one chunk (``stream_chunk``) plus what gRPC's buffers hold - the client's HTTP/2 receive window
(64 KiB when the client turns BDP probing off, as these tests do; gRPC's default probing may
grow it to a few MiB) and about as much again in the server transport's write buffer.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import grpc
import numpy as np
import pytest

from latentforge.v1 import generation_pb2 as pb
from latentforge.v1 import generation_pb2_grpc as pb_grpc
from services.generation.client import GenerationClient
from tests.helpers.processes import wait_until
from tests.helpers.servers import start_server

DCGAN = "mnist-dcgan"
CHUNK = 4
WINDOW_BYTES = 2 * 64 * 1024  # the client's receive window (BDP probing off) and the server's write buffer
STREAM = {"model": DCGAN, "version": "1", "method": "GenerateStream"}
TENSOR = pb.OUTPUT_FORMAT_TENSOR


@pytest.fixture(scope="module")
def server(model_repo: Path):
    s = start_server(model_repo, max_count=8, max_stream_count=50_000, stream_chunk=CHUNK, render_cache=False,
                     workers=1, intra_op_threads=1)
    yield s
    s.stop()


def _generated(server) -> float:
    return server.server.registry.get_sample_value("latentforge_samples_generated_total", STREAM) or 0.0


def _settled(server, quiet_s: float = 1.0, timeout_s: float = 120.0) -> float:
    """The stream's samples counter once it has stopped moving for ``quiet_s`` (the server waits
    on the client). A slow machine can only make it settle early, i.e. the gap look smaller."""
    deadline = time.monotonic() + timeout_s
    last = _generated(server)
    while True:
        time.sleep(quiet_s)
        now = _generated(server)
        if now == last:
            return now
        assert time.monotonic() < deadline, "the stream did not stop generating"
        last = now


def _stub(server) -> tuple[grpc.Channel, pb_grpc.GenerationServiceStub]:
    channel = grpc.insecure_channel(server.target, options=[("grpc.http2.bdp_probe", 0)])
    return channel, pb_grpc.GenerationServiceStub(channel)


def test_list_models_reports_both_limits(server):
    with grpc.insecure_channel(server.target) as channel:
        listing = pb_grpc.GenerationServiceStub(channel).ListModels(pb.ListModelsRequest(), timeout=30)
    assert listing.max_count == 8 and listing.max_stream_count == 50_000


def test_a_stream_above_max_count_gives_the_samples_of_generate(server):
    """30 samples (max_count 8): sample k is sample k of Generate with the same base seed."""
    with GenerationClient(server.target, timeout_s=30) as client:
        streamed = list(client.generate_stream(DCGAN, 30, seed=2**64 - 5, fmt="tensor"))
        pages = [client.generate(DCGAN, min(8, 30 - k), seed=(2**64 - 5 + k) % 2**64, fmt="tensor")
                 for k in range(0, 30, 8)]
    unary = [s for page in pages for s in page.samples]
    assert [s.index for s in streamed] == list(range(30))
    assert [s.seed for s in streamed] == [(2**64 - 5 + k) % 2**64 for k in range(30)] == [s.seed for s in unary]
    for a, b in zip(streamed, unary):
        np.testing.assert_array_equal(a.image.tensor, b.image.tensor)


def test_a_stream_above_max_stream_count_is_refused_with_what_to_do(server):
    channel, stub = _stub(server)
    with channel, pytest.raises(grpc.RpcError) as info:
        list(stub.GenerateStream(pb.GenerateRequest(model=DCGAN, count=50_001), timeout=30))
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "between 1 and 50000" in info.value.details() and "got 50001" in info.value.details()
    assert "seed + 50000" in info.value.details()


def test_the_client_limit_pages_any_count_in_streams_that_follow_on(model_repo):
    """The client's generate_stream splits a count above the server's stream limit into streams
    whose seeds follow on: the same samples as one stream."""
    s = start_server(model_repo, max_stream_count=7, render_cache=False)
    try:
        with GenerationClient(s.target, timeout_s=30) as client:
            paged = list(client.generate_stream(DCGAN, 17, seed=40, fmt="tensor"))
            one = [client.generate(DCGAN, n, seed=40 + k, fmt="tensor").samples for k, n in ((0, 9), (9, 8))]
    finally:
        s.stop()
    assert [p.index for p in paged] == list(range(17)) and [p.seed for p in paged] == list(range(40, 57))
    for a, b in zip(paged, one[0] + one[1]):
        np.testing.assert_array_equal(a.image.tensor, b.image.tensor)


def test_a_reader_that_stops_holds_the_server_back(server):
    """Read some, stop: the server stops within the window of what was read, far short of the
    count; read on, stop again: the same; the gap never exceeds the documented window."""
    channel, stub = _stub(server)
    count, received, size, gaps = 20_000, 0, 0, []
    with channel:
        base = _generated(server)
        stream = stub.GenerateStream(pb.GenerateRequest(model=DCGAN, count=count, seed=1, format=TENSOR), timeout=300)
        for stop_at in (40, 300):
            for sample in stream:
                received, size = received + 1, sample.ByteSize()
                if received == stop_at:
                    break
            gaps.append(_settled(server) - base - received)
        stream.cancel()
    window = CHUNK + math.ceil(WINDOW_BYTES / size)
    print(f"\nflow control: {size} B samples; the server stopped {gaps} samples ahead of the reader "
          f"(window {window})")
    assert all(0 <= gap <= window for gap in gaps), (gaps, window)


def test_cancelling_a_stream_stops_generation(server):
    channel, stub = _stub(server)
    with channel:
        base = _generated(server)
        stream = stub.GenerateStream(pb.GenerateRequest(model=DCGAN, count=20_000, seed=3, format=TENSOR),
                                     timeout=300)
        received = 0
        for _ in stream:
            received += 1
            if received == 10:
                break
        stream.cancel()
        wait_until(lambda: (server.server.registry.get_sample_value(
            "latentforge_requests_in_flight", {"method": "GenerateStream", "protocol": "grpc"}) or 0) == 0, 30, "the stream to end")
        after_cancel = _generated(server)
        # Other calls still run, and the cancelled stream makes nothing more meanwhile.
        assert len(stub.Generate(pb.GenerateRequest(model=DCGAN, count=8, seed=3), timeout=30).samples) == 8
        assert _settled(server) == after_cancel
    assert after_cancel - base <= received + CHUNK + math.ceil(WINDOW_BYTES / (28 * 28 * 4))
    assert (server.server.registry.get_sample_value(
        "latentforge_requests_total", {"method": "GenerateStream", "code": "CANCELLED", "protocol": "grpc"}) or 0) >= 1
