"""Stylize end to end: a real gRPC server on loopback serving style models exported by the
project's own exporter from untrained networks (tests/helpers/style_models.py), real ONNX Runtime,
a real redis-server shared by two servers, the HTTP/JSON route and the ``latentforge stylize``
command."""

from __future__ import annotations

import base64
import hashlib
import io
import shutil
import subprocess
import sys
from pathlib import Path

import grpc
import httpx
import numpy as np
import pytest
from PIL import Image

from latentforge.colour import rgb_to_ycbcr
from services.generation.client import GenerationClient
from tests.helpers.servers import start_server
from tests.helpers.style_models import write_fixed_style_model, write_rgb_generator, write_style_model

MAX_PIXELS = 128 * 128  # the test servers' stylize_max_pixels


def png(pixels: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="PNG")
    return buf.getvalue()


def pixels(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


RNG = np.random.default_rng(0)
CONTENT = png(RNG.integers(0, 256, (37, 53, 3), dtype=np.uint8))  # 53 wide, 37 high: odd sizes
STYLE_A = png(RNG.integers(0, 256, (40, 30, 3), dtype=np.uint8))
STYLE_B = png((np.indices((64, 48)).sum(0) % 7 * 36).astype(np.uint8)[:, :, None].repeat(3, 2))


@pytest.fixture(scope="module")
def repo(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("style-models")
    write_style_model(root)
    write_fixed_style_model(root)
    write_rgb_generator(root)
    return root


@pytest.fixture(scope="module")
def server(repo: Path):
    s = start_server(repo, http_port=0, stylize_max_pixels=MAX_PIXELS, stylize_style_max_side=32)
    yield s
    s.stop()


@pytest.fixture()
def client(server):
    with GenerationClient(server.target) as c:
        yield c


def test_the_result_has_the_content_size_and_the_same_inputs_give_the_same_bytes(client):
    first = client.stylize("adain-toy", CONTENT, STYLE_A, alpha=0.8)
    again = client.stylize("adain-toy", CONTENT, STYLE_A, alpha=0.8)
    assert first.sample.pil().size == (53, 37)
    assert first.sample.image.png == again.sample.image.png
    assert first.sample.sample_id != again.sample.sample_id
    assert first.style_id == hashlib.sha256(STYLE_A).hexdigest() == first.style_ids[0]
    assert first.stored and (first.model, first.version) == ("adain-toy", 1)
    assert not np.array_equal(pixels(first.sample.image.png), pixels(CONTENT))


def test_a_style_named_by_its_id_gives_the_same_bytes_as_its_image(client):
    by_image = client.stylize("adain-toy", CONTENT, STYLE_B)
    by_id = client.stylize("adain-toy", CONTENT, by_image.style_id)
    assert by_id.style_id == by_image.style_id
    assert by_id.sample.image.png == by_image.sample.image.png


def test_alpha_zero_gives_the_content_and_outside_the_mask_the_content_is_kept(client):
    kept = client.stylize("adain-toy", CONTENT, STYLE_A, alpha=0.0)
    assert np.array_equal(pixels(kept.sample.image.png), pixels(CONTENT))
    black = png(np.zeros((37, 53), np.uint8))
    assert np.array_equal(pixels(client.stylize("adain-toy", CONTENT, STYLE_A, mask=black).sample.image.png),
                          pixels(CONTENT))
    boxed = pixels(client.stylize("adain-toy", CONTENT, STYLE_A, mask=[(10, 5, 20, 12)]).sample.image.png)
    inside = np.zeros((37, 53), bool)
    inside[5:17, 10:30] = True
    assert np.array_equal(boxed[~inside], pixels(CONTENT)[~inside])
    assert not np.array_equal(boxed[inside], pixels(CONTENT)[inside])


def test_a_weighted_mix_is_its_own_style_with_an_id_the_same_in_any_order(client):
    a = client.stylize("adain-toy", CONTENT, STYLE_A, fmt="tensor")
    b = client.stylize("adain-toy", CONTENT, STYLE_B, fmt="tensor")
    mix = client.stylize("adain-toy", CONTENT, [(STYLE_A, 1.0), (STYLE_B, 3.0)], fmt="tensor")
    flipped = client.stylize("adain-toy", CONTENT, [(b.style_id, 3.0), (a.style_id, 1.0)], fmt="tensor")
    assert mix.style_ids == [a.style_id, b.style_id] and flipped.style_ids == [b.style_id, a.style_id]
    assert mix.style_id == flipped.style_id not in (a.style_id, b.style_id)
    image = mix.sample.image.tensor
    assert image.shape == (3, 37, 53)
    assert np.array_equal(image, flipped.sample.image.tensor)
    assert not np.allclose(image, a.sample.image.tensor) and not np.allclose(image, b.sample.image.tensor)
    other = client.stylize("adain-toy", CONTENT, [(STYLE_A, 3.0), (STYLE_B, 1.0)], fmt="tensor")
    assert other.style_id != mix.style_id
    by_mix_id = client.stylize("adain-toy", CONTENT, mix.style_id, fmt="tensor")
    np.testing.assert_allclose(by_mix_id.sample.image.tensor, image, atol=1e-6)


def test_preserve_color_keeps_the_contents_chroma(client):
    content = np.asarray(Image.open(io.BytesIO(CONTENT)), np.float32).transpose(2, 0, 1) / 255
    plain = client.stylize("adain-toy", CONTENT, STYLE_A, fmt="tensor").sample.image.tensor
    kept = client.stylize("adain-toy", CONTENT, STYLE_A, preserve_color=True, fmt="tensor").sample.image.tensor
    chroma = rgb_to_ycbcr(content)[1:]
    # Clipping to [0, 1] moves a few pixels; the chroma is the content's, the plain result's is not.
    assert np.median(np.abs(rgb_to_ycbcr(kept)[1:] - chroma)) < 1e-3
    assert np.median(np.abs(rgb_to_ycbcr(plain)[1:] - chroma)) > 1e-2
    np.testing.assert_allclose(rgb_to_ycbcr(kept)[0], rgb_to_ycbcr(plain)[0], atol=0.05)


def test_tensor_content_and_a_generated_sample_as_content(client):
    tensor = np.asarray(Image.open(io.BytesIO(CONTENT)), np.float32).transpose(2, 0, 1) / 255
    from_tensor = client.stylize("adain-toy", tensor, STYLE_A)
    assert from_tensor.sample.image.png == client.stylize("adain-toy", CONTENT, STYLE_A).sample.image.png
    sample = client.generate("rgb-toy", 1, seed=5).samples[0]
    made = client.stylize("adain-toy", style=STYLE_A, content_sample_id=sample.sample_id)
    assert made.sample.pil().size == (16, 16)


def test_a_one_style_model_needs_no_style(client):
    made = client.stylize("one-style-toy", CONTENT, alpha=0.5)
    assert made.sample.pil().size == (53, 37) and made.style_id == "" and made.style_ids == []
    assert made.sample.image.png == client.stylize("one-style-toy", CONTENT, alpha=0.5).sample.image.png


def test_a_stylised_sample_is_stored_without_a_latent(client, server):
    made = client.stylize("adain-toy", CONTENT, STYLE_A)
    stored = client.get_sample(made.sample.sample_id)
    assert (stored.model, stored.version, stored.origin, stored.latent.size) == ("adain-toy", 1, "stylize", 0)
    with pytest.raises(grpc.RpcError) as info:
        client.variations(made.sample.sample_id, 2)
    assert info.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "stylised image" in info.value.details()
    image = httpx.get(f"{server.http_url}/v1/samples/{made.sample.sample_id}/image.png")
    assert image.status_code == 412 and "no latent" in image.json()["message"]
    with pytest.raises(grpc.RpcError) as info:
        client.stylize("adain-toy", style=STYLE_A, content_sample_id=made.sample.sample_id)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "send its image" in info.value.details()


TOO_LARGE = png(np.zeros((129, 128, 3), np.uint8))


@pytest.mark.parametrize("model, content, style, options, says", [
    ("adain-toy", TOO_LARGE, STYLE_A, {}, "at most 16384 (stylize_max_pixels)"),
    ("adain-toy", b"not a png", STYLE_A, {}, "content: the bytes could not be decoded as PNG"),
    ("adain-toy", png(np.zeros((4, 40, 3), np.uint8)), STYLE_A, {}, "at least 8 pixels"),
    ("adain-toy", CONTENT, TOO_LARGE, {}, "styles[0].image is 128x129"),
    ("adain-toy", CONTENT, b"\x89PNG broken", {}, "styles[0].image: the bytes could not be decoded"),
    ("adain-toy", CONTENT, STYLE_A, {"alpha": 1.5}, "alpha must be in [0, 1]"),
    ("adain-toy", CONTENT, STYLE_A, {"alpha": -0.1}, "alpha must be in [0, 1]"),
    ("adain-toy", CONTENT, STYLE_A, {"mask": png(np.zeros((37, 52), np.uint8))}, "the mask is 52x37 but the content is 53x37"),
    ("adain-toy", CONTENT, STYLE_A, {"mask": [(50, 0, 10, 10)]}, "reaches outside"),
    ("adain-toy", CONTENT, "0" * 64, {}, "unknown to adain-toy v1 or expired"),
    ("adain-toy", CONTENT, "not-an-id", {}, "64 lowercase hex digits"),
    ("adain-toy", CONTENT, [(STYLE_A, 0.0), (STYLE_B, 0.0)], {}, "must sum to a positive number"),
    ("adain-toy", CONTENT, [(STYLE_A, -1.0), (STYLE_B, 2.0)], {}, "styles[0].weight must be finite and >= 0"),
    ("adain-toy", CONTENT, None, {}, "send 1 to 64 styles"),
    ("adain-toy", None, STYLE_A, {}, "content is missing"),
    ("one-style-toy", CONTENT, STYLE_A, {}, "has its style built in; send no styles"),
])
def test_bad_requests_are_invalid_argument_saying_what_to_fix(client, model, content, style, options, says):
    with pytest.raises(grpc.RpcError) as info:
        client.stylize(model, content, style, **options)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT, info.value.details()
    assert says in info.value.details()


def test_a_model_without_the_style_tasks_refuses_naming_what_it_supports(client):
    with pytest.raises(grpc.RpcError) as info:
        client.stylize("rgb-toy", CONTENT, STYLE_A)
    assert info.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "does not support Stylize" in info.value.details() and "it supports Generate" in info.value.details()
    assert "stylize_fixed" in info.value.details()


def test_list_models_reports_style_models(client):
    info = {m.name: m for m in client.list_models()}["adain-toy"]
    assert info.kind == "style" and info.supported_methods == ("GetSample", "Stylize")
    assert info.shape == (3, 0, 0)


def test_a_style_sent_to_one_server_is_known_by_id_to_another_on_the_same_redis(repo, redis_proc):
    a = start_server(repo, redis_url=redis_proc.url, cache_namespace="stylize-share")
    b = start_server(repo, redis_url=redis_proc.url, cache_namespace="stylize-share")
    try:
        with GenerationClient(a.target) as ca, GenerationClient(b.target) as cb:
            sent = ca.stylize("adain-toy", CONTENT, STYLE_B, alpha=0.7)
            named = cb.stylize("adain-toy", CONTENT, sent.style_id, alpha=0.7)
            assert named.sample.image.png == sent.sample.image.png
            assert cb.get_sample(sent.sample.sample_id).origin == "stylize"
            mix = ca.stylize("adain-toy", CONTENT, [(STYLE_A, 1.0), (sent.style_id, 1.0)])
            assert cb.stylize("adain-toy", CONTENT, mix.style_id).sample.image.png == mix.sample.image.png
    finally:
        a.stop()
        b.stop()
    import redis

    keys = redis.Redis.from_url(redis_proc.url).keys("stylize-share:v1:style:*")
    assert f"stylize-share:v1:style:adain-toy:1:{sent.style_id}".encode() in keys


def test_the_http_route_stylizes_and_answers_errors_as_json(server):
    body = {"model": "adain-toy", "content": {"png": base64.b64encode(CONTENT).decode()},
            "styles": [{"image": {"png": base64.b64encode(STYLE_A).decode()}}], "alpha": 0.8}
    r = httpx.post(f"{server.http_url}/v1/stylize", json=body, timeout=30)
    assert r.status_code == 200, r.text
    answer = r.json()
    assert answer["styleId"] == hashlib.sha256(STYLE_A).hexdigest()
    with GenerationClient(server.target) as c:
        assert base64.b64decode(answer["sample"]["image"]["png"]) == c.stylize(
            "adain-toy", CONTENT, STYLE_A, alpha=0.8).sample.image.png
    again = httpx.post(f"{server.http_url}/v1/stylize", timeout=30,
                       json={**body, "styles": [{"styleId": answer["styleId"]}]}).json()
    assert again["sample"]["image"]["png"] == answer["sample"]["image"]["png"]
    bad = httpx.post(f"{server.http_url}/v1/stylize", json={**body, "alpha": 2}, timeout=30)
    assert bad.status_code == 400 and bad.json()["code"] == "INVALID_ARGUMENT"
    assert "alpha must be in [0, 1]" in bad.json()["message"]


def _latentforge() -> list[str]:
    exe = shutil.which("latentforge", path=str(Path(sys.executable).parent))
    return [exe] if exe else [sys.executable, "-m", "latentforge"]


def test_the_stylize_command_writes_the_png_and_says_errors_in_one_line(server, tmp_path):
    (tmp_path / "in.png").write_bytes(CONTENT)
    (tmp_path / "art.png").write_bytes(STYLE_A)
    (tmp_path / "m.png").write_bytes(png(np.full((37, 53), 255, np.uint8)))
    out = tmp_path / "out.png"
    done = subprocess.run([*_latentforge(), "stylize", "--target", server.target, "--model", "adain-toy",
                           "--content", str(tmp_path / "in.png"), "--style", str(tmp_path / "art.png"),
                           "--alpha", "0.8", "--preserve-color", "--mask", str(tmp_path / "m.png"),
                           "--out", str(out)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert Image.open(out).size == (53, 37)
    with GenerationClient(server.target) as c:
        assert out.read_bytes() == c.stylize("adain-toy", CONTENT, STYLE_A, alpha=0.8, preserve_color=True,
                                             mask=png(np.full((37, 53), 255, np.uint8))).sample.image.png
    assert hashlib.sha256(STYLE_A).hexdigest() in done.stdout
    bad = subprocess.run([*_latentforge(), "stylize", "--target", server.target, "--model", "adain-toy",
                          "--content", str(tmp_path / "in.png"), "--style", str(tmp_path / "art.png"),
                          "--alpha", "3", "--out", str(tmp_path / "bad.png")],
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode == 1 and not (tmp_path / "bad.png").exists()
    assert bad.stderr.count("\n") == 1 and "alpha must be in [0, 1]" in bad.stderr
