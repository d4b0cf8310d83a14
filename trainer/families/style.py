"""One-style transfer (Johnson, Alahi & Fei-Fei 2016): a feed-forward network trained for one style.

The run's data is the style: usually one image (``latentforge train --model style --style-image
art.png``, read by trainer.data.single_image as random crops of it), or any image set, whose
images then make one blended style. The contents come from the built-in set named by the
``content`` option (style:photos), read once at the run's image size. The transformer network
(trainer.networks.transformer, half of Johnson et al.'s width, instance normalisation) is the
only trained part; its losses are read in a seeded random-weight encoder
(trainer.networks.style.RandomEncoder; nothing pretrained, nothing downloaded):

* content: the output's features at the encoder's middle level against the content's;
* style: the output's per-level statistics (per-channel means and standard deviations, or Gram
  matrices) against the style's, averaged over the batch's style crops;
* total variation: mean squared difference of neighbouring pixels, small.

Exported as one graph, ``stylizer_fixed`` (task ``stylize_fixed``): content, alpha and mask ->
stylised image, any height and width, alpha and mask blended in pixel space inside the graph.

The helpers shared with the arbitrary-style family (trainer.families.adain) live here too: images
made RGB, the second image set loaded once, the style families' export inputs.
"""

from __future__ import annotations

import logging
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from latentforge.manifest import STYLE_MASK_CONVENTION, TASK_CONTRACTS
from trainer.data import Batch, DataSpec
from trainer.families.base import ExportGraph, Family
from trainer.families.configs import StyleConfig
from trainer.networks.style import RandomEncoder, mean_std
from trainer.networks.transformer import FixedStylizer, TransformerNet, fixed_stylize

log = logging.getLogger(__name__)

FIXED_INPUTS, FIXED_OUTPUTS = (list(names) for names in TASK_CONTRACTS["stylize_fixed"])
MIN_SIDE = 8  # the smallest height and width the exported graphs take
IMAGE_AXES = {2: ("H", MIN_SIDE), 3: ("W", MIN_SIDE)}
# The loss encoder's level whose features the content loss compares: the middle of three (at
# half the image's size), as Johnson et al. compare VGG's relu2_2; the deepest keeps too little
# of a random encoder's view of the content's shapes.
CONTENT_LEVEL = 1
BANK_SIZE = 16  # content (and style) images the grids and `sample` show, fixed for the run
GRID_PAIRS = 8  # the one-style grid: pairs of content and stylised


def as_rgb(images: torch.Tensor) -> torch.Tensor:
    """Images (N, C, H, W) with 3 channels: grey ones repeated, RGB ones as they are."""
    return images.expand(-1, 3, -1, -1) if images.shape[1] == 1 else images


def rgb_shape(data: DataSpec) -> tuple[int, int, int]:
    """The shape the style families make of their data's images: (3, H, W)."""
    _, h, w = data.shape
    return (3, int(h), int(w))


class ImageSet:
    """A second built-in image set of a style family (the styles or the contents), read with
    ``trainer.data.sources.load_data`` at the run's image size, once, when first needed (so that
    export, which needs only the networks, never reads it)."""

    def __init__(self, spec: str, size: int, device: torch.device) -> None:
        self.spec, self.size, self.device = spec, size, device
        self._images: torch.Tensor | None = None

    @property
    def images(self) -> torch.Tensor:
        if self._images is None:
            from trainer.data.sources import load_data

            data = load_data(self.spec, image_size=self.size, channels=3)
            self._images = torch.from_numpy(data.images).to(self.device)
            log.info("read %d images of %s at %d px", len(self._images), self.spec, self.size)
        return self._images

    def draw(self, n: int) -> torch.Tensor:
        """n images drawn at random (the training's torch stream, so a resumed run draws the same)."""
        index = torch.randint(0, len(self.images), (n,))
        return self.images[index.to(self.device)]

    def bank(self, n: int) -> torch.Tensor:
        """The set's first n images: a fixed bank for grids (the built-in style sets cycle through
        their pictures, so these are crops of n different ones where the set has n)."""
        return self.images[:n]


def image_inputs(n: int, g: torch.Generator, channels: int = 3) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Content, alpha and mask of a parity check: 37x53 for one row, 32x48 otherwise, so parity
    covers two sizes; alpha spans [0, 1], each mask keeps a random rectangle of the content."""
    h, w = (37, 53) if n == 1 else (32, 48)
    content = torch.rand(n, channels, h, w, generator=g)
    alpha = torch.rand(n, generator=g)
    mask = torch.ones(n, 1, h, w)
    for i in range(n):
        top, left = int(torch.randint(0, h // 2, (1,), generator=g)), int(torch.randint(0, w // 2, (1,), generator=g))
        mask[i, :, top:top + h // 3, left:left + w // 3] = 0.0
    return content, alpha, mask


def style_statistics(features: list[torch.Tensor], kind: str) -> list[torch.Tensor]:
    """Each level's style statistics, per image: per-channel means and standard deviations
    concatenated (N, 2C) for "meanstd", Gram matrices over space (N, C, C) for "gram"."""
    out = []
    for f in features:
        if kind == "gram":
            flat = f.flatten(2)
            out.append(flat @ flat.transpose(1, 2) / flat.shape[2])
        else:
            mean, std = mean_std(f)
            out.append(torch.cat([mean.flatten(1), std.flatten(1)], 1))
    return out


def total_variation(images: torch.Tensor) -> torch.Tensor:
    """Mean squared difference of vertically and horizontally neighbouring pixels."""
    return ((images[..., 1:, :] - images[..., :-1, :]).pow(2).mean()
            + (images[..., :, 1:] - images[..., :, :-1]).pow(2).mean())


class StyleFamily(Family):
    """What both style families share: RGB images of any size, no latents, no class labels, and
    no FID during training (the quality meter scores style transfer on exported versions)."""

    value_range = (0.0, 1.0)
    conventions = {"style_mask": STYLE_MASK_CONVENTION}
    any_size = True
    meter_scores = False

    def __init__(self, config: Any, data: DataSpec, device: torch.device) -> None:
        super().__init__(config, data, device)
        self.shape = rgb_shape(data)
        self.latent_dim = 0

    def latents(self, n: int, generator: torch.Generator) -> torch.Tensor:
        return torch.zeros(n, 0)  # nothing to draw: `sample` shows the fixed content bank

    def _optimizer(self, module: nn.Module) -> torch.optim.Optimizer:
        c = self.config
        return torch.optim.Adam(module.parameters(), lr=c.lr, betas=(c.beta1, c.beta2))


class OneStyle(StyleFamily):
    """Johnson et al.'s one-style network; images in [0, 1]."""

    name = "style"
    kind = "style"
    tasks = {"stylize_fixed": "stylizer_fixed"}

    def __init__(self, config: StyleConfig, data: DataSpec, device: torch.device) -> None:
        super().__init__(config, data, device)
        self.config: StyleConfig = config
        self.encoder = RandomEncoder(config.encoder_seed, config.encoder_width, levels=3).to(device)
        self.modules = {"transformer": TransformerNet(config.width, config.blocks).to(device)}
        self.optimizers = {"transformer": self._optimizer(self.modules["transformer"])}
        self.train_modules = dict(self.modules)
        self.contents = ImageSet(config.content, self.shape[1], device)
        self._bank: torch.Tensor | None = None

    def _content_bank(self) -> torch.Tensor:
        if self._bank is None:
            self._bank = self.contents.bank(BANK_SIZE)
        return self._bank

    def train_step(self, batch: Batch, step: int) -> dict[str, float]:
        c = self.config
        net, opt = self.train_modules["transformer"], self.optimizers["transformer"]
        style = as_rgb(batch.images)
        content = self.contents.draw(len(style))
        with torch.no_grad():
            wanted = [s.mean(0, keepdim=True) for s in style_statistics(self.encoder(style), c.style_loss)]
            content_features = self.encoder(content)[CONTENT_LEVEL]
        output = net(content)
        features = self.encoder(output)
        content_loss = F.mse_loss(features[CONTENT_LEVEL], content_features)
        style_loss = sum(F.mse_loss(got, want.expand_as(got))
                         for got, want in zip(style_statistics(features, c.style_loss), wanted))
        tv = total_variation(output)
        loss = c.content_weight * content_loss + c.style_weight * style_loss + c.tv_weight * tv
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return {"loss": loss.item(), "content": content_loss.item(), "style": float(style_loss.detach()), "tv": tv.item()}

    @torch.no_grad()
    def stylize(self, content: torch.Tensor) -> torch.Tensor:
        """Contents (N, C, H, W) in [0, 1], any size, fully stylised, in eval mode."""
        content = as_rgb(content.to(self.device))
        ones = torch.ones(len(content), device=self.device)
        mask = torch.ones(len(content), 1, *content.shape[2:], device=self.device)
        with self._eval():
            return fixed_stylize(self.modules["transformer"], content, ones, mask)

    @torch.no_grad()
    def sample(self, z: torch.Tensor) -> torch.Tensor:
        """The fixed content bank (cycled to len(z) rows), stylised: for grids, not exported."""
        bank = self._content_bank()
        return self.stylize(bank[torch.arange(len(z), device=bank.device) % len(bank)])

    @torch.no_grad()
    def extra_grids(self, batch: Batch) -> dict[str, torch.Tensor]:
        """Pairs of content and stylised content (the fixed bank), and the style images trained on."""
        bank = self._content_bank()[:GRID_PAIRS]
        pairs = torch.stack([bank, self.stylize(bank)], 1).flatten(0, 1)
        return {"stylized": pairs, "style": as_rgb(batch.images[:GRID_PAIRS])}

    def export_graphs(self) -> list[ExportGraph]:
        """The one-style graph: content, alpha, mask -> stylised, any size."""
        graph = FixedStylizer(self.modules["transformer"].cpu().eval()).eval()
        return [ExportGraph(
            role="stylizer_fixed",
            module=graph,
            example_inputs=image_inputs(2, torch.Generator().manual_seed(0)),
            input_names=FIXED_INPUTS,
            output_names=FIXED_OUTPUTS,
            make_inputs=image_inputs,
            dynamic_axes={"content": IMAGE_AXES, "mask": IMAGE_AXES},
        )]


__all__ = ["ImageSet", "OneStyle", "StyleFamily", "as_rgb", "image_inputs", "rgb_shape", "style_statistics",
           "total_variation"]

