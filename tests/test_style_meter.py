"""The style meter's measures on real pictures made here: texture statistics of a seeded random
filter bank (style match, from the content's 0 to the style's own other crop's 1) and SSIM of
Sobel edge maps (content kept), checked against their definitions and against scikit-image's SSIM."""

from __future__ import annotations

import numpy as np
import pytest

from latentforge.colour import reinhard_transfer
from trainer.quality.style import TextureFeatures, content_kept, sobel_magnitude, ssim, style_match


def _content(size: int = 64) -> np.ndarray:
    """A smooth picture with edges: two discs and a bar on a gradient."""
    y, x = np.mgrid[0:size, 0:size] / size
    image = np.stack([0.3 + 0.4 * x, 0.3 + 0.3 * y, 0.5 - 0.2 * x])
    for cy, cx, r, colour in ((0.3, 0.3, 0.15, (0.9, 0.2, 0.2)), (0.65, 0.6, 0.2, (0.1, 0.6, 0.9))):
        inside = (y - cy) ** 2 + (x - cx) ** 2 < r ** 2
        image[:, inside] = np.array(colour)[:, None]
    image[:, int(0.8 * size):int(0.85 * size), 5:-5] = 0.05
    return image


def _stripes(size: int = 64, offset: int = 0) -> np.ndarray:
    """A coloured diagonal-stripe texture; ``offset`` gives another crop of the same texture."""
    y, x = np.mgrid[0:size, offset:offset + size]
    phase = np.sin((x + y) * 0.7)
    return np.stack([0.5 + 0.45 * phase, 0.2 + 0.1 * phase, 0.6 - 0.35 * phase]).clip(0, 1)


def test_the_meters_filters_are_its_own_and_fixed():
    a, b, c = TextureFeatures(), TextureFeatures(), TextureFeatures(seed=1)
    image = _content()
    assert np.array_equal(a.statistics(image), b.statistics(image))
    assert not np.allclose(a.statistics(image), c.statistics(image))


def test_style_match_runs_from_the_content_to_the_styles_other_crop():
    meter = TextureFeatures()
    content, style, other = _content(), _stripes(), _stripes(offset=17)
    assert style_match(meter, content, content, style, other) == pytest.approx(0.0, abs=1e-12)
    assert style_match(meter, content, other, style, other) == pytest.approx(1.0, abs=1e-12)
    half = style_match(meter, content, 0.5 * content + 0.5 * other, style, other)
    assert 0.1 < half < 0.9
    recoloured = style_match(meter, content, reinhard_transfer(content, style), style, other)
    assert 0.0 < recoloured < 1.0  # the colours move towards the style; the stripes do not appear
    with pytest.raises(ValueError, match="already matches"):
        style_match(meter, other, content, style, other)


def test_content_kept_is_one_for_the_same_edges_and_falls_as_they_go():
    rng = np.random.default_rng(0)
    content = _content()
    assert content_kept(content, content) == pytest.approx(1.0)
    assert content_kept(content, 0.5 * content + 0.25) > 0.95  # dimmer, same edges
    blurred = content.copy()
    for _ in range(3):
        blurred = (blurred + np.roll(blurred, 1, 1) + np.roll(blurred, 1, 2) + np.roll(blurred, -1, 1)
                   + np.roll(blurred, -1, 2)) / 5
    noise = rng.random(content.shape)
    scores = [content_kept(content, x) for x in (blurred, 0.5 * blurred + 0.5 * noise, noise)]
    assert 1.0 > scores[0] > scores[1] > scores[2]
    assert sobel_magnitude(np.ones((8, 8))).max() == 0


def test_ssim_agrees_with_scikit_image():
    from skimage.metrics import structural_similarity

    rng = np.random.default_rng(1)
    a = rng.random((48, 40))
    b = 0.7 * a + 0.3 * rng.random((48, 40))
    theirs = structural_similarity(a, b, data_range=1.0, gaussian_weights=True, sigma=1.5,
                                   use_sample_covariance=False)
    assert ssim(a, b, data_range=1.0) == pytest.approx(theirs, abs=0.02)
    assert ssim(a, a) == pytest.approx(1.0)
