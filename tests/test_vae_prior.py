"""The VAE's learned prior: a Gaussian mixture fitted to the encoded training set, exported as the
``prior`` graph, served by Generate and reproducible by a client from the seed alone; and
exports from before it (committed format-2 versions) still served as they were."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch

from latentforge.latents import latents_from_seeds, prior_inputs_from_seeds
from latentforge.manifest import Manifest, ManifestError
from tests.helpers.servers import start_server
from tests.test_service_seeds import reference_latent

FORMAT2 = Path(__file__).parent / "data" / "format2"


def reference_prior_inputs(seed: int, dim: int, psi: float | None = None) -> tuple[np.ndarray, np.float32]:
    """The documented draw of a learned prior's inputs, as another language would make it: the
    latent of the seed's generator, then one uniform from the same generator."""
    rng = np.random.default_rng(seed)
    z = [rng.standard_normal() for _ in range(dim)]
    if psi is not None:
        while any(abs(v) > psi for v in z):
            for j in range(dim):
                if abs(z[j]) > psi:
                    z[j] = rng.standard_normal()
    return np.array(z).astype(np.float32), np.float32(rng.random())


def test_prior_inputs_follow_the_documented_algorithm():
    for seed, dim, psi in [(0, 8, None), (2**64 - 1, 3, None), (12345, 16, 0.7)]:
        seeds, noise, u = prior_inputs_from_seeds(seed, 2, dim, psi)
        for i in range(2):
            want_noise, want_u = reference_prior_inputs((seed + i) % 2**64, dim, psi)
            np.testing.assert_array_equal(noise[i], want_noise)
            assert u[i] == want_u and 0.0 <= u[i] < 1.0
        # The noise is exactly the latent a model without a learned prior gets from the seed.
        np.testing.assert_array_equal(noise, latents_from_seeds(seed, 2, dim, psi)[1])


def test_mixture_prior_picks_components_by_u_and_fits_clusters():
    from trainer.priors import GaussianMixturePrior, fit_mixture

    prior = GaussianMixturePrior(3, 2)
    prior.weights.copy_(torch.tensor([0.5, 0.3, 0.2]))
    prior.means.copy_(torch.tensor([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]]))
    zero = torch.zeros(4, 2)
    z = prior(zero, torch.tensor([0.0, 0.49, 0.5, 0.95]))
    np.testing.assert_array_equal(z.numpy(), [[0, 0], [0, 0], [10, 0], [0, 10]])
    # Three well-separated clusters of different sizes are found with their shares.
    g = torch.Generator().manual_seed(0)
    centres = torch.tensor([[-6.0, 0.0], [6.0, 0.0], [0.0, 6.0]])
    codes = torch.cat([c + 0.5 * torch.randn(n, 2, generator=g) for c, n in zip(centres, (600, 300, 100))])
    fitted = fit_mixture(codes, 3)
    np.testing.assert_allclose(fitted.weights.numpy(), [0.6, 0.3, 0.1], atol=0.01)
    again = fit_mixture(codes, 3)  # no state between fits: a resumed run refits the same prior
    assert all(torch.equal(a, b) for a, b in zip(fitted.buffers(), again.buffers()))
    drawn = fitted.sample(3000, torch.Generator().manual_seed(1))
    nearest = torch.cdist(drawn, centres).argmin(dim=1)
    np.testing.assert_allclose(torch.bincount(nearest, minlength=3).numpy() / 3000, [0.6, 0.3, 0.1], atol=0.03)
    with pytest.raises(ValueError, match="fewer components"):
        fit_mixture(codes[:2], 3)


def test_trained_vae_exports_its_fitted_prior(model_repo: Path, vae_run: Path):
    """The run fitted the mixture at its end (not the N(0, I) it starts as) and the exported
    prior graph computes what the family's module does."""
    from trainer.checkpoint import load_checkpoint
    from trainer.families import restore_family

    family = restore_family(load_checkpoint(vae_run))
    assert family.prior is not None and "prior" in family.tasks
    assert family.prior.means.abs().sum() > 0  # fitted
    manifest = Manifest.read(model_repo / "mnist-vae" / "1")
    assert manifest.tasks["prior"] == "prior" and manifest.tasks["sample"] == "decoder"
    session = ort.InferenceSession(str(model_repo / "mnist-vae" / "1" / manifest.graphs["prior"]))
    _, noise, u = prior_inputs_from_seeds(5, 6, manifest.latent_dim)
    got = session.run(["z"], {"noise": noise, "u": u})[0]
    want = family.prior(torch.from_numpy(noise), torch.from_numpy(u)).numpy()
    np.testing.assert_allclose(got, want, atol=1e-5)


def test_generate_draws_from_the_prior_and_a_client_reproduces_the_latent(memory_server, model_repo: Path):
    """What the proto promises: a client with the seed and the version's prior graph gets the
    latent the service drew, and the service's image is the decoder's image of it."""
    from services.generation.client import Endpoint, GenerationClient

    version = model_repo / "mnist-vae" / "1"
    manifest = Manifest.read(version)
    prior = ort.InferenceSession(str(version / manifest.graphs["prior"]))
    decoder = ort.InferenceSession(str(version / manifest.graphs["decoder"]))
    seed, d = 2**64 - 2, manifest.latent_dim
    with GenerationClient(memory_server.target) as client:
        result = client.generate("mnist-vae", 3, seed=seed, fmt="tensor", return_latents=True)
        truncated = client.generate("mnist-vae", 2, seed=seed, truncation=0.5, fmt="tensor", return_latents=True)
        path = client.interpolate("mnist-vae", Endpoint(seed=seed), Endpoint(seed=(seed + 1) % 2**64), 3,
                                  fmt="tensor", return_latents=True)
    for i, sample in enumerate(result.samples):
        noise, u = reference_prior_inputs((seed + i) % 2**64, d)
        z = prior.run(["z"], {"noise": noise[None], "u": np.array([u])})[0][0]
        np.testing.assert_array_equal(sample.latent, z)
        assert not np.allclose(sample.latent, noise)  # the prior moved it: not the standard normal's
        image = decoder.run(["image"], {"z": z[None]})[0][0]
        np.testing.assert_allclose(sample.image.tensor, image, atol=1e-6)
    for i, sample in enumerate(truncated.samples):
        noise, u = reference_prior_inputs((seed + i) % 2**64, d, 0.5)
        np.testing.assert_array_equal(sample.latent, prior.run(["z"], {"noise": noise[None], "u": np.array([u])})[0][0])
    # Interpolate's seed endpoints are the prior's latents too.
    np.testing.assert_allclose(path.samples[0].latent, result.samples[0].latent, atol=1e-6)
    np.testing.assert_allclose(path.samples[-1].latent, result.samples[1].latent, atol=1e-6)


def test_manifest_prior_contract_is_checked(model_repo: Path):
    data = json.loads((model_repo / "mnist-vae" / "1" / "manifest.json").read_text())
    no_sample = json.loads(json.dumps(data))
    no_sample["tasks"].pop("sample")
    with pytest.raises(ManifestError, match="'prior' task must have the 'sample' task"):
        Manifest.from_dict(no_sample).validate()
    wrong = json.loads(json.dumps(data))
    wrong["signatures"]["prior"]["inputs"][0]["shape"] = ["N", data["latent_dim"] + 1]
    with pytest.raises(ManifestError, match=r"\(prior\)"):
        Manifest.from_dict(wrong).validate()


@pytest.fixture(scope="module")
def old_server(tmp_path_factory):
    repo = tmp_path_factory.mktemp("format2")
    for name in ("old-vae", "old-completion"):
        shutil.copytree(FORMAT2 / name, repo / name)
    server = start_server(repo)
    yield server
    server.stop()


def test_format2_exports_from_before_the_prior_serve_as_before(old_server):
    """Committed versions exported before learned priors and the completion model's first
    candidate rule: the VAE still samples the standard normal, the completion model fills every
    candidate from its seed's latent, both exactly as their graphs compute it."""
    from services.generation.client import GenerationClient

    vae = FORMAT2 / "old-vae" / "1"
    manifest = Manifest.read(vae)
    assert manifest.format_version == 2 and "prior" not in manifest.tasks
    decoder = ort.InferenceSession(str(vae / "decoder.onnx"))
    completer = ort.InferenceSession(str(FORMAT2 / "old-completion" / "1" / "completer.onnx"))
    digit = np.zeros((1, 28, 28), dtype=np.float32)
    digit[0, 6:22, 12:16] = 1.0
    with GenerationClient(old_server.target) as client:
        assert {m.name for m in client.list_models()} == {"old-vae", "old-completion"}
        result = client.generate("old-vae", 3, seed=11, fmt="tensor", return_latents=True)
        done = client.complete("old-completion", digit, [(0, 14, 28, 14)], count=3, seed=4, fmt="tensor")
        recon = client.reconstruct("old-vae", [digit], fmt="tensor")
    for i, sample in enumerate(result.samples):
        z = reference_latent(11 + i, manifest.latent_dim)
        np.testing.assert_array_equal(sample.latent, z)
        np.testing.assert_allclose(sample.image.tensor, decoder.run(["image"], {"z": z[None]})[0][0], atol=1e-6)
    mask = np.ones((1, 1, 28, 28), dtype=np.float32)
    mask[..., 14:, :] = 0.0
    image = digit[None] * mask + 0.5 * (1 - mask)  # the service fills the hole with mid-grey first
    for i, sample in enumerate(done.samples):
        z = reference_latent(4 + i, 16)[None]
        want = completer.run(["completed"], {"image": image, "mask": mask, "z": z})[0][0]
        np.testing.assert_allclose(sample.image.tensor, want, atol=1e-5)
    assert recon[0].tensor.shape == (1, 28, 28)


def test_iterative_completion_starts_from_the_best_prior_draw(memory_server, model_repo: Path):
    """Complete on a VAE with a learned prior, reproduced from the proto's description with ONNX
    Runtime alone: each candidate's uniform filling is replaced by the best-fitting of 16 prior
    draws from its seed's generator, then the rounds run as for any VAE."""
    from services.generation.client import GenerationClient

    version = model_repo / "mnist-vae" / "1"
    manifest = Manifest.read(version)
    run = {role: ort.InferenceSession(str(version / f)) for role, f in manifest.graphs.items()}
    d, seed, rounds = manifest.latent_dim, 77, 3
    image = np.zeros((1, 28, 28), np.float32)
    image[0, 4:24, 13:16] = 1.0
    mask = np.ones((1, 28, 28), np.float32)
    mask[:, 14:, :] = 0.0
    with GenerationClient(memory_server.target) as client:
        got = client.complete("mnist-vae", image, [(0, 14, 28, 14)], count=2, seed=seed, iterations=rounds,
                              fmt="tensor", return_latents=True)
    for i, sample in enumerate(got.samples):
        rng = np.random.default_rng(seed + i)
        eps = rng.standard_normal(d).astype(np.float32)
        rng.uniform(0.0, 1.0, (1, 28, 28))  # the uniform filling the prior draws replace
        noise = np.empty((16, d), np.float32)
        u = np.empty(16, np.float32)
        for j in range(16):
            noise[j] = rng.standard_normal(d)
            u[j] = rng.random()
        drawn = run["decoder"].run(["image"], {"z": run["prior"].run(["z"], {"noise": noise, "u": u})[0]})[0]
        errors = (((drawn - image[None]) ** 2) * mask[None]).reshape(16, -1).sum(axis=1)
        x = mask * image + (1 - mask) * drawn[errors.argmin()]
        for t in range(rounds):
            mu, logvar = run["encoder"].run(["mu", "logvar"], {"image": x[None]})
            z = (mu + (rounds - 1 - t) / (rounds - 1) * np.exp(0.5 * logvar) * eps).astype(np.float32)
            x = mask * image + (1 - mask) * run["decoder"].run(["image"], {"z": z})[0][0]
        np.testing.assert_allclose(sample.latent, z[0], atol=1e-4)
        np.testing.assert_allclose(sample.image.tensor, x, atol=1e-4)


@pytest.mark.parametrize("family_name, option", [("vae", "prior"), ("completion", "first_candidate")])
def test_a_checkpoint_from_before_the_option_restores_as_it_trained(tmp_path: Path, vae_run: Path,
                                                                    completion_run: Path, family_name, option):
    """Format 2 spells out every option, so a stored config without ``prior`` (or
    ``first_candidate``) is from a run that predates it: it restores as it trained, a VAE
    without a fitted prior, a completion model without a z = 0 candidate, and exports so."""
    from exporter.repository import export_run
    from trainer.checkpoint import latest_checkpoint, load_checkpoint
    from trainer.families import restore_family

    run = tmp_path / "old-run"
    shutil.copytree((vae_run if family_name == "vae" else completion_run) / "checkpoints", run / "checkpoints")
    path = latest_checkpoint(run)
    payload = torch.load(path, map_location="cpu", weights_only=True)
    del payload["config"][family_name][option]
    payload.pop("prior", None)
    torch.save(payload, path)
    family = restore_family(load_checkpoint(run))
    manifest = Manifest.read(export_run(run, tmp_path / "repo", "old"))
    if family_name == "vae":
        assert family.prior is None and "prior" not in manifest.tasks
    else:
        assert not family.mode_first and "first_candidate" not in manifest.conventions
