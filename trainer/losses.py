"""Loss functions, kept apart from networks and loops so new objectives are new entries here.

GAN losses split the discriminator loss into its real and fake halves, so the loop can run
one forward/backward per half: that keeps BatchNorm statistics of real and fake batches
apart (as DCGAN does) and works under DistributedDataParallel, which allows one backward
per forward.
"""

from __future__ import annotations

import math

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


# --- sketch-rnn (Ha & Eck 2017): strokes as a mixture of bivariate Gaussians and pen states --------

def bivariate_mixture_log_prob(pi_logits: torch.Tensor, mu_x: torch.Tensor, mu_y: torch.Tensor,
                               sigma_x: torch.Tensor, sigma_y: torch.Tensor, rho: torch.Tensor,
                               x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """log p(x, y) under a mixture of M bivariate Gaussians: parameters (..., M), points (...).

    Computed in the log domain (log-softmax weights, logsumexp over components), which stays
    finite where the paper's product of densities underflows; rho is kept inside (-1, 1).
    """
    rho = rho.clamp(-1 + 1e-6, 1 - 1e-6)
    one_minus = 1 - rho.pow(2)
    zx = (x[..., None] - mu_x) / sigma_x
    zy = (y[..., None] - mu_y) / sigma_y
    quad = (zx.pow(2) + zy.pow(2) - 2 * rho * zx * zy) / one_minus
    log_normal = (-quad / 2 - torch.log(sigma_x) - torch.log(sigma_y) - 0.5 * torch.log(one_minus)
                  - math.log(2 * math.pi))
    return torch.logsumexp(F.log_softmax(pi_logits, dim=-1) + log_normal, dim=-1)


def stroke_reconstruction_loss(pi_logits: torch.Tensor, mu_x: torch.Tensor, mu_y: torch.Tensor,
                               sigma_x: torch.Tensor, sigma_y: torch.Tensor, rho: torch.Tensor,
                               pen_logits: torch.Tensor, target: torch.Tensor,
                               lengths: torch.Tensor, steps: int | None = None,
                               pen_to_end: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """sketch-rnn's reconstruction terms (L_s, L_p), each averaged over the batch.

    target: stroke-5 rows (N, T, 5), padded after `lengths` real points with (0, 0, 0, 0, 1).
    L_s: the offsets' negative log-likelihood summed over each sequence's real points;
    L_p: the pen states' cross-entropy summed over all T steps (so the model learns to end), or
    with `pen_to_end` over each sequence's real points and its end state (step `lengths`) only,
    so that the padding after it does not count and a batch cut after its longest drawing's end
    state scores as the padded one. Both are divided by `steps` (the paper's N_max; default T),
    as in the paper and magenta's sketch_rnn.
    """
    t = target.shape[1]
    divisor = steps if steps is not None else t
    index = torch.arange(t, device=target.device)[None, :]
    ends = lengths.to(target.device)[:, None]
    real = (index < ends).float()
    log_p = bivariate_mixture_log_prob(pi_logits, mu_x, mu_y, sigma_x, sigma_y, rho, target[..., 0], target[..., 1])
    offsets = -(log_p * real).sum(dim=1) / divisor
    pen_ce = F.cross_entropy(pen_logits.reshape(-1, 3), target[..., 2:].argmax(dim=-1).reshape(-1),
                             reduction="none").view(target.shape[0], t)
    if pen_to_end:
        pen_ce = pen_ce * (index <= ends).float()
    pen = pen_ce.sum(dim=1) / divisor
    return offsets.mean(), pen.mean()


def kl_per_dimension(mu: torch.Tensor, presig: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, exp(presig)) || N(0, I)) averaged over latent dimensions and the batch (the
    paper's L_KL, divided by N_z)."""
    return -0.5 * (1 + presig - mu.pow(2) - presig.exp()).mean()


def annealed_kl_weight(step: int, weight: float, start: float, decay: float) -> float:
    """The KL weight at a step, rising from `start` towards `weight`: weight - (weight - start) *
    decay**step, as magenta's sketch_rnn (the paper's eta_step = 1 - (1 - eta_min) R**step)."""
    return weight - (weight - start) * decay ** step
