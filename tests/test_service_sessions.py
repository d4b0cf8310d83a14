"""The Session RPC against a real server on an exported model: many requests on one stream,
answered by id as they complete (out of order), each failure answered with its id and status
while the stream goes on, duplicate ids in flight refused, a bounded number of requests read at
once (back-pressure, not errors), batched with unary calls, a cancelled session's queued work
never run, and a drain that answers what was read and then ends the stream.

The server's only batch slot is held by a gate (``hold_a_batch_slot``) wherever a test needs
requests to stay queued."""

from __future__ import annotations

import queue
import threading
import time
from pathlib import Path

import grpc
import numpy as np
import pytest

from latentforge.v1 import generation_pb2 as pb
from latentforge.v1 import generation_pb2_grpc as pb_grpc
from services.generation.client import GenerationClient, SessionRequestError
from services.rpc.calls import DRAINING_MESSAGE
from tests.helpers.processes import wait_until
from tests.helpers.servers import GEN, Gate, hold_a_batch_slot, start_server

DCGAN = "mnist-dcgan"
QUEUE = {"model": DCGAN, "version": "1"}


def _metric(server, name: str, labels: dict | None = None) -> float:
    return server.server.registry.get_sample_value(name, labels or {}) or 0.0


def _generated(server, method: str = "Session.Generate") -> float:
    return _metric(server, "latentforge_samples_generated_total", {**QUEUE, "method": method})


class RawSession:
    """A Session stream driven by hand: requests put on a queue, answers read in order."""

    def __init__(self, channel: grpc.Channel) -> None:
        self.outbox: queue.Queue = queue.Queue()
        self.call = pb_grpc.GenerationServiceStub(channel).Session(iter(self.outbox.get, None), timeout=120)

    def send(self, rid: str, **request) -> None:
        self.outbox.put(pb.SessionRequest(id=rid, **request))

    def generate(self, rid: str, count: int = 1, seed: int = 0, **fields) -> None:
        self.send(rid, generate=pb.GenerateRequest(model=DCGAN, count=count, seed=seed,
                                                   format=pb.OUTPUT_FORMAT_TENSOR, **fields))

    def next(self) -> pb.SessionResponse:
        return next(self.call)

    def close(self) -> list[pb.SessionResponse]:
        self.outbox.put(None)
        return list(self.call)


@pytest.fixture()
def gated(model_repo: Path):
    """A server with one batch slot, held by a gate until the test releases it."""
    server = start_server(model_repo, workers=1, render_cache=False, session_max_in_flight=4)
    gate = Gate()
    held = hold_a_batch_slot(server, gate)
    yield server, gate, held
    gate.release.set()
    server.stop()


def test_answers_come_as_they_complete_matched_by_id(gated):
    """A request stuck in the queue does not hold back a later one that fails at once; the
    answers carry their ids, and the generated samples are those of Generate."""
    server, gate, _ = gated
    with grpc.insecure_channel(server.target) as channel:
        session = RawSession(channel)
        session.generate("slow", count=3, seed=21)
        wait_until(lambda: _metric(server, "latentforge_queue_depth", QUEUE) == 1, 10, "the request to queue")
        session.send("fast", variations=pb.VariationsRequest(sample_id="no-such-sample", count=1))
        first = session.next()
        assert first.id == "fast" and first.WhichOneof("result") == "error"
        assert first.error.code == grpc.StatusCode.NOT_FOUND.value[0]
        assert "unknown or expired sample id" in first.error.message
        gate.release.set()
        second = session.next()
        assert second.id == "slow" and second.WhichOneof("result") == "generate"
        assert session.close() == []
        unary = pb_grpc.GenerationServiceStub(channel).Generate(
            pb.GenerateRequest(model=DCGAN, count=3, seed=21, format=pb.OUTPUT_FORMAT_TENSOR), timeout=30)
    assert [s.seed for s in second.generate.samples] == [21, 22, 23] and second.generate.seed == 21
    for a, b in zip(second.generate.samples, unary.samples):
        assert a.image.tensor.data == b.image.tensor.data
    assert _metric(server, "latentforge_requests_total", {"method": "Session", "code": "OK", "protocol": "grpc"}) == 1
    assert _metric(server, "latentforge_requests_total", {"method": "Session.Generate", "code": "OK", "protocol": "grpc"}) == 1
    assert _metric(server, "latentforge_requests_total", {"method": "Session.Variations", "code": "NOT_FOUND", "protocol": "grpc"}) == 1


def test_each_bad_request_gets_its_own_error_and_the_stream_goes_on(model_repo: Path):
    server = start_server(model_repo)
    try:
        with GenerationClient(server.target, timeout_s=30) as client:
            stored = client.generate(DCGAN, 1, seed=3).samples[0].sample_id
            with grpc.insecure_channel(server.target) as channel:
                session = RawSession(channel)
                session.send("no-model", generate=pb.GenerateRequest(model="nope", count=1))
                session.send("zero", generate=pb.GenerateRequest(model=DCGAN, count=0))
                session.send("label", generate=pb.GenerateRequest(model=DCGAN, count=1, label=3))
                session.send("", generate=pb.GenerateRequest(model=DCGAN, count=1))
                session.send("x" * 129, generate=pb.GenerateRequest(model=DCGAN, count=1))
                session.send("empty")
                session.generate("good", count=2, seed=5)
                session.send("vary", variations=pb.VariationsRequest(sample_id=stored, count=2, strength=0.5, seed=1))
                answers = {r.id: r for r in session.close()}
    finally:
        server.stop()
    invalid, not_found = grpc.StatusCode.INVALID_ARGUMENT.value[0], grpc.StatusCode.NOT_FOUND.value[0]
    assert set(answers) == {"no-model", "zero", "label", "", "x" * 129, "empty", "good", "vary"}
    assert answers["no-model"].error.code == not_found and "unknown model 'nope'" in answers["no-model"].error.message
    assert answers["zero"].error.code == invalid and "count must be between 1 and 64" in answers["zero"].error.message
    assert answers["label"].error.code == invalid and "unconditional" in answers["label"].error.message
    assert answers[""].error.code == invalid and "request id must be 1..128 characters" in answers[""].error.message
    assert answers["x" * 129].error.code == invalid
    assert answers["empty"].error.code == invalid and "set one of: generate, variations" in answers["empty"].error.message
    assert [s.seed for s in answers["good"].generate.samples] == [5, 6]
    assert len(answers["vary"].variations.samples) == 2 and answers["vary"].variations.seed == 1
    assert _metric(server, "latentforge_requests_total", {"method": "Session", "code": "OK", "protocol": "grpc"}) == 1


def test_a_duplicate_id_in_flight_is_refused_and_the_first_still_answered(gated):
    server, gate, _ = gated
    with grpc.insecure_channel(server.target) as channel:
        session = RawSession(channel)
        session.generate("x", seed=1)
        session.generate("x", seed=2)
        refused = session.next()
        assert refused.id == "x" and refused.error.code == grpc.StatusCode.ALREADY_EXISTS.value[0]
        assert "already in flight" in refused.error.message
        gate.release.set()
        answered = session.next()
        assert answered.id == "x" and [s.seed for s in answered.generate.samples] == [1]
        session.generate("x", seed=3)  # answered: the id is free again
        again = session.next()
        assert again.id == "x" and [s.seed for s in again.generate.samples] == [3]
        assert session.close() == []


def test_a_cancelled_session_frees_its_queued_work(gated):
    """Queued requests of a session the client cancels are dropped unrun: no sample is made."""
    server, gate, held = gated
    with GenerationClient(server.target, timeout_s=30) as client:
        session = client.session()
        futures = [session.submit_generate(DCGAN, 2, seed=k) for k in range(3)]
        wait_until(lambda: _metric(server, "latentforge_queue_depth", QUEUE) == 3, 10, "the requests to queue")
        session.cancel()
        wait_until(lambda: _metric(server, "latentforge_requests_in_flight", {"method": "Session", "protocol": "grpc"}) == 0
                   and _metric(server, "latentforge_requests_in_flight", {"method": "Session.Generate", "protocol": "grpc"}) == 0,
                   10, "the server to see the cancellation")
        gate.release.set()
        server.call(asyncio_wait(held))
        assert len(client.generate(DCGAN, 2, seed=9).samples) == 2  # the queue moved on
    assert all(isinstance(f.exception(10), grpc.RpcError) for f in futures)
    assert _generated(server) == 0
    assert _metric(server, "latentforge_batch_size_sum", GEN) == 2 + 2  # the held two rows, then the last call
    assert _metric(server, "latentforge_requests_total", {"method": "Session.Generate", "code": "CANCELLED", "protocol": "grpc"}) == 3


async def asyncio_wait(future):
    return await future


def test_requests_beyond_the_in_flight_bound_wait_unread(gated):
    """session_max_in_flight=4: of 10 requests sent at once, 4 are read and queued; the others
    wait in the stream (flow control), not refused; all 10 are answered once the slot frees."""
    server, gate, _ = gated
    with GenerationClient(server.target, timeout_s=30) as client, client.session(max_in_flight=64) as session:
        futures = [session.submit_generate(DCGAN, 1, seed=k, fmt="tensor") for k in range(10)]
        wait_until(lambda: _metric(server, "latentforge_queue_depth", QUEUE) == 4, 10, "4 requests to queue")
        time.sleep(0.5)  # room for a fifth to be read, if the bound did not hold
        assert _metric(server, "latentforge_queue_depth", QUEUE) == 4
        assert _metric(server, "latentforge_requests_in_flight", {"method": "Session.Generate", "protocol": "grpc"}) == 4
        assert not any(f.done() for f in futures)
        gate.release.set()
        results = [f.result(30) for f in futures]
    assert [r.samples[0].seed for r in results] == list(range(10))
    assert _metric(server, "latentforge_requests_total", {"method": "Session.Generate", "code": "OK", "protocol": "grpc"}) == 10


def test_session_requests_batch_with_other_sessions_and_unary_calls(gated):
    server, gate, _ = gated
    with GenerationClient(server.target, timeout_s=30) as client:
        a, b = client.session(), client.session()
        futures = [a.submit_generate(DCGAN, 1, seed=1), b.submit_generate(DCGAN, 2, seed=2)]
        unary = threading.Thread(target=client.generate, args=(DCGAN, 3), kwargs={"seed": 3})
        unary.start()
        wait_until(lambda: _metric(server, "latentforge_queue_depth", QUEUE) == 3, 10, "the requests to queue")
        gate.release.set()
        unary.join(30)
        assert [len(f.result(30).samples) for f in futures] == [1, 2]
        a.close(10)
        b.close(10)
    # The held two rows, then one batch of all three callers' 6 rows.
    assert _metric(server, "latentforge_batch_size_count", GEN) == 2
    assert _metric(server, "latentforge_batch_size_sum", GEN) == 2 + 6


def test_the_session_client_answers_by_future_and_raises_per_request(model_repo: Path):
    server = start_server(model_repo)
    try:
        with GenerationClient(server.target, timeout_s=30) as client:
            with client.session() as session:
                futures = [session.submit_generate(DCGAN, 1, seed=k, fmt="tensor") for k in range(20)]
                bad = session.submit_generate("nope")
                one = session.generate(DCGAN, 1, seed=5, fmt="tensor")
                results = [f.result(30) for f in futures]
                with pytest.raises(SessionRequestError) as info:
                    bad.result(30)
            unary = client.generate(DCGAN, 1, seed=5, fmt="tensor")
    finally:
        server.stop()
    assert info.value.code == grpc.StatusCode.NOT_FOUND and "unknown model" in info.value.message
    assert [r.samples[0].seed for r in results] == list(range(20))
    np.testing.assert_array_equal(one.samples[0].image.tensor, unary.samples[0].image.tensor)


def test_a_drain_answers_what_was_read_then_ends_the_session_unavailable(model_repo: Path):
    server = start_server(model_repo, workers=1, render_cache=False, drain_grace_s=30)
    gate = Gate()
    try:
        hold_a_batch_slot(server, gate)
        with grpc.insecure_channel(server.target) as channel:
            session = RawSession(channel)
            session.generate("a", seed=1)
            session.generate("b", seed=2)
            wait_until(lambda: _metric(server, "latentforge_queue_depth", QUEUE) == 2, 10, "the requests to queue")
            server.begin_stop(30)
            wait_until(lambda: server.server.calls.draining, 10, "the drain to begin")
            session.generate("late", seed=3)  # not read: the session stopped reading
            gate.release.set()
            answers = [session.next(), session.next()]
            with pytest.raises(grpc.RpcError) as info:
                session.next()
    finally:
        gate.release.set()
        server.stop()
    assert sorted(r.id for r in answers) == ["a", "b"] and all(r.WhichOneof("result") == "generate" for r in answers)
    assert info.value.code() == grpc.StatusCode.UNAVAILABLE and info.value.details() == DRAINING_MESSAGE
    assert _generated(server) == 2


def test_a_session_without_the_servers_token_is_refused(model_repo: Path):
    server = start_server(model_repo, auth_tokens=("session-token-0123456789",))
    try:
        with grpc.insecure_channel(server.target) as channel:
            session = RawSession(channel)
            session.generate("a")
            with pytest.raises(grpc.RpcError) as info:
                session.next()
            session.outbox.put(None)
        with GenerationClient(server.target, timeout_s=30, token="session-token-0123456789") as client, client.session() as ok:
            assert ok.generate(DCGAN, 1, seed=1).samples[0].seed == 1
    finally:
        server.stop()
    assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED


def test_the_load_generator_drives_session_streams(model_repo: Path):
    """``latentforge bench --session``: each client's request in flight on a shared Session
    stream; answers matched by id, error answers counted by their status."""
    import asyncio

    from tools.loadgen import LoadSpec, run_load

    server = start_server(model_repo)
    try:
        spec = LoadSpec(target=server.target, model=DCGAN, concurrency=8, duration_s=1.0, warmup_s=0.2,
                        max_requests=150, session=True, channels=2)
        good = asyncio.run(run_load(spec))
        bad = asyncio.run(run_load(LoadSpec(**{**spec.__dict__, "model": "nope", "max_requests": 20})))
    finally:
        server.stop()
    assert good.requests == good.ok == good.images > 0 and not good.errors
    assert bad.ok == 0 and set(bad.errors) == {"NOT_FOUND"}
    assert _metric(server, "latentforge_requests_total", {"method": "Session.Generate", "code": "OK", "protocol": "grpc"}) >= good.ok
    with pytest.raises(ValueError, match="a session sends Generate"):
        LoadSpec(target="x", model=DCGAN, method="GetSample", session=True).validate()
