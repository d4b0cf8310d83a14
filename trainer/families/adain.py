"""Arbitrary style transfer (Huang & Belongie 2017): one model for every style.

A seeded random-weight encoder (trainer.networks.style.RandomEncoder: never trained, nothing
downloaded; its seed is the ``encoder_seed`` option, so the checkpoint's config rebuilds it)
reads the content and the style; adaptive instance normalisation gives the content's deepest
features the style's per-channel means and standard deviations; a decoder, the only trained
part, turns them back into an image. Losses, as the paper's: content = the output's deepest
features against the AdaIN target, style = the output's per-channel statistics at every level
against the style's.

The run's --data holds the contents (e.g. style:photos); the ``styles`` option names the
built-in set of style images (style:textures), read once at the run's image size. Each step
pairs the batch's contents with styles drawn at random.

Exported as two graphs (latentforge.manifest's contracts): ``style_encoder`` (task
``encode_style``: style image of any size -> ``style_mean``, ``style_std``) and ``stylizer``
(task ``stylize``: content of any size, the statistics, ``alpha`` and ``mask`` -> image).
"""

from __future__ import annotations

import torch

from latentforge.manifest import TASK_CONTRACTS
from trainer.data import Batch, DataSpec
from trainer.families.base import ExportGraph
from trainer.families.configs import AdaINConfig
from trainer.families.style import BANK_SIZE, IMAGE_AXES, MIN_SIDE, ImageSet, StyleFamily, as_rgb, image_inputs
from trainer.networks.style import (PIXEL_STATS, RandomEncoder, SkipDecoder, StyleDecoder, StyleEncoder, Stylizer,
                                    adain, adain_levels, level_sizes, style_losses)

ENCODE_INPUTS, ENCODE_OUTPUTS = (list(names) for names in TASK_CONTRACTS["encode_style"])
STYLIZE_INPUTS, STYLIZE_OUTPUTS = (list(names) for names in TASK_CONTRACTS["stylize"])
STYLE_AXES = {2: ("Hs", MIN_SIDE), 3: ("Ws", MIN_SIDE)}
GRID_STYLES, GRID_CONTENTS = 7, 5  # the grid: a row of styles over rows of contents, 8 columns by 6 rows


class AdaIN(StyleFamily):
    """Random encoder, AdaIN, trained decoder; images in [0, 1]."""

    name = "adain"
    kind = "style"
    tasks = {"encode_style": "style_encoder", "stylize": "stylizer"}

    def __init__(self, config: AdaINConfig, data: DataSpec, device: torch.device) -> None:
        super().__init__(config, data, device)
        self.config: AdaINConfig = config
        self.encoder = RandomEncoder(config.encoder_seed, config.width, config.levels).to(device)
        decoder = (SkipDecoder if config.skips else StyleDecoder)(config.width, config.levels)
        self.modules = {"decoder": decoder.to(device)}
        self.optimizers = {"decoder": self._optimizer(self.modules["decoder"])}
        self.train_modules = dict(self.modules)
        self.styles = ImageSet(config.styles, self.shape[1], device)
        self._content_bank: torch.Tensor | None = None  # the first batch's contents, for `sample`

    def train_step(self, batch: Batch, step: int) -> dict[str, float]:
        c = self.config
        decoder, opt = self.train_modules["decoder"], self.optimizers["decoder"]
        content = as_rgb(batch.images)
        if self._content_bank is None:
            self._content_bank = content[:BANK_SIZE].detach().clone()
        style = self.styles.draw(len(content))
        with torch.no_grad():
            mean, std = self.style_encoder()(style)
            if c.colour_stats:
                pixel_mean, pixel_std = mean[:, :PIXEL_STATS, None, None], std[:, :PIXEL_STATS, None, None]
                mean, std = mean[:, PIXEL_STATS:], std[:, PIXEL_STATS:]
            levels = self.encoder(content)
            targets = adain_levels(levels if c.skips else levels[-1:], mean, std)
            features = levels if c.skips else levels[-1]
            target = targets if c.skips else targets[0]
        metrics: dict[str, float] = {}
        loss = content.new_zeros(())
        if c.content_weight > 0 or c.style_weight > 0:
            content_targets = targets[-(c.content_levels or len(targets)):] if c.skips else targets
            output = decoder(target)
            if c.colour_stats:  # as the stylizer gives the decoded image the style's colours
                output = adain(output, pixel_mean, pixel_std)
            content_loss, style_loss = style_losses(self.encoder, output, content_targets, style)
            loss = c.content_weight * content_loss + c.style_weight * style_loss
            metrics.update(content=content_loss.item(), style=style_loss.item())
        if c.recon_weight > 0:
            recon = (decoder(features) - content).abs().mean()
            loss = loss + c.recon_weight * recon
            metrics["recon"] = recon.item()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return {"loss": loss.item(), **metrics}

    def style_encoder(self) -> StyleEncoder:
        """The style encoder graph's module: the statistics of every level with skips, else the deepest's."""
        return StyleEncoder(self.encoder, every_level=self.config.skips, pixels=self.config.colour_stats)

    def stylizer(self, blend: str | None = None) -> Stylizer:
        """The stylizer graph's module (the family's encoder and decoder, shared)."""
        return Stylizer(self.encoder, self.modules["decoder"], blend or self.config.alpha_blend,
                        pixels=self.config.colour_stats)

    @torch.no_grad()
    def stylize(self, content: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        """Each content (N, C, H, W) in [0, 1] in the style of the style image of its row (any
        sizes), fully stylised, in eval mode."""
        content, style = as_rgb(content.to(self.device)), as_rgb(style.to(self.device))
        mean, std = self.style_encoder()(style)
        n = len(content)
        with self._eval():
            return self.stylizer()(content, mean, std, torch.ones(n, device=self.device),
                                   torch.ones(n, 1, *content.shape[2:], device=self.device))

    @torch.no_grad()
    def sample(self, z: torch.Tensor) -> torch.Tensor:
        """Row i: content i of the first training batch (cycled) in style i of the style bank
        (cycled), for the sample grids; not exported."""
        bank = self._content_bank if self._content_bank is not None else self.styles.bank(BANK_SIZE)
        styles = self.styles.bank(BANK_SIZE)
        rows = torch.arange(len(z), device=self.device)
        return self.stylize(bank[rows % len(bank)], styles[rows % len(styles)])

    @torch.no_grad()
    def extra_grids(self, batch: Batch) -> dict[str, torch.Tensor]:
        """Contents x styles: a top row of style images, then each content followed by it in each style."""
        styles = self.styles.bank(GRID_STYLES)
        contents = as_rgb(batch.images)
        contents = contents[torch.arange(GRID_CONTENTS, device=contents.device) % len(contents)]
        k, n = len(styles), len(contents)
        stylised = self.stylize(contents.repeat_interleave(k, 0), styles.repeat(n, 1, 1, 1)).view(n, k, *self.shape)
        corner = torch.ones(1, *self.shape, device=self.device)
        rows = [torch.cat([corner, styles])] + [torch.cat([contents[i:i + 1], stylised[i]]) for i in range(n)]
        return {"styles": torch.cat(rows)}

    def export_graphs(self) -> list[ExportGraph]:
        """``style_encoder`` (style -> statistics) and ``stylizer`` (content, statistics, alpha,
        mask -> image), both on any image size."""
        self.encoder.cpu().eval()
        self.modules["decoder"].cpu().eval()
        channels = sum(level_sizes(self.encoder, self.config.skips, self.config.colour_stats))

        def style_inputs(n: int, g: torch.Generator) -> tuple[torch.Tensor]:
            h, w = (41, 29) if n == 1 else (32, 32)
            return (torch.rand(n, 3, h, w, generator=g),)

        def stylize_inputs(n: int, g: torch.Generator) -> tuple[torch.Tensor, ...]:
            content, alpha, mask = image_inputs(n, g)
            mean = torch.rand(n, channels, generator=g)
            std = torch.rand(n, channels, generator=g) + 0.1
            return content, mean, std, alpha, mask

        return [
            ExportGraph(role="style_encoder", module=self.style_encoder().eval(),
                        example_inputs=style_inputs(2, torch.Generator().manual_seed(0)),
                        input_names=ENCODE_INPUTS, output_names=ENCODE_OUTPUTS, make_inputs=style_inputs,
                        dynamic_axes={"style": STYLE_AXES}),
            ExportGraph(role="stylizer", module=self.stylizer().eval(),
                        example_inputs=stylize_inputs(2, torch.Generator().manual_seed(0)),
                        input_names=STYLIZE_INPUTS, output_names=STYLIZE_OUTPUTS, make_inputs=stylize_inputs,
                        dynamic_axes={"content": IMAGE_AXES, "mask": IMAGE_AXES}),
        ]


__all__ = ["AdaIN"]
