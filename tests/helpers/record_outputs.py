"""Record what the GenerationService serves for fixed requests, as sha256 hashes of the bytes.

    python -m tests.helpers.record_outputs tests/data/served_outputs.json

builds the recorded models (tests.helpers.recorded) into a temporary folder, starts
`latentforge serve` of the tree this file is in on them (a child process, cwd and PYTHONPATH that
tree; in-process sample cache, CPU provider, one ONNX Runtime thread per call), makes the calls of
``record`` over gRPC and writes the hashes with a description of each request.
tests/test_served_outputs.py makes the same calls and compares: the same seed must give the same
bytes after the serving code changes. The server reads its other settings from its defaults and,
as ever, from LATENTFORGE_* environment variables: leave those unset when recording or testing.

Only the generated stubs, grpc, protobuf, the standard library and the test helpers that start
processes are imported here, never services.*: this file must run unchanged on the serving code
before and after it is reorganised.
"""

from __future__ import annotations

import hashlib
import json
import platform
import struct
import sys
import tempfile
import time
from contextlib import contextmanager
from importlib import metadata
from pathlib import Path
from typing import Any, Iterator

import grpc
from google.protobuf import json_format
from grpc_health.v1 import health_pb2, health_pb2_grpc

from latentforge.v1 import generation_pb2 as pb
from latentforge.v1 import generation_pb2_grpc as pb_grpc
from tests.helpers.processes import ROOT, ServeProcess
from tests.helpers.recorded import COMPLETION, DCGAN, STROKES, build_in_child, graph_fingerprints

# Server flags: results must not depend on the machine's core count or accelerator.
SERVE_ARGS = ("--provider", "CPUExecutionProvider", "--intra-op-threads", "1", "--reload-interval-s", "0")
MODELS = (DCGAN, COMPLETION, STROKES)
TIMEOUT_S = 60.0
SIZE = 28  # mnist5k images: the completion model's input size
PNG, TENSOR = pb.OUTPUT_FORMAT_PNG, pb.OUTPUT_FORMAT_TENSOR
# Libraries whose versions the recorded bytes depend on (kept in the file, for whoever reads a mismatch).
LIBRARIES = ("torch", "onnx", "onnxruntime", "numpy", "pillow", "grpcio", "protobuf")


def sha256(data: bytes) -> str:
    """Hex sha256 of ``data``."""
    return hashlib.sha256(data).hexdigest()


def _ring() -> list[list[float]]:
    """A 28x28 ring (a drawn "0") in [0, 1], made with integer arithmetic only, so its values are
    the same everywhere: the image the Complete calls fill."""
    return [[1.0 if 36 <= (x - 14) ** 2 + (y - 14) ** 2 <= 100 else 0.0 for x in range(SIZE)] for y in range(SIZE)]


def _tensor(rows: list[list[float]], shape: tuple[int, ...]) -> pb.Tensor:
    """A float32 little-endian Tensor of ``rows`` (C order)."""
    flat = [v for row in rows for v in row]
    return pb.Tensor(dtype="float32", shape=list(shape), data=struct.pack(f"<{len(flat)}f", *flat))


def _png_gray(rows: list[list[float]]) -> bytes:
    """An 8-bit grayscale PNG of ``rows`` (values 0..1), written with zlib only (no Pillow), so the
    input bytes do not depend on the imaging library's version."""
    import zlib

    raw = b"".join(b"\x00" + bytes(round(v * 255) for v in row) for row in rows)

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", len(rows[0]), len(rows), 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b"")


def _bottom_half_boxes() -> pb.Mask:
    """The bottom half of a 28x28 image as a hole (a box)."""
    return pb.Mask(holes=pb.BoxList(boxes=[pb.Box(x=0, y=SIZE // 2, width=SIZE, height=SIZE // 2)]))


def _bottom_half_tensor() -> pb.Mask:
    """The same hole as ``_bottom_half_boxes`` as an (H, W) tensor: 1 = known, 0 = hole."""
    rows = [[1.0 if y < SIZE // 2 else 0.0 for _ in range(SIZE)] for y in range(SIZE)]
    return pb.Mask(tensor=_tensor(rows, (SIZE, SIZE)))


def generate_requests() -> dict[str, pb.GenerateRequest]:
    """Generate calls by name: seeds, counts 1 and 4, with and without a label, PNG and TENSOR,
    truncation once, latents once."""
    return {
        "generate/seed7-count1-png": pb.GenerateRequest(model=DCGAN, count=1, seed=7, format=PNG),
        "generate/seed7-count4-png": pb.GenerateRequest(model=DCGAN, count=4, seed=7, format=PNG),
        "generate/seed7-count4-tensor": pb.GenerateRequest(model=DCGAN, count=4, seed=7, format=TENSOR),
        "generate/seed123-count1-label3-png": pb.GenerateRequest(model=DCGAN, count=1, seed=123, label=3, format=PNG),
        "generate/seed123-count4-label3-tensor-latents": pb.GenerateRequest(
            model=DCGAN, count=4, seed=123, label=3, format=TENSOR, return_latents=True),
        "generate/seed2e64m2-count4-png": pb.GenerateRequest(model=DCGAN, count=4, seed=2**64 - 2, format=PNG),
        "generate/seed42-count4-truncation0.7-label5-png": pb.GenerateRequest(
            model=DCGAN, count=4, seed=42, truncation=0.7, label=5, format=PNG, return_latents=True),
        "generate/seed42-count4-truncation0.7-label5-tensor": pb.GenerateRequest(
            model=DCGAN, count=4, seed=42, truncation=0.7, label=5, format=TENSOR),
        # The first request again: served from the render cache this time.
        "generate/seed7-count1-png-again": pb.GenerateRequest(model=DCGAN, count=1, seed=7, format=PNG),
    }


def complete_requests() -> dict[str, pb.CompleteRequest]:
    """Complete calls by name: the ring's bottom half filled, 3 candidates, PNG and TENSOR."""
    ring = _ring()
    png_in, tensor_in = pb.Image(png=_png_gray(ring)), pb.Image(tensor=_tensor(ring, (1, SIZE, SIZE)))
    return {
        "complete/seed5-count3-boxes-png": pb.CompleteRequest(
            model=COMPLETION, image=png_in, mask=_bottom_half_boxes(), count=3, seed=5, format=PNG),
        "complete/seed5-count3-boxes-tensor-latents": pb.CompleteRequest(
            model=COMPLETION, image=png_in, mask=_bottom_half_boxes(), count=3, seed=5, format=TENSOR,
            return_latents=True),
        "complete/seed9-count3-tensor-in-mask-tensor-png": pb.CompleteRequest(
            model=COMPLETION, image=tensor_in, mask=_bottom_half_tensor(), count=3, seed=9, format=PNG),
        "complete/seed9-count3-tensor-in-mask-tensor-tensor": pb.CompleteRequest(
            model=COMPLETION, image=tensor_in, mask=_bottom_half_tensor(), count=3, seed=9, format=TENSOR),
    }


def strokes_requests() -> dict[str, pb.GenerateStrokesRequest]:
    """GenerateStrokes calls by name: 2 drawings each (the model's default temperature and length,
    then others), with SVG, PNG and latents."""
    return {
        "strokes/seed11-count2-svg-png64-latents": pb.GenerateStrokesRequest(
            model=STROKES, count=2, seed=11, svg=True, png_size=64, return_latents=True),
        # Drawing 0 is cut at max_steps, drawing 1 ends before its first point.
        "strokes/seed5-count2-t0.8-max8-svg-png48": pb.GenerateStrokesRequest(
            model=STROKES, count=2, seed=5, temperature=0.8, max_steps=8, svg=True, png_size=48),
    }


def _floats(values: Any) -> str:
    """sha256 of a repeated float field as float32 little-endian bytes (how the wire holds them)."""
    values = list(values)
    return sha256(struct.pack(f"<{len(values)}f", *values))


def _image(image: pb.Image) -> dict[str, Any]:
    """An image's bytes as sha256 (and a tensor's dtype and shape)."""
    if image.HasField("png"):
        return {"png_sha256": sha256(image.png)}
    t = image.tensor
    return {"tensor_dtype": t.dtype, "tensor_shape": list(t.shape), "tensor_sha256": sha256(t.data)}


def _sample(sample: pb.Sample) -> dict[str, Any]:
    """A sample's served content (its random sample_id left out)."""
    out: dict[str, Any] = {"index": sample.index, **_image(sample.image)}
    if sample.HasField("seed"):
        out["seed"] = str(sample.seed)
    if sample.HasField("label"):
        out["label"] = sample.label
    if sample.latent:
        out["latent_len"], out["latent_sha256"] = len(sample.latent), _floats(sample.latent)
    return out


def _points_sha256(points: list[pb.StrokePoint]) -> str:
    """sha256 of a drawing's points: (dx, dy) as float32 little-endian and the pen as int32, in order."""
    return sha256(b"".join(struct.pack("<ffi", p.dx, p.dy, p.pen) for p in points))


def _strokes(events: Iterator[pb.StrokeEvent]) -> dict[str, Any]:
    """The drawings of a GenerateStrokes stream, by index: points and the StrokeDone's content."""
    points: dict[int, list[pb.StrokePoint]] = {}
    done: dict[int, pb.StrokeDone] = {}
    for e in events:
        if e.HasField("point"):
            assert e.index not in done, f"a point of drawing {e.index} after its StrokeDone"
            points.setdefault(e.index, []).append(e.point)
        else:
            assert e.index not in done, f"two StrokeDone of drawing {e.index}"
            done[e.index] = e.done
    assert set(points) <= set(done), f"drawings {sorted(set(points) - set(done))} have no StrokeDone"
    drawings = []
    for index in sorted(done):
        d, own = done[index], points.get(index, [])
        drawings.append({
            "index": index, "model": d.model, "version": d.version, "seed": str(d.seed), "points": d.points,
            "streamed_points": len(own), "points_sha256": _points_sha256(own), "ended": d.ended,
            "svg_sha256": sha256(d.svg.encode()) if d.svg else None,
            "png_sha256": sha256(d.png) if d.png else None,
            "latent_len": len(d.latent), "latent_sha256": _floats(d.latent) if d.latent else None})
    return {"drawings": drawings}


def describe(request: Any) -> dict[str, Any]:
    """A request as JSON, its input image and mask bytes replaced by their sha256."""
    copy = type(request)()
    copy.CopyFrom(request)
    extra: dict[str, Any] = {}
    if isinstance(copy, pb.CompleteRequest):
        extra["image"] = _image(copy.image)
        if copy.mask.HasField("tensor"):
            mask = copy.mask.tensor
            extra["mask"] = {"tensor_shape": list(mask.shape), "tensor_sha256": sha256(mask.data)}
            copy.ClearField("mask")
        copy.ClearField("image")
    described = json_format.MessageToDict(copy, preserving_proto_field_name=True)
    return {"method": type(request).__name__.removesuffix("Request"), **described, **extra}


def record(channel: grpc.Channel) -> dict[str, dict[str, Any]]:
    """Make every recorded call on ``channel``, one after another, and return, by call name, the
    request's description and what was served (sha256 of every bytes payload, plain values of
    the rest; random sample ids left out)."""
    stub = pb_grpc.GenerationServiceStub(channel)
    calls: dict[str, dict[str, Any]] = {}
    for name, request in generate_requests().items():
        response = stub.Generate(request, timeout=TIMEOUT_S)
        calls[name] = {"request": describe(request), "served": {
            "model": response.model, "version": response.version, "seed": str(response.seed),
            "samples": [_sample(s) for s in response.samples]}}
    for name, request in complete_requests().items():
        response = stub.Complete(request, timeout=TIMEOUT_S)
        calls[name] = {"request": describe(request), "served": {
            "model": response.model, "version": response.version, "seed": str(response.seed),
            "method": pb.CompletionMethod.Name(response.method),
            "candidates": [_sample(s) for s in response.candidates]}}
    for name, request in strokes_requests().items():
        events = stub.GenerateStrokes(request, timeout=TIMEOUT_S)
        calls[name] = {"request": describe(request), "served": _strokes(events)}
    return calls


def wait_serving(channel: grpc.Channel, timeout_s: float = TIMEOUT_S) -> None:
    """Until health says SERVING and ListModels lists every recorded model."""
    health = health_pb2_grpc.HealthStub(channel)
    stub = pb_grpc.GenerationServiceStub(channel)
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            status = health.Check(health_pb2.HealthCheckRequest(service=""), timeout=5).status
            if status == health_pb2.HealthCheckResponse.SERVING:
                loaded = {m.name for m in stub.ListModels(pb.ListModelsRequest(), timeout=5).models}
                if loaded >= set(MODELS):
                    return
        except grpc.RpcError:
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"the server did not serve {', '.join(MODELS)} within {timeout_s} s")
        time.sleep(0.05)


@contextmanager
def serving(repo: Path) -> Iterator[grpc.Channel]:
    """`latentforge serve` of this tree (PYTHONPATH and cwd: its root) on ``repo``, in a child
    process with the in-process cache; a channel to it once every model is served."""
    server = ServeProcess(repo, *SERVE_ARGS, env={"PYTHONPATH": str(ROOT)})
    try:
        with grpc.insecure_channel(server.target) as channel:
            wait_serving(channel)
            yield channel
    finally:
        server.kill()


def environment() -> dict[str, Any]:
    """What the recorded bytes depend on besides the code: machine and library versions."""
    versions = {}
    for name in LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    cpu = next((line.split(":", 1)[1].strip() for line in _read("/proc/cpuinfo").splitlines()
                if line.startswith("model name")), platform.processor())
    return {"python": platform.python_version(), "machine": platform.machine(), "system": platform.system(),
            "cpu": cpu, "libraries": versions}


def _read(path: str) -> str:
    try:
        return Path(path).read_text()
    except OSError:
        return ""


def main(argv: list[str]) -> int:
    """Build, serve, record, write ``argv[0]``."""
    if len(argv) != 1:
        print("usage: python -m tests.helpers.record_outputs OUT.json", file=sys.stderr)
        return 2
    out = Path(argv[0])
    with tempfile.TemporaryDirectory(prefix="recorded-models-") as tmp:
        repo = Path(tmp) / "models"
        build_in_child(repo, ROOT)
        with serving(repo) as channel:
            calls = record(channel)
        graphs = graph_fingerprints(repo)
    document = {
        "about": "sha256 of what GenerationService serves for fixed requests on the models of "
                 "tests/helpers/recorded.py; written by `python -m tests.helpers.record_outputs`, "
                 "checked by tests/test_served_outputs.py",
        "serve_args": list(SERVE_ARGS), "environment": environment(), "model_graphs": graphs, "calls": calls}
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(document, indent=1, sort_keys=True) + "\n")
    print(f"wrote {len(calls)} calls to {out} (server tree {ROOT})", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
