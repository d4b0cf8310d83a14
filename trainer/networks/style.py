"""Networks of arbitrary style transfer by adaptive instance normalisation (Huang & Belongie 2017),
with an encoder of random weights: nothing pretrained, nothing downloaded.

* ``RandomEncoder``: a small VGG-shaped stack of 3x3 convolutions and ReLUs with average pooling,
  its weights drawn once from a seed and never trained (stored with the checkpoint, so a run is
  reproduced exactly). Features of random convolutional networks carry texture and style
  statistics (Ustyuzhaninov et al. 2016/2017; He, Wang & Hopcroft 2016); each layer's weights are
  scaled so that its output keeps the variance of its input (He initialisation for ReLU), so no
  layer dominates the losses by its scale alone.
* ``adain``: the content's features per channel standardised and given the style's mean and
  standard deviation.
* ``StyleDecoder``: the encoder's mirror (nearest-neighbour upsampling, reflection padding), the
  only trained part: features at the deepest level back to an RGB image.
* ``Stylizer``: what is exported and served: content image, the style's statistics, ``alpha`` and
  an optional mask to the stylised image, for any height and width (padded by reflection to a
  multiple of the encoder's stride inside the graph, cropped back).
* ``style_statistics`` / ``StyleEncoder``: a style image to the per-channel mean and standard
  deviation the stylizer takes; a weighted mix of styles is a weighted mean of those.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

EPS = 1e-5


def _conv(cin: int, cout: int) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 3, padding=1, padding_mode="reflect")


class RandomEncoder(nn.Module):
    """A frozen random VGG-shaped encoder: ``levels`` stages of convolutions at widths
    ``width * 2**k``, each stage after the first starting with a 2x2 average pool. ``forward``
    returns every stage's features, shallow to deep."""

    def __init__(self, seed: int = 0, width: int = 32, levels: int = 3) -> None:
        super().__init__()
        if levels < 1 or width < 1:
            raise ValueError("the encoder needs at least one level and a width of at least 1")
        generator = torch.Generator().manual_seed(int(seed))
        self.levels = levels
        self.stride = 2 ** (levels - 1)
        self.stages = nn.ModuleList()
        cin = 3
        for k in range(levels):
            cout = width * 2 ** k
            convs = [_conv(cin, cout), _conv(cout, cout)] if k < levels - 1 else [_conv(cin, cout)]
            for conv in convs:
                fan_in = conv.in_channels * 9
                with torch.no_grad():  # He initialisation: ReLU outputs keep their input's variance
                    conv.weight.copy_(torch.randn(conv.weight.shape, generator=generator) * (2.0 / fan_in) ** 0.5)
                    conv.bias.zero_()
            self.stages.append(nn.ModuleList(convs))
            cin = cout
        self.channels = cin
        self.requires_grad_(False)

    def forward(self, image: torch.Tensor) -> list[torch.Tensor]:
        x = image - 0.5  # images in [0, 1], centred
        out = []
        for k, convs in enumerate(self.stages):
            if k:
                x = F.avg_pool2d(x, 2)
            for conv in convs:
                x = F.relu(conv(x))
            out.append(x)
        return out

    def train(self, mode: bool = True) -> "RandomEncoder":
        return super().train(False)  # nothing in it learns, in any mode


def mean_std(features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean and standard deviation over space: (N, C, 1, 1) each."""
    mean = features.mean(dim=(2, 3), keepdim=True)
    std = (features.var(dim=(2, 3), keepdim=True, unbiased=False) + EPS).sqrt()
    return mean, std


def adain(content: torch.Tensor, style_mean: torch.Tensor, style_std: torch.Tensor) -> torch.Tensor:
    """Adaptive instance normalisation: the content's features with the style's statistics."""
    mean, std = mean_std(content)
    return (content - mean) / std * style_std + style_mean


class StyleDecoder(nn.Module):
    """The encoder's deepest features back to an RGB image in [0, 1] (as a float; the stylizer
    clips), mirroring the encoder's stages with nearest-neighbour upsampling."""

    def __init__(self, width: int = 32, levels: int = 3) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        for k in reversed(range(levels)):
            cin = width * 2 ** k
            cout = width * 2 ** max(k - 1, 0)
            layers += [_conv(cin, cout), nn.ReLU()]
            if k:
                layers += [nn.Upsample(scale_factor=2, mode="nearest"), _conv(cout, cout), nn.ReLU()]
        layers.append(_conv(width, 3))
        self.net = nn.Sequential(*layers)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.net(features) + 0.5


class SkipDecoder(nn.Module):
    """A decoder of every level's features (a U-Net's upward half): from the deepest level up,
    each stage upsamples and takes the next shallower level's features beside its own, so the
    content's fine structure (the shallow levels, each given the style's statistics by AdaIN)
    reaches the image without passing through the deepest, coarsest level alone."""

    def __init__(self, width: int = 32, levels: int = 3) -> None:
        super().__init__()
        self.levels = levels
        self.deepest = nn.Sequential(_conv(width * 2 ** (levels - 1), width * 2 ** (levels - 1)), nn.ReLU())
        self.ups = nn.ModuleList()
        for k in reversed(range(levels - 1)):  # from the deepest level's input to level k
            cin, cout = width * 2 ** (k + 1), width * 2 ** k
            self.ups.append(nn.ModuleDict({
                "up": nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"), _conv(cin, cout), nn.ReLU()),
                "merge": nn.Sequential(_conv(2 * cout, cout), nn.ReLU(), _conv(cout, cout), nn.ReLU()),
            }))
        self.out = _conv(width, 3)

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        x = self.deepest(features[-1])
        for stage, skip in zip(self.ups, reversed(features[:-1])):
            x = stage["merge"](torch.cat([stage["up"](x), skip], 1))
        return self.out(x) + 0.5


PIXEL_STATS = 3  # the pixel level's statistics: one mean and one std per RGB channel


def level_sizes(encoder: RandomEncoder, every_level: bool, pixels: bool = False) -> list[int]:
    """Sizes of the parts of a style's statistics, in order: the pixels' (with ``pixels``), then
    the deepest level's, or every level's."""
    sizes = [stage[-1].out_channels for stage in encoder.stages]
    return ([PIXEL_STATS] if pixels else []) + (sizes if every_level else sizes[-1:])


class StyleEncoder(nn.Module):
    """A style image to the statistics the stylizer takes (the exported ``style_encoder`` graph):
    the deepest level's per-channel means and standard deviations, or every level's (for a
    stylizer with a ``SkipDecoder``), concatenated; with ``pixels``, the image's own RGB means
    and standard deviations first (the stylizer gives them to its output: a colour transfer)."""

    def __init__(self, encoder: RandomEncoder, every_level: bool = False, pixels: bool = False) -> None:
        super().__init__()
        self.encoder, self.every_level, self.pixels = encoder, every_level, pixels

    def forward(self, style: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features = self.encoder(style)
        stats = [mean_std(f) for f in (features if self.every_level else features[-1:])]
        if self.pixels:
            stats.insert(0, mean_std(style))
        return (torch.cat([m.flatten(1) for m, _ in stats], 1), torch.cat([s.flatten(1) for _, s in stats], 1))


def adain_levels(features: list[torch.Tensor], style_mean: torch.Tensor, style_std: torch.Tensor
                 ) -> list[torch.Tensor]:
    """Every level of ``features`` given its slice of the concatenated statistics (N, S)."""
    out, start = [], 0
    for f in features:
        c = f.shape[1]
        out.append(adain(f, style_mean[:, start:start + c, None, None], style_std[:, start:start + c, None, None]))
        start += c
    return out


class Stylizer(nn.Module):
    """Content (N, 3, H, W) in [0, 1], the style's mean and std (N, C), ``alpha`` (N,) in [0, 1]
    and a mask (N, 1, H, W), 1 where to stylise, to the stylised image in [0, 1]. Any H and W:
    the content is padded by reflection to a multiple of the encoder's stride and cropped back."""

    def __init__(self, encoder: RandomEncoder, decoder: StyleDecoder | SkipDecoder, blend: str = "features",
                 pixels: bool = False) -> None:
        """``blend``: how ``alpha`` mixes content and style. "features" (Huang & Belongie): the
        content's features and the AdaIN target are mixed before decoding, so alpha 0 is the
        decoder's reconstruction of the content; "pixels": the fully stylised image and the
        content are mixed, so alpha 0 is the content exactly."""
        super().__init__()
        if blend not in ("features", "pixels"):
            raise ValueError(f"blend must be 'features' or 'pixels' (got {blend!r})")
        self.encoder, self.decoder, self.blend, self.pixels = encoder, decoder, blend, pixels

    def forward(self, content: torch.Tensor, style_mean: torch.Tensor, style_std: torch.Tensor,
                alpha: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        height, width = content.shape[-2], content.shape[-1]
        stride = self.encoder.stride
        pad_h = (stride - height % stride) % stride
        pad_w = (stride - width % stride) % stride
        padded = F.pad(content, (0, pad_w, 0, pad_h), mode="reflect") if stride > 1 else content
        a = alpha.reshape(-1, 1, 1, 1)
        if self.pixels:  # the first statistics are the style's RGB ones, for the decoded image
            pixel_mean, pixel_std = style_mean[:, :PIXEL_STATS], style_std[:, :PIXEL_STATS]
            style_mean, style_std = style_mean[:, PIXEL_STATS:], style_std[:, PIXEL_STATS:]
        if isinstance(self.decoder, SkipDecoder):
            levels = self.encoder(padded)
            targets = adain_levels(levels, style_mean, style_std)
            if self.blend != "pixels":
                targets = [a * t + (1 - a) * f for t, f in zip(targets, levels)]
            decoded = self.decoder(targets)[..., :height, :width]
        else:
            features = self.encoder(padded)[-1]
            target = adain(features, style_mean[:, :, None, None], style_std[:, :, None, None])
            decoded = self.decoder(target if self.blend == "pixels" else a * target + (1 - a) * features)
            decoded = decoded[..., :height, :width]
        if self.pixels:
            decoded = adain(decoded, pixel_mean[:, :, None, None], pixel_std[:, :, None, None])
        image = a * decoded + (1 - a) * content if self.blend == "pixels" else decoded
        return (mask * image + (1 - mask) * content).clamp(0.0, 1.0)


def style_losses(encoder: RandomEncoder, output: torch.Tensor, target: torch.Tensor | list[torch.Tensor],
                 style: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The AdaIN training losses: content = the output's deepest features against the AdaIN
    target (or, given a list of targets for the deepest levels, each of those levels against its
    own, averaged); style = the per-channel means and standard deviations of the output's features
    at every level against the style image's."""
    out_features = encoder(output)
    targets = target if isinstance(target, list) else [target]
    content = sum(F.mse_loss(got, want) for got, want in zip(out_features[-len(targets):], targets)) / len(targets)
    style_loss = output.new_zeros(())
    for got, want in zip(out_features, encoder(style)):
        got_mean, got_std = mean_std(got)
        want_mean, want_std = mean_std(want)
        style_loss = style_loss + F.mse_loss(got_mean, want_mean) + F.mse_loss(got_std, want_std)
    return content, style_loss


__all__ = ["EPS", "PIXEL_STATS", "RandomEncoder", "SkipDecoder", "StyleDecoder", "StyleEncoder", "Stylizer", "adain", "adain_levels",
           "level_sizes", "mean_std", "style_losses"]
