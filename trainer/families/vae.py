"""Convolutional VAE family: ELBO with a beta weight and linear KL warm-up.

Options beyond the plain ELBO (trainer.families.configs.VAEConfig):

- ``conditional``: a class-conditional VAE (decoder p(x | z, y), encoder q(z | x)); the data
  must carry labels. Exported, the decoder takes ``labels`` int64 (N,) beside ``z``, marked
  optional as the manifest's decode contract has it (left out: class 0); the encoder takes
  the image alone, so Encode needs no label. A call that decodes without a label (the
  service's Reconstruct, whose request has no label field) therefore draws class 0.
- ``recon="gaussian"``: Gaussian pixels with one shared variance set to its optimum for each
  batch (the mean squared error), as in "Simple and Effective VAE Training with Calibrated
  Decoders" (Rybkin et al. 2021): the reconstruction is weighed against the KL term by the
  decoder's own error instead of a fixed variance.
- ``perceptual``: a feature-matching term, the squared distance between the features of an
  image and of its reconstruction in a feature network of the project's quality meter
  (trainer.quality.features), trained on the same data with another seed than the meter
  that scores the model, so the score is not the objective.
- ``temperature``: prior latents scaled by it for training grids and run evaluation.
- ``prior``: ``mixture`` (the default) fits a Gaussian mixture of ``prior_components`` to the
  encoder's means of the training data whenever the run is scored and at its end
  (``prepare_snapshot``; trainer.priors), so grids, scores and the exported ``prior`` graph
  draw latents where the decoder was trained; ``normal`` keeps the standard normal.
  docs/benchmarks/vae_quality.md measures both.
"""

from __future__ import annotations

import copy
import logging
import math
from dataclasses import replace

import torch
from torch import nn

from trainer.data import Batch, DataError, DataSpec, TrainingData
from trainer.families.base import ExportGraph, Family
from trainer.families.configs import VAEConfig
from trainer.losses import kl_divergence, kl_weight, reconstruction_loss
from trainer.networks.conv_vae import ConvVAE, ImageDecoder
from trainer.priors import GaussianMixturePrior
from trainer.quality.features import DEFAULT_SETTINGS, meter_for

log = logging.getLogger(__name__)

MIN_LOG_SIGMA = -6.0  # floor of the learned pixel noise (log std), so a perfect fit stays finite
# The perceptual term's feature network: the meter's, trained with another seed than the one
# that scores models (seed 0), so the score is not the objective.
PERCEPTUAL_SETTINGS = replace(DEFAULT_SETTINGS, seed=1)
MAX_CLASS_GRID = 16  # up to this many classes, a grid with one row per class is drawn
ENCODE_CHUNK = 500  # images per encoder pass while fitting the prior


def gaussian_nll(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Negative log-likelihood per image (averaged over the batch) under Gaussian pixels with mean
    sigmoid(logits) and one variance, set to its maximum-likelihood value: the batch's mean
    squared error (no gradient through it; the gradient is the same either way)."""
    squared = (torch.sigmoid(logits) - target).pow(2).flatten(1)
    log_sigma = (0.5 * squared.mean().detach().log()).clamp(min=MIN_LOG_SIGMA)
    per_pixel = squared / (2 * torch.exp(2 * log_sigma)) + log_sigma + 0.5 * math.log(2 * math.pi)
    return per_pixel.sum(dim=1).mean()


def labelled(data: DataSpec, family: str) -> int:
    """The class count of labelled data, or a DataError saying what conditional training needs."""
    if "labels" not in data.fields or data.num_classes < 1:
        raise DataError(f"a conditional {family} trains on labelled data, but {data.source} gives "
                        f"{', '.join(data.fields)} without labels; use mnist5k, an image folder with one "
                        "subfolder per class, or a .npz with labels (or leave out --conditional)")
    return data.num_classes


def balanced_labels(n: int, num_classes: int) -> torch.Tensor:
    """Labels 0, 1, ..., K-1, 0, ... for n samples."""
    return torch.arange(n, dtype=torch.int64) % num_classes


class VAE(Family):
    """Gaussian-latent VAE over images in [0, 1]; Bernoulli or Gaussian pixels (config.recon)."""

    name = "vae"
    kind = "vae"
    tasks = {"sample": "decoder", "decode": "decoder", "encode": "encoder"}
    value_range = (0.0, 1.0)

    def __init__(self, config: VAEConfig, data: DataSpec, device: torch.device) -> None:
        num_classes = labelled(data, self.name) if config.conditional else 0
        super().__init__(config, data, device)
        self.config: VAEConfig = config
        self.num_classes = num_classes
        self.recon = config.recon if config.recon != "auto" else ("bce" if self.shape[0] == 1 else "mse")
        width = max(8, config.width // 2)
        self.modules = {"vae": ConvVAE(self.latent_dim, self.shape, width, num_classes).to(device)}
        self.optimizers = {
            "vae": torch.optim.Adam(self.modules["vae"].parameters(), lr=config.lr,
                                    betas=(config.beta1, config.beta2))
        }
        self.train_modules = dict(self.modules)
        self._features: nn.Module | None = None  # the perceptual term's, loaded on the first step
        # The mixture prior: the standard normal (every component N(0, I)) until its first fit.
        self.prior = (GaussianMixturePrior(config.prior_components, self.latent_dim).to(device)
                      if config.prior == "mixture" else None)
        self._prior_step: int | None = None
        self.tasks = {**self.tasks, "prior": "prior"} if self.prior is not None else dict(self.tasks)

    def state(self) -> dict:
        state = super().state()
        if self.prior is not None:
            state["prior"] = self.prior.state_dict()
        return state

    def load_state(self, state: dict, with_optimizers: bool = True) -> None:
        super().load_state(state, with_optimizers)
        if self.prior is not None and "prior" in state:  # a checkpoint from before the prior: N(0, I)
            self.prior.load_state_dict(state["prior"])

    @torch.no_grad()
    def prepare_snapshot(self, data: TrainingData, step: int) -> None:
        """Fit the mixture prior to the encoder's means of the training images (once per step)."""
        if self.prior is None or self._prior_step == step:
            return
        encoder = self.modules["vae"].encoder
        with self._eval():
            codes = torch.cat([encoder(torch.from_numpy(data.images[i:i + ENCODE_CHUNK]).to(self.device))[0]
                               for i in range(0, len(data.images), ENCODE_CHUNK)])
        self.prior.fit(codes, seed=0)
        self._prior_step = step

    def _feature_net(self) -> nn.Module:
        """The frozen feature network of the perceptual term: a meter of the training data
        (trainer.quality.features), trained once and cached; not needed to export or sample."""
        if self._features is not None:
            return self._features
        c, h, _ = self.shape
        meter = meter_for(self.data.source, image_size=h, channels=c, settings=PERCEPTUAL_SETTINGS)
        log.info("perceptual term: features of the %s meter %s", meter.kind, meter.path.name)
        net = copy.deepcopy(meter.net).to(self.device).eval()  # the meter's own stays as it is
        for p in net.parameters():
            p.requires_grad_(False)
        self._features = net
        return net

    def _labels(self, batch: Batch) -> torch.Tensor | None:
        return batch.labels if self.num_classes else None

    def train_step(self, batch: Batch, step: int) -> dict[str, float]:
        images = batch.images
        model, opt = self.train_modules["vae"], self.optimizers["vae"]
        opt.zero_grad(set_to_none=True)
        eps = torch.randn(images.shape[0], self.latent_dim, device=self.device)
        logits, mu, logvar = model(images, eps, self._labels(batch))
        if self.recon == "gaussian":
            recon = gaussian_nll(logits, images)
        else:
            recon = reconstruction_loss(logits, images, self.recon)
        kl = kl_divergence(mu, logvar)
        weight = kl_weight(step, self.config.beta, self.config.kl_warmup_steps)
        loss = recon + weight * kl
        metrics = {}
        if self.config.perceptual > 0:
            net = self._feature_net()
            perceptual = (net.features(torch.sigmoid(logits)) - net.features(images)).pow(2).sum(dim=1).mean()
            loss = loss + self.config.perceptual * perceptual
            metrics["perceptual"] = perceptual.item()
        loss.backward()
        norm = self.clip(self.modules["vae"], self.config.grad_clip)
        opt.step()
        with torch.no_grad():
            mse = (torch.sigmoid(logits) - images).pow(2).mean().item()
        return {
            "loss": loss.item(),
            "recon": recon.item(),
            "kl": kl.item(),
            "kl_weight": weight,
            "elbo": -(recon.item() + kl.item()),
            "mse": mse,
            **metrics,
            "grad_norm": norm,
        }

    def latents(self, n: int, generator: torch.Generator) -> torch.Tensor:
        """Prior latents at the configured temperature (the mixture's noise scaled by it)."""
        if self.prior is not None:
            return self.prior.sample(n, generator, self.config.temperature).cpu()
        return self.config.temperature * torch.randn(n, self.latent_dim, generator=generator)

    @torch.no_grad()
    def sample(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """Images in [0, 1] from latents; a conditional VAE draws `labels` (int64 (N,)), or
        balanced classes 0, 1, ..., K-1, 0, ... when they are None."""
        if self.num_classes and labels is None:
            labels = balanced_labels(len(z), self.num_classes)
        elif not self.num_classes and labels is not None:
            raise ValueError("this VAE is unconditional; sample it without labels")
        with self._eval():
            z = z.to(self.device)
            labels = None if labels is None else labels.to(self.device, torch.int64)
            return torch.sigmoid(self.modules["vae"].decoder(z, labels))

    @torch.no_grad()
    def reconstruct(self, images: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """Images through the encoder's mean and back (a conditional VAE decodes with `labels`)."""
        with self._eval():
            vae = self.modules["vae"]
            mu, _ = vae.encoder(images.to(self.device))
            labels = labels.to(self.device) if self.num_classes and labels is not None else None
            if self.num_classes and labels is None:
                raise ValueError("a conditional VAE reconstructs with the images' labels")
            return torch.sigmoid(vae.decoder(mu, labels))

    @torch.no_grad()
    def extra_grids(self, batch: Batch) -> dict[str, torch.Tensor]:
        """Originals and their reconstructions (from the posterior mean), interleaved by row; a
        conditional VAE adds one row per class (2K samples each, the same latents in every row)."""
        images = batch.images
        recon = self.reconstruct(images, self._labels(batch))
        grids = {"recon": torch.stack([images, recon], dim=1).flatten(0, 1)}
        k = self.num_classes
        if 0 < k <= MAX_CLASS_GRID:
            # 2K^2 images: the loop lays extra grids out 2 * floor(sqrt(n / 2)) = 2K to a row.
            z = self.latents(2 * k, torch.Generator().manual_seed(0)).repeat(k, 1)
            labels = torch.arange(k, dtype=torch.int64).repeat_interleave(2 * k)
            grids["classes"] = self.sample(z, labels)
        return grids

    def export_graphs(self) -> list[ExportGraph]:
        vae = self.modules["vae"].cpu().eval()
        c, h, w = self.shape
        d, k = self.latent_dim, self.num_classes
        if k:
            decoder = ExportGraph(
                role="decoder",
                module=ImageDecoder(vae.decoder).eval(),
                example_inputs=(torch.randn(2, d), torch.tensor([0, k - 1], dtype=torch.int64)),
                input_names=["z", "labels"],
                output_names=["image"],
                make_inputs=lambda n, g: (torch.randn(n, d, generator=g), torch.randint(0, k, (n,), generator=g)),
                optional_inputs=("labels",),
            )
        else:
            decoder = ExportGraph(
                role="decoder",
                module=ImageDecoder(vae.decoder).eval(),
                example_inputs=(torch.randn(2, d),),
                input_names=["z"],
                output_names=["image"],
                make_inputs=lambda n, g: (torch.randn(n, d, generator=g),),
            )
        graphs = [decoder]
        if self.prior is not None:
            graphs.append(ExportGraph(
                role="prior",
                module=copy.deepcopy(self.prior).cpu().eval(),
                example_inputs=(torch.randn(2, d), torch.tensor([0.1, 0.9])),
                input_names=["noise", "u"],
                output_names=["z"],
                make_inputs=lambda n, g: (torch.randn(n, d, generator=g), torch.rand(n, generator=g)),
            ))
        return graphs + [
            ExportGraph(
                role="encoder",
                module=vae.encoder,
                example_inputs=(torch.rand(2, c, h, w),),
                input_names=["image"],
                output_names=["mu", "logvar"],
                make_inputs=lambda n, g: (torch.rand(n, c, h, w, generator=g),),
            ),
        ]
