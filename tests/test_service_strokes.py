"""Stroke models over gRPC: drawings streamed point by point, reproducible from their seed by any
client that runs the exported step graph itself, every live drawing's step batched into shared
ONNX Runtime calls, a client that cancels mid-stream freeing its drawings, EncodeStrokes,
ContinueStrokes, Interpolate frames as drawings, and bad stroke input answered with what to fix.
Real server on a loopback port, real ONNX Runtime on sketch-rnn models trained briefly on the
kanji numerals and exported by the project's exporter."""

from __future__ import annotations

import io
import threading
import urllib.request
import xml.etree.ElementTree as ET
from pathlib import Path

import grpc
import numpy as np
import onnxruntime as ort
import pytest
from PIL import Image
from prometheus_client.parser import text_string_to_metric_families

from latentforge.manifest import Manifest
from latentforge.strokes import PEN_END, StepOutput, sample_point, stroke5_row, to_stroke5
from latentforge.v1 import generation_pb2 as pb
from latentforge.v1 import generation_pb2_grpc as pb_grpc
from services.generation.client import Drawing, Endpoint, GenerationClient
from latentforge.latents import latent_from_seed
from tests.helpers.processes import wait_until
from tests.helpers.servers import start_server

SKETCH, DOODLE = "kanji-sketch", "kanji-doodle"  # with a latent (VAE); unconditional


@pytest.fixture(scope="module")
def server(stroke_repo: Path, model_repo: Path):
    import shutil

    repo = stroke_repo.parent / "stroke-and-image-models"
    if not repo.exists():
        shutil.copytree(stroke_repo, repo)
        shutil.copytree(model_repo / "mnist-dcgan", repo / "mnist-dcgan")
    s = start_server(repo)
    yield s
    s.stop()


@pytest.fixture()
def client(server):
    with GenerationClient(server.target, timeout_s=60) as c:
        yield c


@pytest.fixture()
def stub(server):
    with grpc.insecure_channel(server.target) as channel:
        yield pb_grpc.GenerationServiceStub(channel)


def _metric(server, name: str, **labels: str) -> float:
    text = urllib.request.urlopen(server.metrics_url, timeout=10).read().decode()
    total = 0.0
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                total += s.value
    return total


def _local_drawing(version_dir: Path, seed: int, temperature: float, max_steps: int) -> np.ndarray:
    """The documented algorithm, run here on the exported graphs: the drawing of `seed`, as rows
    (dx, dy, pen) in data units."""
    manifest = Manifest.read(version_dir)
    spec = manifest.strokes
    sessions = {role: ort.InferenceSession(str(version_dir / f), providers=["CPUExecutionProvider"])
                for role, f in manifest.graphs.items()}
    rng = np.random.Generator(np.random.PCG64(seed))
    feeds: dict[str, np.ndarray] = {}
    if manifest.latent_dim:
        z = rng.standard_normal(manifest.latent_dim).astype(np.float32)
        np.testing.assert_array_equal(z, latent_from_seed(seed, manifest.latent_dim))
        h, c = sessions["init_state"].run(["h", "c"], {"z": z[None]})
        feeds["z"] = z[None]
    else:
        h = c = np.zeros((1, spec.hidden), np.float32)
    point = np.asarray(spec.start_point, np.float32)
    rows = []
    for _ in range(max_steps):
        *mix, h, c = sessions["decoder_step"].run(None, {"point": point[None], "h": h, "c": c, **feeds})
        dx, dy, pen = sample_point(StepOutput(*(m[0] for m in mix)), temperature, rng)
        if pen == PEN_END:
            break
        rows.append((dx * spec.scale, dy * spec.scale, pen))
        point = stroke5_row(dx, dy, pen)
    return np.asarray(rows, np.float32).reshape(-1, 3)


def test_stroke_models_are_listed_with_what_they_draw(client):
    models = {m.name: m for m in client.list_models()}
    sketch, doodle = models[SKETCH], models[DOODLE]
    assert sketch.kind == doodle.kind == "stroke_vae"
    assert set(sketch.supported_methods) == {"GenerateStrokes", "ContinueStrokes", "EncodeStrokes", "Interpolate",
                                             "GetSample"}
    assert set(doodle.supported_methods) == {"GenerateStrokes", "ContinueStrokes", "GetSample"}
    assert doodle.latent_dim == 0 and sketch.latent_dim == 8
    assert sketch.strokes["mixtures"] == 3 and sketch.strokes["scale"] > 1 and sketch.strokes["max_steps"] > 0
    assert sketch.shape == (1, 64, 64)


@pytest.mark.parametrize("model", [SKETCH, DOODLE])
def test_points_stream_as_drawn_and_any_client_can_redraw_them_from_the_seed(client, server, stroke_repo, model):
    events = list(client.draw_stream(model, 3, seed=11, temperature=0.7, svg=True, png_size=96,
                                     return_latents=True))
    drawings = {e.index: e for e in events if isinstance(e, Drawing)}
    assert sorted(drawings) == [0, 1, 2]
    for index, drawing in drawings.items():
        streamed = [p for i, p in (e for e in events if not isinstance(e, Drawing)) if i == index]
        position = next(k for k, e in enumerate(events) if e is drawing)
        assert all(events.index((index, p)) < position for p in streamed)  # points came before their end
        np.testing.assert_allclose(drawing.points, np.asarray(streamed, np.float32).reshape(-1, 3))
        assert drawing.seed == 11 + index and len(drawing.points) == len(streamed)
        max_steps = client.list_models(model)[0].strokes["max_steps"]
        local = _local_drawing(stroke_repo / model / "1", 11 + index, 0.7, max_steps)
        assert len(local) == len(drawing.points)
        np.testing.assert_allclose(drawing.points, local, rtol=1e-4, atol=1e-3)
        assert ET.fromstring(drawing.svg).tag.endswith("svg")
        assert Image.open(io.BytesIO(drawing.png)).size == (96, 96)
        stored = client.get_sample(drawing.sample_id)
        assert stored.origin == "draw" and stored.seed == 11 + index
        np.testing.assert_array_equal(stored.latent, drawing.latent)
    again = client.draw(model, 1, seed=12, temperature=0.7)[0]
    np.testing.assert_array_equal(again.points, drawings[1].points)  # drawing i = drawing 0 of seed + i


def test_concurrent_drawings_share_step_calls_and_draw_what_they_draw_alone(client, server):
    """16 clients at once, and one request of 16 drawings: each drawing is what it is alone, every
    step runs once, and (in the one request, whose drawings all start together) steps share calls."""
    alone = {seed: client.draw(DOODLE, 1, seed=seed, temperature=1.0, max_steps=60)[0] for seed in range(16)}
    results: dict[int, Drawing] = {}
    errors: list[BaseException] = []

    def draw(seed: int) -> None:
        try:
            with GenerationClient(server.target, timeout_s=60) as own:
                results[seed] = own.draw(DOODLE, 1, seed=seed, temperature=1.0, max_steps=60)[0]
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=draw, args=(seed,)) for seed in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors and len(results) == 16
    for seed, drawing in results.items():
        np.testing.assert_allclose(drawing.points, alone[seed].points, rtol=1e-4, atol=1e-3)

    calls_before = _metric(server, "latentforge_batch_size_count", model=DOODLE, graph="decoder_step")
    rows_before = _metric(server, "latentforge_batch_size_sum", model=DOODLE, graph="decoder_step")
    together = client.draw(DOODLE, 16, seed=0, temperature=1.0, max_steps=60)
    calls = _metric(server, "latentforge_batch_size_count", model=DOODLE, graph="decoder_step") - calls_before
    rows = _metric(server, "latentforge_batch_size_sum", model=DOODLE, graph="decoder_step") - rows_before
    for d in together:
        np.testing.assert_allclose(d.points, alone[d.index].points, rtol=1e-4, atol=1e-3)
    steps = sum(len(d.points) + d.ended for d in together)
    assert rows == steps  # every step of every drawing ran, once
    longest = max(len(d.points) + d.ended for d in together)
    assert calls <= longest < steps  # one call per point of the longest drawing: the others rode along


def test_a_client_that_cancels_mid_stream_frees_its_drawings(server, stub):
    request = pb.GenerateStrokesRequest(model=DOODLE, seed=5, count=8, temperature=1.0, max_steps=80)
    call = stub.GenerateStrokes(request, timeout=60)
    seen = 0
    for event in call:
        seen += event.WhichOneof("event") == "point"
        if seen == 3:
            break
    call.cancel()
    wait_until(lambda: _metric(server, "latentforge_drawings_in_progress") == 0, 10, "the drawings stopped")
    assert call.code() == grpc.StatusCode.CANCELLED


def test_encode_strokes_stores_the_encoders_mean_and_interpolate_draws_frames(client, stroke_repo):
    version = stroke_repo / SKETCH / "1"
    manifest = Manifest.read(version)
    spec = manifest.strokes
    drawings = [np.array([[30, 0, 0], [0, 30, 0], [-30, 0, 1]], np.float32), np.array([[5, 40, 1]], np.float32)]
    encoded = client.encode_strokes(SKETCH, drawings)
    assert encoded.stored and len(encoded.samples) == 2
    packed = [to_stroke5(d, spec.max_steps, spec.scale) for d in drawings]
    session = ort.InferenceSession(str(version / manifest.graphs["encoder"]), providers=["CPUExecutionProvider"])
    mu = session.run(["mu"], {"strokes": np.stack([p[0] for p in packed]),
                              "lengths": np.array([p[1] for p in packed], np.int64)})[0]
    for sample, want in zip(encoded.samples, mu):
        np.testing.assert_allclose(sample.latent, want, rtol=1e-5, atol=1e-6)
        assert client.get_sample(sample.sample_id).origin == "encode"
    frames = client.interpolate(SKETCH, Endpoint(seed=4), Endpoint(sample_id=encoded.samples[0].sample_id), 5,
                                return_latents=True)
    assert len(frames.samples) == 5
    np.testing.assert_allclose(frames.samples[0].latent, latent_from_seed(4, 8), atol=1e-6)
    np.testing.assert_allclose(frames.samples[-1].latent, mu[0], atol=1e-6)
    for frame in frames.samples:
        assert frame.strokes is not None and frame.strokes.shape[1] == 3
        assert frame.pil().size == (64, 64)


def test_continue_strokes_keeps_the_prefix_and_continues_from_an_encoded_or_stored_latent(client):
    prefix = np.array([[20, 0, 0], [0, 20, 1]], np.float32)
    first = client.draw(SKETCH, 3, seed=2, prefix=prefix, svg=True)
    assert len(first) == 3
    for d in first:
        np.testing.assert_array_equal(d.points[:2], prefix)
        assert client.get_sample(d.sample_id).origin == "continue"
    again = client.draw(SKETCH, 3, seed=2, prefix=prefix)
    for a, b in zip(first, again):
        np.testing.assert_array_equal(a.points, b.points)
    stored = client.draw(SKETCH, 1, seed=9)[0]
    from_stored = client.draw(SKETCH, 2, seed=3, prefix=prefix, sample_id=stored.sample_id, return_latents=True)
    for d in from_stored:
        np.testing.assert_array_equal(d.latent, client.get_sample(stored.sample_id).latent)
        assert client.get_sample(d.sample_id).parent_sample_id == stored.sample_id
    doodle = client.draw(DOODLE, 2, seed=1, prefix=prefix)
    assert all(np.array_equal(d.points[:2], prefix) for d in doodle)


@pytest.mark.parametrize("request_fields, message", [
    (dict(temperature=5.0), "temperature must be in"),
    (dict(max_steps=100_000), "max_steps must be between"),
    (dict(count=1000), "count must be between 1 and"),
    (dict(png_size=5), "png_size must be between 16 and"),
])
def test_bad_drawing_requests_say_what_to_fix(stub, request_fields, message):
    with pytest.raises(grpc.RpcError) as info:
        list(stub.GenerateStrokes(pb.GenerateStrokesRequest(model=SKETCH, **request_fields), timeout=30))
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT and message in info.value.details()


def _points(rows) -> pb.StrokeDrawing:
    return pb.StrokeDrawing(points=[pb.StrokePoint(dx=dx, dy=dy, pen=pen) for dx, dy, pen in rows])


@pytest.mark.parametrize("drawing, message", [
    ([], "has no points"),
    ([(float("nan"), 1.0, pb.PEN_STATE_DOWN)], "finite"),
    ([(1e9, 1.0, pb.PEN_STATE_DOWN)], "not absolute positions"),
    ([(1.0, 1.0, 7)], "pen must be PEN_STATE_DOWN or PEN_STATE_UP"),
    ([(1.0, 1.0, pb.PEN_STATE_DOWN)] * 10_000, "this model takes at most"),
])
def test_bad_drawings_are_refused_with_what_to_fix(stub, drawing, message):
    for call in (lambda: stub.EncodeStrokes(pb.EncodeStrokesRequest(model=SKETCH, drawings=[_points(drawing)]),
                                            timeout=30),
                 lambda: list(stub.ContinueStrokes(pb.ContinueStrokesRequest(model=SKETCH, prefix=_points(drawing)),
                                                   timeout=30))):
        with pytest.raises(grpc.RpcError) as info:
            call()
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT, info.value.details()
        assert message in info.value.details()


def test_models_refuse_what_they_cannot_do(stub):
    cases = [
        (lambda: stub.EncodeStrokes(pb.EncodeStrokesRequest(model=DOODLE, drawings=[_points([(1.0, 1.0, 1)])])),
         "does not support EncodeStrokes"),
        (lambda: list(stub.GenerateStrokes(pb.GenerateStrokesRequest(model="mnist-dcgan"))),
         "does not support GenerateStrokes"),
        (lambda: stub.Generate(pb.GenerateRequest(model=SKETCH, count=1)), "does not support Generate"),
    ]
    for call, message in cases:
        with pytest.raises(grpc.RpcError) as info:
            call()
        assert info.value.code() == grpc.StatusCode.FAILED_PRECONDITION and message in info.value.details()
    with pytest.raises(grpc.RpcError) as info:
        list(stub.GenerateStrokes(pb.GenerateStrokesRequest(model="no-such-model")))
    assert info.value.code() == grpc.StatusCode.NOT_FOUND
