"""The generation pipeline: resolve the model version → latents and labels → render (through
the rendered-output cache) → store the samples. Knows nothing of gRPC: it takes the typed
requests of ``services.generation.requests``, raises ``services.errors`` kinds with messages
that say what to fix, and returns results that ``services.generation.convert`` turns into proto
messages. Every operation is here, strokes included: a surface only converts and calls.

Which operations a model version supports is checked in one place, ``_require``, from the tasks
its manifest declares (``services.generation.capabilities``). Every graph runs through the
runner's one call, ``run(model, role, feeds)``: nothing here or below is written per task but
the feeds a task's contract names.
"""

from __future__ import annotations

import asyncio
import dataclasses
import math
import random
import secrets
import threading
from collections.abc import AsyncIterator
from concurrent.futures import Executor
from typing import Callable, Sequence, TypeVar

import numpy as np

from latentforge import images as imaging
from latentforge.completion import (PRIOR_SEARCH, candidate_noise, composite, iterative_complete, mode_first,
                                   prior_fill)
from latentforge import latents
from latentforge.colour import preserve_color
from latentforge.runtime import ModelRuntime, decode_feeds
from services.generation.cache import (
    SAMPLE_ID_PATTERN,
    CacheUnavailable,
    SampleCache,
    SampleRecord,
    new_sample_id,
    render_key,
    style_key,
)
from services.generation.config import ServeConfig
from services.errors import FailedPrecondition, InvalidArgument, NotFound, Unavailable
from services.generation import completion, stylize as styling
from services.generation.requests import (
    CompleteRequest,
    ContinueRequest,
    DrawRequest,
    EncodeRequest,
    EncodeStrokesRequest,
    Endpoint,
    GeneratePlan,
    GenerateRequest,
    ImageInput,
    InterpolateRequest,
    ModelListing,
    OutputFormat,
    Rendered,
    Samples,
    StyleInput,
    Stylized,
    StylizeRequest,
    TensorInput,
    VariationsRequest,
)
from services.generation.strokes import DrawEvent, DrawPlan, StrokeDrawer, renderings
from services.generation.batching import AnyFeeds, DeferredFeeds, Feeds, Finish, InferenceRunner, Respond
from services.generation.capabilities import refuse, supported_rpcs
from services.generation.metrics import Metrics
from services.generation.model_repository import ModelRepository
from services.rpc.logs import note
from services.rpc.metrics import OwnedChildren

MAX_STRENGTH = 10.0

# Seeds the server picks need to be unpredictable enough to differ, not secret: a generator
# seeded once from the OS avoids a system call per request.
_seed_source = random.Random(secrets.randbits(128))


def _random_seed() -> int:
    return _seed_source.getrandbits(64)


T = TypeVar("T")

class GenerationPipeline:
    """Serves generation requests from a model repository, an inference runner and a cache."""

    def __init__(self, config: ServeConfig, repository: ModelRepository, runner: InferenceRunner,
                 cache: SampleCache, metrics: Metrics, executor: Executor) -> None:
        self.config = config
        self.repository = repository
        self.runner = runner
        self.cache = cache
        self.executor = executor
        # Per model version: the operations it supports, and its samples counter by operation.
        self._supports = OwnedChildren(lambda model: frozenset(supported_rpcs(model.manifest.tasks)))
        # One finisher object per model version and output format: the batcher encodes the rows
        # of requests sharing one in a single call.
        self._finishers: OwnedChildren[Finish] = OwnedChildren(self._make_finisher)
        self._samples = OwnedChildren(
            lambda model, operation: metrics.samples.labels(model.name, str(model.version), operation))
        self.strokes = StrokeDrawer(runner, metrics, self._store, config.max_count)

    @property
    def max_count(self) -> int:
        """The most samples, frames or images one request may ask for."""
        return self.config.max_count

    async def warm_up(self, model: ModelRuntime, every_worker: bool) -> None:
        """Do now what the first requests of ``model`` would otherwise do for the first time, so
        that they are as fast as the rest once the server says SERVING: the latent code's lazy
        imports, and the image graph run at batch 1 and at the largest batch, each output
        encoded as PNG and as a tensor. With ``every_worker`` (at start, while nothing is served)
        every worker thread is started and does it. No metric, cache entry or sample is made.
        """
        if not model.has_task("decode"):
            return
        n = self.config.max_batch_size
        dim, classes = model.manifest.latent_dim, model.manifest.num_classes
        _, z = latents.latents_from_seeds(0, n, dim, None)
        labels = np.zeros(n, dtype=np.int64) if classes else None
        finishers = [self._finisher(model, output) for output in OutputFormat]
        workers = self.config.workers if every_worker else 1
        barrier = threading.Barrier(workers)

        def run() -> None:
            try:
                barrier.wait(timeout=2.0)  # all waiting at once: the pool starts every thread
            except threading.BrokenBarrierError:
                pass
            for rows in sorted({1, n}):
                if model.has_task("prior"):
                    model.run_task("prior", {"noise": z[:rows], "u": np.zeros(rows, dtype=np.float32)})
                outputs = model.run_task("decode", decode_feeds(z[:rows], None if labels is None else labels[:rows]))
                for finish in finishers:
                    finish(outputs)

        loop = asyncio.get_running_loop()
        await asyncio.gather(*(loop.run_in_executor(self.executor, run) for _ in range(workers)))

    # ---- operations ---------------------------------------------------------------------------

    async def stored_latent(self, sample_id: str, model: ModelRuntime) -> np.ndarray:
        """The latent of a stored sample of ``model``'s name (NotFound, Unavailable, InvalidArgument)."""
        record = await self.sample(sample_id)
        if record.model != model.name or record.latent.shape != (model.manifest.latent_dim,):
            raise InvalidArgument(f"sample {sample_id} is of model {record.model} (latent of {record.latent.size}); "
                                  f"model {model.name} needs a latent of {model.manifest.latent_dim}")
        return record.latent

    def models(self, name: str = "") -> list[ModelListing]:
        """Every loaded version (of ``name``, when given)."""
        found = [m for m in self.repository.all() if not name or m.name == name]
        if name and not found:
            raise NotFound(f"unknown model {name!r}; call ListModels with no name to see all models")
        return [ModelListing(m, self.repository.latest_version(m.name) == m.version) for m in found]

    def plan_generate(self, request: GenerateRequest, operation: str = "Generate",
                      max_count: int | None = None) -> GeneratePlan:
        """Check a Generate request and settle its model version and base seed; ``max_count``
        replaces the per-request limit (GenerateStream's is ``max_stream_count``)."""
        model = self._model(request.model, request.version, operation)
        count = self._check_count(request.count, "count", maximum=max_count)
        psi = _truncation(request.truncation)
        self._check_label(model, request.label)
        seed = request.seed if request.seed is not None else _random_seed()
        note(count=count)
        return GeneratePlan(model, count, seed, psi, request.label, request.output, request.seed is not None)

    async def generate(self, plan: GeneratePlan, start: int, n: int, deadline: float | None,
                       operation: str = "Generate") -> Samples:
        """Samples start..start+n-1 of a planned request: latents, images, records.

        When the client named the seed, rendered outputs are looked up in the cache first and
        only the missing rows run through the model; a random seed never repeats, so those
        requests skip the lookup.
        """
        return (await self._generate(plan, start, n, deadline, operation, None))[0]

    async def generate_rendered(self, plan: GeneratePlan, deadline: float | None,
                                render: Callable[[Samples], T]) -> tuple[T, bool]:
        """A planned request's samples as ``render`` makes them (e.g. a serialised response), and
        whether every sample was stored. ``render`` runs on the worker thread of their batch,
        before the samples are stored (its ``Samples.stored`` is False), so that the event loop
        only queues the request and stores its records."""
        made, rendered = await self._generate(plan, 0, plan.count, deadline, "Generate", render)
        return rendered, made.stored

    async def _generate(self, plan: GeneratePlan, start: int, n: int, deadline: float | None, operation: str,
                        render: Callable[[Samples], T] | None) -> tuple[Samples, T | None]:
        model = plan.model
        draw = _SeededDraw(self, plan, start, n)
        if self.config.render_cache and plan.seed_given:
            feeds = draw.make()  # the cache keys need the latents now
            payloads = await self._render_cached(model, feeds["z"], feeds.get("labels"), draw.label_list, plan.output,
                                                 deadline)
            made = draw.samples(payloads)
            rendered = render(made) if render is not None else None
        else:
            made, rendered = await self._run(model, "decode", draw.deferred(), self._finisher(model, plan.output),
                                             deadline, respond=lambda payloads: draw.rendered(payloads, render))
        made.stored = await self._store(made.records)
        self._samples.get(model, operation).inc(n)
        return made, rendered

    async def interpolate(self, request: InterpolateRequest, deadline: float | None) -> Samples:
        """Frames between two endpoints, each stored as a sample."""
        model = self._model(request.model, request.version, "Interpolate")
        steps = self._check_count(request.steps, "steps", minimum=2)
        psi = _truncation(request.truncation)
        a, label_a = await self._endpoint(model, request.start, psi, "start")
        b, _ = await self._endpoint(model, request.end, psi, "end")
        z = latents.slerp(a, b, steps) if request.slerp else latents.lerp(a, b, steps)
        label = self._check_label(model, request.label)
        if label is None and model.manifest.num_classes:
            label = label_a if label_a is not None else 0
        labels = None if label is None else np.full(steps, label, dtype=np.int64)
        note(model=model.name, version=model.version, steps=steps)
        drawings = None
        if model.has_task("draw_strokes"):  # frames are drawings, rendered as the model's output images
            drawings = await self.strokes.frames(model, z, request.seed or 0, request.temperature)
            payloads = self._finisher(model, request.output)({"image": renderings(drawings, model.image_shape[1])})
        else:
            payloads = await self._render(model, z, labels, request.output, deadline)
        records = [SampleRecord(new_sample_id(), model.name, model.version, z[k], "interpolate", label=label)
                   for k in range(steps)]
        stored = await self._store(records)
        self._samples.get(model, "Interpolate").inc(steps)
        return Samples(model, records, payloads, stored, drawings=drawings)

    async def encode(self, request: EncodeRequest, deadline: float | None) -> Samples:
        """Images to latents (the encoder's mean), each stored as a sample."""
        model = self._model(request.model, request.version, "Encode")
        batch = await self._input_images(model, request.images)
        mu = (await self._run(model, "encode", {"image": batch}, None, deadline))["mu"]
        records = [SampleRecord(new_sample_id(), model.name, model.version, mu[k].astype(np.float32), "encode")
                   for k in range(len(mu))]
        stored = await self._store(records)
        return Samples(model, records, None, stored)

    async def reconstruct(self, request: EncodeRequest, deadline: float | None) -> Rendered:
        """Images through the encoder and back through the decoder."""
        model = self._model(request.model, request.version, "Reconstruct")
        batch = await self._input_images(model, request.images)
        mu = (await self._run(model, "encode", {"image": batch}, None, deadline))["mu"]
        payloads = await self._render(model, mu, None, request.output, deadline)
        self._samples.get(model, "Reconstruct").inc(len(payloads))
        return Rendered(model, payloads)

    async def complete(self, request: CompleteRequest, deadline: float | None) -> Samples:
        """Candidate fillings of an image's hole, each stored as a sample with its input.

        A model with the complete task fills the hole in one pass per candidate (latents from the
        candidates' seeds); a model with an encoder and a decoder by the iterative method
        (``latentforge.completion``), whose rounds queue and batch like any encode and decode.
        """
        model = self._model(request.model, request.version, "Complete")
        count = self._check_count(request.count, "count")
        label = self._check_label(model, request.label)
        rounds = None if model.has_task("complete") else completion.iterations(request.iterations)
        c, h, w = model.image_shape
        mask = completion.mask_array(request.mask, h, w)
        image = (await self._input_images(model, [request.image], what="image"))[0]
        image = composite(np.full_like(image, sum(model.value_range) / 2), image, mask)  # the hole's pixels unused
        base_seed = request.seed if request.seed is not None else _random_seed()
        seeds: list[int | None] = [latents.sample_seed(base_seed, i) for i in range(count)]
        note(count=count, iterations=rounds or 0)
        dim = model.manifest.latent_dim
        if rounds is None:
            _, z = latents.latents_from_seeds(base_seed, count, dim, None)
            if mode_first(model.manifest):  # candidate 0: z = 0, the most likely filling
                z[0] = 0.0
                seeds[0] = None
            payloads = await self._complete(model, image, mask, z, request.output, deadline)
        else:
            search = PRIOR_SEARCH if model.has_task("prior") else 0
            drawn = candidate_noise(seeds, dim, (c, h, w), model.value_range, search)

            async def encode(x: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
                out = await self._run(model, "encode", {"image": x}, None, deadline)
                return out["mu"], out.get("logvar")

            async def decode(zz: np.ndarray) -> np.ndarray:
                labels = None if label is None else np.full(len(zz), label, dtype=np.int64)
                return (await self._run(model, "decode", decode_feeds(zz, labels), None, deadline))["image"]

            async def prior(noise: np.ndarray, u: np.ndarray) -> np.ndarray:
                return (await self._run(model, "prior", {"noise": noise, "u": u}, None, deadline))["z"]

            fill = drawn.fill
            if search:
                fill = await prior_fill(prior, decode, image, mask, drawn.search_noise, drawn.search_u)
            filled, z = await iterative_complete(encode, decode, image, mask, drawn.eps, fill, rounds)
            finish = self._finisher(model, request.output, "image")
            payloads = await asyncio.get_running_loop().run_in_executor(self.executor, finish, {"image": filled})
        context = completion.pack_context(image, mask)
        records = [SampleRecord(new_sample_id(), model.name, model.version, z[i], "complete", seed=seeds[i],
                                label=label, context=context) for i in range(count)]
        stored = await self._store(records)
        self._samples.get(model, "Complete").inc(count)
        return Samples(model, records, payloads, stored, base_seed, "model" if rounds is None else "iterative")

    async def stylize(self, request: StylizeRequest, deadline: float | None) -> Stylized:
        """Stylize: the content (an image, or a stored sample drawn again) painted in the style,
        stored as a sample without a latent.

        The style's statistics come from the cache by style id, or from the style encoder (the
        image scaled down to ``stylize_style_max_side``) and are then cached, so any replica
        sharing the cache serves the id; a mix is the weighted mean of its parts' statistics,
        cached under the mix's id. After the graph: the content's colours kept when asked
        (``preserve_color``), then the content put back outside the mask, so pixels outside it
        are the content's exactly; alpha 0 gives the content without running the graph.
        """
        model = self._model(request.model, request.version, "Stylize")
        fixed = not model.has_task("stylize")
        alpha = styling.check_alpha(request.alpha)
        if fixed and request.styles:
            raise InvalidArgument(f"model {model.name} (kind {model.manifest.kind}) has its style built in; "
                                  "send no styles")
        if not fixed and not 1 <= len(request.styles) <= self.max_count:
            raise InvalidArgument(f"send 1 to {self.max_count} styles (an image or a style_id each), "
                                  f"got {len(request.styles)}")
        shares = None if fixed else styling.weights(request.styles)
        content = await self._stylize_content(request, deadline)
        _, h, w = content.shape
        mask = styling.mask_array(request.mask, h, w)
        note(width=w, height=h, styles=len(request.styles))
        feeds: dict[str, np.ndarray] = {}
        style_id, style_ids, styles_stored = "", [], True
        if not fixed:
            assert shares is not None
            mean, std, style_id, style_ids, styles_stored = await self._style(model, request.styles, shares, deadline)
            feeds = {"style_mean": mean[None], "style_std": std[None]}
        lo, hi = model.value_range
        output, level = request.output, self.config.png_compress_level

        def finish(out: dict[str, np.ndarray]) -> list[bytes]:
            image = np.clip((out["stylized"][0].astype(np.float32) - lo) / (hi - lo), 0.0, 1.0)
            if request.preserve_color:
                image = preserve_color(content, image)
            image = (mask * image + (1.0 - mask) * content).astype(np.float32)
            if output is OutputFormat.TENSOR:
                return [np.ascontiguousarray(image, dtype="<f4").tobytes()]
            return [imaging.encode_png(image, (0.0, 1.0), level)]

        if alpha == 0.0:
            payload = (await asyncio.get_running_loop().run_in_executor(
                self.executor, finish, {"stylized": (content * (hi - lo) + lo)[None]}))[0]
        else:
            feeds.update(content=(content * (hi - lo) + lo)[None], alpha=np.array([alpha], np.float32),
                         mask=mask[None])
            payload = (await self._run(model, "stylize_fixed" if fixed else "stylize", feeds, finish, deadline))[0]
        record = SampleRecord(new_sample_id(), model.name, model.version, np.zeros(0, np.float32), "stylize")
        stored = await self._store([record]) and styles_stored
        self._samples.get(model, "Stylize").inc()
        return Stylized(model, record, payload, (3, h, w), style_id, style_ids, stored)

    async def _stylize_content(self, request: StylizeRequest, deadline: float | None) -> np.ndarray:
        """Stylize's content as float32 (3, H, W) in [0, 1]: the image sent, or a stored image
        sample drawn again by the version that made it (value range mapped, grey made RGB)."""
        limit = self.config.stylize_max_pixels
        loop = asyncio.get_running_loop()
        if request.content_sample_id:
            if request.content is not None:
                raise InvalidArgument("set content or content_sample_id, not both")
            record = await self.sample(request.content_sample_id)
            if record.origin == "stylize":
                raise InvalidArgument(f"sample {record.sample_id!r} is a stylised image, which the server does not "
                                      "keep; send its image as content")
            maker = self._maker(record)
            z = record.latent[None].astype(np.float32)
            labels = None if record.label is None else np.array([record.label], dtype=np.int64)
            payloads = await self._redraw(maker, record, z, labels, OutputFormat.TENSOR, deadline)
            if payloads is None:
                raise InvalidArgument(f"sample {record.sample_id!r} of {maker.name} is a drawing, not one image; "
                                      "send an image as content")
            c, h, w = maker.image_shape
            lo, hi = maker.value_range
            image = np.clip((np.frombuffer(payloads[0], dtype="<f4").reshape(c, h, w) - lo) / (hi - lo), 0.0, 1.0)
            image = np.repeat(image, 3, 0) if c == 1 else image
            if h * w > limit or min(h, w) < styling.MIN_SIDE:
                raise InvalidArgument(f"sample {record.sample_id!r} is {w}x{h}; content must have sides of at least "
                                      f"{styling.MIN_SIDE} and at most {limit} pixels")
            return np.ascontiguousarray(image, dtype=np.float32)
        return await loop.run_in_executor(self.executor, styling.rgb_image, request.content, limit, "content")

    async def _style(self, model: ModelRuntime, styles: Sequence[StyleInput], shares: np.ndarray,
                     deadline: float | None) -> tuple[np.ndarray, np.ndarray, str, list[str], bool]:
        """The statistics (mean, std) of a request's style or mix of styles, its id, each part's id,
        and whether every newly encoded style reached the cache."""
        size = model.manifest.signatures[model.graph_for("stylize")].input("style_mean").shape[1]
        size = size if isinstance(size, int) else None

        async def one(k: int, entry: StyleInput) -> tuple[str, np.ndarray, np.ndarray, bool]:
            if entry.image is None and not entry.style_id:
                raise InvalidArgument(f"styles[{k}] is empty; set its image or style_id")
            if entry.image is not None and entry.style_id:
                raise InvalidArgument(f"styles[{k}]: set image or style_id, not both")
            if entry.style_id:
                sid = styling.check_style_id(entry.style_id, k)
                found = await self._cached_style(model, sid, size)
                if found is None:
                    raise InvalidArgument(
                        f"styles[{k}].style_id {sid} is unknown to {model.name} v{model.version} or expired (styles are "
                        f"kept {self.config.cache_ttl_s} s per model version); send the style image again")
                return sid, *found, True
            loop = asyncio.get_running_loop()
            image = await loop.run_in_executor(self.executor, _style_image, entry.image,
                                               self.config.stylize_max_pixels, self.config.stylize_style_max_side,
                                               f"styles[{k}].image")
            sid = styling.image_id(entry.image)
            found = await self._cached_style(model, sid, size, missing_ok=True)
            if found is not None:
                return sid, *found, True
            lo, hi = model.value_range
            out = await self._run(model, "encode_style", {"style": (image * (hi - lo) + lo)[None]}, None, deadline)
            mean, std = out["style_mean"][0].astype(np.float32), out["style_std"][0].astype(np.float32)
            return sid, mean, std, await self._put_style(model, sid, mean, std)

        parts = await asyncio.gather(*(one(k, entry) for k, entry in enumerate(styles)))
        ids = [p[0] for p in parts]
        stored = all(p[3] for p in parts)
        if len(parts) == 1:
            return parts[0][1], parts[0][2], ids[0], ids, stored
        mean = np.tensordot(shares, np.stack([p[1] for p in parts]), 1).astype(np.float32)
        std = np.tensordot(shares, np.stack([p[2] for p in parts]), 1).astype(np.float32)
        mixed = styling.mix_id(ids, shares)
        stored = await self._put_style(model, mixed, mean, std) and stored
        return mean, std, mixed, ids, stored

    async def _cached_style(self, model: ModelRuntime, style_id: str, size: int | None,
                            missing_ok: bool = False) -> tuple[np.ndarray, np.ndarray] | None:
        """A style's cached statistics for ``model``'s version (None when absent). An unreachable
        cache is UNAVAILABLE for an id, a miss for an image (which is then encoded)."""
        try:
            data = await self.cache.get_style(style_key(model.name, model.version, style_id))
        except CacheUnavailable:
            if missing_ok:
                return None
            raise Unavailable("the cache is unreachable, so style ids cannot be resolved now; retry later or "
                              "send the style image") from None
        return None if data is None else styling.unpack_stats(data, size)

    async def _put_style(self, model: ModelRuntime, style_id: str, mean: np.ndarray, std: np.ndarray) -> bool:
        """Cache a style's statistics; False (counted and logged by the cache) when it failed."""
        try:
            await self.cache.put_style(style_key(model.name, model.version, style_id), styling.pack_stats(mean, std))
            return True
        except CacheUnavailable:
            return False

    async def variations(self, request: VariationsRequest, deadline: float | None) -> Samples:
        """Samples near a stored one, on the model version that made it. Variations of a
        completion keep its known pixels: they are completed again from the same input."""
        parent = await self.sample(request.sample_id)
        _has_latent(parent, "Variations of it")
        model = self._maker(parent)
        self._require(model, "Variations")
        count = self._check_count(request.count, "count")
        strength = float(request.strength)
        if not math.isfinite(strength) or not 0.0 <= strength <= MAX_STRENGTH:
            raise InvalidArgument(f"strength must be finite and in [0, {MAX_STRENGTH}], got {request.strength}")
        base_seed = request.seed if request.seed is not None else _random_seed()
        seeds, z = latents.variations(parent.latent, base_seed, count, strength)
        labels = None if parent.label is None else np.full(count, parent.label, dtype=np.int64)
        note(model=model.name, version=model.version, count=count)
        payloads = await self._redraw(model, parent, z, labels, request.output, deadline)
        if payloads is None:
            raise FailedPrecondition(f"sample {parent.sample_id!r} has no completion input to vary, and model "
                                     f"{model.name} cannot decode a latent alone")
        records = [SampleRecord(new_sample_id(), model.name, model.version, z[k], "variation", seed=seeds[k],
                                label=parent.label, parent_id=parent.sample_id, context=parent.context)
                   for k in range(count)]
        stored = await self._store(records)
        self._samples.get(model, "Variations").inc(count)
        return Samples(model, records, payloads, stored, base_seed)

    async def sample_image(self, sample_id: str, deadline: float | None) -> bytes:
        """A stored sample drawn again as PNG by the version that made it (the HTTP surface's
        ``<img src>`` of a sample): its latent decoded, or a completion completed again from
        its input. A stroke drawing is not one image of its latent; it is refused."""
        record = await self.sample(sample_id)
        _has_latent(record, "its image drawn again")
        model = self._maker(record)
        note(model=model.name, version=model.version)
        z = record.latent[None].astype(np.float32)
        labels = None if record.label is None else np.array([record.label], dtype=np.int64)
        payloads = await self._redraw(model, record, z, labels, OutputFormat.PNG, deadline)
        if payloads is None:
            raise FailedPrecondition(f"sample {sample_id!r} of {model.name} (kind {model.manifest.kind}) has no "
                                     "single image: its model draws strokes from a latent; use GenerateStrokes or "
                                     "Interpolate")
        return payloads[0]

    def plan_stream(self, request: GenerateRequest) -> GeneratePlan:
        """``plan_generate`` for GenerateStream, whose limit is ``max_stream_count``."""
        limit = self.config.max_stream_count
        if request.count > limit:
            raise InvalidArgument(
                f"count must be between 1 and {limit} for GenerateStream, got {request.count}; ask for the "
                f"rest in another stream with seed + {limit} (sample k of seed s is sample 0 of seed s + k)")
        return self.plan_generate(request, "GenerateStream", max_count=limit)

    async def generate_stream(self, plan: GeneratePlan, deadline: float | None) -> AsyncIterator[tuple[int, Samples]]:
        """A planned stream's samples in chunks of ``stream_chunk``: (index of the chunk's first
        sample, its samples). A chunk is made only when the reader asks for it, so a reader that
        stops (or is cancelled) stops the stream between chunks."""
        chunk = self.config.stream_chunk
        for start in range(0, plan.count, chunk):
            yield start, await self.generate(plan, start, min(chunk, plan.count - start), deadline, "GenerateStream")

    # ---- stroke models -------------------------------------------------------------------------

    async def draw_strokes(self, request: DrawRequest) -> AsyncIterator[DrawEvent]:
        """GenerateStrokes: drawings sampled from the model, their points streamed as they come;
        drawing i from seed (seed + i) mod 2^64 (``services.generation.strokes``)."""
        model = self._model(request.model, request.version, "GenerateStrokes")
        seed = request.seed if request.seed is not None else _random_seed()
        plan = self.strokes.plan(
            model, count=request.count or 1, seed=seed, temperature=request.temperature,
            max_steps=request.max_steps, svg=request.svg, png_size=request.png_size)
        async for event in self._drawings(plan, "draw", "GenerateStrokes"):
            yield event

    async def continue_strokes(self, request: ContinueRequest) -> AsyncIterator[DrawEvent]:
        """ContinueStrokes: continuations of a partial drawing, streamed like ``draw_strokes``.
        Each continues from a stored sample's latent when one is named; otherwise (a model with
        a latent) from the prefix's encoding, mu + sigma * latent_from_seed(seed_i)."""
        model = self._model(request.model, request.version, "ContinueStrokes")
        prefix = self.strokes.check_prefix(model, request.prefix)
        count = request.count or 1
        seed = request.seed if request.seed is not None else _random_seed()
        plan = self.strokes.plan(
            model, count=count, seed=seed, temperature=request.temperature, max_steps=request.max_steps,
            svg=request.svg, png_size=request.png_size, prefix=prefix, parent_id=request.sample_id or None)
        given = None
        if request.sample_id:
            given = np.repeat((await self.stored_latent(request.sample_id, model))[None], count, 0)
        elif model.manifest.latent_dim:
            if not model.has_task("encode_strokes"):
                raise InvalidArgument(f"model {model.name} has no encoder: name the latent to continue with "
                                      "(sample_id)")
            given = await self.strokes.posterior(model, prefix, [latents.sample_seed(seed, i) for i in range(count)])
        async for event in self._drawings(dataclasses.replace(plan, latents=given), "continue", "ContinueStrokes"):
            yield event

    async def encode_strokes(self, request: EncodeStrokesRequest, deadline: float | None) -> Samples:
        """EncodeStrokes: drawings to latents (the encoder's mean), each stored as a sample."""
        model = self._model(request.model, request.version, "EncodeStrokes")
        if not 1 <= len(request.drawings) <= self.max_count:
            raise InvalidArgument(f"send 1 to {self.max_count} drawings, got {len(request.drawings)}")
        drawings = [self.strokes.check_prefix(model, rows, f"drawing {k}") for k, rows in enumerate(request.drawings)]
        records, stored = await self.strokes.encode(model, drawings, deadline)
        return Samples(model, records, None, stored)

    async def _drawings(self, plan: DrawPlan, origin: str, operation: str) -> AsyncIterator[DrawEvent]:
        """A plan's drawings as they are sampled; each finished one counted as a sample of
        ``operation`` (latentforge_samples_generated_total)."""
        samples = self._samples.get(plan.model, operation)
        async for event in self.strokes.stream(plan, origin):
            if event.done:
                samples.inc()
            yield event

    async def sample(self, sample_id: str) -> SampleRecord:
        """A stored sample by id."""
        if not SAMPLE_ID_PATTERN.match(sample_id or ""):
            raise InvalidArgument("sample_id must be 1-64 characters of [A-Za-z0-9_-], as returned by the server")
        try:
            record = await self.cache.get(sample_id)
        except CacheUnavailable:
            raise Unavailable("the sample cache is unreachable, so sample ids cannot be resolved now; "
                              "retry later") from None
        if record is None:
            raise NotFound(f"unknown or expired sample id {sample_id!r} "
                           f"(ids are kept {self.config.cache_ttl_s} s)")
        return record

    # ---- the model version and what it supports ----------------------------------------------

    def _model(self, name: str, version: int | None, operation: str) -> ModelRuntime:
        """The version a request names (the newest when unpinned), able to do ``operation``."""
        if version is not None and version < 0:
            raise InvalidArgument(f"version must be >= 1 (or 0/absent for the newest), got {version}")
        model = self.repository.resolve(name, version or None)
        note(model=model.name, version=model.version)
        self._require(model, operation)
        return model

    def _require(self, model: ModelRuntime, operation: str) -> None:
        """The one capability check: refuse an operation the model version's tasks do not
        support, saying what it lacks and what it supports (``capabilities.refuse``)."""
        if operation not in self._supports.get(model):
            refuse(operation, model.name, model.version, model.manifest.kind, model.manifest.tasks)

    # ---- request checks ---------------------------------------------------------------------

    def _check_count(self, value: int, what: str, minimum: int = 1, maximum: int | None = None) -> int:
        limit = self.config.max_count if maximum is None else maximum
        if not minimum <= value <= limit:
            raise InvalidArgument(f"{what} must be between {minimum} and {limit}, got {value}")
        return int(value)

    @staticmethod
    def _check_label(model: ModelRuntime, label: int | None) -> int | None:
        n = model.manifest.num_classes
        if label is None:
            return None
        if n == 0:
            raise InvalidArgument(f"model {model.name} is unconditional (num_classes=0); leave label unset")
        if not 0 <= label < n:
            raise InvalidArgument(f"label must be in 0..{n - 1} for model {model.name}, got {label}")
        return int(label)

    # ---- building blocks --------------------------------------------------------------------

    def _finisher(self, model: ModelRuntime, output: OutputFormat, name: str = "image") -> Finish:
        """What turns the rows of a graph's image output ``name`` into payloads, on the worker
        thread (row by row, so that the rows of several requests may be finished in one call)."""
        return self._finishers.get(model, output, name)

    def _make_finisher(self, model: ModelRuntime, output: OutputFormat, name: str) -> Finish:
        if output is OutputFormat.TENSOR:
            return lambda out: [np.ascontiguousarray(img, dtype="<f4").tobytes() for img in out[name]]
        vr, level = model.value_range, self.config.png_compress_level
        return lambda out: imaging.encode_pngs(out[name], vr, level)

    def seeded_latents(self, model: ModelRuntime, base_seed: int, n: int,
                       psi: float | None) -> tuple[list[int], np.ndarray]:
        """Seeds and latents of samples 0..n-1 from ``base_seed``: the standard normal's, or
        with a learned prior (the ``prior`` task), its graph on the seeds' noise and uniforms.
        Blocking (a small graph run on the calling thread): a worker thread making a batch's
        feeds calls it, and the event loop for a single latent."""
        dim = model.manifest.latent_dim
        if not model.has_task("prior"):
            return latents.latents_from_seeds(base_seed, n, dim, psi)
        seeds, noise, u = latents.prior_inputs_from_seeds(base_seed, n, dim, psi)
        z = self.runner.run_now(model, model.graph_for("prior"), {"noise": noise, "u": u})["z"]
        return seeds, np.ascontiguousarray(z, dtype=np.float32)

    async def _run(self, model: ModelRuntime, task: str, feeds: AnyFeeds, finish: Finish | None,
                   deadline: float | None, respond: Respond | None = None):
        """The graph of ``task`` on ``feeds`` (names of the task's contract), through the runner."""
        return await self.runner.run(model, model.graph_for(task), feeds, finish, deadline, respond)

    async def _render(self, model: ModelRuntime, z: np.ndarray, labels: np.ndarray | None, output: OutputFormat,
                      deadline: float | None) -> list[bytes]:
        """Latents to encoded images; decoding and encoding run on a worker thread."""
        return await self._run(model, "decode", decode_feeds(z, labels), self._finisher(model, output), deadline)

    async def _complete(self, model: ModelRuntime, image: np.ndarray, mask: np.ndarray, z: np.ndarray,
                        output: OutputFormat, deadline: float | None) -> list[bytes]:
        """One image and mask filled by the complete graph from each latent, encoded."""
        n = len(z)
        feeds = {"image": np.repeat(image[None], n, 0), "mask": np.repeat(mask[None], n, 0), "z": z}
        return await self._run(model, "complete", feeds, self._finisher(model, output, "completed"), deadline)

    async def _render_cached(self, model: ModelRuntime, z: np.ndarray, labels: np.ndarray | None,
                             label_list: Sequence[int | None], output: OutputFormat,
                             deadline: float | None) -> list[bytes]:
        """``_render`` through the rendered-output cache: only the rows not cached run."""
        params = "f32" if output is OutputFormat.TENSOR else f"png{self.config.png_compress_level}"
        keys = [render_key(model.name, model.version, z[i], label_list[i], params) for i in range(len(z))]
        payloads = await self.cache.get_rendered(keys)
        missing = [i for i, p in enumerate(payloads) if p is None]
        if missing:
            rows = np.asarray(missing)
            fresh = await self._render(model, z[rows], None if labels is None else labels[rows], output, deadline)
            for i, p in zip(missing, fresh):
                payloads[i] = p
            await self.cache.put_rendered({keys[i]: p for i, p in zip(missing, fresh)})
        return payloads  # type: ignore[return-value]

    def _maker(self, record: SampleRecord) -> ModelRuntime:
        """The loaded version that made a stored sample (NotFound once it is unloaded)."""
        try:
            return self.repository.resolve(record.model, record.version)
        except NotFound:
            raise NotFound(f"sample {record.sample_id!r} was made by {record.model} v{record.version}, "
                           "which is no longer loaded") from None

    async def _redraw(self, model: ModelRuntime, record: SampleRecord, z: np.ndarray, labels: np.ndarray | None,
                      output: OutputFormat, deadline: float | None) -> list[bytes] | None:
        """Images of latents ``z`` made the way ``record`` was: a completion completed again from
        its stored input, anything else decoded; None when the model can do neither."""
        given = None if record.context is None else completion.unpack_context(record.context, model.image_shape)
        if given is not None:
            return await self._recomplete(model, given, z, labels, output, deadline)
        if model.has_task("decode"):
            return await self._render(model, z, labels, output, deadline)
        return None

    async def _recomplete(self, model: ModelRuntime, given: tuple[np.ndarray, np.ndarray], z: np.ndarray,
                          labels: np.ndarray | None, output: OutputFormat, deadline: float | None) -> list[bytes]:
        """Fill a stored completion input's hole again from new latents: by the complete graph, or
        decoded with the known pixels put back."""
        image, mask = given
        if model.has_task("complete"):
            return await self._complete(model, image, mask, z, output, deadline)
        finish = self._finisher(model, output)
        return await self._run(model, "decode", decode_feeds(z, labels),
                               lambda out: finish({"image": composite(out["image"], image[None], mask[None])}),
                               deadline)

    async def _input_images(self, model: ModelRuntime, items: Sequence[ImageInput], what: str = "images") -> np.ndarray:
        """Request images as one float32 (N, C, H, W) batch; INVALID_ARGUMENT naming the bad one."""
        self._check_count(len(items), "number of images")
        shape = model.image_shape
        vr = model.value_range

        def convert() -> np.ndarray:
            out = np.empty((len(items), *shape), dtype=np.float32)
            for k, item in enumerate(items):
                try:
                    if isinstance(item, bytes):
                        out[k] = imaging.decode_png(item, shape, vr)
                    elif isinstance(item, TensorInput):
                        out[k] = _tensor_image(item, shape)
                    else:
                        raise imaging.ImageError("image is empty; set png or tensor")
                except imaging.ImageError as exc:
                    raise InvalidArgument(f"{what}[{k}]: {exc}" if what == "images" else f"{what}: {exc}") from None
            return out

        note(images=len(items))
        return await asyncio.get_running_loop().run_in_executor(self.executor, convert)

    async def _endpoint(self, model: ModelRuntime, ep: Endpoint, psi: float | None,
                        which: str) -> tuple[np.ndarray, int | None]:
        """An interpolation end as a latent (and the stored label, for sample ids)."""
        dim = model.manifest.latent_dim
        if ep.sample_id is not None:
            record = await self.sample(ep.sample_id)
            if record.latent.size != dim:
                raise InvalidArgument(
                    f"{which} sample {ep.sample_id!r} has a latent of {record.latent.size} values "
                    f"(model {record.model}); model {model.name} needs {dim}")
            return record.latent, record.label
        if ep.seed is not None:
            if not model.has_task("sample"):
                raise FailedPrecondition(f"{which}: model {model.name} has no prior, so a seed names no latent; "
                                         "use a sample id (e.g. from Encode) or a latent")
            return self.seeded_latents(model, ep.seed, 1, psi)[1][0], None
        if ep.latent is not None:
            try:
                return latents.check_latent(np.asarray(ep.latent, dtype=np.float32), dim), None
            except ValueError as exc:
                raise InvalidArgument(f"{which}: {exc}") from None
        raise InvalidArgument(f"{which} endpoint is missing; set its sample_id, seed or latent")

    async def _store(self, records: list[SampleRecord]) -> bool:
        """Store records; a cache failure is counted and logged (by the cache), never raised."""
        try:
            await self.cache.put_many(records)
            return True
        except CacheUnavailable:
            return False



def _has_latent(record: SampleRecord, what: str) -> None:
    """FAILED_PRECONDITION for a stylised sample, which has no latent to draw again from."""
    if record.origin == "stylize":
        raise FailedPrecondition(f"sample {record.sample_id!r} is a stylised image: it has no latent, so {what} "
                                 "cannot be made; keep the image Stylize returned")


def _style_image(item: ImageInput, max_pixels: int, max_side: int, what: str) -> np.ndarray:
    """A style image as float32 (3, H, W) in [0, 1], its longer side at most ``max_side``."""
    return styling.shrink(styling.rgb_image(item, max_pixels, what), max_side)


def _truncation(psi: float | None) -> float | None:
    if psi is None:
        return None
    psi = float(psi)
    if not math.isfinite(psi) or psi < latents.MIN_TRUNCATION:
        raise InvalidArgument(f"truncation must be finite and >= {latents.MIN_TRUNCATION} (or absent), got {psi}")
    return psi


def _tensor_image(t: TensorInput, shape: tuple[int, int, int]) -> np.ndarray:
    """A raw input tensor as float32 (C, H, W); ImageError when it does not fit the model."""
    if t.dtype not in ("float32", ""):
        raise imaging.ImageError(f"tensor dtype {t.dtype!r} is not supported; send float32")
    if tuple(t.shape) != tuple(shape):
        raise imaging.ImageError(f"tensor shape {tuple(t.shape)} does not match the model's (C, H, W) {tuple(shape)}")
    expected = int(np.prod(shape)) * 4
    if len(t.data) != expected:
        raise imaging.ImageError(f"tensor data has {len(t.data)} bytes; shape {tuple(shape)} float32 needs {expected}")
    arr = np.frombuffer(t.data, dtype="<f4").reshape(shape)
    if not np.all(np.isfinite(arr)):
        raise imaging.ImageError("tensor contains NaN or infinite values")
    return arr


class _SeededDraw:
    """Samples start..start+n-1 of a planned Generate: their seeds, latents and labels, made when
    first asked for (on the worker thread of their batch), then their records.

    Sample i's seed is (base + start + i) mod 2^64, as ``latents.latents_from_seeds`` counts
    from 0; its label is the request's, or the seed mod the number of classes.
    """

    __slots__ = ("pipeline", "plan", "start", "n", "seeds", "z", "label_list")

    def __init__(self, pipeline: GenerationPipeline, plan: GeneratePlan, start: int, n: int) -> None:
        self.pipeline, self.plan, self.start, self.n = pipeline, plan, start, n
        self.seeds: list[int] = []
        self.z: np.ndarray | None = None
        self.label_list: list[int | None] = []

    def make(self) -> Feeds:
        """Draw the latents and labels now; the decode graph's feeds."""
        plan, n = self.plan, self.n
        model = plan.model
        self.seeds, self.z = self.pipeline.seeded_latents(model, latents.sample_seed(plan.seed, self.start), n,
                                                          plan.truncation)
        classes = model.manifest.num_classes
        if plan.label is not None:
            self.label_list = [plan.label] * n
        elif classes:
            self.label_list = [s % classes for s in self.seeds]
        else:
            self.label_list = [None] * n
        return decode_feeds(self.z, np.array(self.label_list, dtype=np.int64) if classes else None)

    def deferred(self) -> DeferredFeeds:
        """The decode feeds, made on the worker thread that runs their batch."""
        manifest = self.plan.model.manifest
        like = {"z": np.empty((0, manifest.latent_dim), np.float32)}
        if manifest.num_classes:
            like["labels"] = np.empty(0, np.int64)
        return DeferredFeeds(self.n, like, self.make)

    def samples(self, payloads: list[bytes]) -> Samples:
        """The samples with their records (not stored yet)."""
        plan, model = self.plan, self.plan.model
        z, seeds, label_list = self.z, self.seeds, self.label_list
        assert z is not None
        records = [SampleRecord(new_sample_id(), model.name, model.version, z[i], "generate", seed=seeds[i],
                                label=label_list[i], truncation=plan.truncation) for i in range(self.n)]
        return Samples(model, records, payloads, False, plan.seed)

    def rendered(self, payloads: list[bytes], render: Callable[[Samples], T] | None) -> tuple[Samples, T | None]:
        """The samples, and what ``render`` makes of them (on the calling worker thread)."""
        made = self.samples(payloads)
        return made, (render(made) if render is not None else None)
