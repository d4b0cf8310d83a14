"""The style-transfer images (trainer.data.style_images) and the style:photos / style:textures sets.

Real packages, no mocks of them: every picture is read from inside its installed wheel while the
network cannot be reached (socket connects and urllib raise, pooch cannot be imported), and must
match what the package's own loader gives. Small image sizes keep the crops quick.
"""

from __future__ import annotations

import socket
import sys
import urllib.request
from importlib import metadata
from itertools import combinations

import numpy as np
import pytest

from trainer.data import DataError, find_source, load_data
from trainer.data import style_images as si


def _clear_caches() -> None:
    si._content.cache_clear()
    si._style.cache_clear()
    si._record.cache_clear()


@pytest.fixture
def offline(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """No network and no pooch while the images are read afresh; returns the attempts made."""
    attempts: list[str] = []

    def refuse(*args: object, **kwargs: object) -> None:
        attempts.append(repr(args[:2]))
        raise OSError("network blocked by the test")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(urllib.request, "urlopen", refuse)
    monkeypatch.setitem(sys.modules, "pooch", None)  # `import pooch` raises ImportError
    _clear_caches()
    yield attempts
    _clear_caches()


def _decode(path: str) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as img:
        return np.array(img.convert("RGB"))


def test_every_image_loads_from_inside_its_wheel_offline(offline: list[str]) -> None:
    content, style = si.content_images(), si.style_images()
    assert [im.name for im in content] == [e.name for e in si.CONTENT_FILES]
    assert [im.name for im in style] == [e.name for e in si.STYLE_FILES] + [f"procedural:{k}" for k in si.PROCEDURAL]
    for im in content + style:
        assert im.pixels.dtype == np.uint8 and im.pixels.ndim == 3 and im.pixels.shape[2] == 3, im.name
        assert min(im.pixels.shape[:2]) >= 256, im.name
        assert not im.pixels.flags.writeable, im.name
        assert im.licence and im.package and im.file, im.name
        if im.name.startswith("procedural:"):
            continue
        distribution, version = im.package.rsplit(" ", 1)
        dist = metadata.distribution(distribution)
        assert dist.version == version
        assert im.file in {str(f) for f in dist.files or ()}, f"{im.file} is not in {distribution}'s RECORD"
        np.testing.assert_array_equal(im.pixels, _decode(str(dist.locate_file(im.file))))
    assert offline == [], f"network was tried: {offline}"
    assert sys.modules.get("pooch") is None


def test_the_files_are_what_the_packages_own_loaders_read_offline(offline: list[str]) -> None:
    """skimage.data's functions, sklearn's load_sample_image and matplotlib's get_sample_data agree."""
    import skimage.data
    from matplotlib.cbook import get_sample_data
    from sklearn.datasets import load_sample_image

    images = {im.name: im for im in si.content_images() + si.style_images()}
    for entry in si.CONTENT_FILES + si.STYLE_FILES:
        package, short = entry.name.split(":")
        pixels = images[entry.name].pixels
        if package == "skimage":
            theirs = getattr(skimage.data, short)()
            if theirs.ndim == 2:
                theirs = np.repeat(theirs[..., None], 3, axis=2)
            np.testing.assert_array_equal(pixels, theirs, err_msg=entry.name)
        elif package == "sklearn":
            np.testing.assert_array_equal(pixels, load_sample_image(f"{short}.jpg"), err_msg=entry.name)
        else:
            path = metadata.distribution("matplotlib").locate_file(entry.path)
            assert str(get_sample_data(f"{short}.jpg", asfileobj=False)) == str(path)
    assert offline == [], f"network was tried: {offline}"


def test_licences_cover_every_image() -> None:
    rows = si.licences()
    names = [r["name"] for r in rows]
    assert names == [im.name for im in si.content_images() + si.style_images()]
    assert len(set(names)) == len(names)
    for row in rows:
        assert row["role"] in ("content", "style") and row["licence"] and row["package"] and row["file"]
    by_name = {r["name"]: r for r in rows}
    assert "creativecommons.org/licenses/by/2.0" in by_name["sklearn:china"]["licence"]
    assert "CC0" in by_name["skimage:brick"]["licence"]


def test_procedural_textures_are_coloured_distinct_and_deterministic() -> None:
    textures = {kind: si.procedural_texture(kind, size=128) for kind in si.PROCEDURAL}
    assert len(textures) >= 6
    for kind, pixels in textures.items():
        assert pixels.shape == (128, 128, 3) and pixels.dtype == np.uint8
        spread = pixels.astype(np.float32).std(axis=2).mean()  # 0 for gray
        assert spread > 5.0, f"{kind} is nearly gray ({spread:.1f})"
        assert pixels.std() > 10.0, f"{kind} is nearly flat"
        np.testing.assert_array_equal(pixels, si.procedural_texture(kind, size=128))
        assert not np.array_equal(pixels, si.procedural_texture(kind, seed=1, size=128)), kind
    for (a, pa), (b, pb) in combinations(textures.items(), 2):
        gap = np.abs(pa.astype(np.int16) - pb.astype(np.int16)).mean()
        assert gap > 20.0, f"{a} and {b} are too alike ({gap:.1f})"
    with pytest.raises(DataError, match="marble"):
        si.procedural_texture("nope")


def test_random_crops_are_deterministic_and_balanced() -> None:
    images = si.style_images()
    crops, labels = si.random_crops(images, 40, 24)
    again, labels_again = si.random_crops(images, 40, 24)
    assert crops.shape == (40, 24, 24, 3) and crops.dtype == np.uint8
    np.testing.assert_array_equal(crops, again)
    np.testing.assert_array_equal(labels, labels_again)
    counts = np.bincount(labels, minlength=len(images))
    assert counts.max() - counts.min() <= 1
    other, _ = si.random_crops(images, 40, 24, seed=1)
    assert not np.array_equal(crops, other)


@pytest.mark.parametrize(("spec", "catalogue"), [("style:photos", si.content_images),
                                                 ("style:textures", si.style_images)])
def test_builtin_sets_by_name(spec: str, catalogue: object) -> None:
    data = load_data(spec, image_size=32)
    names = [im.name for im in catalogue()]  # type: ignore[operator]
    assert data.images is not None and data.labels is not None
    assert data.images.shape == (si.CROPS, 3, 32, 32) and data.images.dtype == np.float32
    assert 0.0 <= float(data.images.min()) and float(data.images.max()) <= 1.0
    assert data.class_names == names and data.spec.num_classes == len(names)
    assert set(np.unique(data.labels)) == set(range(len(names)))
    assert data.spec.source == spec and "labels" in data.spec.fields
    for label, name in enumerate(names):  # a crop looks like its image: colour crops of colour images
        if name.startswith("procedural:"):
            crops = data.images[data.labels == label]
            assert crops.std(axis=1).mean() > 0.02, name


def test_builtin_sets_are_deterministic_and_take_channels() -> None:
    first, second = load_data("style:textures", image_size=16), load_data("style:textures", image_size=16)
    np.testing.assert_array_equal(first.images, second.images)
    np.testing.assert_array_equal(first.labels, second.labels)
    gray = load_data("style:textures", image_size=16, channels=1)
    assert gray.images is not None and gray.images.shape == (si.CROPS, 1, 16, 16)


def test_the_registry_knows_the_style_sets() -> None:
    assert find_source("style:photos").builtin_names() == ("style:photos", "style:textures")
    with pytest.raises(DataError, match="style:photos"):
        find_source("style:nope")


@pytest.mark.parametrize(("module", "distribution", "loader", "spec"), [
    ("skimage", "scikit-image", si.style_images, "style:textures"),
    ("sklearn", "scikit-learn", si.content_images, "style:photos"),
    ("matplotlib", "matplotlib", si.content_images, "style:photos"),
])
def test_a_missing_package_names_the_extra(monkeypatch: pytest.MonkeyPatch, module: str, distribution: str,
                                           loader: object, spec: str) -> None:
    monkeypatch.setitem(sys.modules, module, None)  # as if not installed: `import` and find_spec fail
    _clear_caches()
    try:
        for load in (loader, lambda: load_data(spec, image_size=16)):
            with pytest.raises(DataError) as caught:
                load()  # type: ignore[operator]
            message = str(caught.value)
            assert distribution in message and "pip install -e '.[datasets]'" in message, message
    finally:
        _clear_caches()


def test_a_file_changed_after_install_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    """The RECORD hash check: bytes that are not the wheel's are not used."""
    entry = si.CONTENT_FILES[0]
    _, packaged = si._record(entry.distribution)[entry.path]
    monkeypatch.setattr(type(packaged), "read_binary", lambda self: b"not the wheel's file")
    with pytest.raises(DataError, match="differs from the file"):
        si._read_wheel_file(entry)
