"""Complete over gRPC: a VAE fills a hole by the iterative method, a completion model in one
pass; candidates are reproducible from their seed, keep the known pixels exactly, are stored
as samples (GetSample, Variations that keep the known pixels), and bad masks, images and models
get the status that says what to fix. Real server on a loopback port, real ONNX Runtime on
models exported by the project's exporter, the in-process cache and a real redis-server."""

from __future__ import annotations

import io
import urllib.request
from pathlib import Path

import grpc
import numpy as np
import onnxruntime as ort
import pytest
from PIL import Image
from prometheus_client.parser import text_string_to_metric_families

from latentforge.manifest import FIRST_CANDIDATE_MODE, Manifest
from services.generation.client import GenerationClient
from latentforge.latents import latents_from_seeds
from tests.helpers.servers import start_server
from trainer.data import load_data

HOLE = [(0, 14, 28, 14)]  # the bottom half of a 28x28 digit


@pytest.fixture(scope="module")
def digits() -> np.ndarray:
    return load_data("mnist5k").images[:4]  # float32 (N, 1, 28, 28) in [0, 1]


@pytest.fixture(scope="module")
def server(model_repo: Path, completion_repo: Path):
    s = start_server(completion_repo)
    yield s
    s.stop()


@pytest.fixture()
def client(server):
    with GenerationClient(server.target, timeout_s=60) as c:
        yield c


def _png(image: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.round(image[0] * 255).astype(np.uint8), "L").save(buf, format="PNG")
    return buf.getvalue()


def _pixels(sample) -> np.ndarray:
    return np.asarray(sample.pil(), dtype=np.uint8)


@pytest.mark.parametrize("model", ["mnist-vae", "mnist-completion"])
def test_candidates_keep_the_known_pixels_differ_in_the_hole_and_repeat_from_their_seed(client, digits, model):
    source = _png(digits[0])
    known = np.asarray(Image.open(io.BytesIO(source)), dtype=np.uint8)[:14]
    result = client.complete(model, source, HOLE, count=4, seed=11)
    assert result.seed == 11 and result.stored and len(result.samples) == 4
    # A completion model's candidate 0 is its z = 0 filling (the most likely one), drawn from no seed.
    first = None if model == "mnist-completion" else 11
    assert [s.seed for s in result.samples] == [first, 12, 13, 14]
    holes = []
    for s in result.samples:
        pixels = _pixels(s)
        assert np.array_equal(pixels[:14], known)  # the known half, exactly
        holes.append(pixels[14:].astype(np.float32) / 255)
    distances = [np.sqrt(np.mean((holes[i] - holes[j]) ** 2)) for i in range(4) for j in range(i + 1, 4)]
    # Candidates differ in the hole (how much is the meter's diversity figure, on trained models:
    # these have trained for 30 steps).
    assert max(distances) > 0
    again = client.complete(model, source, HOLE, count=4, seed=11)
    assert [s.image.png for s in again.samples] == [s.image.png for s in result.samples]


def test_a_completion_model_runs_its_graph_on_the_candidates_latents(client, digits, completion_repo):
    """The service's candidate i >= 1 is the exported graph on latent_from_seed(seed + i), and
    candidate 0 on z = 0, as the manifest's first_candidate convention says: a client can
    reproduce them with ONNX Runtime alone."""
    version = completion_repo / "mnist-completion" / "1"
    manifest = Manifest.read(version)
    assert manifest.conventions["first_candidate"] == FIRST_CANDIDATE_MODE
    result = client.complete("mnist-completion", digits[1], HOLE, count=3, seed=5, fmt="tensor",
                             return_latents=True)
    _, z = latents_from_seeds(5, 3, manifest.latent_dim)
    z[0] = 0.0
    mask = np.ones((1, 1, 28, 28), np.float32)
    mask[..., 14:, :] = 0
    session = ort.InferenceSession(str(version / manifest.graphs["completer"]), providers=["CPUExecutionProvider"])
    image = np.repeat(digits[1:2] * mask, 3, 0)  # the hole's pixels never reach the model
    want = session.run(["completed"], {"image": image, "mask": np.repeat(mask, 3, 0), "z": z})[0]
    got = np.stack([s.image.tensor for s in result.samples])
    np.testing.assert_allclose(got, want, atol=1e-5)
    np.testing.assert_array_equal(np.stack([s.latent for s in result.samples]), z)


@pytest.mark.parametrize("model", ["mnist-vae", "mnist-completion"])
def test_every_mask_form_means_the_same_hole(client, digits, model):
    source = _png(digits[2])
    boxes = client.complete(model, source, [(4, 4, 12, 10)], count=2, seed=3)
    tensor = np.ones((28, 28), np.float32)
    tensor[4:14, 4:16] = 0
    as_tensor = client.complete(model, source, tensor, count=2, seed=3)
    as_png = client.complete(model, source, Image.fromarray((tensor * 255).astype(np.uint8), "L"), count=2, seed=3)
    for other in (as_tensor, as_png):
        assert [s.image.png for s in other.samples] == [s.image.png for s in boxes.samples]


@pytest.mark.parametrize("model", ["mnist-vae", "mnist-completion"])
def test_candidates_are_samples_and_their_variations_keep_the_known_pixels(client, digits, model):
    source = _png(digits[3])
    known = np.asarray(Image.open(io.BytesIO(source)), dtype=np.uint8)[:14]
    first = client.complete(model, source, HOLE, count=1, seed=21).samples[0]
    stored = client.get_sample(first.sample_id)
    assert stored.origin == "complete" and stored.model == model
    assert stored.seed == (None if model == "mnist-completion" else 21)  # candidate 0 of a completion model: z = 0
    varied = client.variations(first.sample_id, count=3, strength=1.0, seed=2)
    assert len(varied.samples) == 3
    for s in varied.samples:
        assert np.array_equal(_pixels(s)[:14], known)
    assert client.get_sample(varied.samples[0].sample_id).parent_sample_id == first.sample_id


def test_the_iterative_method_and_its_rounds_are_reported(client, digits):
    one = client.stub.Complete(_request("mnist-vae", digits[0], iterations=1), timeout=30)
    many = client.stub.Complete(_request("mnist-vae", digits[0], iterations=12), timeout=30)
    model = client.stub.Complete(_request("mnist-completion", digits[0]), timeout=30)
    from latentforge.v1 import generation_pb2 as pb

    assert one.method == many.method == pb.COMPLETION_METHOD_ITERATIVE
    assert model.method == pb.COMPLETION_METHOD_MODEL
    assert one.candidates[0].image.png != many.candidates[0].image.png


def _request(model: str, image: np.ndarray, **fields):
    from latentforge.v1 import generation_pb2 as pb

    return pb.CompleteRequest(model=model, image=pb.Image(png=_png(image)), count=2, seed=1,
                              mask=pb.Mask(holes=pb.BoxList(boxes=[pb.Box(x=0, y=14, width=28, height=14)])),
                              **fields)


@pytest.mark.parametrize("change, code, words", [
    (dict(mask=np.ones((10, 10), np.float32)), "INVALID_ARGUMENT", "mask: the mask is 10x10 but the image is 28x28"),
    (dict(mask=np.ones((28, 28), np.float32)), "INVALID_ARGUMENT", "mask: the mask has no hole"),
    (dict(mask=np.zeros((28, 28), np.float32)), "INVALID_ARGUMENT", "mask: the mask has no known pixel"),
    (dict(mask=[(20, 20, 10, 4)]), "INVALID_ARGUMENT", "reaches outside the 28x28 image"),
    (dict(mask=[]), "INVALID_ARGUMENT", "mask: holes is empty"),
    (dict(mask=b"not a png"), "INVALID_ARGUMENT", "mask: the mask bytes could not be decoded as PNG"),
    (dict(image=np.zeros((1, 32, 32), np.float32)), "INVALID_ARGUMENT", "image: tensor shape (1, 32, 32)"),
    (dict(count=0), "INVALID_ARGUMENT", "count must be between 1 and"),
    (dict(iterations=65), "INVALID_ARGUMENT", "iterations must be between 1 and 64"),
    (dict(label=3), "INVALID_ARGUMENT", "is unconditional"),
    (dict(model="mnist-dcgan"), "FAILED_PRECONDITION", "does not support Complete"),
    (dict(model="nope"), "NOT_FOUND", "unknown model 'nope'"),
])
def test_bad_input_gets_a_status_that_says_what_to_fix(client, digits, change, code, words):
    args = dict(model="mnist-vae", image=digits[0], mask=HOLE, count=2, iterations=0, label=None)
    args.update(change)
    with pytest.raises(grpc.RpcError) as err:
        client.complete(args.pop("model"), args.pop("image"), args.pop("mask"), **args)
    assert err.value.code().name == code
    assert words in err.value.details()


def test_a_missing_mask_or_image_is_named(client, digits):
    from latentforge.v1 import generation_pb2 as pb

    for request, words in ((pb.CompleteRequest(model="mnist-vae", image=pb.Image(png=_png(digits[0])), count=1),
                            "mask is missing"),
                           (pb.CompleteRequest(model="mnist-vae", count=1,
                                               mask=pb.Mask(holes=pb.BoxList(boxes=[pb.Box(x=0, y=0, width=2,
                                                                                              height=2)]))),
                            "image: image is empty")):
        with pytest.raises(grpc.RpcError) as err:
            client.stub.Complete(request, timeout=30)
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and words in err.value.details()


def test_complete_is_counted_like_every_other_method(client, server, digits):
    client.complete("mnist-completion", digits[0], HOLE, count=3, seed=1)
    client.complete("mnist-vae", digits[0], HOLE, count=2, seed=1)
    text = urllib.request.urlopen(server.metrics_url, timeout=10).read().decode()
    samples, requests = {}, {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == "latentforge_samples_generated_total" and s.labels["method"] == "Complete":
                samples[s.labels["model"]] = s.value
            if s.name == "latentforge_requests_total" and s.labels.get("method") == "Complete":
                requests[s.labels["code"]] = requests.get(s.labels["code"], 0) + s.value
    assert samples["mnist-completion"] >= 3 and samples["mnist-vae"] >= 2
    assert requests.get("OK", 0) >= 2


def test_list_models_says_which_models_complete(client):
    models = {m.name: m for m in client.list_models()}
    assert models["mnist-completion"].kind == "completion"
    assert models["mnist-completion"].supported_methods == ("Variations", "GetSample", "Complete")
    assert "Complete" in models["mnist-vae"].supported_methods
    assert "Complete" not in models["mnist-dcgan"].supported_methods


def test_redis_keeps_a_candidates_input_for_another_replica(redis_proc, completion_repo, digits):
    """A candidate made on one replica is varied on another: its input travels in Redis."""
    a = start_server(completion_repo, redis_url=redis_proc.url)
    b = start_server(completion_repo, redis_url=redis_proc.url)
    try:
        with GenerationClient(a.target, timeout_s=60) as ca, GenerationClient(b.target, timeout_s=60) as cb:
            source = _png(digits[0])
            known = np.asarray(Image.open(io.BytesIO(source)), dtype=np.uint8)[:14]
            first = ca.complete("mnist-completion", source, HOLE, count=1, seed=3).samples[0]
            varied = cb.variations(first.sample_id, count=2, strength=0.8, seed=1)
            for s in varied.samples:
                assert np.array_equal(_pixels(s)[:14], known)
    finally:
        a.stop()
        b.stop()


def test_the_cli_writes_a_strip_of_the_input_and_its_candidates(server, digits, tmp_path, capsys):
    from latentforge.cli import main

    source = tmp_path / "digit.png"
    source.write_bytes(_png(digits[0]))
    out = tmp_path / "new" / "folder" / "strip.png"  # missing folders are made
    code = main(["complete", "--target", server.target, "--model", "mnist-completion", "--image", str(source),
                 "--box", "0,14,28,14", "--count", "3", "--seed", "4", "--out", str(out)])
    assert code == 0, capsys.readouterr().err
    strip = Image.open(out)
    assert strip.mode == "RGB" and strip.width > 4 * 28 and strip.height >= 28  # the input and 3 candidates
    assert "3 candidates from mnist-completion v1, seed 4" in capsys.readouterr().out

    mask = tmp_path / "mask.png"
    Image.fromarray(np.where(np.arange(28)[:, None] < 14, 255, 0).repeat(28, 1).astype(np.uint8), "L").save(mask)
    assert main(["complete", "--target", server.target, "--model", "mnist-vae", "--image", str(source),
                 "--mask", str(mask), "--count", "2", "--out", str(tmp_path / "vae.png")]) == 0


@pytest.mark.parametrize("argv, words", [
    (["--box", "0,40,28,14"], "error: INVALID_ARGUMENT: mask: box 0 (0,40,28,14) reaches outside"),
    (["--mask", "missing.png"], "error: cannot read"),
    (["--model", "mnist-dcgan", "--box", "0,0,4,4"], "does not support Complete"),
])
def test_cli_errors_are_one_line(server, digits, tmp_path, capsys, argv, words):
    from latentforge.cli import main

    source = tmp_path / "digit.png"
    source.write_bytes(_png(digits[0]))
    args = ["complete", "--target", server.target, "--image", str(source), "--out", str(tmp_path / "x.png")]
    if "--model" not in argv:
        args += ["--model", "mnist-vae"]
    assert main(args + argv) != 0
    err = capsys.readouterr().err.strip()
    assert words in err and "\n" not in err and "Traceback" not in err
