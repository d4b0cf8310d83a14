"""Closed-loop load generator: C clients, each sending its next request when the last ends, over
gRPC or over the HTTP/JSON surface (``protocol="http"``).

It measures what a server delivers under a given concurrency: requests/s, images/s, latency
percentiles, errors by status code, and the CPU time spent on each side (its own process, and
the server's from ``latentforge_process_cpu_seconds_total`` on /metrics or from ``/proc/PID``),
so that the cost per image can be compared with ONNX Runtime alone (``tools.ortbench``).

Requests are serialised once and responses are not parsed (only counted), so the generator
itself spends as little CPU as a Python gRPC client can; that matters when it shares the cores
with the server. Every run is bounded in time (``duration_s``) and in count (``max_requests``).
"""

from __future__ import annotations

import asyncio
import os
import random
import re
import time
import urllib.request
from dataclasses import asdict, dataclass, field
from typing import Any

import grpc

from latentforge.v1 import generation_pb2 as pb
from tools.stats import percentiles

GENERATE = "/latentforge.v1.GenerationService/Generate"
GET_SAMPLE = "/latentforge.v1.GenerationService/GetSample"
SESSION = "/latentforge.v1.GenerationService/Session"
FORMATS = {"png": pb.OUTPUT_FORMAT_PNG, "raw": pb.OUTPUT_FORMAT_TENSOR}
SEED_MODES = ("random", "fixed")
PROTOCOLS = ("grpc", "http")
MAX_BACKOFF_S = 1.0
_CPU_METRIC = re.compile(r"^latentforge_process_cpu_seconds_total\s+([0-9.eE+-]+)\s*$", re.M)


@dataclass(frozen=True)
class LoadSpec:
    """What to send, how many at once, and for how long at most."""

    target: str
    model: str
    concurrency: int = 1
    count: int = 1  # samples per Generate request
    duration_s: float = 10.0
    max_requests: int = 1_000_000  # a second bound beside the duration
    fmt: str = "png"  # "png" or "raw" (float32 tensor)
    method: str = "Generate"  # or "GetSample" (of one id made first)
    seed_mode: str = "random"  # "random": the server picks seeds; "fixed": every request seed 7
    warmup_s: float = 1.0  # load before measuring, not counted
    timeout_s: float = 30.0  # per-request deadline
    channels: int = 1  # HTTP/2 connections, clients spread over them
    backoff_s: float = 0.0  # first pause after RESOURCE_EXHAUSTED/UNAVAILABLE; doubles while refused (to 1 s)
    session: bool = False  # Generate requests on one Session stream per channel instead of unary calls
    protocol: str = "grpc"  # or "http": POST /v1/generate (proto3 JSON) to the HTTP/JSON port at ``target``

    def validate(self) -> "LoadSpec":
        if self.concurrency < 1 or self.count < 1 or self.channels < 1:
            raise ValueError("concurrency, count and channels must be >= 1")
        if not 0 < self.duration_s <= 3600 or self.max_requests < 1:
            raise ValueError("duration must be in (0, 3600] s and max_requests >= 1")
        if not 0 <= self.backoff_s <= MAX_BACKOFF_S or not 0 <= self.warmup_s <= 600:
            raise ValueError(f"backoff must be in [0, {MAX_BACKOFF_S}] s and warm-up in [0, 600] s")
        if self.fmt not in FORMATS or self.seed_mode not in SEED_MODES:
            raise ValueError(f"format must be one of {sorted(FORMATS)}, seed mode one of {SEED_MODES}")
        if self.method not in ("Generate", "GetSample"):
            raise ValueError("method must be Generate or GetSample")
        if self.session and self.method != "Generate":
            raise ValueError("a session sends Generate requests; leave --method at Generate")
        if self.protocol not in PROTOCOLS or (self.protocol == "http" and (self.session or self.method != "Generate")):
            raise ValueError(f"protocol must be one of {PROTOCOLS}; over http only unary Generate is measured")
        return self


@dataclass
class LoadResult:
    """What one run measured; ``to_dict`` is the JSON the bench command writes."""

    spec: dict[str, Any]
    requests: int = 0
    ok: int = 0
    images: int = 0
    seconds: float = 0.0
    errors: dict[str, int] = field(default_factory=dict)
    latencies_ms: dict[str, float] = field(default_factory=dict)  # of all requests
    latencies_by_code_ms: dict[str, dict[str, float]] = field(default_factory=dict)
    response_bytes: int = 0
    client_cpu_s: float = 0.0
    server_cpu_s: float | None = None
    load_average: tuple[float, float, float] | None = None

    @property
    def requests_per_s(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    @property
    def images_per_s(self) -> float:
        return self.images / self.seconds if self.seconds else 0.0

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        cores = os.cpu_count() or 1
        out.update(
            requests_per_s=round(self.requests_per_s, 2),
            images_per_s=round(self.images_per_s, 2),
            client_cpu_share=round(self.client_cpu_s / (self.seconds * cores), 4) if self.seconds else None,
            client_cpu_us_per_image=_per_image_us(self.client_cpu_s, self.images),
            server_cpu_us_per_image=_per_image_us(self.server_cpu_s, self.images),
            server_cpu_share=(round(self.server_cpu_s / (self.seconds * cores), 4)
                              if self.server_cpu_s is not None and self.seconds else None),
        )
        return out


def _per_image_us(cpu_s: float | None, images: int) -> float | None:
    return None if cpu_s is None or not images else round(cpu_s / images * 1e6, 2)


class TreeCpu:
    """CPU seconds of a process and all its descendants (a ``serve --processes N`` supervisor's
    server processes, MLServer's inference workers), including children already reaped (a
    replaced server process); read from /proc."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.tick = os.sysconf("SC_CLK_TCK")

    @staticmethod
    def _stat(pid: int) -> list[str] | None:
        try:
            with open(f"/proc/{pid}/stat") as f:
                return f.read().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            return None

    def pids(self) -> list[int]:
        """The process and its live descendants."""
        children: dict[int, list[int]] = {}
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                fields = self._stat(int(entry))
                if fields:
                    children.setdefault(int(fields[1]), []).append(int(entry))
        out, todo = [], [self.pid]
        while todo:
            pid = todo.pop()
            out.append(pid)
            todo += children.get(pid, [])
        return out

    def read(self) -> float | None:
        """utime + stime (+ reaped children's) over the tree, in seconds; None when the root is gone."""
        if self._stat(self.pid) is None:
            return None
        total = 0
        for pid in self.pids():
            fields = self._stat(pid)
            if fields:
                total += sum(int(fields[k]) for k in (11, 12, 13, 14))
        return total / self.tick


class ServerCpu:
    """Reads a server's CPU seconds, from its /metrics or from /proc (the process given by
    ``pid`` and its descendants)."""

    def __init__(self, metrics_url: str | None = None, pid: int | None = None) -> None:
        self.metrics_url, self.pid = metrics_url, pid

    def read(self) -> float | None:
        """Total CPU seconds so far, or None when neither source is given or readable."""
        if self.pid is not None:
            return TreeCpu(self.pid).read()
        if self.metrics_url:
            try:
                text = urllib.request.urlopen(self.metrics_url, timeout=5).read().decode()
            except OSError:
                return None
            match = _CPU_METRIC.search(text)
            return float(match.group(1)) if match else None
        return None


def _request_bytes(spec: LoadSpec, sample_id: str | None) -> bytes:
    if spec.method == "GetSample":
        return pb.GetSampleRequest(sample_id=sample_id or "").SerializeToString()
    request = pb.GenerateRequest(model=spec.model, count=spec.count, format=FORMATS[spec.fmt])
    if spec.seed_mode == "fixed":
        request.seed = 7
    return request.SerializeToString()


async def _one_sample_id(channel: grpc.aio.Channel, spec: LoadSpec) -> str:
    call = channel.unary_unary(GENERATE, request_serializer=pb.GenerateRequest.SerializeToString,
                               response_deserializer=pb.GenerateResponse.FromString)
    response = await call(pb.GenerateRequest(model=spec.model, count=1, seed=1), timeout=spec.timeout_s)
    return response.samples[0].sample_id


async def run_load(spec: LoadSpec, server_cpu: ServerCpu | None = None) -> LoadResult:
    """Run ``spec`` against a server and return what it measured."""
    spec.validate()
    if spec.protocol == "http":
        return await _run_http_load(spec, server_cpu or ServerCpu())
    options = [("grpc.max_receive_message_length", 256 * 1024 * 1024), ("grpc.use_local_subchannel_pool", 1)]
    channels = [grpc.aio.insecure_channel(spec.target, options=options) for _ in range(spec.channels)]
    try:
        for ch in channels:
            try:
                await asyncio.wait_for(ch.channel_ready(), timeout=spec.timeout_s)
            except asyncio.TimeoutError:
                raise ConnectionError(f"no server at {spec.target} within {spec.timeout_s:g} s") from None
        sample_id = await _one_sample_id(channels[0], spec) if spec.method == "GetSample" else None
        payload = _request_bytes(spec, sample_id)
        path = GENERATE if spec.method == "Generate" else GET_SAMPLE
        if spec.session:
            calls: list[Any] = [SessionCall(ch) for ch in channels]
        else:
            calls = [ch.unary_unary(path) for ch in channels]  # bytes in, bytes out: nothing parsed
        per_request = spec.count if spec.method == "Generate" else 0
        try:
            return await _drive(spec, calls, payload, per_request, server_cpu or ServerCpu())
        finally:
            for call in calls:
                if isinstance(call, SessionCall):
                    await call.close()
    finally:
        for ch in channels:
            await ch.close()


# HTTP statuses back to the gRPC codes the results count errors by (services.http.errors, inverted).
_HTTP_CODES = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED", 404: "NOT_FOUND",
               409: "ALREADY_EXISTS", 412: "FAILED_PRECONDITION", 413: "RESOURCE_EXHAUSTED",
               429: "RESOURCE_EXHAUSTED", 499: "CANCELLED", 501: "UNIMPLEMENTED", 503: "UNAVAILABLE",
               504: "DEADLINE_EXCEEDED"}


class HttpCall:
    """One keep-alive HTTP/1.1 connection used like a unary call: ``await call(json_body)`` POSTs
    it to ``/v1/generate`` and returns the answer's body; a status other than 200 raises
    AioRpcError with the code it stands for. Written on asyncio streams, with the answer read by
    its Content-Length and not parsed, so that the client's CPU per image stays comparable with
    the gRPC calls' (a general HTTP client costs several times more per request)."""

    def __init__(self, target: str, path: str = "/v1/generate") -> None:
        self.host, _, port = target.rpartition(":")
        self.port = int(port)
        self.head = (f"POST {path} HTTP/1.1\r\nHost: {target}\r\nContent-Type: application/json\r\n"
                     "Content-Length: ").encode()
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def __call__(self, body: bytes, timeout: float | None = None) -> bytes:
        try:
            return await asyncio.wait_for(self._post(body), timeout)
        except asyncio.TimeoutError:
            await self.close()
            raise grpc.aio.AioRpcError(grpc.StatusCode.DEADLINE_EXCEEDED, grpc.aio.Metadata(), grpc.aio.Metadata(),
                                       "timed out") from None
        except (OSError, asyncio.IncompleteReadError) as exc:
            await self.close()
            raise grpc.aio.AioRpcError(grpc.StatusCode.UNAVAILABLE, grpc.aio.Metadata(), grpc.aio.Metadata(),
                                       str(exc)) from None

    async def _post(self, body: bytes) -> bytes:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        assert self.reader is not None
        self.writer.write(self.head + str(len(body)).encode() + b"\r\n\r\n" + body)
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        length = 0
        for line in head.split(b"\r\n")[1:]:
            if line[:15].lower() == b"content-length:":
                length = int(line[15:])
                break
        answer = await self.reader.readexactly(length)
        if status != 200:
            code = getattr(grpc.StatusCode, _HTTP_CODES.get(status, "INTERNAL"))
            raise grpc.aio.AioRpcError(code, grpc.aio.Metadata(), grpc.aio.Metadata(), answer.decode("utf-8", "replace"))
        return answer

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.reader = self.writer = None


async def _run_http_load(spec: LoadSpec, server_cpu: ServerCpu) -> LoadResult:
    """``spec`` over HTTP/JSON: one keep-alive connection per client (HTTP/1.1 has one request
    in flight per connection), the same Generate request as proto3 JSON."""
    import json

    from google.protobuf import json_format

    request = pb.GenerateRequest(model=spec.model, count=spec.count, format=FORMATS[spec.fmt])
    if spec.seed_mode == "fixed":
        request.seed = 7
    payload = json.dumps(json_format.MessageToDict(request)).encode()
    calls = [HttpCall(spec.target) for _ in range(spec.concurrency)]
    try:
        return await _drive(spec, calls, payload, spec.count, server_cpu)
    finally:
        for call in calls:
            await call.close()


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


class SessionCall:
    """A Session stream used like a unary call: ``await call(generate_request_bytes)`` sends it
    under a fresh id and returns the answer's bytes (an error answer raises AioRpcError with its
    code). Requests are framed and answers matched by id without parsing the images, so the
    client's CPU per image stays comparable with the unary calls'."""

    def __init__(self, channel: grpc.aio.Channel) -> None:
        self.stream = channel.stream_stream(SESSION)()  # bytes in, bytes out
        self.waiting: dict[bytes, asyncio.Future] = {}
        self.outbox: asyncio.Queue[bytes | None] = asyncio.Queue()
        self.ids = 0
        self.writer = asyncio.create_task(self._write())
        self.reader = asyncio.create_task(self._read())

    async def __call__(self, generate: bytes, timeout: float | None = None) -> bytes:
        self.ids += 1
        rid = b"%x" % self.ids
        future = asyncio.get_running_loop().create_future()
        self.waiting[rid] = future
        # SessionRequest: field 1 (id), then field 2 (generate), as the proto encodes them.
        self.outbox.put_nowait(b"\x0a" + _varint(len(rid)) + rid + b"\x12" + _varint(len(generate)) + generate)
        return await future

    async def _write(self) -> None:
        while (message := await self.outbox.get()) is not None:
            await self.stream.write(message)
        await self.stream.done_writing()

    async def _read(self) -> None:
        try:
            while (answer := await self.stream.read()) is not grpc.aio.EOF:
                rid, result_tag = _session_answer(answer)
                future = self.waiting.pop(rid, None)
                if future is None or future.done():
                    continue
                if result_tag == 15:  # SessionError
                    error = pb.SessionResponse.FromString(answer).error
                    code = next((c for c in grpc.StatusCode if c.value[0] == error.code), grpc.StatusCode.UNKNOWN)
                    future.set_exception(grpc.aio.AioRpcError(code, grpc.aio.Metadata(), grpc.aio.Metadata(),
                                                              error.message))
                else:
                    future.set_result(answer)
        except grpc.aio.AioRpcError as exc:
            for future in self.waiting.values():
                if not future.done():
                    future.set_exception(exc)
            self.waiting.clear()

    async def close(self) -> None:
        self.outbox.put_nowait(None)
        self.stream.cancel()
        for task in (self.writer, self.reader):
            task.cancel()
        await asyncio.gather(self.writer, self.reader, return_exceptions=True)


def _session_answer(data: bytes) -> tuple[bytes, int]:
    """A SessionResponse's id and the field number of its result, read from its first bytes."""
    pos, rid = 0, b""
    if data[:1] == b"\x0a":
        length, pos = _read_varint(data, 1)
        rid, pos = data[pos:pos + length], pos + length
    tag, _ = _read_varint(data, pos) if pos < len(data) else (0, pos)
    return rid, tag >> 3


def _read_varint(data: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
        shift += 7


async def _drive(spec: LoadSpec, calls: list[Any], payload: bytes, per_request: int, server_cpu: ServerCpu) -> LoadResult:
    loop = asyncio.get_running_loop()
    result = LoadResult(spec=asdict(spec))
    latencies: list[float] = []
    by_code: dict[str, list[float]] = {}
    state = {"measuring": False, "stop": False, "sent": 0}
    pushed_back = ("RESOURCE_EXHAUSTED", "UNAVAILABLE")

    async def client(k: int) -> None:
        call = calls[k % len(calls)]
        backoff = spec.backoff_s
        jitter = random.Random(k)
        while not state["stop"] and state["sent"] < spec.max_requests:
            measuring = state["measuring"]
            if measuring:
                state["sent"] += 1
            t0 = loop.time()
            try:
                response = await call(payload, timeout=spec.timeout_s)
                code = "OK"
            except grpc.aio.AioRpcError as exc:
                response, code = b"", exc.code().name
            if measuring and not state["stop"]:
                ms = (loop.time() - t0) * 1000.0
                latencies.append(ms)
                by_code.setdefault(code, []).append(ms)
                result.requests += 1
                if code == "OK":
                    result.ok += 1
                    result.images += per_request
                    result.response_bytes += len(response)
                else:
                    result.errors[code] = result.errors.get(code, 0) + 1
            if code in pushed_back and backoff > 0 and not state["stop"]:
                # Like a gRPC retry policy: exponential backoff with jitter, reset by a success.
                await asyncio.sleep(backoff * jitter.uniform(0.8, 1.2))
                backoff = min(MAX_BACKOFF_S, backoff * 2)
            elif code == "OK":
                backoff = spec.backoff_s

    tasks = [asyncio.create_task(client(k)) for k in range(spec.concurrency)]
    try:
        await asyncio.sleep(spec.warmup_s)
        cpu0, server0, t0 = time.process_time(), server_cpu.read(), loop.time()
        state["measuring"] = True
        deadline = t0 + spec.duration_s
        while loop.time() < deadline and state["sent"] < spec.max_requests and not all(t.done() for t in tasks):
            await asyncio.sleep(min(0.05, max(0.0, deadline - loop.time())))
        state["stop"] = True
        result.seconds = loop.time() - t0
        result.client_cpu_s = time.process_time() - cpu0
        server1 = server_cpu.read()
        if server0 is not None and server1 is not None:
            result.server_cpu_s = server1 - server0
    finally:
        state["stop"] = True
        try:
            await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), spec.timeout_s + 5)
        except asyncio.TimeoutError:
            for t in tasks:
                t.cancel()
    result.latencies_ms = percentiles(latencies)
    result.latencies_by_code_ms = {code: percentiles(v) for code, v in by_code.items()}
    result.load_average = os.getloadavg()
    return result
