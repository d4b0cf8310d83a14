"""The HTTP/JSON surface on a real server (uvicorn on a loopback port, the gRPC port beside it):
the same answers as gRPC byte for byte, every route, Server-Sent Events, errors as statuses with
a message, tokens, TLS, request ids, deadlines, metrics by protocol, and the drain."""

from __future__ import annotations

import base64
import json
import shutil
import ssl
import threading
import time
from pathlib import Path
from typing import Any, Iterator

import grpc
import httpx
import numpy as np
import pytest
from google.protobuf import json_format

from latentforge.v1 import generation_pb2 as pb
from latentforge.v1 import generation_pb2_grpc as pb_grpc
from tests.helpers.processes import wait_until
from tests.helpers.servers import start_server

DCGAN, VAE, COMPLETION, SKETCH = "mnist-dcgan", "mnist-vae", "mnist-completion", "kanji-sketch"
TOKEN = "http-token-for-tests-0123456789"


@pytest.fixture(scope="module")
def repo(tmp_path_factory, completion_repo: Path, stroke_repo: Path) -> Path:
    """Image models (GAN, VAE, completion) and stroke models in one repository."""
    out = tmp_path_factory.mktemp("http-models")
    shutil.copytree(completion_repo, out, dirs_exist_ok=True)
    shutil.copytree(stroke_repo, out, dirs_exist_ok=True)
    return out


@pytest.fixture(scope="module")
def server(repo: Path):
    server = start_server(repo, http_port=0)
    yield server
    server.stop()


@pytest.fixture()
def http(server) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.http_url, timeout=60) as client:
        yield client


@pytest.fixture(scope="module")
def stub(server) -> Iterator[pb_grpc.GenerationServiceStub]:
    with grpc.insecure_channel(server.target) as channel:
        yield pb_grpc.GenerationServiceStub(channel)


def events(response: httpx.Response) -> list[tuple[str, Any]]:
    """The (event, data) pairs of a Server-Sent Events body."""
    out, kind = [], None
    for line in response.iter_lines():
        if line.startswith("event: "):
            kind = line[len("event: "):]
        elif line.startswith("data: "):
            out.append((kind, json.loads(line[len("data: "):])))
    return out


def as_json(message: Any) -> dict:
    return json_format.MessageToDict(message)


def digit_png(seed: int = 0) -> bytes:
    """A 28x28 grayscale PNG."""
    import io

    from PIL import Image

    pixels = np.random.default_rng(seed).integers(0, 255, (28, 28), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(pixels, "L").save(buf, format="PNG")
    return buf.getvalue()


# ---- the same answers as gRPC ------------------------------------------------------------------

def test_same_seed_same_png_bytes_over_grpc_and_http(http, stub):
    """Generate, Complete and GenerateStrokes: what HTTP answers is what gRPC answers."""
    request = {"model": DCGAN, "count": 3, "seed": "42", "truncation": 0.8}
    over_http = http.post("/v1/generate", json=request)
    assert over_http.status_code == 200, over_http.text
    over_grpc = stub.Generate(json_format.ParseDict(request, pb.GenerateRequest()))
    got = [base64.b64decode(s["image"]["png"]) for s in over_http.json()["samples"]]
    assert got == [s.image.png for s in over_grpc.samples]
    assert over_http.json()["seed"] == "42"  # uint64 as a string (proto3 JSON)

    complete = {"model": COMPLETION, "count": 2, "seed": "5", "image": {"png": base64.b64encode(digit_png()).decode()},
                "mask": {"holes": {"boxes": [{"x": 6, "y": 6, "width": 12, "height": 10}]}}}
    over_http = http.post("/v1/complete", json=complete)
    assert over_http.status_code == 200, over_http.text
    over_grpc = stub.Complete(json_format.ParseDict(complete, pb.CompleteRequest()))
    assert [base64.b64decode(c["image"]["png"]) for c in over_http.json()["candidates"]] == \
        [c.image.png for c in over_grpc.candidates]

    draw = {"model": SKETCH, "count": 2, "seed": "9", "maxSteps": 40}
    with http.stream("POST", "/v1/strokes/generate", json=draw) as response:
        assert response.status_code == 200 and response.headers["content-type"].startswith("text/event-stream")
        streamed = events(response)
    assert streamed[-1] == ("end", {})
    http_points = [(e.get("index", 0), e["point"]) for kind, e in streamed if kind == "data" and "point" in e]
    grpc_points = [(e.index, as_json(e.point)) for e in stub.GenerateStrokes(
        json_format.ParseDict(draw, pb.GenerateStrokesRequest())) if e.WhichOneof("event") == "point"]
    assert http_points == grpc_points and http_points


def test_every_call_of_both_services_has_a_route_but_the_bidirectional_session():
    """A new RPC gets its HTTP route in services/http/routes.py, or this fails."""
    from latentforge.v1 import training_pb2
    from services.http.routes import GENERATION, ROUTES, TRAINING

    for module, service in ((pb, GENERATION), (training_pb2, TRAINING)):
        methods = module.DESCRIPTOR.services_by_name[service.rsplit(".", 1)[1]].methods_by_name
        routed = {route.rpc for route in ROUTES[service]}
        expected = {name for name, m in methods.items() if not (m.client_streaming and m.server_streaming)}
        assert expected <= routed, f"{service}: no HTTP route for {sorted(expected - routed)}"
        assert all(not methods[name].client_streaming or name == "UploadDataset" for name in routed & set(methods))
        for route in ROUTES[service]:
            if route.rpc in methods:
                assert (route.kind == "stream") == methods[route.rpc].server_streaming, route


def test_every_unary_generation_route(http):
    models = http.get("/v1/models").json()["models"]
    assert {DCGAN, VAE, COMPLETION, SKETCH} <= {m["name"] for m in models}
    assert http.get("/v1/models", params={"name": VAE}).json()["models"][0]["name"] == VAE

    made = http.post("/v1/generate", json={"model": VAE, "count": 2, "seed": "3"}).json()
    a, b = (s["sampleId"] for s in made["samples"])
    frames = http.post("/v1/interpolate", json={"model": VAE, "start": {"sampleId": a}, "end": {"sampleId": b},
                                                 "steps": 4, "method": "INTERPOLATION_METHOD_SLERP"})
    assert frames.status_code == 200 and len(frames.json()["frames"]) == 4

    image = {"png": base64.b64encode(digit_png(1)).decode()}
    encoded = http.post("/v1/encode", json={"model": VAE, "images": [image]}).json()
    assert len(encoded["samples"][0]["latent"]) > 0
    rebuilt = http.post("/v1/reconstruct", json={"model": VAE, "images": [image]}).json()
    assert base64.b64decode(rebuilt["images"][0]["png"]).startswith(b"\x89PNG")
    varied = http.post("/v1/variations", json={"sampleId": a, "count": 3, "strength": 0.5, "seed": "1"}).json()
    assert len(varied["samples"]) == 3

    sample = http.get(f"/v1/samples/{a}").json()
    assert sample["model"] == VAE and sample["seed"] == "3" and sample["origin"] == "SAMPLE_ORIGIN_GENERATE"
    png = http.get(f"/v1/samples/{a}/image.png")
    assert png.status_code == 200 and png.headers["content-type"] == "image/png"
    assert png.content == base64.b64decode(made["samples"][0]["image"]["png"])  # what Generate drew

    strokes = http.post("/v1/strokes/encode", json={"model": SKETCH, "drawings": [
        {"points": [{"dx": 0.5, "dy": 0.0}, {"dx": 0.0, "dy": 0.5, "pen": "PEN_STATE_UP"}]}]})
    assert strokes.status_code == 200, strokes.text
    stroke_id = strokes.json()["samples"][0]["sampleId"]
    refused = http.get(f"/v1/samples/{stroke_id}/image.png")  # a drawing is not one image of its latent
    assert refused.status_code == 412 and "GenerateStrokes" in refused.json()["message"]


def test_streams_end_with_an_end_event_and_refusals_are_statuses(http):
    with http.stream("POST", "/v1/generate/stream", json={"model": DCGAN, "count": 6, "seed": "1"}) as response:
        streamed = events(response)
    assert [k for k, _ in streamed] == ["data"] * 6 + ["end"]
    assert streamed[-1][1] == {"trailers": {"x-samples-stored": "true"}}  # the gRPC trailers, in the end event
    assert [s["seed"] for _, s in streamed[:6]] == [str(1 + i) for i in range(6)]

    with http.stream("POST", "/v1/strokes/continue", json={
            "model": SKETCH, "seed": "2", "count": 1, "maxSteps": 20, "svg": True,
            "prefix": {"points": [{"dx": 0.3, "dy": 0.1}, {"dx": 0.2, "dy": 0.2}]}}) as response:
        streamed = events(response)
    done = [e["done"] for k, e in streamed if k == "data" and "done" in e]
    assert len(done) == 1 and done[0]["svg"].startswith("<svg")

    # Refused before its first message: the status and body a unary call would get.
    refused = http.post("/v1/strokes/generate", json={"model": DCGAN, "count": 1})
    assert refused.status_code == 412 and refused.json()["code"] == "FAILED_PRECONDITION"
    assert "GenerateStrokes" in refused.json()["message"]
    missing = http.post("/v1/generate/stream", json={"model": "no-such-model", "count": 1})
    assert missing.status_code == 404 and "no-such-model" in missing.json()["message"]


def _requests_total(metrics_url: str, method: str, code: str, protocol: str) -> float:
    text = httpx.get(metrics_url).text
    want = f'latentforge_requests_total{{code="{code}",method="{method}",protocol="{protocol}"}}'
    return sum(float(line.split()[-1]) for line in text.splitlines() if line.startswith(want))


def test_metrics_have_a_protocol_label_and_a_client_that_leaves_cancels_the_work(server, http, stub):
    before = _requests_total(server.metrics_url, "Generate", "OK", "http")
    grpc_before = _requests_total(server.metrics_url, "Generate", "OK", "grpc")
    assert http.post("/v1/generate", json={"model": DCGAN, "count": 1}).status_code == 200
    stub.Generate(pb.GenerateRequest(model=DCGAN, count=1))
    assert _requests_total(server.metrics_url, "Generate", "OK", "http") == before + 1
    assert _requests_total(server.metrics_url, "Generate", "OK", "grpc") == grpc_before + 1

    cancelled = _requests_total(server.metrics_url, "GenerateStream", "CANCELLED", "http")
    with http.stream("POST", "/v1/generate/stream", json={"model": DCGAN, "count": 100_000}) as response:
        lines = response.iter_lines()
        assert next(lines) == "event: data"
    # The connection closed after one event: the stream's work stops, counted as cancelled.
    wait_until(lambda: _requests_total(server.metrics_url, "GenerateStream", "CANCELLED", "http") == cancelled + 1,
               20, "the abandoned stream to be cancelled")
    wait_until(lambda: server.server.calls.in_flight == 0, 10, "nothing left in flight")


def test_a_client_that_leaves_mid_body_is_counted_as_cancelled(server):
    import socket

    before = _requests_total(server.metrics_url, "Generate", "CANCELLED", "http")
    with socket.create_connection(("127.0.0.1", server.server.http_port)) as sock:
        sock.sendall(b"POST /v1/generate HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     b"Content-Length: 1000\r\n\r\n{\"model\": ")
        time.sleep(0.3)
    wait_until(lambda: _requests_total(server.metrics_url, "Generate", "CANCELLED", "http") == before + 1, 10,
               "the cut-off request to be counted")
    assert _requests_total(server.metrics_url, "Generate", "INTERNAL", "http") == 0


def test_a_stream_closed_before_it_began_ends_with_an_error_event():
    """The drain may close a stream whose work has not run a step yet: it still gets its event."""
    import asyncio

    from services.http.sse import EventStream

    async def never() -> Any:
        await asyncio.sleep(3600)
        yield None

    async def run() -> list[bytes]:
        streams: set = set()
        stream = EventStream(never(), streams)
        first = asyncio.ensure_future(stream.first(wait_s=5))
        await asyncio.sleep(0)
        stream.close()
        refused = await first
        return [refused.code.name] if refused is not None else [e async for e in stream.events()]

    got = asyncio.run(asyncio.wait_for(run(), 10))
    assert got == ["UNAVAILABLE"] or (len(got) == 1 and b"UNAVAILABLE" in got[0])


def test_request_ids_and_deadlines(http, server):
    answer = http.post("/v1/generate", json={"model": DCGAN, "count": 1}, headers={"X-Request-Id": "my-call-7"})
    assert answer.headers["x-request-id"] == "my-call-7"
    made_up = http.post("/v1/generate", json={"model": DCGAN, "count": 1}, headers={"X-Request-Id": "bad id!"})
    assert made_up.headers["x-request-id"] not in ("", "bad id!")
    error = http.post("/v1/generate", json={"model": "nope", "count": 1}, headers={"X-Request-Id": "failing-1"})
    assert error.status_code == 404 and error.headers["x-request-id"] == "failing-1"

    for path in ("/v1/no-such-route", "/healthz"):  # every answer, not only the routes'
        assert http.get(path, headers={"X-Request-Id": "any-answer-1"}).headers["x-request-id"] == "any-answer-1"
    bad = http.post("/v1/generate", json={"model": DCGAN, "count": 1}, headers={"X-Timeout-Ms": "soon"})
    assert bad.status_code == 400 and "X-Timeout-Ms" in bad.json()["message"]
    # A deadline the stream cannot meet: it ends with DEADLINE_EXCEEDED (an error event, or 504
    # when it passed before the first message).
    with http.stream("POST", "/v1/generate/stream", json={"model": DCGAN, "count": 100_000},
                     headers={"X-Timeout-Ms": "300"}) as response:
        if response.status_code == 200:
            last = events(response)[-1]
            assert last[0] == "error" and last[1]["code"] == "DEADLINE_EXCEEDED"
        else:
            response.read()
            assert response.status_code == 504 and response.json()["code"] == "DEADLINE_EXCEEDED"


def test_the_access_log_line_names_the_request_id_and_the_protocol(http, caplog):
    import logging

    with caplog.at_level(logging.INFO, logger="latentforge"):
        http.post("/v1/generate", json={"model": DCGAN, "count": 1}, headers={"X-Request-Id": "logged-call-1"})
        http.post("/v1/generate", content=b"{", headers={"Content-Type": "application/json",
                                                          "X-Request-Id": "logged-call-2"})
    lines = {r.request_id: r.fields for r in caplog.records if getattr(r, "request_id", None) in
             ("logged-call-1", "logged-call-2")}
    assert lines["logged-call-1"]["method"] == "Generate" and lines["logged-call-1"]["code"] == "OK"
    assert lines["logged-call-1"]["protocol"] == "http" and lines["logged-call-1"]["model"] == DCGAN
    assert lines["logged-call-2"]["code"] == "INVALID_ARGUMENT"  # refused before the servicer, still logged


def test_health_routes(http):
    assert http.get("/healthz").json() == {"status": "SERVING"}
    ready = http.get("/readyz")
    assert ready.status_code == 200 and ready.json()["services"] == {"latentforge.v1.GenerationService": True}
    assert http.get("/").status_code == 404  # no playground unless asked for


# ---- bad input: a clear 4xx, and the server goes on -----------------------------------------------

BAD_BODIES = [
    ("malformed JSON", b'{"model": "mnist-dcgan", "count": ', "application/json", 400, "not valid JSON"),
    ("not an object", b'[1, 2, 3]', "application/json", 400, "JSON object"),
    ("unknown field", b'{"model": "mnist-dcgan", "cuont": 2}', "application/json", 400, "cuont"),
    ("wrong type", b'{"model": "mnist-dcgan", "count": "two"}', "application/json", 400, "count"),
    ("wrong type (object)", b'{"model": {"name": 1}, "count": 1}', "application/json", 400, "model"),
    ("int out of range", b'{"model": "mnist-dcgan", "count": 99999999999999}', "application/json", 400, "count"),
    ("negative uint64", b'{"model": "mnist-dcgan", "count": 1, "seed": "-1"}', "application/json", 400, "seed"),
    ("unknown enum", b'{"model": "mnist-dcgan", "count": 1, "format": "GIF"}', "application/json", 400, "format"),
    ("not UTF-8", b'{"model": "\xff\xfe"}', "application/json", 400, ""),
    ("deep nesting", b'[' * 100_000 + b']' * 100_000, "application/json", 400, ""),
    ("wrong content type", b'model=mnist-dcgan&count=1', "application/x-www-form-urlencoded", 415, "Content-Type"),
    ("no content type", b'{"model": "mnist-dcgan", "count": 1}', "", 415, "Content-Type"),
]


@pytest.mark.parametrize("what,body,content_type,status,says", BAD_BODIES, ids=[c[0] for c in BAD_BODIES])
def test_bad_bodies_get_a_4xx_with_a_message(http, what, body, content_type, status, says):
    headers = {"Content-Type": content_type} if content_type else {}
    answer = http.post("/v1/generate", content=body, headers=headers)
    assert answer.status_code == status, answer.text
    error = answer.json()
    assert set(error) == {"code", "message"} and says in error["message"]
    assert "Traceback" not in answer.text


def test_bad_base64_huge_bodies_unknown_routes_and_methods(http, server):
    bad_png = http.post("/v1/complete", json={"model": COMPLETION, "count": 1, "image": {"png": "%%%not base64%%%"},
                                             "mask": {"holes": {"boxes": [{"x": 1, "y": 1, "width": 4, "height": 4}]}}})
    assert bad_png.status_code == 400 and "png" in bad_png.json()["message"]
    not_png = http.post("/v1/encode", json={"model": VAE, "images": [{"png": base64.b64encode(b"GIF89a").decode()}]})
    assert not_png.status_code == 400 and not_png.json()["code"] == "INVALID_ARGUMENT"

    limit = server.server.settings.http_max_body_bytes
    huge = http.post("/v1/generate", content=b"{" + b" " * (limit + 10) + b"}",
                     headers={"Content-Type": "application/json"})
    assert huge.status_code == 413 and "http_max_body_bytes" in huge.json()["message"]

    def chunked() -> Iterator[bytes]:  # no Content-Length: refused while it is read
        yield b'{"model": "'
        for _ in range(limit // 65536 + 2):
            yield b"x" * 65536
        yield b'"}'

    streamed = http.post("/v1/generate", content=chunked(), headers={"Content-Type": "application/json"})
    assert streamed.status_code == 413

    unknown = http.get("/v1/no-such-route")
    assert unknown.status_code == 404 and unknown.json()["code"] == "NOT_FOUND"
    wrong_method = http.delete("/v1/generate")
    assert wrong_method.status_code == 405 and "POST" in wrong_method.json()["message"]
    bad_query = http.get("/v1/models", params={"nmae": "x"})
    assert bad_query.status_code == 400 and "nmae" in bad_query.json()["message"]
    assert http.post("/v1/generate", json={"model": DCGAN, "count": 1}).status_code == 200  # still serving


def test_random_bodies_never_get_a_500(http):
    """Fuzzed JSON bodies on every POST route: each answer is a 2xx or a 4xx with {code, message}."""
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    scalars = st.one_of(st.none(), st.booleans(), st.integers(-2**70, 2**70), st.floats(allow_nan=True),
                        st.text(max_size=20))
    values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                           st.dictionaries(st.text(max_size=8), inner, max_size=4)),
                          max_leaves=12)
    field_names = st.sampled_from(["model", "count", "seed", "image", "mask", "png", "points", "prefix", "start",
                                   "steps", "format", "label", "truncation", "drawings", "images", "sampleId",
                                   "maxSteps", "temperature", "strength", "returnLatents"])
    bodies = st.dictionaries(field_names, values, max_size=6)
    routes = ["/v1/generate", "/v1/interpolate", "/v1/encode", "/v1/reconstruct", "/v1/variations", "/v1/complete",
              "/v1/strokes/encode", "/v1/strokes/generate", "/v1/generate/stream"]

    @settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
    @given(route=st.sampled_from(routes), body=bodies)
    def check(route: str, body: dict) -> None:
        answer = http.post(route, content=json.dumps(body, allow_nan=True), headers={
            "Content-Type": "application/json", "X-Timeout-Ms": "5000"})
        assert answer.status_code < 500 or answer.status_code == 504, (route, body, answer.text)
        if answer.status_code >= 400:
            assert set(answer.json()) == {"code", "message"}

    check()
    assert http.get("/readyz").status_code == 200


# ---- tokens, TLS ------------------------------------------------------------------------------------

def test_tokens_401_without_403_wrong_and_health_stays_open(model_repo: Path):
    server = start_server(model_repo, http_port=0, auth_tokens=(TOKEN,))
    try:
        with httpx.Client(base_url=server.http_url, timeout=30) as http:
            missing = http.get("/v1/models")
            assert missing.status_code == 401 and "Authorization: Bearer" in missing.json()["message"]
            assert missing.headers["www-authenticate"] == "Bearer"
            wrong = http.get("/v1/models", headers={"Authorization": "Bearer not-the-right-token-000"})
            assert wrong.status_code == 403 and wrong.json()["code"] == "PERMISSION_DENIED"
            ok = http.get("/v1/models", headers={"Authorization": f"Bearer {TOKEN}"})
            assert ok.status_code == 200
            assert http.get("/healthz").status_code == 200 and http.get("/readyz").status_code == 200
    finally:
        server.stop()


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    from tests.helpers.pki import make_pki

    return make_pki(tmp_path_factory.mktemp("http-pki"))


def test_tls_and_mutual_tls_from_the_same_settings(model_repo: Path, pki):
    server = start_server(model_repo, http_port=0, tls_cert=pki["server"], tls_key=pki["server_key"],
                          tls_client_ca=pki["ca"])
    url = f"https://localhost:{server.server.http_port}"
    try:
        with_cert = ssl.create_default_context(cafile=str(pki["ca"]))
        with_cert.load_cert_chain(str(pki["client"]), str(pki["client_key"]))
        with httpx.Client(base_url=url, verify=with_cert, timeout=30) as http:
            assert http.post("/v1/generate", json={"model": DCGAN, "count": 1}).status_code == 200
        without = ssl.create_default_context(cafile=str(pki["ca"]))
        with httpx.Client(base_url=url, verify=without, timeout=30) as http:
            with pytest.raises((httpx.ConnectError, httpx.ReadError, httpx.RemoteProtocolError)):
                http.get("/v1/models")
        with httpx.Client(base_url=url.replace("https", "http"), timeout=30) as plain:
            with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError, httpx.ConnectError)):
                plain.get("/v1/models")
    finally:
        server.stop()


# ---- the drain --------------------------------------------------------------------------------------

def test_drain_refuses_new_calls_with_503_and_ends_open_streams_with_an_error_event(model_repo: Path):
    server = start_server(model_repo, http_port=0, drain_grace_s=1.5)
    got: list[tuple[str, Any]] = []
    with httpx.Client(base_url=server.http_url, timeout=60) as http:
        def read_stream() -> None:
            with http.stream("POST", "/v1/generate/stream", json={"model": DCGAN, "count": 100_000}) as response:
                got.extend(events(response))

        reader = threading.Thread(target=read_stream)
        reader.start()
        wait_until(lambda: server.server.calls.in_flight >= 1, 20, "the stream to be open")
        time.sleep(0.2)
        server.begin_stop(grace_s=1.5)
        wait_until(lambda: server.server.calls.draining, 10, "the drain to begin")
        with httpx.Client(base_url=server.http_url, timeout=10) as late:
            refused = late.post("/v1/generate", json={"model": DCGAN, "count": 1})
            assert refused.status_code == 503 and refused.headers["retry-after"] == "1"
            assert refused.json()["code"] == "UNAVAILABLE"
            assert late.get("/healthz").status_code == 503 and late.get("/readyz").status_code == 503
        reader.join(60)
    server.stop()
    assert not reader.is_alive()
    assert got and got[0][0] == "data"
    assert got[-1][0] == "error" and got[-1][1]["code"] == "UNAVAILABLE"
    assert "retry on another replica" in got[-1][1]["message"]


# ---- the README's curl examples, as written ------------------------------------------------------

def readme_examples() -> list[tuple[str, str]]:
    """(title, commands) of each example in the README's http-examples block."""
    text = (Path(__file__).parents[1] / "README.md").read_text()
    block = text.split("<!-- http-examples -->")[1].split("<!-- /http-examples -->")[0]
    body = block.split("```bash\n", 1)[1].rsplit("```", 1)[0]
    examples = []
    for chunk in body.strip().split("\n\n"):
        title, _, commands = chunk.partition("\n")
        examples.append((title.lstrip("# "), commands))
    return examples


def test_readme_curl_examples_work_as_written(server):
    import subprocess

    assert shutil.which("curl"), "curl is needed by the README's examples"
    examples = dict(readme_examples())
    assert len(examples) == 4
    root = Path(__file__).parents[1]

    def run(commands: str) -> str:
        script = commands.replace("localhost:8080", f"127.0.0.1:{server.server.http_port}")
        done = subprocess.run(["bash", "-euo", "pipefail", "-c", script], cwd=root, capture_output=True, text=True,
                              timeout=120)
        assert done.returncode == 0, done.stderr
        return done.stdout

    generated = json.loads(run(next(c for t, c in examples.items() if t.startswith("Generate"))))
    assert len(generated["samples"]) == 2 and generated["seed"] == "7"
    Path("/tmp/sample.png").unlink(missing_ok=True)
    run(next(c for t, c in examples.items() if "own URL" in t))
    assert Path("/tmp/sample.png").read_bytes().startswith(b"\x89PNG")
    completed = json.loads(run(next(c for t, c in examples.items() if t.startswith("Complete"))))
    assert len(completed["candidates"]) == 3
    drawing = run(next(c for t, c in examples.items() if "drawing" in t))
    assert '"point"' in drawing and '"done"' in drawing and drawing.rstrip().endswith("event: end\ndata: {}")


def test_the_playground_is_served_beside_the_routes_without_hiding_their_refusals(model_repo: Path):
    server = start_server(model_repo, http_port=0, playground=True)
    try:
        with httpx.Client(base_url=server.http_url, timeout=30) as http:
            page = http.get("/")
            assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
            assert "default-src 'self'" in page.headers["content-security-policy"]
            assert page.headers["cache-control"] == "no-cache"
            assert http.get("/app.js").status_code == 200
            assert http.get("/no-such-file.js").json()["code"] == "NOT_FOUND"
            for method, path in (("POST", "/v1/jobs"), ("POST", "/v1/no-such-route"), ("PUT", "/v1/datasets/x"),
                                 ("POST", "/")):
                refused = http.request(method, path)
                assert refused.status_code == 404 and refused.json()["code"] == "NOT_FOUND", (method, path)
            assert http.delete("/v1/generate").status_code == 405
    finally:
        server.stop()


def test_a_unary_call_whose_client_leaves_is_cancelled_and_never_runs(model_repo: Path):
    """As over gRPC: a Generate queued behind a busy batch slot, its connection closed, is
    dropped from the queue (its rows never run) and counted CANCELLED."""
    import socket

    from tests.helpers.servers import GEN, Gate, hold_a_batch_slot

    server = start_server(model_repo, http_port=0, workers=1, render_cache=False)
    gate = Gate()
    try:
        hold_a_batch_slot(server, gate)
        body = json.dumps({"model": DCGAN, "count": 5, "seed": "1"}).encode()
        with socket.create_connection(("127.0.0.1", server.server.http_port)) as sock:
            sock.sendall(b"POST /v1/generate HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                         b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
            wait_until(lambda: server.server.calls.in_flight >= 1, 10, "the call to be queued")
        wait_until(lambda: _requests_total(server.metrics_url, "Generate", "CANCELLED", "http") == 1, 10,
                   "the abandoned call to be cancelled")
        gate.release.set()
        with httpx.Client(base_url=server.http_url, timeout=30) as http:
            assert len(http.post("/v1/generate", json={"model": DCGAN, "count": 2, "seed": "1"}).json()["samples"]) == 2
        registry = server.server.registry
        assert registry.get_sample_value("latentforge_batch_size_sum", GEN) == 2 + 2  # the 5 rows never ran
    finally:
        gate.release.set()
        server.stop()
