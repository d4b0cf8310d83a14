"""The documented seed -> latent algorithm, reproduced here independently, and the same seed
giving the same latent and image on two servers."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from latentforge.latents import latent_from_seed, lerp, slerp


def reference_latent(seed: int, latent_dim: int, psi: float | None = None) -> np.ndarray:
    """The algorithm as the proto describes it, one draw at a time, as another language would."""
    rng = np.random.default_rng(seed)  # == Generator(PCG64(seed))
    z = [rng.standard_normal() for _ in range(latent_dim)]
    if psi is not None:
        while any(abs(v) > psi for v in z):
            for j in range(latent_dim):
                if abs(z[j]) > psi:
                    z[j] = rng.standard_normal()
    return np.array(z, dtype=np.float64).astype(np.float32)


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**64 - 1), dim=st.integers(1, 130),
       psi=st.one_of(st.none(), st.floats(0.05, 3.0)))
def test_latent_from_seed_matches_the_documented_algorithm(seed, dim, psi):
    z = latent_from_seed(seed, dim, psi)
    assert z.dtype == np.float32 and z.shape == (dim,)
    np.testing.assert_array_equal(z, reference_latent(seed, dim, psi))
    if psi is not None:
        assert np.abs(z).max() <= np.float32(psi)


def test_latent_rejects_bad_inputs():
    for seed, dim, psi in [(-1, 4, None), (2**64, 4, None), (1, 0, None), (1, 4, 0.0), (1, 4, float("inf"))]:
        with pytest.raises(ValueError):
            latent_from_seed(seed, dim, psi)


@settings(max_examples=40, deadline=None)
@given(seed_a=st.integers(0, 2**32), seed_b=st.integers(0, 2**32), steps=st.integers(2, 12))
def test_paths_start_and_end_at_the_endpoints(seed_a, seed_b, steps):
    a, b = latent_from_seed(seed_a, 16), latent_from_seed(seed_b, 16)
    for path in (lerp(a, b, steps), slerp(a, b, steps)):
        assert path.shape == (steps, 16)
        np.testing.assert_allclose(path[0], a, atol=1e-5)
        np.testing.assert_allclose(path[-1], b, atol=1e-5)
    norms = np.linalg.norm(slerp(a, a * 2, steps), axis=1)  # parallel: falls back to lerp
    assert np.all(np.diff(norms) >= -1e-4)


def test_same_seed_same_latent_and_image_on_two_servers(memory_server, redis_servers):
    from services.generation.client import GenerationClient

    seed = 123456789
    results = []
    for server in (memory_server, redis_servers[1]):
        with GenerationClient(server.target) as client:
            results.append(client.generate("mnist-dcgan", 3, seed=seed, fmt="tensor", return_latents=True))
    first, second = results
    latent_dim = first.samples[0].latent.size
    for i, (a, b) in enumerate(zip(first.samples, second.samples)):
        assert a.seed == b.seed == seed + i
        assert a.sample_id != b.sample_id
        np.testing.assert_array_equal(a.latent, reference_latent(seed + i, latent_dim))
        np.testing.assert_array_equal(a.latent, b.latent)
        np.testing.assert_array_equal(a.image.tensor, b.image.tensor)
