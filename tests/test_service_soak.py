"""A bounded soak: `latentforge serve` (a child process, real Redis) under mixed load from
several clients while faults are injected in cycles - Redis stopped and restarted, a new model
version published, a tampered version published, the oldest version deleted - with bad requests
mixed in. It must end with zero unexpected outcomes and resident memory within a stated bound.

Duration: ``LATENTFORGE_SOAK_S`` seconds of load (default 8, in the regular suite). The full run:

    LATENTFORGE_SOAK_S=60 python -m pytest tests/test_service_soak.py -s

Figures are printed (``-s`` shows them).
"""

from __future__ import annotations

import io
import os
import shutil
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc
from PIL import Image

from latentforge.v1 import generation_pb2 as pb
from latentforge.v1 import generation_pb2_grpc as pb_grpc
from tests.helpers.processes import SERVING, ServeProcess, health_status, wait_until
from tests.helpers.servers import publish_version
import pytest

pytestmark = pytest.mark.slow

SOAK_S = float(os.environ.get("LATENTFORGE_SOAK_S", "8"))
CLIENTS = 4
MAX_CALLS_PER_CLIENT = 200_000  # a bound; the clock ends the run long before
# Resident memory may grow this much from the end of the warm-up to the end of the run (ONNX
# Runtime arenas, a loaded version more or less at any moment, allocator slack); a leak per
# request or per loaded version would pass it within a 60 s run.
MEMORY_BOUND_BYTES = 32 * 1024 * 1024
MiB = 1024 * 1024

OK = grpc.StatusCode.OK
UNAVAILABLE, NOT_FOUND, INVALID = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.NOT_FOUND,
                                   grpc.StatusCode.INVALID_ARGUMENT)
# What an id-based call may answer during the faults, besides OK: Redis down (UNAVAILABLE), the
# id lost with a restarted empty Redis or never stored (NOT_FOUND), its version deleted (NOT_FOUND).
ID_OUTCOMES = {(UNAVAILABLE, "sample cache is unreachable"), (NOT_FOUND, "unknown or expired sample id"),
               (NOT_FOUND, "which is no longer loaded")}


def _png() -> bytes:
    buf = io.BytesIO()
    Image.new("L", (28, 28), 128).save(buf, format="PNG")
    return buf.getvalue()


class Load:
    """One client's mixed calls; each outcome is checked against what that call may answer."""

    def __init__(self, target: str, k: int, outcomes: Counter, unexpected: list, lock: threading.Lock) -> None:
        self.channel = grpc.insecure_channel(target)
        self.stub = pb_grpc.GenerationServiceStub(self.channel)
        self.k, self.outcomes, self.unexpected, self.lock = k, outcomes, unexpected, lock
        self.last_id = ""
        self.png = _png()

    def call(self, name: str, fn, allowed: set = frozenset()) -> object:
        """Run one call; OK is always fine, other codes only as ``allowed`` (code, words) pairs."""
        try:
            result = fn()
            code, details = OK, ""
        except grpc.RpcError as exc:
            result, code, details = None, exc.code(), exc.details() or ""
        fine = code == OK or any(code == c and words in details for c, words in allowed)
        with self.lock:
            self.outcomes[(name, code.name)] += 1
            if not fine and len(self.unexpected) < 100:
                self.unexpected.append(f"{name}: {code.name}: {details}")
        return result

    def step(self, n: int) -> None:
        s, k = self.stub, self.k
        kind = (n + k) % 10
        if kind in (0, 1, 2):
            r = self.call("Generate", lambda: s.Generate(pb.GenerateRequest(model="mnist-dcgan", count=1 + n % 8),
                                                         timeout=30))
            if r is not None and r.samples_stored:
                self.last_id = r.samples[0].sample_id
        elif kind == 3:  # seeded: through the rendered-output cache
            self.call("Generate(seed)", lambda: s.Generate(
                pb.GenerateRequest(model="mnist-dcgan", count=4, seed=n % 50), timeout=30))
        elif kind == 4:
            self.call("GenerateStream", lambda: list(s.GenerateStream(
                pb.GenerateRequest(model="mnist-dcgan", count=6), timeout=30)))
        elif kind == 5:
            self.call("Interpolate", lambda: s.Interpolate(pb.InterpolateRequest(
                model="mnist-dcgan", start=pb.Endpoint(seed=n), end=pb.Endpoint(seed=n + 1), steps=5), timeout=30))
        elif kind == 6 and self.last_id:
            sid = self.last_id
            self.call("GetSample", lambda: s.GetSample(pb.GetSampleRequest(sample_id=sid), timeout=30), ID_OUTCOMES)
            self.call("Variations", lambda: s.Variations(pb.VariationsRequest(sample_id=sid, count=2, strength=0.3),
                                                         timeout=30), ID_OUTCOMES)
        elif kind == 7:
            self.call("Encode", lambda: s.Encode(pb.EncodeRequest(model="mnist-vae", images=[pb.Image(png=self.png)]),
                                                 timeout=30))
            self.call("Reconstruct", lambda: s.Reconstruct(
                pb.ReconstructRequest(model="mnist-vae", images=[pb.Image(png=self.png)] * 2), timeout=30))
        else:  # bad requests: each must get its own status, nothing else
            bad = n % 4
            if bad == 0:
                self.call("bad count", lambda: s.Generate(pb.GenerateRequest(model="mnist-dcgan", count=0), timeout=30),
                          {(INVALID, "count must be between")})
            elif bad == 1:
                self.call("bad model", lambda: s.Generate(pb.GenerateRequest(model="nope", count=1), timeout=30),
                          {(NOT_FOUND, "unknown model")})
            elif bad == 2:
                self.call("bad image", lambda: s.Encode(pb.EncodeRequest(
                    model="mnist-vae", images=[pb.Image(png=b"not a png")]), timeout=30), {(INVALID, "images[0]")})
            else:
                self.call("bad version", lambda: s.Generate(
                    pb.GenerateRequest(model="mnist-dcgan", version=10_000, count=1), timeout=30),
                    {(NOT_FOUND, "has no version 10000")})


def test_soak_mixed_load_with_faults(model_repo: Path, own_redis, tmp_path: Path):
    repo = tmp_path / "models"
    shutil.copytree(model_repo, repo)
    model_dir = repo / "mnist-dcgan"
    server = ServeProcess(repo, "--redis-url", own_redis.url, "--no-access-log",
                          env={"LATENTFORGE_RELOAD_INTERVAL_S": "0.25"})
    outcomes: Counter = Counter()
    unexpected: list[str] = []
    lock = threading.Lock()
    stop = threading.Event()
    faults: Counter = Counter()
    rss: dict[str, int] = {}

    def client(k: int) -> None:
        load = Load(server.target, k, outcomes, unexpected, lock)
        try:
            for n in range(MAX_CALLS_PER_CLIENT):
                if stop.is_set():
                    return
                load.step(n)
        finally:
            load.channel.close()

    warm_up_s = min(3.0, 0.2 * SOAK_S)
    fault_s = SOAK_S - warm_up_s
    cycle_s = min(10.0, fault_s)
    next_version, good = [2], [1]

    def publish(tamper: str | None) -> None:
        publish_version(model_dir, next_version[0], source=good[-1], tamper=tamper)
        if tamper is None:
            good.append(next_version[0])
        next_version[0] += 1

    def _versions() -> list[int]:
        return sorted(int(p.name) for p in model_dir.iterdir() if p.name.isdigit())

    def delete_oldest() -> None:
        for v in _versions():  # all but the newest good version: older good ones and refused ones
            if v != good[-1]:
                shutil.rmtree(model_dir / str(v))

    # (fraction of a cycle, name, action)
    def redis_start() -> None:
        if own_redis.proc is None:
            own_redis.start()

    schedule = [(0.15, "redis_stop", own_redis.stop), (0.35, "redis_start", redis_start),
                (0.45, "new_version", lambda: publish(None)), (0.6, "tampered_version", lambda: publish("sha256")),
                (0.8, "delete_old_versions", delete_oldest)]
    try:
        with grpc.insecure_channel(server.target) as channel:
            wait_until(lambda: health_status(channel) == SERVING, 60, "SERVING")
        t0 = time.monotonic()
        with ThreadPoolExecutor(CLIENTS) as pool:
            jobs = [pool.submit(client, k) for k in range(CLIENTS)]
            time.sleep(warm_up_s)
            rss["start"] = server.rss_bytes()
            peak = rss["start"]
            cycle_start = time.monotonic()
            end = t0 + SOAK_S
            while time.monotonic() < end:
                for fraction, name, action in schedule:
                    at = cycle_start + fraction * cycle_s
                    while time.monotonic() < min(at, end):
                        time.sleep(0.05)
                        peak = max(peak, server.rss_bytes())
                    if time.monotonic() >= end and name != "redis_start":
                        continue
                    action()
                    faults[name] += 1
                cycle_start += cycle_s
                while time.monotonic() < min(cycle_start, end):
                    time.sleep(0.05)
                    peak = max(peak, server.rss_bytes())
            stop.set()
            for job in jobs:
                job.result(60)
        elapsed = time.monotonic() - t0
        rss["end"], rss["peak"] = server.rss_bytes(), max(peak, server.rss_bytes())
        server.proc.terminate()
        code = server.wait(30)
    finally:
        stop.set()
        server.kill()
    calls = sum(outcomes.values())
    expected_errors = sum(v for (name, c), v in outcomes.items() if c != "OK")
    loaded = [(e["model"], e["version"]) for e in server.events("model_loaded")]
    refused = [(e["model"], e["version"]) for e in server.events("model_load_failed")]
    unloaded = [(e["model"], e["version"]) for e in server.events("model_unloaded")]
    internal = [e for e in server.lines if e["event"] == "rpc" and e.get("code") == "INTERNAL"]
    print(f"\nsoak: {elapsed:.1f} s, {CLIENTS} clients, {calls} calls ({calls / elapsed:.0f}/s), "
          f"{expected_errors} expected error answers, {len(unexpected)} unexpected; faults {dict(faults)}; "
          f"versions loaded {loaded}, refused {refused}, unloaded {unloaded}; RSS start {rss['start'] / MiB:.1f} MiB, "
          f"end {rss['end'] / MiB:.1f} MiB, peak {rss['peak'] / MiB:.1f} MiB, growth "
          f"{(rss['end'] - rss['start']) / MiB:+.1f} MiB (bound {MEMORY_BOUND_BYTES / MiB:.0f}); exit {code}")
    print(f"soak outcomes: {dict(sorted(outcomes.items()))}")
    assert not unexpected, unexpected[:10]
    assert not internal
    assert code == 0
    assert faults["redis_stop"] >= 1 and faults["new_version"] >= 1 and faults["tampered_version"] >= 1
    assert len(refused) == faults["tampered_version"]
    assert outcomes[("Generate", "OK")] > 0 and outcomes[("GetSample", "UNAVAILABLE")] > 0
    assert rss["end"] - rss["start"] <= MEMORY_BOUND_BYTES
