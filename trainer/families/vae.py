"""Convolutional VAE family: ELBO with a beta weight and linear KL warm-up."""

from __future__ import annotations

import torch
from torch import nn

from trainer.data import Batch
from trainer.families.base import ExportGraph, Family
from trainer.families.configs import VAEConfig
from trainer.losses import kl_divergence, kl_weight, reconstruction_loss
from trainer.networks.conv_vae import ConvVAE


class _ImageDecoder(nn.Module):
    """Exported decoder: z -> image in [0, 1] (sigmoid of the logits)."""

    def __init__(self, vae: ConvVAE) -> None:
        super().__init__()
        self.decoder = vae.decoder

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.decoder(z))


class VAE(Family):
    """Gaussian-latent VAE over images in [0, 1]; Bernoulli or Gaussian pixels (config.recon)."""

    name = "vae"
    kind = "vae"
    tasks = {"sample": "decoder", "decode": "decoder", "encode": "encoder"}
    value_range = (0.0, 1.0)

    def __init__(self, config: VAEConfig, data, device) -> None:
        super().__init__(config, data, device)
        self.config: VAEConfig = config
        self.recon = config.recon if config.recon != "auto" else ("bce" if self.shape[0] == 1 else "mse")
        width = max(8, config.width // 2)
        self.modules = {"vae": ConvVAE(self.latent_dim, self.shape, width).to(device)}
        self.optimizers = {
            "vae": torch.optim.Adam(self.modules["vae"].parameters(), lr=config.lr,
                                    betas=(config.beta1, config.beta2))
        }
        self.train_modules = dict(self.modules)

    def train_step(self, batch: Batch, step: int) -> dict[str, float]:
        images = batch.images
        model, opt = self.train_modules["vae"], self.optimizers["vae"]
        opt.zero_grad(set_to_none=True)
        eps = torch.randn(images.shape[0], self.latent_dim, device=self.device)
        logits, mu, logvar = model(images, eps)
        recon = reconstruction_loss(logits, images, self.recon)
        kl = kl_divergence(mu, logvar)
        weight = kl_weight(step, self.config.beta, self.config.kl_warmup_steps)
        loss = recon + weight * kl
        loss.backward()
        norm = self.clip(self.modules["vae"], self.config.grad_clip)
        opt.step()
        return {
            "loss": loss.item(),
            "recon": recon.item(),
            "kl": kl.item(),
            "kl_weight": weight,
            "elbo": -(recon.item() + kl.item()),
            "grad_norm": norm,
        }

    @torch.no_grad()
    def sample(self, z: torch.Tensor) -> torch.Tensor:
        with self._eval():
            return torch.sigmoid(self.modules["vae"].decoder(z.to(self.device)))

    @torch.no_grad()
    def extra_grids(self, batch: Batch) -> dict[str, torch.Tensor]:
        """Originals and their reconstructions (from the posterior mean), interleaved by row."""
        images = batch.images
        with self._eval():
            vae = self.modules["vae"]
            mu, _ = vae.encoder(images)
            recon = torch.sigmoid(vae.decoder(mu))
        return {"recon": torch.stack([images, recon], dim=1).flatten(0, 1)}

    def export_graphs(self) -> list[ExportGraph]:
        vae = self.modules["vae"].cpu().eval()
        c, h, w = self.shape
        return [
            ExportGraph(
                role="decoder",
                module=_ImageDecoder(vae).eval(),
                example_inputs=(torch.randn(2, self.latent_dim),),
                input_names=["z"],
                output_names=["image"],
                make_inputs=lambda n, g: (torch.randn(n, self.latent_dim, generator=g),),
            ),
            ExportGraph(
                role="encoder",
                module=vae.encoder,
                example_inputs=(torch.rand(2, c, h, w),),
                input_names=["image"],
                output_names=["mu", "logvar"],
                make_inputs=lambda n, g: (torch.rand(n, c, h, w, generator=g),),
            ),
        ]
