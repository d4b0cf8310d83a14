"""The autoencoder family, the conditional VAE and the VAE's quality options: short real runs on
mnist5k, export by the project's exporter with ONNX Runtime parity, and serving through a real
gRPC server (Encode / Reconstruct / Interpolate on a trained autoencoder, Generate refused for
want of a prior; Generate with a label on a conditional VAE)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import grpc
import numpy as np
import onnxruntime as ort
import pytest
import torch

from exporter.repository import export_run
from latentforge.manifest import Manifest, Signature, TensorSpec
from services.generation.client import Endpoint, GenerationClient
from tests.helpers.servers import start_server
from tests.helpers.training import tiny_config
from trainer.checkpoint import load_checkpoint
from trainer.data import DataError, load_data
from trainer.families import restore_family
from trainer.loop import train

AE, CVAE = "mnist-ae", "mnist-cvae"
AE_METHODS = ["Interpolate", "GetSample", "Encode", "Reconstruct", "Complete"]


def _metrics(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def _family(run: Path):
    return restore_family(load_checkpoint(run))


@pytest.fixture(scope="module")
def digits() -> np.ndarray:
    return load_data("mnist5k").images[:4]


@pytest.fixture(scope="module")
def ae_run(tmp_path_factory) -> Path:
    """A denoising autoencoder trained for 30 steps on mnist5k."""
    out = tmp_path_factory.mktemp("runs") / "ae"
    train(tiny_config("ae", out, denoise_std=0.2))
    return out


@pytest.fixture(scope="module")
def cvae_run(tmp_path_factory) -> Path:
    """A class-conditional VAE trained for 30 steps on mnist5k's digits and labels."""
    out = tmp_path_factory.mktemp("runs") / "cvae"
    train(tiny_config("vae", out, conditional=True))
    return out


@pytest.fixture(scope="module")
def repo(tmp_path_factory, ae_run: Path, cvae_run: Path) -> Path:
    repo = tmp_path_factory.mktemp("models")
    export_run(ae_run, repo, AE)
    export_run(cvae_run, repo, CVAE)
    return repo


@pytest.fixture(scope="module")
def client(repo: Path):
    server = start_server(repo)
    with GenerationClient(server.target, timeout_s=30) as c:
        yield c
    server.stop()


# --- the autoencoder ----------------------------------------------------------------------------

def test_the_autoencoder_trains_and_draws_reconstructions_and_interpolations(ae_run: Path):
    rows = _metrics(ae_run)
    assert {"loss", "mse", "code_rms", "grad_norm"} <= rows[-1].keys()
    assert rows[-1]["mse"] < rows[0]["mse"]  # reconstruction improves even in 30 steps
    for grid in ("latest", "recon_latest", "interp_latest"):
        assert (ae_run / "samples" / f"{grid}.png").is_file()
    info = json.loads((ae_run / "run.json").read_text())
    assert info["kind"] == "ae" and info["config"]["ae"]["denoise_std"] == 0.2
    # The running code statistics (the grids' fitted Gaussian) moved away from N(0, I).
    state = load_checkpoint(ae_run)["modules"]["ae"]
    assert not torch.equal(state["code_std"], torch.ones_like(state["code_std"]))


def test_denoising_trains_on_noisy_inputs_towards_clean_images(tmp_path: Path, digits: np.ndarray):
    """Same seed, same batch: the denoising step sees other inputs (its loss differs), the plain
    one is repeatable."""
    from trainer.config import TrainConfig
    from trainer.data import Batch
    from trainer.families import build_family

    spec = load_data("mnist5k").spec
    batch = Batch(images=torch.from_numpy(load_data("mnist5k").images[:16]))
    losses = {}
    for name, std in (("plain", 0.0), ("again", 0.0), ("denoising", 0.3)):
        cfg = TrainConfig.from_dict({"model": "ae", "width": 16, "denoise_std": std, "out": tmp_path})
        family = build_family(cfg, spec, torch.device("cpu"))
        torch.manual_seed(1)
        losses[name] = family.train_step(batch, 0)["loss"]
    assert losses["plain"] == losses["again"] and losses["denoising"] != losses["plain"]


def test_the_autoencoder_exports_an_encoder_and_a_decoder_but_no_prior(repo: Path):
    m = Manifest.read(repo / AE / "1")
    assert m.kind == "ae" and m.latent_dim == 16 and m.num_classes == 0
    assert m.tasks == {"encode": "encoder", "decode": "decoder"} and not m.has_task("sample")
    latent, image = TensorSpec("z", "float32", ("N", 16)), TensorSpec("image", "float32", ("N", 1, 28, 28))
    assert m.signatures["decoder"] == Signature(inputs=(latent,), outputs=(image,))
    assert m.signatures["encoder"] == Signature(inputs=(image,),
                                                outputs=(TensorSpec("mu", "float32", ("N", 16)),))
    assert set(m.parity.per_graph) == {"encoder", "decoder"} and m.parity.max_abs_error <= 1e-4


def test_a_trained_autoencoder_is_served_through_encode_reconstruct_and_interpolate(
        client, ae_run: Path, digits: np.ndarray):
    family = _family(ae_run)
    images = [d for d in digits[:2]]
    encoded = client.encode(AE, images)
    codes = family.encode(torch.from_numpy(digits[:2])).numpy()
    np.testing.assert_allclose(np.stack([s.latent for s in encoded.samples]), codes, atol=1e-4)

    recon = client.reconstruct(AE, images, fmt="tensor")
    want = family.decode(torch.from_numpy(codes)).numpy()
    np.testing.assert_allclose(np.stack([r.tensor for r in recon]), want, atol=1e-4)

    a, b = (s.sample_id for s in encoded.samples)
    frames = client.interpolate(AE, Endpoint(sample_id=a), Endpoint(sample_id=b), 5, fmt="tensor",
                                return_latents=True).samples
    assert len(frames) == 5
    np.testing.assert_allclose(frames[0].latent, codes[0], atol=1e-4)
    np.testing.assert_allclose(frames[-1].latent, codes[1], atol=1e-4)
    middle = family.decode(torch.from_numpy(frames[2].latent[None])).numpy()[0]
    np.testing.assert_allclose(frames[2].image.tensor, middle, atol=1e-4)

    models = {m.name: m for m in client.list_models()}
    assert list(models[AE].supported_methods) == AE_METHODS
    for method in ("Generate", "GenerateStream"):
        with pytest.raises(grpc.RpcError) as err:
            if method == "Generate":
                client.generate(AE, 2, seed=1)
            else:
                list(client.generate_stream(AE, 2, seed=1))
        assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        message = err.value.details()
        assert f"model {AE} v1 (kind ae) does not support {method}" in message
        assert "no 'sample' task (no prior to sample latents from)" in message
        assert message.endswith("it supports " + ", ".join(AE_METHODS))


def test_an_autoencoder_run_resumes_exactly(tmp_path: Path):
    """8 steps straight == 4 steps, stop, resume to 8: the code statistics included."""
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    opts = dict(log_every=1, checkpoint_every=4, sample_every=100, denoise_std=0.1)
    train(tiny_config("ae", straight, steps=8, **opts))
    train(tiny_config("ae", resumed, steps=4, **opts))
    train(tiny_config("ae", resumed, steps=8, **opts), resume=True)
    drop = {"time", "step_seconds"}
    assert ([{k: v for k, v in r.items() if k not in drop} for r in _metrics(straight)]
            == [{k: v for k, v in r.items() if k not in drop} for r in _metrics(resumed)])
    wa, wb = load_checkpoint(straight)["modules"]["ae"], load_checkpoint(resumed)["modules"]["ae"]
    assert wa.keys() == wb.keys() and {"code_mean", "code_std"} <= wa.keys()
    assert all(torch.equal(wa[k], wb[k]) for k in wa)


# --- the conditional VAE -------------------------------------------------------------------------

def test_a_conditional_vae_refuses_unlabelled_data_before_training(tmp_path: Path):
    np.save(tmp_path / "digits.npy", (load_data("mnist5k").images[:64, 0] * 255).astype(np.uint8))
    out = tmp_path / "run"
    with pytest.raises(DataError, match="a conditional vae trains on labelled data, but .*digits.npy gives "
                                        "images without labels"):
        train(tiny_config("vae", out, data=str(tmp_path / "digits.npy"), conditional=True))
    assert not out.exists()


def test_a_conditional_vae_samples_the_classes_it_is_given(cvae_run: Path):
    family = _family(cvae_run)
    assert family.num_classes == 10
    z = family.latents(20, torch.Generator().manual_seed(0))
    balanced = torch.arange(20) % 10
    assert torch.equal(family.sample(z), family.sample(z, balanced))  # labels left out: balanced
    sevens, twos = family.sample(z, torch.full((20,), 7)), family.sample(z, torch.full((20,), 2))
    assert (sevens - twos).abs().max() > 1e-3  # the label reaches the decoder
    assert (cvae_run / "samples" / "classes_latest.png").is_file()  # one row per class
    with pytest.raises(ValueError, match="reconstructs with the images' labels"):
        family.reconstruct(torch.zeros(2, 1, 28, 28))


def test_a_conditional_vae_exports_a_decoder_that_takes_labels(repo: Path, cvae_run: Path):
    vdir = repo / CVAE / "1"
    m = Manifest.read(vdir)
    assert (m.kind, m.num_classes, m.classes) == ("vae", 10, tuple(str(d) for d in range(10)))
    assert m.tasks == {"sample": "decoder", "decode": "decoder", "encode": "encoder", "prior": "prior"}
    assert m.signatures["decoder"].inputs == (TensorSpec("z", "float32", ("N", 32)),
                                              TensorSpec("labels", "int64", ("N",), optional=True))
    assert [t.name for t in m.signatures["encoder"].inputs] == ["image"]  # encoding needs no label
    assert m.parity.max_abs_error <= 1e-4

    family = _family(cvae_run)
    session = ort.InferenceSession(str(vdir / "decoder.onnx"), providers=["CPUExecutionProvider"])
    z = family.latents(6, torch.Generator().manual_seed(5))
    labels = torch.tensor([0, 3, 7, 9, 7, 1])
    got = session.run(["image"], {"z": z.numpy(), "labels": labels.numpy()})[0]
    np.testing.assert_allclose(got, family.sample(z, labels).numpy(), atol=1e-4)


def test_a_label_is_served_end_to_end(client, cvae_run: Path):
    family = _family(cvae_run)
    models = {m.name: m for m in client.list_models()}
    assert models[CVAE].num_classes == 10 and "Generate" in models[CVAE].supported_methods
    sevens = client.generate(CVAE, 3, seed=11, label=7, fmt="tensor", return_latents=True).samples
    assert [s.label for s in sevens] == [7, 7, 7]
    z = torch.from_numpy(np.stack([s.latent for s in sevens]))
    want = family.sample(z, torch.full((3,), 7)).numpy()
    np.testing.assert_allclose(np.stack([s.image.tensor for s in sevens]), want, atol=1e-4)
    twos = client.generate(CVAE, 3, seed=11, label=2, fmt="tensor").samples
    assert np.abs(np.stack([s.image.tensor for s in twos]) - want).max() > 1e-3  # same latents, other class
    with pytest.raises(grpc.RpcError) as err:
        client.generate(CVAE, 1, seed=1, label=10)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "label must be in 0..9" in err.value.details()


# --- the VAE's quality options ------------------------------------------------------------------

@pytest.mark.parametrize("options", [{"recon": "gaussian"}, {"perceptual": 1.0}, {"temperature": 0.5},
                                     {"latent_dim": 32}], ids=lambda o: next(iter(o)))
def test_each_vae_option_trains_and_exports_with_parity(tmp_path: Path, monkeypatch, options: dict):
    if "perceptual" in options:
        # A real feature network of the meter, trained briefly into this test's own cache.
        from dataclasses import replace

        import trainer.families.vae as vae_module

        monkeypatch.setenv("LATENTFORGE_CACHE_DIR", str(tmp_path / "cache"))
        monkeypatch.setattr(vae_module, "PERCEPTUAL_SETTINGS", replace(vae_module.PERCEPTUAL_SETTINGS, steps=20))
    run = tmp_path / "run"
    train(tiny_config("vae", run, steps=4, sample_every=4, checkpoint_every=4, log_every=1, **options))
    rows = _metrics(run)
    assert all(math.isfinite(r["loss"]) for r in rows)
    if "perceptual" in options:
        assert all(r["perceptual"] > 0 for r in rows)
        assert list((tmp_path / "cache" / "quality").glob("mnist5k-*.pt"))
    version = export_run(run, tmp_path / "models", "opt")
    m = Manifest.read(version)
    assert m.parity.max_abs_error <= 1e-4
    assert {k: m.training["config"]["vae"][k] for k in options} == options
    assert m.latent_dim == options.get("latent_dim", 32)


def test_the_gaussian_likelihood_is_taken_at_its_optimal_variance():
    from trainer.families.vae import gaussian_nll

    g = torch.Generator().manual_seed(0)
    logits, target = torch.randn(5, 1, 4, 4, generator=g), torch.rand(5, 1, 4, 4, generator=g)
    mean = torch.sigmoid(logits)
    sigma = (mean - target).pow(2).mean().sqrt()
    want = -torch.distributions.Normal(mean, sigma).log_prob(target).flatten(1).sum(1).mean()
    assert gaussian_nll(logits, target).item() == pytest.approx(want.item(), rel=1e-5)
    # Any other variance gives a larger negative log-likelihood.
    for scale in (0.5, 2.0):
        other = -torch.distributions.Normal(mean, sigma * scale).log_prob(target).flatten(1).sum(1).mean()
        assert other > want


def test_temperature_scales_the_latents_of_grids_and_run_evaluation(tmp_path: Path):
    from trainer.quality.samplers import sample_run

    run = tmp_path / "run"
    train(tiny_config("vae", run, steps=2, sample_every=2, checkpoint_every=2, temperature=0.5, prior="normal"))
    family = _family(run)
    z = family.latents(8, torch.Generator().manual_seed(3))
    assert torch.equal(z, 0.5 * torch.randn(8, family.latent_dim, generator=torch.Generator().manual_seed(3)))
    drawn = sample_run(run, 8, seed=3)
    np.testing.assert_allclose(drawn.images, family.sample(z).clamp(0, 1).numpy(), atol=1e-6)
    # With the mixture prior, the temperature scales the noise inside each component.
    mixed = tmp_path / "mixed"
    train(tiny_config("vae", mixed, steps=2, sample_every=2, checkpoint_every=2, temperature=0.5))
    family = _family(mixed)
    g = torch.Generator().manual_seed(3)
    noise, u = 0.5 * torch.randn(8, family.latent_dim, generator=g), torch.rand(8, generator=g)
    assert torch.allclose(family.latents(8, torch.Generator().manual_seed(3)), family.prior(noise, u))
