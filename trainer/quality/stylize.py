"""Style-transfer quality: the figures of a model with the ``stylize`` (any style) or
``stylize_fixed`` (one style built in) task, as ``latentforge evaluate`` reports them and an
export's ``--evaluate`` writes them into the manifest's quality.

* **Style match** (``trainer.quality.style.style_match``): the share of the gap closed between the
  content (0) and another crop of the style (1) in the meter's own texture statistics, a network
  that training never used. Measured at alpha 1 on content x style pairs: contents are crops of the
  content photographs (``style:photos``) taken with the meter's own crop seed, so not the crops a
  model trained on; styles are the style textures (``style:textures``; a one-style model: its own
  style image), each given as one crop and compared with another. Beside it, the same figure for
  Reinhard et al.'s colour transfer (2001) on the same pairs: what a classical method reaches.
* **Content kept** (``trainer.quality.style.content_kept``): SSIM of the edge maps of content and
  output, at alphas 0.25, 0.5, 0.75 and 1; it should fall as alpha rises (``content_monotone``).
* **Still legible**: held-out digits (the meter's held-out split of ``mnist5k``), drawn white on
  black at LEGIBLE_SCALE times their size, stylised with each of LEGIBLE_STYLES at alpha 1,
  brought back to 28 x 28 grey (luminance, area-averaged; each pixel's distance from the
  background, stretched to [0, 1], so a digit painted dark on light reads too) and read by the
  meter's digit classifier; the share read as their label, per style, beside the share of the
  unstylised digits it reads.

A version folder runs in ONNX Runtime, as served; a run folder runs the graphs its family would
export, in PyTorch. Images are float32 RGB in [0, 1], (N, 3, H, W).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, ClassVar

import numpy as np

from latentforge.colour import reinhard_transfer
from trainer.quality.features import METER_VERSION, QualityError, meter_for, split_indices
from trainer.quality.scored import Report, ScoredModel, TaskFigures, round_figure, round_figures
from trainer.quality.style import TextureFeatures, content_kept, luminance, style_distance

EVAL_SIZE = 128  # side of the content and style crops of the pairs
EVAL_CROP_SEED = 20_010_901  # the meter's crops: not the training crops (trainer.data.style_images.CROP_SEED)
CONTENTS = 8  # content crops: one per content photograph
ALPHAS = (0.25, 0.5, 0.75, 1.0)
LEGIBLE_STYLES = ("skimage:brick", "skimage:grass", "procedural:marble", "procedural:plaid", "procedural:waves")
LEGIBLE_DIGITS = 200  # held-out digits stylised with each legibility style
LEGIBLE_SCALE = 4  # digits are stylised at 4 x 28 = 112 px: a texture needs room to show
DIGITS = "mnist5k"
BATCH = 16
TARGETS = {"style_match": 0.5, "content_kept": 0.6, "legible": 0.9}


class _Graphs:
    """A model's style graphs by task: ONNX Runtime for a version, the family's export modules in
    PyTorch for a run. ``run(task, feeds)`` returns the outputs by name, as the runtime does."""

    def __init__(self, model: ScoredModel) -> None:
        self.model = model
        self._modules: dict[str, Any] | None = None

    def run(self, task: str, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        if self.model.runtime is not None:
            return self.model.runtime.run_task(task, feeds)
        import torch

        if self._modules is None:
            family = self.model.family()
            self._modules = {g.role: g for g in family.export_graphs()}
            self._tasks = dict(family.tasks)
        graph = self._modules[self._tasks[task]]
        with torch.no_grad():
            out = graph.module(*(torch.from_numpy(np.ascontiguousarray(feeds[n])) for n in graph.input_names))
        out = out if isinstance(out, tuple) else (out,)
        return {name: t.numpy() for name, t in zip(graph.output_names, out)}


class Stylist:
    """Stylises images with a scored model: ``stylize(contents, style, alpha)`` for any style
    (its statistics from the style encoder), or with the style built in (``style`` None)."""

    def __init__(self, model: ScoredModel) -> None:
        self.fixed = "stylize_fixed" in model.tasks
        if not self.fixed and not {"encode_style", "stylize"} <= model.tasks:
            raise QualityError(f"{model.target} does not stylise: it has neither the stylize_fixed task nor "
                               f"encode_style and stylize (its tasks: {', '.join(sorted(model.tasks)) or 'none'})")
        self.graphs = _Graphs(model)

    def statistics(self, style: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The style encoder's statistics of one style image (3, H, W): mean and std, (S,) each."""
        out = self.graphs.run("encode_style", {"style": style[None].astype(np.float32)})
        return out["style_mean"][0], out["style_std"][0]

    def stylize(self, contents: np.ndarray, style: np.ndarray | None, alpha: float = 1.0) -> np.ndarray:
        """Contents (N, 3, H, W) stylised after ``style`` (3, Hs, Ws) at ``alpha``, in batches."""
        stats = None if self.fixed or style is None else self.statistics(style)
        out = []
        for start in range(0, len(contents), BATCH):
            part = np.ascontiguousarray(contents[start:start + BATCH], dtype=np.float32)
            n, _, h, w = part.shape
            feeds = {"content": part, "alpha": np.full(n, alpha, np.float32),
                     "mask": np.ones((n, 1, h, w), np.float32)}
            if stats is not None:
                feeds["style_mean"] = np.repeat(stats[0][None], n, 0)
                feeds["style_std"] = np.repeat(stats[1][None], n, 0)
            out.append(self.graphs.run("stylize_fixed" if self.fixed else "stylize", feeds)["stylized"])
        return np.concatenate(out)


# --- the images the meter uses ------------------------------------------------------------------

def _crops(images: list, count: int, size: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    from trainer.data.style_images import random_crops

    crops, labels = random_crops(images, count, size, seed)
    return crops.transpose(0, 3, 1, 2).astype(np.float32) / 255.0, labels


def content_crops(size: int = EVAL_SIZE) -> tuple[np.ndarray, list[str]]:
    """One crop of each content photograph at ``size``, with the photographs' names."""
    from trainer.data.style_images import content_images

    images = content_images()
    crops, labels = _crops(images, CONTENTS, size, EVAL_CROP_SEED)
    return crops, [images[k].name for k in labels]


def style_pairs(images: list, size: int = EVAL_SIZE) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Two crops of each style image (the one given as the style, the other the floor of style
    match), with the images' names."""
    crops, labels = _crops(images, 2 * len(images), size, EVAL_CROP_SEED + 1)
    return crops[: len(images)], crops[len(images):], [images[k].name for k in labels[: len(images)]]


def _model_style_images(model: ScoredModel) -> tuple[list, str]:
    """The style images a model is measured against: the built-in textures for a model of any
    style; a one-style model's own style image (the data it trained on)."""
    from trainer.data import load_data
    from trainer.data.style_images import NamedImage, style_images

    if "stylize_fixed" not in model.tasks:
        return style_images(), "style:textures"
    spec = model.data_spec()
    if Path(spec.spec).is_file():  # the style image itself, whole (its data set is crops of it)
        from PIL import Image

        with Image.open(spec.spec) as img:
            pixels = np.asarray(img.convert("RGB"))
    else:
        data = load_data(spec.spec, None, None, spec.min_image_size)
        pixels = (np.asarray(data.images[0]).transpose(1, 2, 0) * 255.0).round().astype(np.uint8)
    if pixels.shape[2] == 1:
        pixels = np.repeat(pixels, 3, axis=2)
    name = Path(spec.spec).name
    return [NamedImage(name=name, pixels=pixels, package="", file=spec.spec, licence="", upstream="")], spec.spec


def _digit_images(count: int, scale: int, cache_dir: Path | None) -> tuple[np.ndarray, np.ndarray, Any]:
    """Held-out digits (N, 3, 28 * scale, 28 * scale), their labels, and the meter that reads them."""
    from trainer.data import load_data

    meter = meter_for(DIGITS, cache_dir=cache_dir)
    if not meter.labelled:
        raise QualityError(f"the meter of {DIGITS} has no classifier to read digits with")
    data = load_data(DIGITS)
    _, held = split_indices(len(data), meter.settings.held_out, meter.settings.seed)
    held = held[np.linspace(0, len(held) - 1, min(count, len(held))).astype(int)]  # spread over the split's classes
    digits = np.asarray(data.images[held], dtype=np.float32)  # (N, 1, 28, 28)
    big = np.repeat(np.repeat(digits, scale, axis=2), scale, axis=3)
    return np.repeat(big, 3, axis=1), np.asarray(data.labels)[held], meter


def to_digit(images: np.ndarray, scale: int) -> np.ndarray:
    """Stylised digits (N, 3, 28s, 28s) back to what the meter reads, (N, 1, 28, 28): luminance,
    area-averaged to 28 x 28, then how far each pixel is from the background (the image's median),
    stretched to [0, 1]. A style may paint the digit dark on light: the stroke is what differs
    from its background, whichever way."""
    gray = np.stack([luminance(im) for im in images])  # (N, H, W)
    n, h, w = gray.shape
    small = gray.reshape(n, h // scale, scale, w // scale, scale).mean(axis=(2, 4))
    away = np.abs(small - np.median(small, axis=(1, 2), keepdims=True))
    span = np.maximum(away.max(axis=(1, 2), keepdims=True), 1e-6)
    return (away / span)[:, None].astype(np.float32)


def _read(meter: Any, images: np.ndarray, labels: np.ndarray) -> float:
    _, probs = meter.embed(images)
    return float((probs.argmax(1) == labels).mean())


# --- the figures ---------------------------------------------------------------------------------

@dataclass
class StyleFigures(TaskFigures):
    """A style model's figures: style match (and Reinhard's), content kept by alpha, legibility."""

    task: ClassVar[str] = "stylize"
    graphs: list[str]
    styles: str  # where the style images came from
    pairs: int
    size: int
    style_match: float  # mean over pairs, alpha 1
    style_match_reinhard: float
    style_match_by_style: dict[str, float]
    content_kept: dict[str, float]  # alpha (as text) -> mean over pairs
    content_monotone: bool
    legible: float | None  # mean over LEGIBLE_STYLES (one style: its own)
    legible_by_style: dict[str, float]
    legible_unstylised: float | None
    digits: int

    def summary(self, report: Report) -> dict[str, Any]:
        """A flat record (a manifest's quality)."""
        out: dict[str, Any] = {
            "task": self.task, "style_match": round_figure(self.style_match),
            "style_match_reinhard": round_figure(self.style_match_reinhard),
            "content_kept": round_figure(self.content_kept["1"]), "content_monotone": int(self.content_monotone),
            "pairs": self.pairs, "size": self.size, "styles": self.styles, "meter_version": METER_VERSION,
        }
        out.update({f"content_kept_{a.replace('.', '_')}": round_figure(v) for a, v in self.content_kept.items()})
        if self.legible is not None:
            out.update(legible=round_figure(self.legible), legible_unstylised=round_figure(self.legible_unstylised),
                       digits=self.digits)
        return out

    def format(self, report: Report) -> str:
        """The figures as readable text, each beside its target."""
        src = report.source
        who = (f"{src['model']} version {src['version']}" if src.get("kind") == "version" else report.target)
        runtime = "ONNX Runtime" if src.get("runtime") == "onnxruntime" else "PyTorch"
        lines = [f"style transfer: {who}, step {src.get('step')} ({runtime}), {report.seconds:.1f} s",
                 f"{self.pairs} content x style pairs at {self.size} px: {CONTENTS} content photographs (the meter's "
                 f"own crops) x the styles of {self.styles}", ""]

        def mark(value: float, target: float) -> str:
            return "met" if value >= target else "MISSED"

        lines.append(f"style match (alpha 1)   {self.style_match:7.1%}   target >= {TARGETS['style_match']:.0%} and "
                     f"> Reinhard: {mark(self.style_match, TARGETS['style_match'])}"
                     f"{'' if self.style_match > self.style_match_reinhard else ' (NOT above Reinhard)'}")
        lines.append(f"  Reinhard colour transfer {self.style_match_reinhard:5.1%}")
        for name, value in self.style_match_by_style.items():
            lines.append(f"  {name:24}{value:7.1%}")
        kept = "  ".join(f"a={a}: {v:.3f}" for a, v in self.content_kept.items())
        lines.append(f"content kept (edge SSIM) {kept}   target >= {TARGETS['content_kept']} at alpha 1: "
                     f"{mark(self.content_kept['1'], TARGETS['content_kept'])}; falls with alpha: "
                     f"{'yes' if self.content_monotone else 'NO'}")
        if self.legible is not None:
            lines.append(f"still legible            {self.legible:7.1%}   target >= {TARGETS['legible']:.0%}: "
                         f"{mark(self.legible, TARGETS['legible'])} ({self.digits} held-out digits at "
                         f"{28 * LEGIBLE_SCALE} px; unstylised: {self.legible_unstylised:.1%})")
            for name, value in self.legible_by_style.items():
                lines.append(f"  {name:24}{value:7.1%}")
        return "\n".join(lines)


def _pair_figures(stylist: Stylist, features: TextureFeatures, contents: np.ndarray, styles: np.ndarray,
                  others: np.ndarray, names: list[str]) -> dict[str, Any]:
    """Style match (model and Reinhard) and content kept by alpha over every content x style pair."""
    content_stats = [features.statistics(c) for c in contents]
    matches: dict[str, list[float]] = {}
    reinhard: list[float] = []
    kept: dict[float, list[float]] = {a: [] for a in ALPHAS}

    def closed(start_stats: np.ndarray, out: np.ndarray, style_stats: np.ndarray, floor: float) -> float:
        start = float(np.sqrt(np.mean((start_stats - style_stats) ** 2)))
        got = float(np.sqrt(np.mean((features.statistics(out) - style_stats) ** 2)))
        return (start - got) / max(start - floor, 1e-12)

    for style, other, name in zip(styles, others, names):
        style_stats = features.statistics(style)
        floor = style_distance(features, other, style)
        for alpha in ALPHAS:
            outs = stylist.stylize(contents, style, alpha)
            kept[alpha] += [content_kept(c, o) for c, o in zip(contents, outs)]
            if alpha == 1.0:
                matches[name] = [closed(cs, o, style_stats, floor) for cs, o in zip(content_stats, outs)]
                reinhard += [closed(cs, reinhard_transfer(c, style), style_stats, floor)
                             for cs, c in zip(content_stats, contents)]
    by_alpha = {a: float(np.mean(v)) for a, v in kept.items()}
    values = [by_alpha[a] for a in ALPHAS]
    return {
        "style_match": float(np.mean([v for vs in matches.values() for v in vs])),
        "style_match_reinhard": float(np.mean(reinhard)),
        "style_match_by_style": {k: float(np.mean(v)) for k, v in matches.items()},
        "content_kept": {f"{a:g}": v for a, v in by_alpha.items()},
        "content_monotone": all(b <= a + 1e-9 for a, b in zip(values, values[1:])),
        "pairs": len(contents) * len(styles),
    }


def _legibility(stylist: Stylist, styles: dict[str, np.ndarray], digits: int,
                cache_dir: Path | None) -> dict[str, Any]:
    """The share of held-out digits the meter still reads after each style, and unstylised."""
    images, labels, meter = _digit_images(digits, LEGIBLE_SCALE, cache_dir)
    by_style = {name: _read(meter, to_digit(stylist.stylize(images, style), LEGIBLE_SCALE), labels)
                for name, style in styles.items()}
    return {"legible": float(np.mean(list(by_style.values()))), "legible_by_style": by_style,
            "legible_unstylised": _read(meter, to_digit(images, LEGIBLE_SCALE), labels), "digits": len(labels)}


def score_style(report: Report, model: ScoredModel, n: int | None = None, cache_dir: Path | None = None,
                legibility: bool = True, progress: Callable[[str], None] | None = None) -> StyleFigures:
    """Add a style model's figures to ``report``: ``n`` caps the legibility digits (default
    LEGIBLE_DIGITS); ``legibility`` False skips the digits (no meter to train)."""
    stylist = Stylist(model)
    features = TextureFeatures()
    contents, _ = content_crops()
    images, where = _model_style_images(model)
    styles, others, names = style_pairs(images)
    pairs = _pair_figures(stylist, features, contents, styles, others, names)
    legible: dict[str, Any] = {"legible": None, "legible_by_style": {}, "legible_unstylised": None, "digits": 0}
    if legibility:
        chosen = ({names[0]: styles[0]} if stylist.fixed
                  else {name: s for name, s in zip(names, styles) if name in LEGIBLE_STYLES})
        legible = _legibility(stylist, chosen, min(n or LEGIBLE_DIGITS, LEGIBLE_DIGITS), cache_dir)
    figures = StyleFigures(
        graphs=model.graph_files("stylize_fixed") if stylist.fixed else model.graph_files("encode_style", "stylize"),
        styles=where, size=EVAL_SIZE, **pairs, **legible)
    figures.style_match_by_style = round_figures(figures.style_match_by_style)
    figures.legible_by_style = round_figures(figures.legible_by_style)
    report.add(figures)
    return figures


__all__ = ["ALPHAS", "EVAL_SIZE", "LEGIBLE_STYLES", "StyleFigures", "Stylist", "content_crops", "score_style",
           "style_pairs", "to_digit"]
