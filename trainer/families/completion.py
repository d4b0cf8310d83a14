"""Image completion family: a U-Net fills the hole of a masked image, z choosing among fillings.

The generator (trainer.networks.unet) takes the image with its hole zeroed, the mask (1 =
known pixel, 0 = hole, ``latentforge.manifest.MASK_CONVENTION``) and a latent z, and draws a
whole image; the known pixels are then put back (``latentforge.completion.composite``), so a
completion returns them exactly. The exported graph does the same in one ONNX graph:
(image, mask, z) -> image.

Training (context encoders, Pathak et al. 2016, with z made to matter): every batch gets
random masks (``latentforge.completion.training_masks``: rectangles, free-form strokes and
half-image masks, drawn once into a pool and varied by flips and transposes), and

* an L1 reconstruction loss on the hole, best-of-K: each image is completed with K latents
  and only the candidate nearest the truth is pulled to it. A plain reconstruction loss
  (K = 1) has one optimum, the mean filling, so the generator learns to ignore z; with K
  candidates, each may specialise in one plausible filling.
* an adversarial loss from a discriminator that sees the whole composited image (real
  images against every candidate): it keeps the candidates that are not pulled to the
  truth sharp and plausible, and the seams invisible.
* optionally a mode-seeking term (Mao et al. 2019) that rewards two candidates for
  differing in proportion to their latents.
* with ``first_candidate`` "mode" (the default), one more candidate per image with z = 0,
  always pulled to the truth by plain L1 (weight ``mode_weight``) and seen by the
  discriminator like the rest: z = 0 learns the most likely filling, the other latents the
  alternatives. The manifest records it (``conventions["first_candidate"]``) and the service
  returns it as candidate 0.

The defaults come from docs/benchmarks/completion_ablation.md. The family's runs hold out
the meter's held-out split by default (``default_hold_out``), so the digits the meter
completes were never seen in training.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from latentforge.completion import EVAL_MASKS, eval_mask, training_masks
from latentforge.manifest import FIRST_CANDIDATE_MODE, MASK_CONVENTION, TASK_CONTRACTS
from trainer.data import Batch, DataSpec
from trainer.ema import EMA
from trainer.families.base import ExportGraph
from trainer.families.configs import CompletionConfig
from trainer.families.gan import AdversarialFamily, _frozen, _no_sync
from trainer.losses import gan_loss
from trainer.networks.dcgan import Discriminator
from trainer.networks.unet import CompletionGraph, CompletionUNet

# The exported graph's tensor names: the manifest's contract of the complete task (image, mask, z).
COMPLETE_INPUTS, COMPLETE_OUTPUTS = (tuple(names) for names in TASK_CONTRACTS["complete"])
_MASK_POOL_SEED = 20160425  # the training masks' pool is the same in every run of a shape
_GRID_SEED = 0  # the grids' latents come from their own generator: grids never touch training's streams
BANK_SIZE = 64  # images `sample` completes (the first training batch's, kept in the checkpoint)
GRID_ROWS, GRID_CANDIDATES = 6, 6  # completion grid: rows of [input, original, 6 candidates]
HOLE_SHADE = 0.5  # how the grids show a hole in the masked input


class Completion(AdversarialFamily):
    """U-Net completer with a discriminator; images in [0, 1] (sigmoid)."""

    name = "completion"
    kind = "completion"
    tasks = {"complete": "completer"}
    conventions = {"mask": MASK_CONVENTION}
    value_range = (0.0, 1.0)
    default_hold_out = 0.2  # the meter's held-out share: completions are scored on unseen images

    def __init__(self, config: CompletionConfig, data: DataSpec, device: torch.device) -> None:
        super().__init__(config, data, device)
        self.config: CompletionConfig = config
        self.mode_first = config.first_candidate == "mode"
        if self.mode_first:
            self.conventions = {**self.conventions, "first_candidate": FIRST_CANDIDATE_MODE}
        self.loss = gan_loss(config.gan_loss)
        self.modules = {
            "generator": CompletionUNet(self.latent_dim, self.shape, config.width, config.z_inject).to(device),
            "discriminator": Discriminator(self.shape, config.width).to(device),
        }
        self.ema: EMA | None = None
        if config.ema_decay > 0:
            self.ema = EMA(self.modules["generator"], config.ema_decay)
            self.modules["generator_ema"] = self.ema.shadow
        self.optimizers = {
            "generator": torch.optim.Adam(self.modules["generator"].parameters()),
            "discriminator": torch.optim.Adam(self.modules["discriminator"].parameters()),
        }
        self._set_hyperparameters()
        self.train_modules = self._trained(self.modules)
        self.bank = torch.zeros(0, *self.shape)  # images `sample` completes, filled by the first batch
        self._pool: torch.Tensor | None = None  # training masks, uint8 (P, 1, H, W), built on first use
        self._eval_masks: dict[int, torch.Tensor] = {}

    def state(self) -> dict[str, Any]:
        return {**super().state(), "bank": self.bank.cpu()}

    def load_state(self, state: dict[str, Any], with_optimizers: bool = True) -> None:
        super().load_state(state, with_optimizers)
        bank = state.get("bank")
        if isinstance(bank, torch.Tensor):
            self.bank = bank.float().cpu()

    # --- masks --------------------------------------------------------------------------
    def _mask_pool(self) -> torch.Tensor:
        if self._pool is None:
            _, h, w = self.shape
            size = 2048 if h * w <= 32 * 32 else 1024
            masks = training_masks(np.random.default_rng(_MASK_POOL_SEED), size, h, w)
            self._pool = torch.from_numpy(masks).to(torch.uint8).to(self.device)
        return self._pool

    def training_masks(self, n: int) -> torch.Tensor:
        """n random training masks (n, 1, H, W) float: pool entries, each flipped and (square
        images) transposed at random, drawn from the training's torch stream (exact resume)."""
        pool = self._mask_pool()
        index = torch.randint(0, len(pool), (n,))
        flips = torch.rand(3, n) < 0.5
        m = pool[index.to(self.device)].float()
        m = torch.where(flips[0].to(self.device)[:, None, None, None], m.flip(2), m)
        m = torch.where(flips[1].to(self.device)[:, None, None, None], m.flip(3), m)
        if m.shape[2] == m.shape[3]:
            m = torch.where(flips[2].to(self.device)[:, None, None, None], m.transpose(2, 3), m)
        return m

    def eval_masks(self, n: int) -> torch.Tensor:
        """n fixed masks (n, 1, H, W), cycling through latentforge.completion.EVAL_MASKS."""
        if n not in self._eval_masks:
            _, h, w = self.shape
            masks = [eval_mask(EVAL_MASKS[i % len(EVAL_MASKS)], h, w, np.random.default_rng(i)) for i in range(n)]
            self._eval_masks[n] = torch.from_numpy(np.stack(masks))
        return self._eval_masks[n].to(self.device)

    # --- training -----------------------------------------------------------------------
    def train_step(self, batch: Batch, step: int) -> dict[str, float]:
        c = self.config
        G, D = self.train_modules["generator"], self.train_modules["discriminator"]
        plain_d = self.modules["discriminator"]
        opt_g, opt_d = self.optimizers["generator"], self.optimizers["discriminator"]
        images = batch.images
        if len(self.bank) == 0:
            self.bank = images[:BANK_SIZE].detach().float().cpu().clone()
        n, k = len(images), c.candidates
        masks = self.training_masks(n)
        rows = k + int(self.mode_first)  # the z = 0 candidate comes last
        x, m = images.repeat(rows, 1, 1, 1), masks.repeat(rows, 1, 1, 1)  # candidate-major: row j * n + i
        z = torch.randn(k * n, self.latent_dim, device=self.device)
        if self.mode_first:
            z = torch.cat([z, torch.zeros(n, self.latent_dim, device=self.device)])
        out = G(x * m, m, z)
        composited = m * x + (1.0 - m) * out
        errors = hole_l1(out, x, m).view(rows, n)
        recon = errors[:k].min(dim=0).values.mean()
        generated, z = out[:k * n], z[:k * n]  # the sampled candidates, for the spread and mode seeking
        metrics: dict[str, float] = {}
        if self.mode_first:
            recon_mode = errors[k].mean()
            metrics["recon_mode"] = recon_mode.item()
        use_adv = c.adv_weight > 0

        if use_adv:
            opt_d.zero_grad(set_to_none=True)
            with _no_sync(D):
                real_logits = D(images * 2.0 - 1.0)
                loss_real = self.loss.real(real_logits)
                loss_real.backward()
            fake_logits = D(composited.detach() * 2.0 - 1.0)
            loss_fake = self.loss.fake(fake_logits)
            loss_fake.backward()
            metrics["grad_norm_d"] = self.clip(plain_d, c.grad_clip)
            opt_d.step()
            metrics.update(loss_d=(loss_real + loss_fake).item(), d_real=torch.sigmoid(real_logits).mean().item(),
                           d_fake=torch.sigmoid(fake_logits).mean().item())

        opt_g.zero_grad(set_to_none=True)
        loss_g = c.recon_weight * recon
        if self.mode_first:
            loss_g = loss_g + c.mode_weight * recon_mode
        if use_adv:
            with _frozen(plain_d):
                adv = self.loss.generator(plain_d(composited * 2.0 - 1.0))
            loss_g = loss_g + c.adv_weight * adv
            metrics["adv"] = adv.item()
        if c.mode_seeking > 0:
            ms = mode_seeking_ratio(generated.view(k, n, *generated.shape[1:]), z.view(k, n, -1), masks)
            loss_g = loss_g + c.mode_seeking / (ms + 1e-5)
            metrics["ms_ratio"] = ms.item()
        loss_g.backward()
        metrics["grad_norm_g"] = self.clip(self.modules["generator"], c.grad_clip)
        opt_g.step()
        if self.ema is not None:
            self.ema.update(self.modules["generator"], step)

        with torch.no_grad():
            spread = candidate_spread(generated.detach().view(k, n, *generated.shape[1:]), masks) if k > 1 else 0.0
        metrics.update(loss_g=loss_g.item(), recon=recon.item(), recon_mean=errors[:k].mean().item(),
                       spread=float(spread))
        return metrics

    # --- completing, sampling and export ------------------------------------------------
    @property
    def generator(self) -> nn.Module:
        """The generator that completes: the weight average when there is one, else the trained one."""
        return self.ema.shadow if self.ema is not None else self.modules["generator"]

    @torch.no_grad()
    def complete(self, images: torch.Tensor, masks: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """Complete images (N, C, H, W) in [0, 1] under masks (N, 1, H, W; 1 = known pixel, 0 =
        hole) with latents z (N, latent_dim): the known pixels come back exactly, the hole is
        drawn. Eval mode, on the family's device; returns images in [0, 1]."""
        images = torch.as_tensor(images, dtype=torch.float32, device=self.device)
        masks = torch.as_tensor(masks, dtype=torch.float32, device=self.device)
        z = torch.as_tensor(z, dtype=torch.float32, device=self.device)
        n, (c, h, w) = len(images), self.shape
        if tuple(images.shape) != (n, c, h, w) or tuple(masks.shape) != (n, 1, h, w) \
                or tuple(z.shape) != (n, self.latent_dim):
            raise ValueError(f"complete takes images (N, {c}, {h}, {w}), masks (N, 1, {h}, {w}) and z "
                             f"(N, {self.latent_dim}) with one N; got {tuple(images.shape)}, {tuple(masks.shape)}, "
                             f"{tuple(z.shape)}")
        with self._eval():
            return CompletionGraph(self.generator)(images, masks, z)

    @torch.no_grad()
    def sample(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """Completions in [0, 1] for training grids and run evaluation: row i completes image
        i of the bank (the first training batch, kept in the checkpoint; cycled) under the i-th
        fixed mask (cycling through EVAL_MASKS) with z[i]. Not exported."""
        if labels is not None:
            raise ValueError("the completion model is unconditional; sample it without labels")
        n = len(z)
        bank = self.bank if len(self.bank) else torch.zeros(1, *self.shape)
        images = bank[torch.arange(n) % len(bank)]
        return self.complete(images, self.eval_masks(n), z)

    @torch.no_grad()
    def extra_grids(self, batch: Batch) -> dict[str, torch.Tensor]:
        """Rows of [masked input (hole shaded), original, 6 candidates] from fixed latents and
        fixed masks, so the rows are comparable from grid to grid."""
        images = batch.images[:GRID_ROWS]
        rows = len(images)
        masks = self.eval_masks(rows)
        z = torch.randn(rows * GRID_CANDIDATES, self.latent_dim, generator=torch.Generator().manual_seed(_GRID_SEED))
        if self.mode_first:  # the first candidate of each row is the mode, as the service returns it
            z[::GRID_CANDIDATES] = 0.0
        candidates = self.complete(images.repeat_interleave(GRID_CANDIDATES, 0),
                                   masks.repeat_interleave(GRID_CANDIDATES, 0), z)
        shown = masks * images + (1.0 - masks) * HOLE_SHADE
        grid = torch.cat([shown[:, None], images[:, None], candidates.view(rows, GRID_CANDIDATES, *self.shape)], 1)
        return {"completions": grid.flatten(0, 1)}

    def export_graphs(self) -> list[ExportGraph]:
        """The completer: (image in [0, 1], mask, z) -> image, the known pixels kept exactly."""
        graph = CompletionGraph(self.generator.cpu().eval()).eval()
        c, h, w = self.shape
        d = self.latent_dim

        def make_inputs(n: int, g: torch.Generator) -> tuple[torch.Tensor, ...]:
            return torch.rand(n, c, h, w, generator=g), random_box_masks(n, h, w, g), torch.randn(n, d, generator=g)

        return [ExportGraph(
            role="completer",
            module=graph,
            example_inputs=make_inputs(2, torch.Generator().manual_seed(0)),
            input_names=list(COMPLETE_INPUTS),
            output_names=list(COMPLETE_OUTPUTS),
            make_inputs=make_inputs,
        )]


# --- losses and measures of the candidates ------------------------------------------------------

def hole_l1(generated: torch.Tensor, target: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """Mean absolute error over each image's hole (N,); 0 for an image without a hole."""
    hole = 1.0 - masks
    total = ((generated - target).abs() * hole).flatten(1).sum(dim=1)
    return total / (hole.flatten(1).sum(dim=1) * generated.shape[1]).clamp(min=1.0)


def candidate_spread(candidates: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """Mean over images and pairs of the RMS difference on the hole between candidates
    (K, N, C, H, W) of the same image under masks (N, 1, H, W)."""
    k = candidates.shape[0]
    hole = 1.0 - masks
    count = (hole.flatten(1).sum(dim=1) * candidates.shape[2]).clamp(min=1.0)
    pairs = [((candidates[a] - candidates[b]).pow(2) * hole).flatten(1).sum(1).div(count).sqrt()
             for a in range(k) for b in range(a + 1, k)]
    return torch.stack(pairs).mean()


def mode_seeking_ratio(candidates: torch.Tensor, z: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """Mao et al. 2019: mean over images of |G(z1) - G(z2)| on the hole over |z1 - z2|, for the
    first two candidates; the generator maximises it (minimises its inverse)."""
    images = hole_l1(candidates[0], candidates[1], masks)
    latents = (z[0] - z[1]).abs().mean(dim=1)
    return (images / latents).mean()


def random_box_masks(n: int, height: int, width: int, generator: torch.Generator) -> torch.Tensor:
    """n masks (n, 1, H, W) with one random rectangular hole each (a quarter to a half of each
    side), drawn from `generator`: valid inputs for the exported graph's parity check."""
    masks = torch.ones(n, 1, height, width)
    for i in range(n):
        h = int(torch.randint(max(1, height // 4), height // 2 + 1, (1,), generator=generator))
        w = int(torch.randint(max(1, width // 4), width // 2 + 1, (1,), generator=generator))
        y = int(torch.randint(0, height - h + 1, (1,), generator=generator))
        x = int(torch.randint(0, width - w + 1, (1,), generator=generator))
        masks[i, 0, y:y + h, x:x + w] = 0.0
    return masks
