"""DCGAN family: adversarial training of a Generator against a Discriminator."""

from __future__ import annotations

import torch

from trainer.data import Batch
from trainer.families.base import ExportGraph, Family
from trainer.families.configs import DCGANConfig
from trainer.losses import gan_loss
from trainer.networks.dcgan import Discriminator, Generator


class DCGAN(Family):
    """Unconditional DCGAN; images in [-1, 1] (tanh), trained with a named GAN loss."""

    name = "dcgan"
    kind = "gan"
    tasks = {"sample": "generator", "decode": "generator"}
    value_range = (-1.0, 1.0)

    def __init__(self, config: DCGANConfig, data, device) -> None:
        super().__init__(config, data, device)
        self.config: DCGANConfig = config
        self.loss = gan_loss(config.gan_loss)
        self.modules = {
            "generator": Generator(self.latent_dim, self.shape, config.width).to(device),
            "discriminator": Discriminator(self.shape, config.width).to(device),
        }
        betas = (config.beta1, config.beta2)
        self.optimizers = {
            "generator": torch.optim.Adam(self.modules["generator"].parameters(), lr=config.lr, betas=betas),
            "discriminator": torch.optim.Adam(
                self.modules["discriminator"].parameters(), lr=config.lr_d or config.lr, betas=betas
            ),
        }
        self.train_modules = dict(self.modules)

    def train_step(self, batch: Batch, step: int) -> dict[str, float]:
        G, D = self.train_modules["generator"], self.train_modules["discriminator"]
        opt_g, opt_d = self.optimizers["generator"], self.optimizers["discriminator"]
        real = batch.images * 2.0 - 1.0
        z = torch.randn(real.shape[0], self.latent_dim, device=self.device)
        fake = G(z)

        # Discriminator: real and fake halves each get their own forward/backward.
        opt_d.zero_grad(set_to_none=True)
        real_logits = D(real)
        loss_real = self.loss.real(real_logits)
        loss_real.backward()
        fake_logits = D(fake.detach())
        loss_fake = self.loss.fake(fake_logits)
        loss_fake.backward()
        d_norm = self.clip(self.modules["discriminator"], self.config.grad_clip)
        opt_d.step()

        # Generator: fool the freshly updated discriminator.
        opt_g.zero_grad(set_to_none=True)
        gen_logits = D(fake)
        loss_g = self.loss.generator(gen_logits)
        loss_g.backward()
        g_norm = self.clip(self.modules["generator"], self.config.grad_clip)
        opt_g.step()

        return {
            "loss_d": (loss_real + loss_fake).item(),
            "loss_g": loss_g.item(),
            "d_real": torch.sigmoid(real_logits).mean().item(),
            "d_fake": torch.sigmoid(fake_logits).mean().item(),
            "grad_norm_d": d_norm,
            "grad_norm_g": g_norm,
        }

    @torch.no_grad()
    def sample(self, z: torch.Tensor) -> torch.Tensor:
        with self._eval():
            return (self.modules["generator"](z.to(self.device)) + 1.0) / 2.0

    def export_graphs(self) -> list[ExportGraph]:
        gen = self.modules["generator"].cpu().eval()
        return [
            ExportGraph(
                role="generator",
                module=gen,
                example_inputs=(torch.randn(2, self.latent_dim),),
                input_names=["z"],
                output_names=["image"],
                make_inputs=lambda n, g: (torch.randn(n, self.latent_dim, generator=g),),
            )
        ]


