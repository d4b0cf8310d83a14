"""Content photographs and style textures for style transfer, from installed wheels only.

Every picture is either a file shipped inside a wheel the `datasets` extra installs, or a texture
generated here with NumPy from a fixed seed. Nothing is downloaded and no copy lives in the
repository (docs/style_data.md lists each image, its file and its licence):

- content photographs: scikit-image's bundled colour photographs (skimage/data/; the other
  `skimage.data` samples are fetched by pooch at run time and are never used), scikit-learn's
  two sample photographs (sklearn/datasets/images/) and matplotlib's grace_hopper.jpg
  (matplotlib/mpl-data/sample_data/);
- style textures: scikit-image's CC0 textures (brick, grass, gravel; grayscale, given as RGB)
  and PROCEDURAL textures (stripes, plaid, marble, halftone, waves, voronoi), coloured.

Each file is read straight from the installed distribution and checked against the sha256 its
wheel's RECORD gives, so a file that did not come from the wheel is refused.

--data names (see StyleSet): `style:photos` and `style:textures`, CROPS random square crops of
the content or style images (as many from each image as the count allows, labelled by image name), resized
to --image-size (default DEFAULT_SIZE) with a fixed seed, so two loads give the same pixels.
"""

from __future__ import annotations

import base64
import hashlib
import importlib.util
from dataclasses import dataclass
from functools import lru_cache
from importlib import metadata
from io import BytesIO
from typing import Callable

import numpy as np

from trainer.data.base import DataError, DataOptions, DataSource, TrainingData
from trainer.data.shaping import conform

EXTRA = "datasets"  # the pyproject extra that installs every package read here
CROPS = 2000  # crops per data set, spread evenly over its images
DEFAULT_SIZE = 256  # crop size when --image-size is not given
CROP_SEED = 0  # the crops' positions and sizes
PROCEDURAL_SEED = 0  # the procedural textures
PROCEDURAL_SIZE = 512  # side of a generated texture, as scikit-image's textures


@dataclass(frozen=True)
class NamedImage:
    """One source picture: pixels (H, W, 3) uint8 RGB, read-only, and where they came from."""

    name: str  # e.g. "skimage:astronaut", "procedural:marble"; the class name in the data sets
    pixels: np.ndarray
    package: str  # distribution and version, e.g. "scikit-image 0.26.0"; "latentforge" when generated
    file: str  # path inside the wheel, or the generator that made it
    licence: str  # the licence wording of the package's own docs
    upstream: str  # where the package got it (empty for generated textures)


@dataclass(frozen=True)
class _WheelFile:
    """A catalogue entry: a picture file inside an installed distribution."""

    name: str
    distribution: str  # as pip names it
    module: str  # the import name, whose absence means the distribution is missing
    path: str  # as listed in the wheel's RECORD
    licence: str
    upstream: str


_SKIMAGE_CC0_TEXTURE = "licensed under the Creative Commons CC0 License"
_SKLEARN_CC_BY = ("Released under a creative commons license. [1] Attribution: Some rights reserved by "
                  "danielbuechele [2] ([1] https://creativecommons.org/licenses/by/2.0/)")

CONTENT_FILES: tuple[_WheelFile, ...] = (
    _WheelFile("skimage:astronaut", "scikit-image", "skimage", "skimage/data/astronaut.png",
               "No known copyright restrictions, released into the public domain.",
               "NASA Great Images database, https://flic.kr/p/r9qvLn"),
    _WheelFile("skimage:chelsea", "scikit-image", "skimage", "skimage/data/chelsea.png",
               "No copyright restrictions. CC0 by the photographer (Stefan van der Walt).", ""),
    _WheelFile("skimage:coffee", "scikit-image", "skimage", "skimage/data/coffee.png",
               "No copyright restrictions. CC0 by the photographer (Rachel Michetti).",
               "This photograph is courtesy of Pikolo Espresso Bar."),
    _WheelFile("skimage:rocket", "scikit-image", "skimage", "skimage/data/rocket.jpg",
               "The image was captured by SpaceX and released in the public domain.",
               "SpaceX Photos, https://www.flickr.com/photos/spacexphotos/16511594820/"),
    _WheelFile("skimage:hubble_deep_field", "scikit-image", "skimage", "skimage/data/hubble_deep_field.jpg",
               "The image was captured by NASA and may be freely used in the public domain.",
               "HubbleSite, http://hubblesite.org/newscenter/archive/releases/2012/37/image/a/"),
    _WheelFile("sklearn:china", "scikit-learn", "sklearn", "sklearn/datasets/images/china.jpg",
               _SKLEARN_CC_BY,
               "https://www.flickr.com/photos/danielbuechele/6061409035/ (retrieved by Robert Layton)"),
    _WheelFile("sklearn:flower", "scikit-learn", "sklearn", "sklearn/datasets/images/flower.jpg",
               _SKLEARN_CC_BY,
               "https://www.flickr.com/photos/vultilion/6056698931/ (retrieved by Robert Layton)"),
    _WheelFile("matplotlib:grace_hopper", "matplotlib", "matplotlib",
               "matplotlib/mpl-data/sample_data/grace_hopper.jpg",
               "Public domain, as matplotlib added it (pull request #1599: 'public domain images of Ada "
               "Lovelace and Grace Murray Hopper'); the wheel ships no licence note for the file.",
               "https://github.com/matplotlib/matplotlib/pull/1599"),
)

STYLE_FILES: tuple[_WheelFile, ...] = (
    _WheelFile("skimage:brick", "scikit-image", "skimage", "skimage/data/brick.png",
               f"The original image was downloaded from CC0Textures and {_SKIMAGE_CC0_TEXTURE}.",
               "https://cc0textures.com/view.php?tex=Bricks25"),
    _WheelFile("skimage:grass", "scikit-image", "skimage", "skimage/data/grass.png",
               f"The original image was downloaded from DeviantArt and {_SKIMAGE_CC0_TEXTURE}.",
               "https://www.deviantart.com/linolafett/art/Grass-01-434853879"),
    _WheelFile("skimage:gravel", "scikit-image", "skimage", "skimage/data/gravel.png",
               f"The original image was downloaded from CC0Textures and {_SKIMAGE_CC0_TEXTURE}.",
               "https://cc0textures.com/view.php?tex=Gravel04"),
)

PROCEDURAL_LICENCE = "Generated by latentforge from a fixed seed; no third-party material."


# --- reading files from installed wheels -------------------------------------------------------


def _missing(entry: _WheelFile, why: str) -> DataError:
    return DataError(
        f"{entry.name} needs the {entry.distribution} package ({why}); install the "
        f"'{EXTRA}' extra: pip install -e '.[{EXTRA}]'"
    )


@lru_cache(maxsize=None)
def _record(distribution: str) -> dict[str, tuple[str, object]]:
    """The wheel's RECORD of an installed distribution: path -> (version, PackagePath)."""
    dist = metadata.distribution(distribution)
    version = dist.version  # parsed from METADATA on every access: read it once
    return {str(f): (version, f) for f in dist.files or ()}


def _read_wheel_file(entry: _WheelFile) -> tuple[bytes, str]:
    """The bytes of a file inside its installed wheel, checked against RECORD; and "dist version"."""
    if importlib.util.find_spec(entry.module) is None:
        raise _missing(entry, f"'import {entry.module}' finds nothing")
    try:
        record = _record(entry.distribution)
    except metadata.PackageNotFoundError:
        raise _missing(entry, "no installed distribution") from None
    if entry.path not in record:
        raise DataError(f"{entry.name}: {entry.path} is not a file of the installed {entry.distribution} wheel")
    version, packaged = record[entry.path]
    data = packaged.read_binary()  # type: ignore[attr-defined]
    expected = packaged.hash  # type: ignore[attr-defined]
    if expected is not None:
        digest = base64.urlsafe_b64encode(hashlib.new(expected.mode, data).digest()).rstrip(b"=").decode()
        if digest != expected.value:
            raise DataError(f"{entry.name}: {entry.path} differs from the file {entry.distribution} {version} shipped")
    return data, f"{entry.distribution} {version}"


def _decode_rgb(data: bytes) -> np.ndarray:
    """PNG/JPEG bytes -> (H, W, 3) uint8 RGB (grayscale repeated), read-only."""
    from PIL import Image

    with Image.open(BytesIO(data)) as img:
        pixels = np.array(img.convert("RGB"), dtype=np.uint8)
    pixels.flags.writeable = False
    return pixels


def _load_entry(entry: _WheelFile) -> NamedImage:
    data, package = _read_wheel_file(entry)
    return NamedImage(entry.name, _decode_rgb(data), package, entry.path, entry.licence, entry.upstream)


# --- procedural textures -----------------------------------------------------------------------


def _ramp(stops: list[tuple[int, int, int]], t: np.ndarray) -> np.ndarray:
    """Map t in [0, 1] (H, W) through a piecewise-linear colour ramp to float RGB (H, W, 3)."""
    colours = np.asarray(stops, dtype=np.float64)
    at = np.linspace(0.0, 1.0, len(colours))
    return np.stack([np.interp(t, at, colours[:, c]) for c in range(3)], axis=-1)


def _value_noise(rng: np.random.Generator, size: int, cells: int) -> np.ndarray:
    """Smooth noise in [0, 1]: a random (cells+1)^2 grid, smoothstep-interpolated to size x size."""
    grid = rng.random((cells + 1, cells + 1))
    pos = np.linspace(0.0, cells, size, endpoint=False)
    i = pos.astype(np.int64)
    f = pos - i
    f = f * f * (3.0 - 2.0 * f)
    rows0, rows1 = grid[i], grid[i + 1]
    top = rows0[:, i] * (1.0 - f) + rows0[:, i + 1] * f
    bottom = rows1[:, i] * (1.0 - f) + rows1[:, i + 1] * f
    return top * (1.0 - f)[:, None] + bottom * f[:, None]


def _fractal_noise(rng: np.random.Generator, size: int, base: int = 4, octaves: int = 5) -> np.ndarray:
    """Octaves of value noise (each half the amplitude, twice the frequency), scaled to [0, 1]."""
    total = sum(0.5**o * _value_noise(rng, size, base * 2**o) for o in range(octaves))
    return (total - total.min()) / (total.max() - total.min())


def _grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    y, x = np.mgrid[0:size, 0:size].astype(np.float64)
    return x, y


def _stripes(rng: np.random.Generator, size: int) -> np.ndarray:
    """Diagonal bands of four colours at a random angle, edges slightly soft, a little grain."""
    x, y = _grid(size)
    angle = np.deg2rad(rng.uniform(20.0, 70.0))
    period = rng.uniform(18.0, 34.0)
    t = (x * np.cos(angle) + y * np.sin(angle)) / period
    palette = np.array([(214, 69, 65), (245, 215, 110), (38, 70, 83), (42, 157, 143)], dtype=np.float64)
    band = np.floor(t).astype(np.int64) % len(palette)
    rgb = palette[band]
    edge = np.clip(np.minimum(t % 1.0, 1.0 - t % 1.0) * period / 1.5, 0.0, 1.0)[..., None]
    return rgb * (0.75 + 0.25 * edge) + rng.normal(0.0, 6.0, rgb.shape)


def _plaid(rng: np.random.Generator, size: int) -> np.ndarray:
    """A tartan: the same sett of coloured stripes across and down, woven in a 2/2 twill."""
    widths = rng.integers(6, 28, size=6)
    palette = np.array([(120, 20, 30), (20, 50, 40), (200, 170, 60), (15, 25, 70), (120, 20, 30), (235, 230, 210)],
                       dtype=np.float64)
    sett = np.repeat(np.arange(len(widths)), widths)
    colour_of = palette[sett[np.arange(size) % len(sett)]]  # (size, 3) along one axis
    warp = colour_of[None, :, :].repeat(size, axis=0)
    weft = colour_of[:, None, :].repeat(size, axis=1)
    x, y = _grid(size)
    twill = ((x + y) // 2 % 2)[..., None]  # which thread lies on top, in diagonal steps
    return np.where(twill > 0, warp, weft) * 0.8 + (warp + weft) * 0.1


def _marble(rng: np.random.Generator, size: int) -> np.ndarray:
    """Veined marble: a sine along a slant, bent by fractal noise, through a green-cream ramp."""
    x, y = _grid(size)
    noise = _fractal_noise(rng, size, base=3, octaves=6)
    phase = (x * 0.6 + y * 0.8) / size * 6.0 + 5.0 * noise
    t = np.abs(np.sin(np.pi * phase)) ** 0.5
    return _ramp([(20, 60, 45), (70, 120, 95), (200, 210, 190), (240, 236, 222)], t)


def _halftone(rng: np.random.Generator, size: int) -> np.ndarray:
    """Two halftone screens (cyan at 15 degrees, magenta at 75) over noise, printed on cream paper."""
    x, y = _grid(size)
    paper = np.array([250.0, 244.0, 228.0])
    out = np.broadcast_to(paper, (size, size, 3)).copy()
    for ink, degrees in (((0.0, 0.55, 0.65), 15.0), ((0.1, 0.75, 0.2), 75.0)):  # absorbed fraction per channel
        tone = _value_noise(rng, size, 3)
        a = np.deg2rad(degrees)
        u = (x * np.cos(a) + y * np.sin(a)) / 10.0
        v = (-x * np.sin(a) + y * np.cos(a)) / 10.0
        distance = np.hypot(u - np.round(u), v - np.round(v))  # to the nearest screen cell centre
        dot = np.clip((0.62 * np.sqrt(tone) - distance) * 8.0, 0.0, 1.0)[..., None]
        out *= 1.0 - dot * np.asarray(ink)
    return out


def _waves(rng: np.random.Generator, size: int) -> np.ndarray:
    """Interfering waves, bent sideways, through an ocean-to-sunset ramp."""
    x, y = _grid(size)
    k1, k2 = rng.uniform(0.03, 0.06, size=2)
    wobble = rng.uniform(10.0, 25.0)
    t = np.sin(k1 * y + wobble * np.sin(x / 60.0)) + 0.6 * np.sin(k2 * (x + y) + 2.0 * np.sin(y / 45.0))
    t = (t - t.min()) / (t.max() - t.min())
    return _ramp([(8, 30, 80), (30, 110, 170), (110, 200, 210), (250, 200, 120), (230, 90, 60)], t)


def _voronoi(rng: np.random.Generator, size: int) -> np.ndarray:
    """Stained glass: Voronoi cells of random jewel colours, shaded toward their seeds, dark leading."""
    seeds = rng.random((56, 2)) * size
    palette = np.array([(170, 30, 45), (30, 80, 160), (240, 180, 40), (40, 140, 80), (120, 50, 140),
                        (230, 110, 40)], dtype=np.float64)
    colours = palette[rng.integers(0, len(palette), len(seeds))] * rng.uniform(0.8, 1.1, (len(seeds), 1))
    x, y = _grid(size)
    d1 = np.full((size, size), np.inf)  # distance to the nearest seed, and to the second nearest
    d2 = np.full((size, size), np.inf)
    cell = np.zeros((size, size), dtype=np.int64)
    for k, (sx, sy) in enumerate(seeds):
        d = np.hypot(x - sx, y - sy)
        nearer = d < d1
        d2 = np.where(nearer, d1, np.minimum(d2, d))
        d1 = np.where(nearer, d, d1)
        cell[nearer] = k
    shade = np.clip(1.1 - d1 / (size / 5.0), 0.6, 1.1)[..., None]
    leading = np.clip((d2 - d1 - 2.0) / 3.0, 0.0, 1.0)[..., None]
    return colours[cell] * shade * leading + 25.0 * (1.0 - leading)


PROCEDURAL: dict[str, Callable[[np.random.Generator, int], np.ndarray]] = {
    "stripes": _stripes,
    "plaid": _plaid,
    "marble": _marble,
    "halftone": _halftone,
    "waves": _waves,
    "voronoi": _voronoi,
}


def procedural_texture(kind: str, seed: int = PROCEDURAL_SEED, size: int = PROCEDURAL_SIZE) -> np.ndarray:
    """One generated texture, (size, size, 3) uint8 RGB; the same kind, seed and size give the same pixels."""
    if kind not in PROCEDURAL:
        raise DataError(f"no procedural texture {kind!r}; use one of {', '.join(PROCEDURAL)}")
    rng = np.random.default_rng([seed, list(PROCEDURAL).index(kind)])  # one stream per kind
    return np.clip(np.round(PROCEDURAL[kind](rng, size)), 0, 255).astype(np.uint8)


def _procedural_images() -> list[NamedImage]:
    images = []
    for kind, make in PROCEDURAL.items():
        pixels = procedural_texture(kind)
        pixels.flags.writeable = False
        images.append(NamedImage(f"procedural:{kind}", pixels, "latentforge",
                                 f"trainer.data.style_images.{make.__name__} (seed {PROCEDURAL_SEED}, "
                                 f"{PROCEDURAL_SIZE}x{PROCEDURAL_SIZE})", PROCEDURAL_LICENCE, ""))
    return images


# --- the public lists and the licence table ----------------------------------------------------


@lru_cache(maxsize=1)
def _content() -> tuple[NamedImage, ...]:
    return tuple(_load_entry(e) for e in CONTENT_FILES)


@lru_cache(maxsize=1)
def _style() -> tuple[NamedImage, ...]:
    return tuple(_load_entry(e) for e in STYLE_FILES) + tuple(_procedural_images())


def content_images() -> list[NamedImage]:
    """The content photographs, each read from inside its installed wheel (decoded once per process)."""
    return list(_content())


def style_images() -> list[NamedImage]:
    """The style textures: scikit-image's CC0 textures and the procedural ones (made once per process)."""
    return list(_style())


def licences() -> list[dict[str, str]]:
    """For every image (content first, then style): name, role, package, file, licence, upstream.

    Static: needs none of the packages installed, so it can be shown before anything is read.
    """
    rows = [{"name": e.name, "role": role, "package": e.distribution, "file": e.path, "licence": e.licence,
             "upstream": e.upstream}
            for role, entries in (("content", CONTENT_FILES), ("style", STYLE_FILES)) for e in entries]
    rows += [{"name": f"procedural:{kind}", "role": "style", "package": "latentforge",
              "file": f"trainer.data.style_images.{make.__name__}", "licence": PROCEDURAL_LICENCE, "upstream": ""}
             for kind, make in PROCEDURAL.items()]
    return rows


# --- crops and the data sets -------------------------------------------------------------------


def random_crops(images: list[NamedImage], count: int, size: int, seed: int = CROP_SEED
                 ) -> tuple[np.ndarray, np.ndarray]:
    """`count` random square crops, resized to size x size: (N, size, size, 3) uint8 and labels (N,).

    Crop k comes from image k % len(images) and is labelled by that index (so the images give
    counts that differ by at most one). Its side is drawn between half the image's short side and the whole short side, but
    at least `size` where the image allows, so crops are downscaled rather than blown up; its
    position is uniform. The same images, count, size and seed give the same crops.
    """
    from PIL import Image

    rng = np.random.default_rng(seed)
    pil = [Image.fromarray(np.asarray(im.pixels)) for im in images]
    labels = np.arange(count, dtype=np.int64) % len(images)
    out = np.empty((count, size, size, 3), dtype=np.uint8)
    for k, label in enumerate(labels):
        img = pil[label]
        w, h = img.size
        short = min(w, h)
        low = min(max(short // 2, size), short)
        side = int(rng.integers(low, short + 1))
        left = int(rng.integers(0, w - side + 1))
        top = int(rng.integers(0, h - side + 1))
        out[k] = np.asarray(img.resize((size, size), Image.Resampling.LANCZOS,
                                       box=(left, top, left + side, top + side), reducing_gap=3.0))
    return out, labels


SETS: dict[str, tuple[Callable[[], list[NamedImage]], str]] = {
    "style:photos": (content_images, "content photographs"),
    "style:textures": (style_images, "style textures"),
}


def _to_unit_nchw(crops: np.ndarray, chunk: int = 128) -> np.ndarray:
    """(N, H, W, 3) uint8 -> (N, 3, H, W) float32 in [0, 1], in chunks (no full-size temporaries)."""
    out = np.empty((crops.shape[0], 3, *crops.shape[1:3]), dtype=np.float32)
    for start in range(0, len(crops), chunk):
        part = out[start:start + chunk]
        part[...] = crops[start:start + chunk].transpose(0, 3, 1, 2)
        part /= 255.0
    return out


def load_style_set(spec: str, options: DataOptions) -> TrainingData:
    """`style:photos` or `style:textures`: CROPS crops at --image-size (default DEFAULT_SIZE), labelled."""
    if spec not in SETS:
        raise DataError(f"no style data set {spec!r}; use one of {', '.join(SETS)}")
    images = SETS[spec][0]()
    size = options.image_size or DEFAULT_SIZE
    if size < options.min_image_size:
        raise DataError(f"{spec}: --image-size {size} is below the minimum of {options.min_image_size} px")
    crops, labels = random_crops(images, CROPS, size)
    data = TrainingData(source=spec, images=_to_unit_nchw(crops), labels=labels,
                        class_names=[im.name for im in images])
    return conform(data, options)  # only --channels 1 changes anything: the crops have the size asked for


class StyleSet(DataSource):
    """`style:photos` and `style:textures`: random crops of the content photographs or style textures."""

    name = "style"
    summary = (f"'style:photos' or 'style:textures' ({CROPS:,} crops of photographs or textures from "
               "installed wheels, labelled by image)")

    def builtin_names(self) -> tuple[str, ...]:
        return tuple(SETS)

    def claims(self, spec: str) -> bool:
        return spec in SETS

    def load(self, spec: str, options: DataOptions) -> TrainingData:
        return load_style_set(spec, options)
