"""Completion quality: how well a model fills the hole of held-out images, per kind of mask.

The images are the meter's held-out split (``split_indices(n, 0.2, seed=0)``), which neither the
meter nor a completion run (trained with that split held out) saw. For each kind of mask in
``latentforge.completion.EVAL_MASKS`` (top half, bottom half, centre square, free-form strokes
drawn from a fixed seed) every image gets K candidate completions as the service draws them
for a request with base seed ``b``: candidate i from seed ``b + i`` (candidate 0 from z = 0 for a
completion model trained with a mode candidate, as the service draws it). Image j is such a request
with ``b = seed + j * K``, so no two images share a candidate's noise (one shared draw would make
candidate 0's figures those of a single latent). The report gives, per kind:

- PSNR of the hole (pixels in [0, 1], the MSE taken over hole pixels only, and at least half an
  8-bit level squared: at most 54.2 dB), the mean over images of candidate 0's, and the mean over
  all candidates;
- SSIM of the hole: the SSIM map (Gaussian window, sigma 1.5, K1 0.01, K2 0.03) averaged over
  hole pixels, likewise;
- class reads (labelled data): the share of completed images the meter's classifier reads as
  the original's label, candidate 0's, and best of K (at least one candidate read right);
- diversity: the mean pairwise RMS distance between the K candidates over the hole;
- the same figures for a baseline that fills the hole with the mean training image, so a reader
  sees what the model adds.

Two ways to complete. A model with the ``complete`` task runs its graph once per candidate
with ``z = numpy.random.default_rng(seed).standard_normal(latent_dim)`` (the documented seed
-> latent algorithm, untruncated). A model with ``encode`` and ``decode`` tasks (VAE,
autoencoder) runs the iterative method of ``latentforge.completion.iterative_complete`` with
``candidate_noise``. Version folders run in ONNX Runtime, as served; run folders in PyTorch.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from latentforge.completion import (
    EVAL_MASKS,
    candidate_noise,
    composite,
    eval_mask,
    PRIOR_SEARCH,
    CandidateNoise,
    iterative_complete,
    mode_first,
    prior_fill,
)
from latentforge.manifest import TASK_CONTRACTS
from latentforge.runtime import ModelRuntime
from trainer.data import DataError, load_data
from trainer.quality.features import (
    DEFAULT_SETTINGS,
    METER_VERSION,
    Meter,
    QualityError,
    meter_for,
    split_indices,
)
from trainer.quality.scored import (
    DataSpec,
    Report,
    ScoredModel,
    TaskFigures,
    round_figure,
    scored_report,
)

DEFAULT_CANDIDATES = 4
# Rounds of the iterative method. Measured on the default VAE and AE (docs/quality.md): 8 rounds
# reach nearly all the hole PSNR and class reads that 16 do, at half the cost.
DEFAULT_ITERATIONS = 8
MASK_SEED = 0  # stroke masks: numpy.random.default_rng(MASK_SEED), one mask per image in order
SEED_MODULUS = 2**64  # candidate i of base seed s has seed (s + i) mod 2^64, as the service draws it
BATCH = 500  # rows per graph call
# Averaged PSNR takes each image's hole MSE as at least half an 8-bit level squared (a cap of 54.2 dB):
# finer errors vanish in the 8-bit images the service returns, and an exact hole (a stroke over
# the background, filled with exact zeros) would otherwise make the mean infinite.
MSE_FLOOR = (0.5 / 255) ** 2
SSIM_SIGMA = 1.5
SSIM_RADIUS = 5  # an 11 x 11 window, as Wang et al. 2004
SSIM_K1, SSIM_K2 = 0.01, 0.03
# Per-mask figures of the model, and those of the baseline, as the report and the manifest name them.
MODEL_KEYS = ("psnr", "psnr_mean", "ssim", "ssim_mean", "read", "best_read", "diversity")
BASELINE_KEYS = ("psnr", "ssim", "read")


# --- the figures ---------------------------------------------------------------------------------

def _hole(mask: np.ndarray, like: np.ndarray) -> np.ndarray:
    """The hole (1 where the mask is 0) broadcast to the images' shape."""
    return np.broadcast_to(1.0 - np.asarray(mask, dtype=np.float64), like.shape)


def hole_mse(completed: np.ndarray, original: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Per image (N,): the mean squared error over hole pixels (all channels) of images (N, C, H, W)."""
    a = np.asarray(completed, dtype=np.float64)
    hole = _hole(mask, a)
    err = (a - np.asarray(original, dtype=np.float64)) ** 2 * hole
    count = hole.reshape(len(a), -1).sum(1)
    if np.any(count == 0):
        raise QualityError("a mask has no hole; completion quality needs pixels to fill")
    return err.reshape(len(a), -1).sum(1) / count


def psnr(completed: np.ndarray, original: np.ndarray, mask: np.ndarray, mse_floor: float = 0.0) -> np.ndarray:
    """Per image (N,): PSNR in dB of the hole, pixels in [0, 1], the MSE taken as at least
    ``mse_floor`` (with 0, infinite where the hole is exact)."""
    mse = np.maximum(hole_mse(completed, original, mask), mse_floor)
    with np.errstate(divide="ignore"):
        return 10.0 * np.log10(1.0 / mse)


def _gaussian_filter(x: np.ndarray, sigma: float = SSIM_SIGMA, radius: int = SSIM_RADIUS) -> np.ndarray:
    """Separable Gaussian filter over the last two axes, edges mirrored (scipy.ndimage "reflect"), output
    the input's size."""
    t = np.arange(-radius, radius + 1, dtype=np.float64)
    k = np.exp(-(t**2) / (2 * sigma**2))
    k /= k.sum()
    pad = [(0, 0)] * (x.ndim - 2)
    x = np.pad(x, pad + [(radius, radius), (0, 0)], mode="symmetric")
    x = sum(k[i] * x[..., i : i + x.shape[-2] - 2 * radius, :] for i in range(len(k)))
    x = np.pad(x, pad + [(0, 0), (radius, radius)], mode="symmetric")
    return sum(k[i] * x[..., :, i : i + x.shape[-1] - 2 * radius] for i in range(len(k)))


def ssim_map(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The SSIM map (Wang et al. 2004) of images (..., H, W) in [0, 1]: Gaussian-weighted local
    means, variances and covariance (sigma 1.5, 11 x 11), C1 = (0.01)², C2 = (0.03)²."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    c1, c2 = SSIM_K1**2, SSIM_K2**2
    mu_a, mu_b = _gaussian_filter(a), _gaussian_filter(b)
    var_a = _gaussian_filter(a * a) - mu_a**2
    var_b = _gaussian_filter(b * b) - mu_b**2
    cov = _gaussian_filter(a * b) - mu_a * mu_b
    return ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2))


def hole_ssim(completed: np.ndarray, original: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Per image (N,): the SSIM map of images (N, C, H, W) averaged over hole pixels (all channels)."""
    s = ssim_map(completed, original)
    hole = _hole(mask, s)
    return (s * hole).reshape(len(s), -1).sum(1) / hole.reshape(len(s), -1).sum(1)


def best_of(reads: np.ndarray) -> np.ndarray:
    """Per image (N,): whether at least one of its K candidates (reads (N, K) bool) was read right."""
    return np.asarray(reads, dtype=bool).any(axis=1)


def diversity(candidates: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Per image (N,): the mean over pairs of its K candidates (N, K, C, H, W) of their RMS distance
    over the hole; 0 for a single candidate."""
    x = np.asarray(candidates, dtype=np.float64)
    n, k = x.shape[:2]
    if k < 2:
        return np.zeros(n)
    hole = _hole(mask, x[:, 0])
    count = hole.reshape(n, -1).sum(1)
    pairs = [np.sqrt(((x[:, i] - x[:, j]) ** 2 * hole).reshape(n, -1).sum(1) / count)
             for i in range(k) for j in range(i + 1, k)]
    return np.mean(pairs, axis=0)


# --- the ways to complete ------------------------------------------------------------------------

def candidate_seeds(base: int, k: int) -> list[int]:
    """The seeds of K candidates of a request with base seed ``base``: (base + i) mod 2^64."""
    return [(int(base) + i) % SEED_MODULUS for i in range(k)]


def image_seeds(seed: int, n: int, k: int) -> np.ndarray:
    """(n, K) candidate seeds of n images, image j a request with base seed ``seed + j * K``."""
    return np.array([candidate_seeds(seed + j * k, k) for j in range(n)], dtype=np.uint64)


def _chunked(fn: Callable[..., np.ndarray], *arrays: np.ndarray) -> np.ndarray:
    return np.concatenate([fn(*(a[s : s + BATCH] for a in arrays)) for s in range(0, len(arrays[0]), BATCH)])


class _Lockstep:
    """Gathers the calls of concurrent coroutines into one batch call, as the service's batching
    runner does: each coroutine awaits its rows; the calls queued in one turn of the event loop
    run together."""

    def __init__(self, fn: Callable[[np.ndarray], Any]) -> None:
        self.fn = fn
        self.pending: list[tuple[np.ndarray, asyncio.Future]] = []

    async def __call__(self, x: np.ndarray) -> Any:
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self.pending.append((x, future))
        if len(self.pending) == 1:
            loop.call_soon(self._flush)
        return await future

    def _flush(self) -> None:
        batch, self.pending = self.pending, []
        sizes = [len(x) for x, _ in batch]
        try:
            out = self.fn(np.concatenate([x for x, _ in batch]))
        except Exception as exc:  # noqa: BLE001 - every waiting coroutine gets the error, whatever it is
            for _, future in batch:
                future.set_exception(exc)
            return
        parts = out if isinstance(out, tuple) else (out,)
        start = 0
        for size, (_, future) in zip(sizes, batch):
            rows = tuple(None if p is None else p[start : start + size] for p in parts)
            future.set_result(rows if isinstance(out, tuple) else rows[0])
            start += size


@dataclass
class Completer:
    """One way a model completes images: ``complete(images, masks, seeds)`` with images (N, C, H, W)
    in [0, 1], masks (N, 1, H, W) and seeds (N, K) -> candidates (N, K, C, H, W) in [0, 1]."""

    method: str  # "graph" (the complete task) or "iterative" (encode + decode)
    latent_dim: int
    value_range: tuple[float, float]
    graphs: list[str]  # a version's graph files that complete (none for a run)
    graph: Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray] | None = None  # image, mask, z -> image
    encode: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray | None]] | None = None
    decode: Callable[[np.ndarray], np.ndarray] | None = None
    iterations: int = DEFAULT_ITERATIONS
    mode_first: bool = False  # a completion model whose candidate 0 is z = 0 (as the service draws it)
    prior: Callable[[np.ndarray, np.ndarray], np.ndarray] | None = None  # noise, u -> z (a learned prior)

    def complete(self, images: np.ndarray, masks: np.ndarray, seeds: np.ndarray) -> np.ndarray:
        lo, hi = self.value_range
        x = (np.asarray(images, dtype=np.float32) * (hi - lo) + lo).astype(np.float32)
        masks = np.asarray(masks, dtype=np.float32)
        n, k = np.shape(seeds)
        search = PRIOR_SEARCH if self.prior is not None else 0
        noise = [candidate_noise([int(s) for s in row], self.latent_dim, tuple(x.shape[1:]), self.value_range, search)
                 for row in seeds]
        eps = np.stack([d.eps for d in noise])  # (N, K, latent_dim)
        fill = np.stack([d.fill for d in noise])  # (N, K, C, H, W)
        if search:
            fill = asyncio.run(self._prior_fill(x, masks, noise))
        if self.method == "graph":
            assert self.graph is not None
            # As the service does: the hole's pixels are mid-range, so the original's never reach the model.
            x = composite(np.full_like(x, (lo + hi) / 2), x, masks)
            if self.mode_first:
                eps[:, 0] = 0.0
            rep = np.repeat(x, k, axis=0)
            out = _chunked(self.graph, rep, np.repeat(masks, k, axis=0), eps.reshape(n * k, -1))
            out = out.reshape(n, k, *x.shape[1:])
        else:
            out = asyncio.run(self._iterative(x, masks, eps, fill))
        return np.clip((out.astype(np.float32) - lo) / (hi - lo), 0.0, 1.0)

    async def _prior_fill(self, x: np.ndarray, masks: np.ndarray, noise: list[CandidateNoise]) -> np.ndarray:
        """Every image's first fillings by ``prior_fill``, the draws of all images batched together."""
        assert self.prior is not None and self.decode is not None
        # One array per call for _Lockstep: the noise with u as its last column.
        prior = _Lockstep(lambda b: _chunked(lambda nu: self.prior(nu[:, :-1], nu[:, -1]), b))
        decode = _Lockstep(lambda b: _chunked(self.decode, b))

        async def prior_call(n: np.ndarray, u: np.ndarray) -> np.ndarray:
            return await prior(np.concatenate([n, u[:, None]], axis=1))

        done = await asyncio.gather(*(prior_fill(prior_call, decode, img, m, d.search_noise, d.search_u)
                                      for img, m, d in zip(x, masks, noise)))
        return np.stack(done)

    async def _iterative(self, x: np.ndarray, masks: np.ndarray, eps: np.ndarray, fill: np.ndarray) -> np.ndarray:
        assert self.encode is not None and self.decode is not None
        encode = _Lockstep(lambda b: _encode_chunked(self.encode, b))
        decode = _Lockstep(lambda b: _chunked(self.decode, b))
        done = await asyncio.gather(*(iterative_complete(encode, decode, img, m, e, f, self.iterations)
                                      for img, m, e, f in zip(x, masks, eps, fill)))
        return np.stack([images for images, _ in done])


def _encode_chunked(encode: Callable, x: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    parts = [encode(x[s : s + BATCH]) for s in range(0, len(x), BATCH)]
    mu = np.concatenate([p[0] for p in parts])
    logvar = None if parts[0][1] is None else np.concatenate([p[1] for p in parts])
    return mu, logvar


def completer_for(model: ScoredModel, iterations: int = DEFAULT_ITERATIONS) -> Completer:
    """The completer of a scored model: a version's in ONNX Runtime, a run's in PyTorch."""
    if model.runtime is not None:
        return version_completer(model.runtime, iterations)
    return run_completer(model, iterations)


def version_completer(runtime: ModelRuntime, iterations: int = DEFAULT_ITERATIONS) -> Completer:
    """The completer of an exported version, in ONNX Runtime: its complete graph when it has the
    task, else the iterative method over its encoder and decoder. Graphs are fed by the
    contract's names; optional inputs left out (a conditional decoder's labels) are fed as zeros by
    the runtime, as the service feeds what a request leaves out."""
    manifest = runtime.manifest
    if runtime.has_task("complete"):
        role = runtime.graph_for("complete")
        output = next(iter(TASK_CONTRACTS["complete"][1]))  # the contract's output name

        def graph(image: np.ndarray, mask: np.ndarray, z: np.ndarray) -> np.ndarray:
            return runtime.run(role, {"image": image, "mask": mask, "z": z}, [output])[output]

        return Completer("graph", manifest.latent_dim, manifest.output.value_range, [runtime.files[role]],
                         graph=graph, mode_first=mode_first(manifest))
    if runtime.has_task("encode") and runtime.has_task("decode"):
        enc, dec = runtime.graph_for("encode"), runtime.graph_for("decode")
        wanted = ["mu"] + (["logvar"] if "logvar" in runtime.output_names(enc) else [])

        def encode(image: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
            got = runtime.run(enc, {"image": image}, wanted)
            return got["mu"], got.get("logvar")

        def decode(z: np.ndarray) -> np.ndarray:
            return runtime.run(dec, {"z": z}, ["image"])["image"]

        def prior(noise: np.ndarray, u: np.ndarray) -> np.ndarray:
            return runtime.run(runtime.graph_for("prior"), {"noise": noise, "u": u}, ["z"])["z"]

        return Completer("iterative", manifest.latent_dim, manifest.output.value_range,
                         [runtime.files[enc], runtime.files[dec]], encode=encode, decode=decode,
                         iterations=iterations, prior=prior if runtime.has_task("prior") else None)
    raise QualityError(f"{runtime.version_dir}: model {manifest.name} cannot complete images: it has neither the "
                       f"'complete' task nor both 'encode' and 'decode' (its tasks: {', '.join(sorted(manifest.tasks))})")


def run_completer(model: ScoredModel, iterations: int = DEFAULT_ITERATIONS) -> Completer:
    """The completer of a trained run, in PyTorch: the completion family's ``complete``, or the
    iterative method over a VAE's or an autoencoder's encoder and decoder."""
    import torch

    family = model.family()
    tasks = dict(getattr(family, "tasks", {}))

    def t(a: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32))

    if "complete" in tasks and hasattr(family, "complete"):
        @torch.no_grad()
        def graph(image: np.ndarray, mask: np.ndarray, z: np.ndarray) -> np.ndarray:
            return family.complete(t(image), t(mask), t(z)).cpu().numpy()

        return Completer("graph", family.latent_dim, (0.0, 1.0), [], graph=graph,
                         mode_first=bool(getattr(family, "mode_first", False)))
    if "encode" in tasks and "decode" in tasks:
        if hasattr(family, "encode") and hasattr(family, "decode"):  # the autoencoder: codes in, codes out
            def encode(image: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
                return family.encode(t(image)).cpu().numpy(), None

            def decode(z: np.ndarray) -> np.ndarray:
                return family.decode(t(z)).cpu().numpy()
        else:  # the VAE: its encoder's posterior, its decoder with class 0 when conditional (as served)
            vae = family.modules["vae"]

            @torch.no_grad()
            def encode(image: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
                with family._eval():
                    mu, logvar = vae.encoder(t(image))
                return mu.cpu().numpy(), logvar.cpu().numpy()

            def decode(z: np.ndarray) -> np.ndarray:
                labels = torch.zeros(len(z), dtype=torch.int64) if family.num_classes else None
                return family.sample(t(z), labels).cpu().numpy()

        @torch.no_grad()
        def prior(noise: np.ndarray, u: np.ndarray) -> np.ndarray:  # the VAE's learned prior, as its graph runs it
            return family.prior(t(noise).to(family.device), t(u).to(family.device)).cpu().numpy()

        learned = getattr(family, "prior", None) is not None
        return Completer("iterative", family.latent_dim, (0.0, 1.0), [], encode=encode, decode=decode,
                         iterations=iterations, prior=prior if learned else None)
    raise QualityError(f"{model.where}: a {model.source.get('family')} run cannot complete images "
                       "(it has neither a complete method nor an encoder and a decoder)")


# --- what can a model do -------------------------------------------------------------------------

def can_complete(tasks: set[str] | frozenset[str]) -> bool:
    """Whether a model with these tasks can be scored here: a complete graph, or encode + decode."""
    return "complete" in tasks or {"encode", "decode"} <= tasks


def held_out_unseen(hold_out: Any) -> bool | None:
    """Whether a run kept the meter's held-out split out of its training, from the record of what
    it held out (``trainer.loop.hold_out_data``: its share and split seed, in the checkpoint and
    the manifest's ``training``); None when the run does not say (it predates hold-out)."""
    if not isinstance(hold_out, dict) or "share" not in hold_out:
        return None
    share, seed = float(hold_out["share"]), int(hold_out.get("seed", -1))
    return share >= DEFAULT_SETTINGS.held_out and seed == DEFAULT_SETTINGS.seed


# --- the report ----------------------------------------------------------------------------------

@dataclass
class CompletionFigures(TaskFigures):
    """The complete task's figures: per mask kind for a model, beside the mean-image baseline."""

    task: ClassVar[str] = "complete"
    graphs: list[str]  # the version's graph files that completed (none for a run)
    method: str
    iterations: int | None
    n: int  # images completed: the report's n, or all the held-out images when fewer
    candidates: int
    mask_seed: int
    held_out_unseen: bool | None
    data: dict[str, Any]
    meter: dict[str, Any]
    original_read: float | None  # the meter's reads of the whole originals: the ceiling of read
    scores: dict[str, dict[str, float]]  # mask kind -> figures
    baseline: dict[str, dict[str, float]]  # mask kind -> figures of the mean-image fill

    def summary(self, report: Report) -> dict[str, Any]:
        """A flat record (e.g. for a manifest's quality): ``<mask>_<figure>`` and
        ``<mask>_baseline_<figure>`` per mask kind, and how they were measured."""
        out: dict[str, Any] = {}
        for kind, figures in self.scores.items():
            out.update({f"{kind}_{k}": round_figure(figures[k]) for k in MODEL_KEYS if figures.get(k) is not None})
            base = self.baseline[kind]
            out.update({f"{kind}_baseline_{k}": round_figure(base[k])
                        for k in BASELINE_KEYS if base.get(k) is not None})
        if self.original_read is not None:
            out["original_read"] = round_figure(self.original_read)
        out.update(task=self.task, method=self.method, candidates=self.candidates, n=self.n, seed=report.seed,
                   mask_seed=self.mask_seed, data=self.data["spec"], data_sha256=self.data["sha256"],
                   meter=self.meter["kind"], meter_version=METER_VERSION)
        if self.iterations is not None:
            out["iterations"] = self.iterations
        if self.held_out_unseen is not None:  # a number: manifest scores are numbers or strings
            out["held_out_unseen"] = int(self.held_out_unseen)
        return out

    def describe(self, report: Report) -> str:
        """One line naming the model and how it completed."""
        src = report.source
        who = (f"{src['model']} version {src['version']}" if src.get("kind") == "version"
               else f"{report.target} ({Path(src.get('checkpoint', '')).name})")
        how = ("its complete graph" if self.method == "graph"
               else f"the iterative method, {self.iterations} rounds")
        runtime = "ONNX Runtime" if src.get("runtime") == "onnxruntime" else "PyTorch"
        return f"{who}, step {src.get('step')}: {how} ({runtime})"

    def format(self, report: Report) -> str:
        """The figures as a readable table: one row per mask kind, the baseline beside the model."""
        k = self.candidates
        unseen = {True: "held out of its training", False: "NOT held out of its training (it may have seen them)",
                  None: "its config has no hold_out: it may have trained on them"}[self.held_out_unseen]
        lines = [
            f"completion: {self.describe(report)}",
            (f"{self.n} held-out images of {self.data['spec']} ({unseen}), {k} candidates each "
             f"(image j: seeds {report.seed} + {k}j + i), stroke masks from seed {self.mask_seed}, "
             f"{report.seconds:.1f} s"),
        ]
        if self.original_read is not None:
            lines.append(f"the meter reads {self.original_read:.1%} of the whole originals as their label")
        lines.append("baseline: the hole filled with the mean training image")
        lines.append("")
        labelled = self.original_read is not None
        head = f"{'mask':9}{'hole':>6}{'PSNR':>8}{'SSIM':>7}"
        head += f"{'read':>7}{f'best/{k}':>8}" if labelled else ""
        head += f"{'divers.':>9}  | {'baseline PSNR':>13}{'SSIM':>7}" + (f"{'read':>7}" if labelled else "")
        lines.append(head)
        for kind, s in self.scores.items():
            b = self.baseline[kind]
            row = f"{kind:9}{s['hole']:>6.0%}{s['psnr']:>8.2f}{s['ssim']:>7.3f}"
            row += f"{s['read']:>7.1%}{s['best_read']:>8.1%}" if labelled else ""
            row += (f"{s['diversity']:>9.3f}  | {b['psnr']:>13.2f}{b['ssim']:>7.3f}"
                    + (f"{b['read']:>7.1%}" if labelled else ""))
            lines.append(row)
        lines.append("")
        lines.append(f"PSNR (dB) and SSIM over hole pixels of candidate 0 (in [0, 1]); read: candidate 0 read as the "
                     f"original's label; best/{k}: any of the {k} read so; divers.: mean pairwise RMS between "
                     "candidates over the hole")
        return "\n".join(lines)


def _held_out(meter: Meter, spec: DataSpec) -> dict[str, np.ndarray | None]:
    """The meter's held-out images and labels and the mean training image (memoised on the meter)."""
    if "completion_data" not in meter.memo:
        data = load_data(spec.spec, spec.image_size, spec.channels, spec.min_image_size)
        train_idx, held_idx = split_indices(len(data), meter.settings.held_out, meter.settings.seed)
        meter.memo["completion_data"] = {
            "images": data.images[held_idx].astype(np.float32),
            "labels": None if data.labels is None else np.asarray(data.labels)[held_idx],
            "mean": data.images[train_idx].mean(axis=0, keepdims=True).astype(np.float32),
        }
    return meter.memo["completion_data"]


def _reads(meter: Meter, images: np.ndarray, labels: np.ndarray | None) -> np.ndarray | None:
    """Whether the meter reads each image (..., C, H, W) as its label (labels broadcast over K)."""
    if not meter.labelled or labels is None:
        return None
    lead = images.shape[:-3]
    _, probs = meter.embed(images.reshape(-1, *images.shape[-3:]))
    read = probs.argmax(1).reshape(lead)
    return read == (labels if read.ndim == 1 else labels[:, None])


def masks_for(kind: str, n: int, height: int, width: int, mask_seed: int = MASK_SEED) -> np.ndarray:
    """n masks (n, 1, H, W) of one kind; stroke masks from ``default_rng(mask_seed)``, in order."""
    rng = np.random.default_rng(mask_seed)
    return np.stack([eval_mask(kind, height, width, rng) for _ in range(n)])


def score_completer(completer: Completer, meter: Meter, images: np.ndarray, labels: np.ndarray | None,
                    mean_image: np.ndarray, candidates: int = DEFAULT_CANDIDATES, seed: int = 0,
                    mask_seed: int = MASK_SEED, kinds: Sequence[str] = EVAL_MASKS,
                    ) -> tuple[dict[str, dict[str, float]], dict[str, dict[str, float]]]:
    """(model figures, baseline figures), each mask kind -> figures, for images (N, C, H, W) in [0, 1]."""
    if candidates < 1:
        raise QualityError(f"candidates must be >= 1 (got {candidates})")
    n, (_, h, w) = len(images), images.shape[1:]
    seeds = image_seeds(seed, n, candidates)
    scores, baseline = {}, {}
    for kind in kinds:
        masks = masks_for(kind, n, h, w, mask_seed)
        out = completer.complete(images, masks, seeds)  # (N, K, C, H, W)
        p = np.stack([psnr(out[:, i], images, masks, MSE_FLOOR) for i in range(candidates)], axis=1)
        s = np.stack([hole_ssim(out[:, i], images, masks) for i in range(candidates)], axis=1)
        reads = _reads(meter, out, labels)
        known = np.abs(out - images[:, None]) * masks[:, None]
        scores[kind] = {
            "hole": float((1.0 - masks).mean()),
            "psnr": float(p[:, 0].mean()), "psnr_mean": float(p.mean()),
            "ssim": float(s[:, 0].mean()), "ssim_mean": float(s.mean()),
            "read": None if reads is None else float(reads[:, 0].mean()),
            "best_read": None if reads is None else float(best_of(reads).mean()),
            "diversity": float(diversity(out, masks).mean()),
            "known_max_error": float(known.max()),  # the graph keeps the known pixels: ~0
        }
        filled = composite(mean_image, images, masks)
        base_reads = _reads(meter, filled, labels)
        baseline[kind] = {
            "psnr": float(psnr(filled, images, masks, MSE_FLOOR).mean()),
            "ssim": float(hole_ssim(filled, images, masks).mean()),
            "read": None if base_reads is None else float(base_reads.mean()),
        }
    return scores, baseline


def score_completion(
    report: Report,
    model: ScoredModel,
    candidates: int = DEFAULT_CANDIDATES,
    iterations: int = DEFAULT_ITERATIONS,
    data: str | None = None,
    cache_dir: Path | None = None,
    mask_seed: int = MASK_SEED,
) -> CompletionFigures:
    """Complete ``report.n`` of the meter's held-out images (all of them when n exceeds their count)
    under each kind of mask, K candidates each, score the holes and add the figures (the complete
    task) to the report."""
    if report.n < 1:
        raise QualityError(f"--n must be >= 1 (got {report.n})")
    if iterations < 1:
        raise QualityError(f"iterations must be >= 1 (got {iterations})")
    completer = completer_for(model, iterations)
    spec = model.data_spec(data)
    try:
        meter = meter_for(spec.spec, spec.image_size, spec.channels, spec.min_image_size, cache_dir=cache_dir)
        held = _held_out(meter, spec)
    except DataError as exc:
        raise QualityError(f"cannot load the data to compare with: {exc}; pass it with --data") from None
    pick = np.arange(min(report.n, len(held["images"])))
    images = held["images"][pick]
    labels = None if held["labels"] is None else held["labels"][pick]
    scores, baseline = score_completer(completer, meter, images, labels, held["mean"], candidates, report.seed,
                                       mask_seed)
    original = _reads(meter, images, labels)
    return report.add(CompletionFigures(
        graphs=completer.graphs,
        method=completer.method,
        iterations=completer.iterations if completer.method == "iterative" else None,
        n=len(images),
        candidates=candidates,
        mask_seed=mask_seed,
        held_out_unseen=held_out_unseen(model.hold_out),
        data={"spec": spec.spec, "source": meter.source, "sha256": meter.data_sha256, "shape": list(meter.shape)},
        meter={"kind": meter.kind, "version": METER_VERSION, "key": meter.key, "origin": meter.origin,
               "held_out_accuracy": meter.held_out_accuracy},
        original_read=None if original is None else float(original.mean()),
        scores=scores,
        baseline=baseline,
    ))


def evaluate_completion(
    path: Path,
    n: int = 1000,
    seed: int = 0,
    candidates: int = DEFAULT_CANDIDATES,
    iterations: int = DEFAULT_ITERATIONS,
    checkpoint: Path | None = None,
    data: str | None = None,
    cache_dir: Path | None = None,
    mask_seed: int = MASK_SEED,
) -> Report:
    """The report of a run folder (PyTorch) or a version folder (ONNX Runtime) with the complete
    task's figures alone (``score_completion``)."""
    return scored_report(path, checkpoint, n, seed, lambda report, model: score_completion(
        report, model, candidates, iterations, data, cache_dir, mask_seed))
