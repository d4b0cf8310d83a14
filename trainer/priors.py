"""Learned priors: a Gaussian mixture fitted to a trained encoder's codes, as an exportable module.

A small-latent VAE's aggregate posterior (where its encoder puts the training images) is far
from the standard normal its KL term pulls toward: latents drawn from N(0, I) land between the
clusters the decoder knows and decode to blends. Fitting a density to the encoded training set
after training and sampling from it instead ("ex-post density estimation", Ghosh et al. 2020)
fixes most of that at no training cost.

The mixture is a module from standard noise to latents, so the exported ``prior`` graph
(``latentforge.manifest``: ``noise`` (N, D) and ``u`` (N,) -> ``z`` (N, D)) is the same
computation a client can repeat: ``u`` in [0, 1) picks component k (the first whose cumulative
weight exceeds u) and ``z = mean_k + L_k @ noise`` with ``L_k`` the Cholesky factor of its
covariance. The service draws ``noise`` and ``u`` from the sample's seed
(``latentforge.latents.prior_inputs_from_seed``), so truncation shrinks ``noise`` toward the
component's mean and never changes which components are drawn.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

MAX_ITERATIONS = 200  # EM steps per fit (it stops earlier once the likelihood settles)
MIN_VARIANCE = 1e-6  # added to the covariances' diagonals (sklearn's reg_covar), keeps L_k invertible


class GaussianMixturePrior(nn.Module):
    """(noise (N, D), u (N,)) -> z (N, D) from a K-component Gaussian mixture (buffers only)."""

    def __init__(self, components: int, dim: int) -> None:
        super().__init__()
        self.register_buffer("weights", torch.full((components,), 1.0 / components))
        self.register_buffer("means", torch.zeros(components, dim))
        self.register_buffer("scale_tril", torch.eye(dim).repeat(components, 1, 1))

    @property
    def dim(self) -> int:
        return int(self.means.shape[1])

    def forward(self, noise: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        # The comparison against the cumulative weights picks k; the last component takes the rest.
        edges = torch.cumsum(self.weights, 0)[:-1]
        k = (u.unsqueeze(1) >= edges.unsqueeze(0)).to(torch.int64).sum(dim=1)
        scale = self.scale_tril.index_select(0, k)  # (N, D, D)
        return self.means.index_select(0, k) + torch.matmul(scale, noise.unsqueeze(2)).squeeze(2)

    def sample(self, n: int, generator: torch.Generator, temperature: float = 1.0) -> torch.Tensor:
        """n latents, the within-component noise scaled by ``temperature``."""
        noise = temperature * torch.randn(n, self.dim, generator=generator)
        u = torch.rand(n, generator=generator)
        return self(noise.to(self.means.device), u.to(self.means.device))

    @torch.no_grad()
    def fit(self, codes: torch.Tensor, seed: int = 0, diagonal: bool = False) -> None:
        """Fit the mixture to codes (M, D) by EM (scikit-learn's GaussianMixture) from a seeded
        k-means start: the same codes give the same prior, so a resumed run fits what an
        uninterrupted one would."""
        from sklearn.mixture import GaussianMixture

        k = int(self.weights.shape[0])
        x = codes.detach().double().cpu().numpy()
        if len(x) < k:
            raise ValueError(f"{len(x)} codes cannot fit {k} mixture components; use fewer components")
        gm = GaussianMixture(k, covariance_type="diag" if diagonal else "full", reg_covar=MIN_VARIANCE,
                             random_state=seed, max_iter=MAX_ITERATIONS)
        gm.fit(x)
        cov = np.stack([np.diag(c) for c in gm.covariances_]) if diagonal else gm.covariances_
        order = np.argsort(-gm.weights_, kind="stable")  # heaviest first: a readable, canonical order
        device = self.means.device
        self.weights.copy_(torch.from_numpy(gm.weights_[order] / gm.weights_.sum()).float().to(device))
        self.means.copy_(torch.from_numpy(gm.means_[order]).float().to(device))
        self.scale_tril.copy_(torch.from_numpy(np.linalg.cholesky(cov[order])).float().to(device))


def fit_mixture(codes: torch.Tensor, components: int, *, diagonal: bool = False, seed: int = 0) -> GaussianMixturePrior:
    """A mixture prior of ``components`` Gaussians fitted to codes (M, D)."""
    prior = GaussianMixturePrior(components, codes.shape[1])
    prior.fit(codes, seed, diagonal)
    return prior
