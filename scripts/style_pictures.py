"""The style-transfer pictures of the demo and of docs/benchmarks/style.md, made by calling a
running server's Stylize like any client:

* ``style_grid``: contents x styles: a top row of style images, then each content followed by it
  in each style (alpha 1);
* ``alpha_strip``: one content in one style at alpha 0, 0.25, 0.5, 0.75 and 1;
* ``colour_strip``: one content in each style with ``preserve_color`` (its colours, the style's
  strokes).

Contents are crops of the content photographs and styles crops of the style textures, taken
with the style meter's own crop seed (``trainer.quality.stylize``), so not the crops a model
trained on.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

SIZE = 192  # side of every picture in the grids
STYLES = ("skimage:brick", "skimage:grass", "procedural:marble", "procedural:plaid", "procedural:waves",
          "procedural:voronoi")
CONTENTS = ("skimage:astronaut", "skimage:chelsea", "skimage:coffee", "sklearn:china")
ALPHAS = (0.0, 0.25, 0.5, 0.75, 1.0)
GAP = 4  # pixels between pictures


def pictures(size: int = SIZE) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """The demo's contents and styles by name: float32 (3, size, size) in [0, 1]."""
    from trainer.data.style_images import style_images
    from trainer.quality.stylize import content_crops, style_pairs

    crops, names = content_crops(size)
    contents = {n: c for n, c in zip(names, crops) if n in CONTENTS}
    styles, _, names = style_pairs(style_images(), size)
    return contents, {n: s for n, s in zip(names, styles) if n in STYLES}


def _tile(rows: list[list[np.ndarray | None]], size: int) -> Image.Image:
    """Rows of (3, size, size) images (None = blank) as one picture on white."""
    h, w = len(rows), max(len(r) for r in rows)
    canvas = np.ones((h * size + (h - 1) * GAP, w * size + (w - 1) * GAP, 3), np.float32)
    for i, row in enumerate(rows):
        for j, image in enumerate(row):
            if image is not None:
                y, x = i * (size + GAP), j * (size + GAP)
                canvas[y:y + size, x:x + size] = image.transpose(1, 2, 0)
    return Image.fromarray((canvas * 255 + 0.5).astype(np.uint8))


def _stylized(client, model: str, content: np.ndarray, style: np.ndarray | str, **kw) -> np.ndarray:
    made = client.stylize(model, content, style, **kw)
    return np.asarray(made.sample.pil().convert("RGB"), np.float32).transpose(2, 0, 1) / 255.0


def style_grid(client, model: str, path: Path, size: int = SIZE) -> Path:
    """Contents x styles at alpha 1; each style sent once, then named by its id."""
    contents, styles = pictures(size)
    ids: dict[str, str] = {}
    rows: list[list[np.ndarray | None]] = [[None, *styles.values()]]
    for content in contents.values():
        row: list[np.ndarray | None] = [content]
        for name, style in styles.items():
            made = client.stylize(model, content, ids.get(name, style))
            ids[name] = made.style_id
            row.append(np.asarray(made.sample.pil().convert("RGB"), np.float32).transpose(2, 0, 1) / 255.0)
        rows.append(row)
    _tile(rows, size).save(path)
    return path


def alpha_strip(client, model: str, path: Path, content: str = "skimage:chelsea", style: str = "procedural:marble",
                size: int = SIZE) -> Path:
    """The style image, then one content at each of ALPHAS."""
    contents, styles = pictures(size)
    row = [styles[style], *(_stylized(client, model, contents[content], styles[style], alpha=a) for a in ALPHAS)]
    _tile([row], size).save(path)
    return path


def colour_strip(client, model: str, path: Path, content: str = "skimage:astronaut", size: int = SIZE) -> Path:
    """One content, then it in each style with its own colours kept (preserve_color)."""
    contents, styles = pictures(size)
    row = [contents[content], *(_stylized(client, model, contents[content], s, preserve_color=True)
                                for s in styles.values())]
    _tile([row], size).save(path)
    return path


__all__ = ["alpha_strip", "colour_strip", "pictures", "style_grid"]
