"""Loss functions, kept apart from networks and loops so new objectives are new entries here.

GAN losses split the discriminator loss into its real and fake halves, so the loop can run
one forward/backward per half: that keeps BatchNorm statistics of real and fake batches
apart (as DCGAN does) and works under DistributedDataParallel, which allows one backward
per forward.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


class GANLoss:
    """Interface of a GAN objective over discriminator logits."""

    def real(self, logits: torch.Tensor) -> torch.Tensor:  # discriminator, real batch
        raise NotImplementedError

    def fake(self, logits: torch.Tensor) -> torch.Tensor:  # discriminator, generated batch
        raise NotImplementedError

    def generator(self, logits: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError


class NonSaturatingLoss(GANLoss):
    """min_G max_D E[log D(x)] + E[log(1 - D(G(z)))], with G maximising log D(G(z)) instead
    of minimising log(1 - D(G(z))) (Goodfellow et al., 2014): same fixed point, strong
    gradients early in training when D rejects every sample."""

    def real(self, logits: torch.Tensor) -> torch.Tensor:
        return F.binary_cross_entropy_with_logits(logits, torch.ones_like(logits))

    def fake(self, logits: torch.Tensor) -> torch.Tensor:
        return F.binary_cross_entropy_with_logits(logits, torch.zeros_like(logits))

    def generator(self, logits: torch.Tensor) -> torch.Tensor:
        return F.binary_cross_entropy_with_logits(logits, torch.ones_like(logits))


class HingeLoss(GANLoss):
    """Hinge objective (Lim & Ye 2017; used with spectral norm by Miyato et al. 2018)."""

    def real(self, logits: torch.Tensor) -> torch.Tensor:
        return F.relu(1.0 - logits).mean()

    def fake(self, logits: torch.Tensor) -> torch.Tensor:
        return F.relu(1.0 + logits).mean()

    def generator(self, logits: torch.Tensor) -> torch.Tensor:
        return -logits.mean()


GAN_LOSSES: dict[str, type[GANLoss]] = {"nonsaturating": NonSaturatingLoss, "hinge": HingeLoss}


def gan_loss(name: str) -> GANLoss:
    """Look up a GAN objective by name."""
    try:
        return GAN_LOSSES[name]()
    except KeyError:
        raise ValueError(f"unknown gan_loss {name!r}; choose from {', '.join(GAN_LOSSES)}") from None


def kl_divergence(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(q(z|x) || N(0, I)) summed over latent dims, averaged over the batch."""
    return (-0.5 * (1 + logvar - mu.pow(2) - logvar.exp()).sum(dim=1)).mean()


def reconstruction_loss(logits: torch.Tensor, target: torch.Tensor, kind: str) -> torch.Tensor:
    """Negative log-likelihood per image (summed over pixels, averaged over the batch).

    "bce": Bernoulli pixels, for data that is mostly near 0 or 1 (digits, line art).
    "mse": Gaussian pixels with fixed variance, for natural images.
    """
    if kind == "bce":
        per_pixel = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
    elif kind == "mse":
        per_pixel = (torch.sigmoid(logits) - target).pow(2)
    else:
        raise ValueError(f"unknown reconstruction loss {kind!r}")
    return per_pixel.flatten(1).sum(dim=1).mean()


def kl_weight(step: int, beta: float, warmup_steps: int) -> float:
    """Linear KL warm-up: 0 at step 0, beta from `warmup_steps` on."""
    if warmup_steps <= 0:
        return beta
    return beta * min(1.0, step / warmup_steps)
