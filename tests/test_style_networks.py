"""The building blocks of style transfer: the random-weight encoder (seeded, frozen), adaptive
instance normalisation, the stylizer on any image size with alpha and a mask, the training
losses, and the colour operations (keep the content's colours; Reinhard's colour transfer)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from latentforge.colour import preserve_color, reinhard_transfer, rgb_to_lab, rgb_to_ycbcr
from trainer.networks.style import (RandomEncoder, StyleDecoder, StyleEncoder, Stylizer, adain, mean_std,
                                    style_losses)


def _images(n: int, h: int, w: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    smooth = torch.nn.functional.avg_pool2d(torch.rand(n, 3, h + 4, w + 4, generator=g), 5, stride=1)
    return smooth.clamp(0, 1)


def test_the_encoder_is_drawn_from_its_seed_and_never_trained():
    a, b, c = RandomEncoder(seed=3), RandomEncoder(seed=3), RandomEncoder(seed=4)
    x = _images(2, 32, 32, 0)
    assert all(torch.equal(p, q) for p, q in zip(a(x), b(x)))
    assert not torch.allclose(a(x)[-1], c(x)[-1])
    assert not any(p.requires_grad for p in a.parameters())
    a.train()
    assert not a.training  # nothing in it learns
    shapes = [f.shape for f in a(x)]
    assert shapes == [(2, 32, 32, 32), (2, 64, 16, 16), (2, 128, 8, 8)] and a.stride == 4
    # He scaling: the deepest features of natural-looking images are neither vanishing nor exploding.
    assert 0.01 < a(x)[-1].std().item() < 10


def test_adain_gives_the_content_the_styles_statistics():
    content = torch.randn(2, 8, 6, 5) * 3 + 1
    style = torch.randn(2, 8, 7, 9) * 0.5 - 2
    mean, std = mean_std(style)
    out = adain(content, mean, std)
    got_mean, got_std = mean_std(out)
    assert torch.allclose(got_mean, mean, atol=1e-4) and torch.allclose(got_std, std, atol=1e-3)


@pytest.mark.parametrize("size", [(32, 32), (37, 53), (9, 10)])
def test_the_stylizer_takes_any_size_alpha_and_a_mask(size):
    encoder = RandomEncoder(seed=0, width=8)
    stylizer = Stylizer(encoder, StyleDecoder(width=8)).eval()
    content, style = _images(1, *size, 1), _images(1, 24, 40, 2)
    mean, std = StyleEncoder(encoder)(style)
    assert mean.shape == std.shape == (1, encoder.channels)
    ones = torch.ones(1, 1, *size)
    with torch.no_grad():
        out = stylizer(content, mean, std, torch.ones(1), ones)
        assert out.shape == content.shape and 0 <= out.min() and out.max() <= 1
        kept = stylizer(content, mean, std, torch.ones(1), torch.zeros(1, 1, *size))
        assert torch.equal(kept, content)  # stylised only where the mask is set
        half = torch.zeros(1, 1, *size)
        half[..., : size[0] // 2, :] = 1
        mixed = stylizer(content, mean, std, torch.ones(1), half)
        assert torch.equal(mixed[..., size[0] // 2:, :], content[..., size[0] // 2:, :])
        assert torch.allclose(mixed[..., : size[0] // 2, :], out[..., : size[0] // 2, :])
        # alpha 0 decodes the content's own features: no style statistics reach the image.
        other_mean, other_std = StyleEncoder(encoder)(_images(1, 16, 16, 9))
        a0 = stylizer(content, mean, std, torch.zeros(1), ones)
        assert torch.allclose(a0, stylizer(content, other_mean, other_std, torch.zeros(1), ones), atol=1e-6)


def test_a_few_steps_of_training_lower_both_losses():
    torch.manual_seed(0)
    encoder = RandomEncoder(seed=1, width=8)
    decoder = StyleDecoder(width=8)
    stylizer = Stylizer(encoder, decoder)
    content, style = _images(4, 32, 32, 3), _images(4, 32, 32, 4)
    optimiser = torch.optim.Adam(decoder.parameters(), lr=3e-3)

    def losses() -> tuple[torch.Tensor, torch.Tensor]:
        features = encoder(content)[-1]
        mean, std = mean_std(encoder(style)[-1])
        target = adain(features, mean, std)
        return style_losses(encoder, decoder(target), target, style)

    first = [x.item() for x in losses()]
    for _ in range(40):
        content_loss, style_loss = losses()
        optimiser.zero_grad()
        (content_loss + style_loss).backward()
        optimiser.step()
    last = [x.item() for x in losses()]
    assert last[0] < first[0] and last[0] + last[1] < 0.7 * (first[0] + first[1]), (first, last)
    assert not any(p.grad is not None and p.grad.abs().sum() > 0 for p in encoder.parameters())
    assert stylizer.encoder is encoder


def test_preserve_color_keeps_the_contents_chroma_and_the_stylised_luminance():
    rng = np.random.default_rng(0)
    content = 0.25 + 0.5 * rng.random((3, 12, 10))
    stylized = 0.25 + 0.5 * rng.random((3, 12, 10))
    out = preserve_color(content, stylized)
    assert out.dtype == np.float32 and out.shape == content.shape
    got, want_c, want_s = rgb_to_ycbcr(out), rgb_to_ycbcr(content), rgb_to_ycbcr(stylized)
    inside = (out > 0.001).all(0) & (out < 0.999).all(0)  # not clipped
    assert inside.mean() > 0.5
    assert np.allclose(got[0][inside], want_s[0][inside], atol=1e-5)
    assert np.allclose(got[1:][:, inside], want_c[1:][:, inside], atol=1e-5)
    with pytest.raises(ValueError, match="differ in size"):
        preserve_color(content, stylized[:, :5])
    with pytest.raises(ValueError, match=r"\(3, H, W\)"):
        preserve_color(content[:1], stylized[:1])


def test_reinhard_transfer_gives_the_content_the_styles_colour_statistics():
    rng = np.random.default_rng(1)
    content = np.stack([0.3 + 0.2 * rng.random((20, 16)), 0.4 + 0.1 * rng.random((20, 16)),
                        0.5 + 0.2 * rng.random((20, 16))])
    style = np.stack([0.5 + 0.1 * rng.random((30, 30)), 0.3 + 0.2 * rng.random((30, 30)),
                      0.2 + 0.1 * rng.random((30, 30))])
    out = reinhard_transfer(content, style)
    assert out.shape == content.shape and out.dtype == np.float32
    got, want = rgb_to_lab(out), rgb_to_lab(style)
    assert np.allclose(got.mean((1, 2)), want.mean((1, 2)), atol=2e-3)
    assert np.allclose(got.std((1, 2)), want.std((1, 2)), rtol=0.05)


def test_the_stylizer_exports_with_a_dynamic_batch_height_and_width_and_matches_onnx_runtime(tmp_path):
    """One exported graph serves every image size: padding to the encoder's stride is inside it."""
    import logging
    import warnings

    import onnxruntime

    logging.getLogger("torch.onnx").setLevel(logging.ERROR)
    encoder = RandomEncoder(seed=0, width=8)
    stylizer = Stylizer(encoder, StyleDecoder(width=8)).eval()
    n, h, w = (torch.export.Dim(name, min=lo, max=hi) for name, lo, hi in (("N", 1, 64), ("H", 8, 2048),
                                                                         ("W", 8, 2048)))
    names = ["content", "style_mean", "style_std", "alpha", "mask"]
    example = (torch.rand(1, 3, 37, 53), torch.rand(1, encoder.channels), torch.rand(1, encoder.channels) + 0.5,
               torch.ones(1), torch.ones(1, 1, 37, 53))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        program = torch.onnx.export(stylizer, example, dynamo=True, opset_version=18, input_names=names,
                                    output_names=["image"], optimize=True, verbose=False,
                                    dynamic_shapes=({0: n, 2: h, 3: w}, {0: n}, {0: n}, {0: n}, {0: n, 2: h, 3: w}))
    program.save(str(tmp_path / "stylizer.onnx"))
    session = onnxruntime.InferenceSession(str(tmp_path / "stylizer.onnx"), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    for rows, height, width in ((2, 37, 53), (1, 64, 64), (3, 101, 33)):
        feeds = {"content": rng.random((rows, 3, height, width), dtype=np.float32),
                 "style_mean": rng.random((rows, encoder.channels), dtype=np.float32),
                 "style_std": rng.random((rows, encoder.channels), dtype=np.float32) + 0.5,
                 "alpha": np.linspace(0, 1, rows, dtype=np.float32),
                 "mask": np.ones((rows, 1, height, width), np.float32)}
        got = session.run(None, feeds)[0]
        with torch.no_grad():
            want = stylizer(*(torch.from_numpy(feeds[k]) for k in names)).numpy()
        assert got.shape == (rows, 3, height, width) and np.abs(got - want).max() < 1e-5


def test_skips_and_colour_statistics_give_the_output_the_styles_colours():
    """With every level's statistics and the pixels' first, the decoded image gets the style's
    RGB means and standard deviations (AdaIN on the pixels), before the clip to [0, 1]."""
    from trainer.networks.style import PIXEL_STATS, SkipDecoder, level_sizes

    encoder = RandomEncoder(seed=0, width=8)
    style = _images(1, 32, 40, 5) * 0.3 + 0.2  # a dim style: its colours lie inside [0, 1]
    mean, std = StyleEncoder(encoder, every_level=True, pixels=True)(style)
    assert mean.shape[1] == sum(level_sizes(encoder, True, True)) == PIXEL_STATS + 8 + 16 + 32
    pixel_mean, pixel_std = mean_std(style)
    assert torch.allclose(mean[:, :PIXEL_STATS], pixel_mean.flatten(1))
    stylizer = Stylizer(encoder, SkipDecoder(width=8), blend="pixels", pixels=True).eval()
    content = _images(1, 36, 44, 6)
    with torch.no_grad():
        out = stylizer(content, mean, std, torch.ones(1), torch.ones(1, 1, 36, 44))
    got_mean, got_std = mean_std(out)
    assert torch.allclose(got_mean, pixel_mean, atol=0.02) and torch.allclose(got_std, pixel_std, atol=0.02)
