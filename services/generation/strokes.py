"""Drawing with a stroke model (tasks ``draw_strokes``, ``init_state``, ``encode_strokes``): the
sampling loop (``latentforge.strokes.drawing_loop``, the one copy, shared with the quality
meter) driven here, one ``decoder_step`` call per point. Each drawing awaits its step through
the runner like any other request, so the steps of every live drawing are batched into shared
ONNX Runtime calls: 64 concurrent drawings cost about one call per point, not 64.

* ``StrokeDrawer``: plans requests (model, count, seed, temperature, steps), runs drawings and
  streams their points as they are sampled (``DrawEvent``), stores each finished drawing's latent
  as a sample, encodes drawings to latents, and draws the frames of an interpolation. The
  pipeline's stroke operations (``GenerationPipeline.draw_strokes``, ``continue_strokes``,
  ``encode_strokes``, and Interpolate's frames) use it; the surfaces only call those.

Random draws: a drawing of seed s samples from ``Generator(PCG64(s))``: first its latent (the
documented seed -> latent algorithm, ``latentforge.latents``, without truncation), then each point's
draws in order (``latentforge.strokes.sample_point``). A drawing from a given latent (a stored
sample, an interpolation frame, a continuation of an encoded prefix) draws its points from a
fresh ``Generator(PCG64(s))``. The same request gives the same drawings on any server, up to
float rounding of batched calls.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

import numpy as np

from latentforge import latents
from latentforge.manifest import StrokeSpec
from latentforge.runtime import ModelRuntime
from latentforge.strokes import (
    StrokeError,
    check_drawing,
    check_temperature,
    drawing_loop,
    render,
    step_output,
    to_png,
    to_stroke5,
    to_svg,
)
from services.errors import InvalidArgument
from services.generation.batching import InferenceRunner
from services.generation.cache import SampleRecord, new_sample_id
from services.generation.metrics import Metrics

MAX_STEPS_FACTOR = 4  # a request may draw up to this many times the model's longest training drawing
MAX_PNG_SIZE = 1024
DEFAULT_PNG_SIZE = 256


@dataclass(frozen=True)
class DrawPlan:
    """A checked drawing request: what to draw and how."""

    model: ModelRuntime
    spec: StrokeSpec
    count: int
    seed: int
    temperature: float
    max_steps: int
    svg: bool = False
    png_size: int = 0  # 0: no PNG
    prefix: np.ndarray | None = None  # checked rows (K, 3) in data units that every drawing continues
    latents: np.ndarray | None = None  # given latents, one per drawing (else drawn from the seeds)
    parent_id: str | None = None
    same_seed: bool = False  # every drawing samples with the plan's seed (interpolation frames)
    store: bool = True  # store each finished drawing's latent as a sample


@dataclass
class DrawEvent:
    """A point of drawing ``index`` (``done`` False), or the end of it (``done`` True)."""

    index: int
    dx: float = 0.0
    dy: float = 0.0
    pen: int = 0
    done: bool = False
    record: SampleRecord | None = None
    stored: bool = False
    ended: bool = False  # the model ended the drawing (else it ran out of steps)
    points: int = 0
    svg: str = ""
    png: bytes = b""
    rows: np.ndarray | None = field(default=None, repr=False)


class StrokeDrawer:
    """Runs drawings on stroke models: plans, the sampling loop, storage and renderings."""

    def __init__(self, runner: InferenceRunner, metrics: Metrics,
                 store: Callable[[list[SampleRecord]], Awaitable[bool]], max_count: int) -> None:
        self.runner = runner
        self._store = store  # the pipeline's: stores records, False when the cache is unreachable
        self.max_count = max_count
        self.in_progress = metrics.drawings_in_progress  # drawings being sampled now, all RPCs together

    # ---- plans ---------------------------------------------------------------------------------

    def plan(self, model: ModelRuntime, *, count: int, seed: int, temperature: float | None, max_steps: int,
             svg: bool = False, png_size: int | None = None, prefix: np.ndarray | None = None,
             latents_given: np.ndarray | None = None, parent_id: str | None = None) -> DrawPlan:
        """Check a drawing request against the model; InvalidArgument says what to fix."""
        spec = model.manifest.strokes
        assert spec is not None  # a model with draw_strokes has a stroke spec (manifest validation)
        if not 1 <= count <= self.max_count:
            raise InvalidArgument(f"count must be between 1 and {self.max_count}, got {count}")
        limit = MAX_STEPS_FACTOR * spec.max_steps
        if not 0 <= max_steps <= limit:
            raise InvalidArgument(f"max_steps must be between 1 and {limit} ({MAX_STEPS_FACTOR} times the model's "
                                  f"longest drawing, {spec.max_steps}), or 0 for {spec.max_steps}; got {max_steps}")
        png = DEFAULT_PNG_SIZE if png_size is None else int(png_size)
        if png != 0 and not 16 <= png <= MAX_PNG_SIZE:
            raise InvalidArgument(f"png_size must be between 16 and {MAX_PNG_SIZE} (0: no PNG), got {png}")
        try:
            tau = check_temperature(temperature, spec.temperature)
        except StrokeError as exc:
            raise InvalidArgument(str(exc)) from None
        return DrawPlan(model, spec, count, seed, tau, max_steps or spec.max_steps, svg, png, prefix, latents_given,
                        parent_id)

    def check_prefix(self, model: ModelRuntime, rows: np.ndarray, what: str = "prefix") -> np.ndarray:
        """A client's partial drawing, checked (InvalidArgument with what to fix)."""
        spec = model.manifest.strokes
        assert spec is not None
        try:
            return check_drawing(rows, spec.max_steps, spec.scale, what)
        except StrokeError as exc:
            raise InvalidArgument(str(exc)) from None

    # ---- drawing -------------------------------------------------------------------------------

    async def stream(self, plan: DrawPlan, origin: str, window: int = 256) -> AsyncIterator[DrawEvent]:
        """The plan's drawings, sampled concurrently, their points streamed as they come (each
        drawing's in order). At most ``window`` events wait for the reader: a slow client pauses
        the drawings. Cancelling the iteration (a client that goes away) stops them."""
        queue: asyncio.Queue[DrawEvent | BaseException] = asyncio.Queue(maxsize=window)
        tasks = [asyncio.ensure_future(self._draw(plan, i, origin, queue)) for i in range(plan.count)]
        left = plan.count
        try:
            while left:
                event = await queue.get()
                if isinstance(event, BaseException):
                    raise event
                if event.done:
                    left -= 1
                yield event
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def draw_all(self, plan: DrawPlan, origin: str) -> list[DrawEvent]:
        """Every drawing of a plan, finished: the ``done`` events in index order."""
        done = [e async for e in self.stream(plan, origin) if e.done]
        return sorted(done, key=lambda e: e.index)

    async def _draw(self, plan: DrawPlan, index: int, origin: str, queue: asyncio.Queue) -> None:
        try:
            await self._sample(plan, index, origin, queue)
        except asyncio.CancelledError:
            raise
        except BaseException as exc:  # noqa: BLE001 - handed to the reader, which raises it
            await queue.put(exc)

    async def _sample(self, plan: DrawPlan, index: int, origin: str, queue: asyncio.Queue) -> None:
        model, spec = plan.model, plan.spec
        d = model.manifest.latent_dim
        seed = plan.seed if plan.same_seed else latents.sample_seed(plan.seed, index)
        rng = np.random.Generator(np.random.PCG64(seed))
        if plan.latents is not None:
            z = plan.latents[index].astype(np.float32)
        elif d:
            z = rng.standard_normal(d).astype(np.float32)  # = latents.latent_from_seed(seed, d)
        else:
            z = np.zeros(0, np.float32)
        self.in_progress.inc()
        try:
            if d:
                state = await self.runner.run(model, model.graph_for("init_state"), {"z": z[None]})
                h, c = state["h"][0], state["c"][0]
            else:
                h = c = np.zeros(spec.hidden, np.float32)
            prefix = None
            if plan.prefix is not None:
                prefix5, k = to_stroke5(plan.prefix, len(plan.prefix), spec.scale)
                prefix = prefix5[:k]
            step_role = model.graph_for("draw_strokes")
            z_row = z[None] if d else None
            sampled: list[tuple[float, float, int]] = []  # model units, appended by the loop
            rows: list[tuple[float, float, int]] = []  # data units
            loop = drawing_loop(spec.start_point, h, c, plan.temperature, rng, plan.max_steps, sampled, prefix)
            reply = None  # the last step's (output, h, c), sent back into the loop
            while True:
                try:
                    feed = loop.send(reply)
                except StopIteration as stop:
                    feed, ended = None, bool(stop.value)
                if len(sampled) > len(rows):  # the last step drew a point: stream it
                    dx, dy, pen = sampled[-1]
                    rows.append((dx * spec.scale, dy * spec.scale, pen))
                    await queue.put(DrawEvent(index, rows[-1][0], rows[-1][1], pen))
                if feed is None:
                    break
                feeds = {"point": feed.point[None], "h": feed.h[None], "c": feed.c[None]}
                if z_row is not None:
                    feeds["z"] = z_row
                out = await self.runner.run(model, step_role, feeds)
                reply = (step_output(out, 0), out["h_out"][0], out["c_out"][0])
        finally:
            self.in_progress.dec()
        drawn = np.asarray(rows, np.float32).reshape(-1, 3)
        whole = drawn if plan.prefix is None else np.concatenate([plan.prefix, drawn])
        record = SampleRecord(new_sample_id(), model.name, model.version, z, origin, seed=seed,
                              parent_id=plan.parent_id)
        stored = await self._store([record]) if plan.store else False
        await queue.put(DrawEvent(index, done=True, record=record, stored=stored, ended=ended, points=len(rows),
                                  svg=to_svg(whole) if plan.svg else "",
                                  png=to_png(whole, plan.png_size) if plan.png_size else b"", rows=whole))

    # ---- encoding and frames -------------------------------------------------------------------

    async def _encoder(self, model: ModelRuntime, drawings: list[np.ndarray],
                       deadline: float | None = None) -> dict[str, np.ndarray]:
        """The encode_strokes graph on checked drawings (each (K, 3) in data units): mu [and logvar]."""
        spec = model.manifest.strokes
        assert spec is not None
        packed = [to_stroke5(rows, spec.max_steps, spec.scale) for rows in drawings]
        feeds = {"strokes": np.stack([p[0] for p in packed]), "lengths": np.array([p[1] for p in packed], np.int64)}
        return await self.runner.run(model, model.graph_for("encode_strokes"), feeds, None, deadline)

    async def encode(self, model: ModelRuntime, drawings: list[np.ndarray],
                     deadline: float | None = None) -> tuple[list[SampleRecord], bool]:
        """Checked drawings -> their encoder means, stored as samples."""
        mus = (await self._encoder(model, drawings, deadline))["mu"]
        records = [SampleRecord(new_sample_id(), model.name, model.version, mu.astype(np.float32), "encode")
                   for mu in mus]
        return records, await self._store(records)

    async def posterior(self, model: ModelRuntime, rows: np.ndarray, seeds: list[int]) -> np.ndarray:
        """Latents of a partial drawing: its encoder's mean plus sigma times the noise of each seed."""
        out = await self._encoder(model, [rows])
        mu, logvar = out["mu"][0].astype(np.float64), out.get("logvar")
        sigma = np.exp(0.5 * logvar[0].astype(np.float64)) if logvar is not None else np.zeros_like(mu)
        eps = np.stack([latents.latent_from_seed(s, len(mu)) for s in seeds]).astype(np.float64)
        return (mu[None] + sigma[None] * eps).astype(np.float32)

    async def frames(self, model: ModelRuntime, z: np.ndarray, seed: int,
                     temperature: float | None) -> list[np.ndarray]:
        """One drawing per latent (rows (K, 3) in data units), all sampled with the same seed's
        draws, so that the frames of an interpolation differ by their latent only. Not stored:
        the caller stores the frames."""
        plan = self.plan(model, count=1, seed=seed, temperature=temperature, max_steps=0, png_size=0)
        plan = dataclasses.replace(plan, count=len(z), latents=z, same_seed=True, store=False)
        return [e.rows for e in await self.draw_all(plan, "interpolate")]  # type: ignore[misc]



def renderings(drawings: list[np.ndarray], size: int) -> np.ndarray:
    """Drawings rendered as the model's output images: (N, 1, size, size), white on black in [0, 1]."""
    return np.stack([render(rows, size)[None] for rows in drawings]).astype(np.float32)

