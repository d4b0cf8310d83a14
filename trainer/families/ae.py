"""Convolutional autoencoder family, optionally denoising.

A deterministic encoder image -> z and a decoder z -> image, trained on reconstruction alone
(``denoise_std`` > 0: from inputs with Gaussian noise added, to the clean images). It has no
prior: its manifest declares ``encode`` and ``decode`` but not ``sample``, so the service
serves Encode, Reconstruct and Interpolate between encoded images, and refuses Generate.

Training grids and ``latentforge evaluate RUN_DIR`` still need images from latents; the
family decodes them from a Gaussian fitted to the codes seen in training (running mean and
spread per latent dimension, saved with the weights): ``sample(z)`` reads ``z`` as
standardised codes.
"""

from __future__ import annotations

import torch

from trainer.data import Batch, DataSpec
from trainer.families.base import ExportGraph, Family
from trainer.families.configs import AEConfig
from trainer.losses import reconstruction_loss
from trainer.networks.conv_ae import ConvAE
from trainer.networks.conv_vae import ImageDecoder

INTERPOLATION_STEPS = 8  # images per row of the interpolation grid
INTERPOLATION_ROWS = 4  # 32 images: the loop lays extra grids out 2 * floor(sqrt(16)) = 8 to a row


class AE(Family):
    """Deterministic autoencoder over images in [0, 1]; Bernoulli or Gaussian pixels (config.recon)."""

    name = "ae"
    kind = "ae"
    tasks = {"encode": "encoder", "decode": "decoder"}
    value_range = (0.0, 1.0)

    def __init__(self, config: AEConfig, data: DataSpec, device: torch.device) -> None:
        super().__init__(config, data, device)
        self.config: AEConfig = config
        self.recon = config.recon if config.recon != "auto" else ("bce" if self.shape[0] == 1 else "mse")
        width = max(8, config.width // 2)
        self.modules = {"ae": ConvAE(self.latent_dim, self.shape, width).to(device)}
        self.optimizers = {
            "ae": torch.optim.Adam(self.modules["ae"].parameters(), lr=config.lr, betas=(config.beta1, config.beta2))
        }
        self.train_modules = dict(self.modules)

    def train_step(self, batch: Batch, step: int) -> dict[str, float]:
        images = batch.images
        model, opt = self.train_modules["ae"], self.optimizers["ae"]
        opt.zero_grad(set_to_none=True)
        inputs = images
        if self.config.denoise_std > 0:
            inputs = (images + self.config.denoise_std * torch.randn_like(images)).clamp(0.0, 1.0)
        logits, code = model(inputs)
        loss = reconstruction_loss(logits, images, self.recon)
        loss.backward()
        norm = self.clip(self.modules["ae"], self.config.grad_clip)
        opt.step()
        with torch.no_grad():
            mse = (torch.sigmoid(logits) - images).pow(2).mean().item()
            code_rms = code.pow(2).mean().sqrt().item()
        return {"loss": loss.item(), "mse": mse, "code_rms": code_rms, "grad_norm": norm}

    def _codes(self, z: torch.Tensor) -> torch.Tensor:
        ae = self.modules["ae"]
        return ae.code_mean + ae.code_std * z.to(self.device)

    @torch.no_grad()
    def sample(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """Images in [0, 1] from standardised codes z (decoded at code_mean + code_std * z, the
        Gaussian fitted to the training codes); for grids and run evaluation, not exported."""
        if labels is not None:
            raise ValueError("the autoencoder is unconditional; sample it without labels")
        with self._eval():
            return torch.sigmoid(self.modules["ae"].decoder(self._codes(z)))

    @torch.no_grad()
    def encode(self, images: torch.Tensor) -> torch.Tensor:
        """Codes (N, latent_dim) of images in [0, 1]."""
        with self._eval():
            return self.modules["ae"].encoder(images.to(self.device))

    @torch.no_grad()
    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        """Images in [0, 1] of codes, as the exported decoder computes them."""
        with self._eval():
            return torch.sigmoid(self.modules["ae"].decoder(codes.to(self.device)))

    @torch.no_grad()
    def extra_grids(self, batch: Batch) -> dict[str, torch.Tensor]:
        """Originals beside their reconstructions, and rows of straight-line interpolations
        between the codes of pairs of images (what the service's Interpolate draws)."""
        images = batch.images
        codes = self.encode(images)
        grids = {"recon": torch.stack([images, self.decode(codes)], dim=1).flatten(0, 1)}
        if len(images) >= 2:
            t = torch.linspace(0.0, 1.0, INTERPOLATION_STEPS, device=codes.device)[:, None]
            rows = [codes[(2 * r) % len(codes)].lerp(codes[(2 * r + 1) % len(codes)], t)
                    for r in range(INTERPOLATION_ROWS)]
            grids["interp"] = self.decode(torch.cat(rows))
        return grids

    def export_graphs(self) -> list[ExportGraph]:
        ae = self.modules["ae"].cpu().eval()
        c, h, w = self.shape
        d = self.latent_dim
        return [
            ExportGraph(
                role="decoder",
                module=ImageDecoder(ae.decoder).eval(),
                example_inputs=(torch.randn(2, d),),
                input_names=["z"],
                output_names=["image"],
                make_inputs=lambda n, g: (torch.randn(n, d, generator=g),),
            ),
            ExportGraph(
                role="encoder",
                module=ae.encoder,
                example_inputs=(torch.rand(2, c, h, w),),
                input_names=["image"],
                output_names=["mu"],
                make_inputs=lambda n, g: (torch.rand(n, c, h, w, generator=g),),
            ),
        ]
