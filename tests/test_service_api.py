"""Every GenerationService call against a real server (real ONNX Runtime on exported models),
once with the in-process cache and once with Redis."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from services.generation.client import Endpoint

DCGAN, VAE = "mnist-dcgan", "mnist-vae"


def test_list_models_describes_each_loaded_version(gen_client):
    models = {m.name: m for m in gen_client.list_models()}
    assert set(models) == {DCGAN, VAE}
    gan, vae = models[DCGAN], models[VAE]
    assert gan.kind == "gan" and vae.kind == "vae"
    assert gan.version == 1 and gan.latest
    assert gan.shape == (1, 28, 28) and vae.shape == (1, 28, 28)
    assert gan.value_range == (-1.0, 1.0) and vae.value_range == (0.0, 1.0)
    assert gan.latent_dim >= 1 and gan.num_classes == 0
    assert "Encode" in vae.supported_methods and "Encode" not in gan.supported_methods
    assert gan.execution_provider == "CPUExecutionProvider"  # no GPU here; CUDA is picked when present
    assert [m.name for m in gen_client.list_models(VAE)] == [VAE]
    assert gan.class_names == () and vae.class_names == ()


def test_list_models_returns_the_quality_scores_of_the_manifest(gen_client, model_repo):
    """The DCGAN's run evaluated its last step, so its export carries the meter's scores; the
    VAE's did not, so it has none."""
    from latentforge.manifest import Manifest

    models = {m.name: m for m in gen_client.list_models()}
    gan, vae = models[DCGAN].quality, models[VAE].quality
    assert vae is None
    manifest = Manifest.read(model_repo / DCGAN / "1").quality
    assert gan.meter_version == manifest.meter_version == "1"
    assert gan.scores == {k: v for k, v in manifest.scores.items() if not isinstance(v, str)}
    assert gan.details == {k: v for k, v in manifest.scores.items() if isinstance(v, str)}
    assert gan.fid > gan.fid_floor > 0 and gan.scores["n"] == 200 and gan.scores["step"] == 30
    assert gan.details["source"] == "training" and gan.details["meter"] == "classifier"


def test_generate_png_and_tensor_agree(gen_client):
    png = gen_client.generate(DCGAN, 4, seed=11)
    tensor = gen_client.generate(DCGAN, 4, seed=11, fmt="tensor", return_latents=True)
    assert png.seed == 11 and [s.seed for s in png.samples] == [11, 12, 13, 14]
    assert png.stored and len({s.sample_id for s in png.samples + tensor.samples}) == 8
    for p, t in zip(png.samples, tensor.samples):
        img = Image.open(io.BytesIO(p.image.png))
        assert img.format == "PNG" and img.mode == "L" and img.size == (28, 28)
        arr = t.image.tensor
        assert arr.shape == (1, 28, 28) and arr.dtype == np.float32
        assert arr.min() >= -1.0 and arr.max() <= 1.0
        expected = np.clip(np.rint((arr[0] + 1.0) * 127.5), 0, 255).astype(np.uint8)
        assert np.abs(np.asarray(img).astype(int) - expected.astype(int)).max() <= 1
        assert t.latent is not None and p.latent is None


def test_generate_without_seed_returns_the_seed_it_used(gen_client):
    first = gen_client.generate(DCGAN, 2, fmt="tensor")
    again = gen_client.generate(DCGAN, 2, seed=first.seed, fmt="tensor")
    for a, b in zip(first.samples, again.samples):
        np.testing.assert_array_equal(a.image.tensor, b.image.tensor)


def test_truncation_bounds_the_latent(gen_client):
    result = gen_client.generate(DCGAN, 8, seed=5, truncation=0.5, return_latents=True)
    for s in result.samples:
        assert np.abs(s.latent).max() <= 0.5
        assert gen_client.get_sample(s.sample_id).truncation == pytest.approx(0.5)


def test_generate_stream_sends_every_sample_in_order(gen_client):
    streamed = list(gen_client.generate_stream(DCGAN, 10, seed=100, fmt="tensor"))
    assert [s.index for s in streamed] == list(range(10))
    assert [s.seed for s in streamed] == list(range(100, 110))
    batch = gen_client.generate(DCGAN, 10, seed=100, fmt="tensor")
    for a, b in zip(streamed, batch.samples):
        np.testing.assert_allclose(a.image.tensor, b.image.tensor, atol=1e-5)


def test_get_sample_returns_what_generate_stored(gen_client):
    result = gen_client.generate(DCGAN, 3, seed=2**64 - 2, return_latents=True)
    assert [s.seed for s in result.samples] == [2**64 - 2, 2**64 - 1, 0]  # wraps mod 2^64
    stored = gen_client.get_sample(result.samples[2].sample_id)
    assert (stored.model, stored.version, stored.seed, stored.origin) == (DCGAN, 1, 0, "generate")
    np.testing.assert_array_equal(stored.latent, result.samples[2].latent)


@pytest.mark.parametrize("slerp", [False, True])
def test_interpolate_between_ids_seeds_and_latents(gen_client, slerp):
    a = gen_client.generate(DCGAN, 1, seed=1, return_latents=True).samples[0]
    b_latent = gen_client.generate(DCGAN, 1, seed=2, return_latents=True).samples[0].latent
    frames = gen_client.interpolate(DCGAN, Endpoint(sample_id=a.sample_id), Endpoint(latent=b_latent), 5,
                                    slerp=slerp, return_latents=True, fmt="tensor").samples
    assert len(frames) == 5 and len({f.sample_id for f in frames}) == 5
    np.testing.assert_allclose(frames[0].latent, a.latent, atol=1e-6)
    np.testing.assert_allclose(frames[-1].latent, b_latent, atol=1e-5)
    by_seed = gen_client.interpolate(DCGAN, Endpoint(seed=1), Endpoint(seed=2), 5, slerp=slerp,
                                     return_latents=True).samples
    for x, y in zip(frames, by_seed):
        np.testing.assert_allclose(x.latent, y.latent, atol=1e-5)
    assert gen_client.get_sample(frames[2].sample_id).origin == "interpolate"


def test_variations_stay_near_the_parent(gen_client):
    parent = gen_client.generate(DCGAN, 1, seed=9, return_latents=True).samples[0]
    result = gen_client.variations(parent.sample_id, 4, strength=0.1, seed=50, return_latents=True)
    assert result.seed == 50 and [s.seed for s in result.samples] == [50, 51, 52, 53]
    for s in result.samples:
        assert 0 < np.linalg.norm(s.latent - parent.latent) < 0.1 * 4 * np.sqrt(len(parent.latent))
    stored = gen_client.get_sample(result.samples[0].sample_id)
    assert stored.origin == "variation" and stored.parent_sample_id == parent.sample_id
    zero = gen_client.variations(parent.sample_id, 1, strength=0.0, return_latents=True).samples[0]
    np.testing.assert_array_equal(zero.latent, parent.latent)


def test_encode_and_reconstruct_on_the_vae(gen_client):
    made = gen_client.generate(VAE, 2, seed=3, fmt="tensor")
    pngs = gen_client.generate(VAE, 2, seed=3).samples
    inputs = [pngs[0].image.png, made.samples[1].image.tensor]  # one PNG, one raw tensor
    encoded = gen_client.encode(VAE, inputs)
    assert len(encoded.samples) == 2 and encoded.stored
    latent_dim = {m.name: m.latent_dim for m in gen_client.list_models()}[VAE]
    for s in encoded.samples:
        assert s.image is None and s.latent.shape == (latent_dim,) and np.all(np.isfinite(s.latent))
        stored = gen_client.get_sample(s.sample_id)
        assert stored.origin == "encode" and stored.seed is None
        np.testing.assert_array_equal(stored.latent, s.latent)
    recon = gen_client.reconstruct(VAE, inputs, fmt="tensor")
    assert [r.tensor.shape for r in recon] == [(1, 28, 28)] * 2
    assert all(0.0 <= r.tensor.min() and r.tensor.max() <= 1.0 for r in recon)
    # An encoded id can seed later calls like any other sample.
    frames = gen_client.interpolate(VAE, Endpoint(sample_id=encoded.samples[0].sample_id),
                                    Endpoint(sample_id=encoded.samples[1].sample_id), 3).samples
    assert len(frames) == 3


def test_request_id_comes_back_in_trailers(gen_server):
    import grpc

    from latentforge.v1 import generation_pb2 as pb
    from latentforge.v1 import generation_pb2_grpc as pb_grpc

    with grpc.insecure_channel(gen_server.target) as channel:
        stub = pb_grpc.GenerationServiceStub(channel)
        _, call = stub.ListModels.with_call(pb.ListModelsRequest(), metadata=[("x-request-id", "abc-123")])
        assert ("x-request-id", "abc-123") in tuple(call.trailing_metadata())
