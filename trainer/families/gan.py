"""DCGAN family: adversarial training of a Generator against a Discriminator.

Options (trainer.families.configs.DCGANConfig); the defaults were picked from the ablation in
docs/benchmarks/quality.md (EMA on, lr 1e-3, conditional on labelled data), the rest are off:

* ``ema_decay``: an exponential moving average of the generator's weights (trainer.ema); the
  average is what grids show, what `sample` draws with and what `export_graphs` exports.
* ``spectral_norm``: spectral normalisation in D in place of its BatchNorm.
* ``r1_gamma`` / ``r1_every``: the R1 penalty (Mescheder et al. 2018), gamma/2 * |grad_x D(x)|^2
  on real images, computed every ``r1_every`` steps and scaled by ``r1_every`` (lazy
  regularisation, as in StyleGAN2, Karras et al. 2020).
* ``augment``: DiffAugment (trainer.augment) on real and generated images before D, in D's
  step and G's step alike.
* ``conditional``: class-conditional networks on labelled data (trainer.networks.dcgan); the
  generator's fakes take the labels of the real batch beside them, so classes are drawn as
  often as the data holds them. Unset (the default), a run is conditional when its data has
  labels; ``--no-conditional`` trains an unconditional model on labelled data.

Under DistributedDataParallel: the generator's step runs through the plain discriminator
(never its wrapper) with D's parameters frozen, since D's gradients there would be thrown
away: they are neither computed nor all-reduced. D's own step all-reduces once, not once per
half: the real half's backward runs under `no_sync`, the fake half's reduces the sum.
"""

from __future__ import annotations

from contextlib import contextmanager, nullcontext
from typing import Any, Callable, ContextManager, Iterator

import torch
from torch import nn

from trainer.augment import diff_augment, parse_policy
from trainer.data import Batch, DataError
from trainer.ema import EMA
from trainer.families.base import ExportGraph, Family
from trainer.families.configs import DCGANConfig
from trainer.losses import gan_loss
from trainer.networks.dcgan import Discriminator, Generator

# The class grid's latents: fixed, and drawn from their own generator so that grids never
# touch the training's random stream (a resumed run must draw what a straight one draws).
_GRID_SEED = 0


class AdversarialFamily(Family):
    """What the families trained as a generator against a discriminator share: the two trained
    networks (wrapped for DDP, the generator's weight average never), two-time-scale learning
    rates and Adam's betas from the config, and a resume that starts the average when a run
    trained without it continues with it. Subclasses set ``modules``, ``optimizers``, ``ema``."""

    ema: EMA | None

    @staticmethod
    def _trained(modules: dict[str, nn.Module]) -> dict[str, nn.Module]:
        return {k: modules[k] for k in ("generator", "discriminator")}

    def wrap(self, wrapper: Callable[[nn.Module], nn.Module]) -> None:
        """Wrap the two trained networks; the weight average is never trained, so never wrapped."""
        self.train_modules = {k: wrapper(m) for k, m in self._trained(self.modules).items()}

    def _set_hyperparameters(self) -> None:
        """Learning rates (two time-scales: lr for G, lr_d for D) and Adam's betas from the
        config; applied again after a resume, since an optimiser's saved state carries its own."""
        c = self.config
        for name, lr in (("generator", c.lr), ("discriminator", c.lr_d if c.lr_d is not None else c.lr)):
            for group in self.optimizers[name].param_groups:
                group["lr"] = lr
                group["betas"] = (c.beta1, c.beta2)

    def load_state(self, state: dict[str, Any], with_optimizers: bool = True) -> None:
        modules = state["modules"]
        if self.ema is not None and "generator_ema" not in modules:
            # A run trained without the average and continued with it: the average starts here.
            modules = {**modules, "generator_ema": modules["generator"]}
        super().load_state({**state, "modules": modules}, with_optimizers)
        if with_optimizers:
            self._set_hyperparameters()


class DCGAN(AdversarialFamily):
    """DCGAN, optionally class-conditional; images in [-1, 1] (tanh), trained with a named GAN loss."""

    name = "dcgan"
    kind = "gan"
    tasks = {"sample": "generator", "decode": "generator"}
    value_range = (-1.0, 1.0)

    def __init__(self, config: DCGANConfig, data, device) -> None:
        labelled = "labels" in data.fields and data.num_classes > 0
        if config.conditional and not labelled:
            raise DataError(f"--conditional trains on class labels, and {data.source} has none; use labelled data "
                            "(mnist5k, or an image folder with one subfolder per class) or leave out --conditional")
        super().__init__(config, data, device)
        self.config: DCGANConfig = config
        # Unset: conditional exactly when the data has labels (docs/benchmarks/quality.md: on
        # mnist5k the conditional model is better on every measure, and its classes come out
        # balanced by construction).
        conditional = labelled if config.conditional is None else config.conditional
        self.num_classes = data.num_classes if conditional else 0
        self.loss = gan_loss(config.gan_loss)
        self.policy = parse_policy(config.augment)
        self.modules = {
            "generator": Generator(self.latent_dim, self.shape, config.width, self.num_classes).to(device),
            "discriminator": Discriminator(self.shape, config.width, config.spectral_norm,
                                           self.num_classes).to(device),
        }
        self.ema: EMA | None = None
        if config.ema_decay > 0:
            self.ema = EMA(self.modules["generator"], config.ema_decay)
            self.modules["generator_ema"] = self.ema.shadow  # saved and restored with the others
        self.optimizers = {
            "generator": torch.optim.Adam(self.modules["generator"].parameters()),
            "discriminator": torch.optim.Adam(self.modules["discriminator"].parameters()),
        }
        self._set_hyperparameters()
        self.train_modules = self._trained(self.modules)

    # --- training -----------------------------------------------------------------------
    def _augment(self, images: torch.Tensor) -> torch.Tensor:
        return diff_augment(images, self.policy) if self.policy else images

    def train_step(self, batch: Batch, step: int) -> dict[str, float]:
        c = self.config
        G, D = self.train_modules["generator"], self.train_modules["discriminator"]
        plain_d = self.modules["discriminator"]
        opt_g, opt_d = self.optimizers["generator"], self.optimizers["discriminator"]
        real = batch.images * 2.0 - 1.0
        # Fakes take the real batch's labels: classes come as often as the data holds them.
        cond = (batch.labels,) if self.num_classes else ()
        z = torch.randn(real.shape[0], self.latent_dim, device=self.device)
        fake = G(z, *cond)

        # Discriminator: real and fake halves each get their own forward/backward; under DDP
        # the real half's gradients stay local and are all-reduced once, summed with the fake's.
        opt_d.zero_grad(set_to_none=True)
        r1_now = c.r1_gamma > 0 and step % c.r1_every == 0
        extra: dict[str, float] = {}
        with _no_sync(D):
            real_in = real.detach().requires_grad_(True) if r1_now else real
            real_logits = D(self._augment(real_in), *cond)
            loss_real = self.loss.real(real_logits)
            if r1_now:
                (grad,) = torch.autograd.grad(real_logits.sum(), real_in, create_graph=True)
                r1 = grad.pow(2).flatten(1).sum(dim=1).mean()
                (loss_real + (c.r1_gamma / 2) * c.r1_every * r1).backward()
                extra["r1"] = r1.item()
            else:
                loss_real.backward()
        fake_logits = D(self._augment(fake.detach()), *cond)
        loss_fake = self.loss.fake(fake_logits)
        loss_fake.backward()
        d_norm = self.clip(plain_d, c.grad_clip)
        opt_d.step()

        # Generator: fool the freshly updated discriminator, through the plain module with its
        # weights frozen, so D's unused gradients are neither computed nor all-reduced.
        opt_g.zero_grad(set_to_none=True)
        with _frozen(plain_d):
            gen_logits = plain_d(self._augment(fake), *cond)
            loss_g = self.loss.generator(gen_logits)
            loss_g.backward()
        g_norm = self.clip(self.modules["generator"], c.grad_clip)
        opt_g.step()
        if self.ema is not None:
            self.ema.update(self.modules["generator"], step)

        return {
            "loss_d": (loss_real + loss_fake).item(),
            "loss_g": loss_g.item(),
            "d_real": torch.sigmoid(real_logits).mean().item(),
            "d_fake": torch.sigmoid(fake_logits).mean().item(),
            "grad_norm_d": d_norm,
            "grad_norm_g": g_norm,
            **extra,
        }

    # --- sampling and export ------------------------------------------------------------
    @property
    def generator(self) -> nn.Module:
        """The generator that draws: the weight average when there is one, else the trained one."""
        return self.ema.shadow if self.ema is not None else self.modules["generator"]

    def balanced_labels(self, n: int) -> torch.Tensor:
        """Labels 0, 1, ..., K-1, 0, 1, ... for n samples of a conditional model."""
        return torch.arange(n, dtype=torch.int64) % self.num_classes

    @torch.no_grad()
    def sample(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """Images in [0, 1] from latents; a conditional model takes labels (N,), balanced over
        the classes when None."""
        cond: tuple[torch.Tensor, ...] = ()
        if self.num_classes:
            labels = self.balanced_labels(len(z)) if labels is None else torch.as_tensor(labels)
            cond = (labels.to(device=self.device, dtype=torch.int64),)
        elif labels is not None:
            raise ValueError("this model is unconditional; sample it without labels")
        with self._eval():
            return (self.generator(z.to(self.device), *cond) + 1.0) / 2.0

    @torch.no_grad()
    def extra_grids(self, batch: Batch) -> dict[str, torch.Tensor]:
        """A conditional model's class grid: one row per class, 2K images a row (K classes),
        from fixed latents, so the rows are comparable from grid to grid."""
        k = self.num_classes
        if not k:
            return {}
        z = torch.randn(2 * k, self.latent_dim, generator=torch.Generator().manual_seed(_GRID_SEED))
        labels = torch.arange(k).repeat_interleave(2 * k)
        return {"classes": self.sample(z.repeat(k, 1), labels)}

    def export_graphs(self) -> list[ExportGraph]:
        """The generator (the weight average when the run kept one): z [+ labels] -> image.

        A conditional generator's `labels` input (int64 (N,)) is required: no class is a
        sensible default for a caller who leaves it out.
        """
        gen = self.generator.cpu().eval()
        dim, k = self.latent_dim, self.num_classes
        if not k:
            return [ExportGraph(
                role="generator",
                module=gen,
                example_inputs=(torch.randn(2, dim),),
                input_names=["z"],
                output_names=["image"],
                make_inputs=lambda n, g: (torch.randn(n, dim, generator=g),),
            )]
        return [ExportGraph(
            role="generator",
            module=gen,
            example_inputs=(torch.randn(2, dim), torch.tensor([0, k - 1], dtype=torch.int64)),
            input_names=["z", "labels"],
            output_names=["image"],
            make_inputs=lambda n, g: (torch.randn(n, dim, generator=g),
                                      torch.randint(0, k, (n,), generator=g, dtype=torch.int64)),
        )]


def _no_sync(module: nn.Module) -> ContextManager[None]:
    """DistributedDataParallel's `no_sync` (gradients accumulate locally, the next backward
    outside it all-reduces their sum); nothing for a plain module."""
    no_sync = getattr(module, "no_sync", None)
    return no_sync() if no_sync is not None else nullcontext()


@contextmanager
def _frozen(module: nn.Module) -> Iterator[None]:
    """The module's parameters need no gradient inside (its forward still back-propagates to
    its inputs); their flags are restored after."""
    params = [p for p in module.parameters() if p.requires_grad]
    for p in params:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p in params:
            p.requires_grad_(True)
