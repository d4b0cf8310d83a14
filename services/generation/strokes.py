"""Drawing with a stroke model (tasks ``draw_strokes``, ``init_state``, ``encode_strokes``): the
sampling loop the service runs, one ``decoder_step`` call per point, with every live drawing's
step batched into shared ONNX Runtime calls.

* ``StepBatcher``: each drawing awaits its next step; the steps waiting when a worker is free run
  as one call (one row each), so 64 concurrent drawings cost about one call per point, not 64.
  There is no timer: while one batch runs, the next one gathers.
* ``StrokeDrawer``: plans requests (model, count, seed, temperature, steps), runs drawings and
  streams their points as they are sampled (``DrawEvent``), stores each finished drawing's latent
  as a sample, encodes drawings to latents, and draws the frames of an interpolation.

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
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import Executor
from dataclasses import dataclass, field

import numpy as np

from latentforge.manifest import StrokeSpec
from latentforge.strokes import (
    PEN_END,
    StepOutput,
    StrokeError,
    check_drawing,
    check_temperature,
    render,
    sample_point,
    stroke5_row,
    to_png,
    to_stroke5,
    to_svg,
)
from latentforge import latents
from services.generation.cache import SampleRecord, new_sample_id
from services.errors import InvalidArgument
from services.generation.inference import OnnxModel
from services.generation.metrics import Metrics, version_child
from services.rpc.metrics import OwnedChildren

MAX_ROWS = 256  # drawings stepped in one call at most
MAX_STEPS_FACTOR = 4  # a request may draw up to this many times the model's longest training drawing
MAX_PNG_SIZE = 1024
DEFAULT_PNG_SIZE = 256
_STEP_OUTPUTS = ("pi", "mu_x", "mu_y", "sigma_x", "sigma_y", "rho", "pen_logits", "h_out", "c_out")


@dataclass
class _Step:
    point: np.ndarray
    z: np.ndarray | None
    h: np.ndarray
    c: np.ndarray
    future: asyncio.Future


class StepBatcher:
    """Runs the ``decoder_step`` of live drawings together, per model version."""

    def __init__(self, executor: Executor, metrics: Metrics, max_rows: int = MAX_ROWS) -> None:
        self.executor = executor
        self.max_rows = max_rows
        self._waiting: dict[OnnxModel, list[_Step]] = {}
        self._children = OwnedChildren(lambda model: (
            version_child(model, metrics.batch_size, model.name, str(model.version), "decoder_step"),
            version_child(model, metrics.inference_duration, model.name, str(model.version), "decoder_step",
                          model.provider)))

    async def step(self, model: OnnxModel, point: np.ndarray, z: np.ndarray | None, h: np.ndarray,
                   c: np.ndarray) -> tuple[StepOutput, np.ndarray, np.ndarray]:
        """One drawing's next-point distribution and new state; waits for the shared call."""
        future = asyncio.get_running_loop().create_future()
        waiting = self._waiting.get(model)
        if waiting is None:
            self._waiting[model] = waiting = []
            asyncio.get_running_loop().create_task(self._drain(model))
        waiting.append(_Step(point, z, h, c, future))
        return await future

    async def _drain(self, model: OnnxModel) -> None:
        """Run batches of this model's waiting steps until none wait (then the next step starts it again)."""
        loop = asyncio.get_running_loop()
        role = model.graph_for("draw_strokes")
        try:
            while True:
                waiting = self._waiting[model]
                if not waiting:
                    # The drawings of the last batch resume after this task yields: let them ask for
                    # their next step before deciding that none waits.
                    await asyncio.sleep(0)
                    if not waiting:
                        return
                batch = [s for s in waiting[:self.max_rows] if not s.future.done()]  # cancelled drawings drop out
                del waiting[:self.max_rows]
                if not batch:
                    continue
                feeds = {"point": np.stack([s.point for s in batch]), "h": np.stack([s.h for s in batch]),
                         "c": np.stack([s.c for s in batch])}
                if batch[0].z is not None:
                    feeds["z"] = np.stack([s.z for s in batch])
                try:
                    out = await loop.run_in_executor(self.executor, self._run, model, role, feeds)
                except Exception as exc:  # noqa: BLE001 - every drawing of the batch gets the error
                    for s in batch:
                        if not s.future.done():
                            s.future.set_exception(exc)
                    continue
                for i, s in enumerate(batch):
                    if not s.future.done():
                        s.future.set_result((StepOutput(*(out[k][i] for k in _STEP_OUTPUTS[:7])),
                                             out["h_out"][i], out["c_out"][i]))
        finally:
            if not self._waiting.get(model):
                self._waiting.pop(model, None)
            else:  # stopped by an error with steps still waiting: start over for them
                loop.create_task(self._drain(model))

    def _run(self, model: OnnxModel, role: str, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        t0 = time.perf_counter()
        out = model.run(role, feeds)
        size, duration = self._children.get(model)
        size.observe(len(feeds["point"]))
        duration.observe(time.perf_counter() - t0)
        return out


@dataclass(frozen=True)
class DrawPlan:
    """A checked drawing request: what to draw and how."""

    model: OnnxModel
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

    def __init__(self, executor: Executor, metrics: Metrics, store: Callable[[list[SampleRecord]], Awaitable[bool]],
                 max_count: int) -> None:
        self.executor = executor
        self._store = store  # the pipeline's: stores records, False when the cache is unreachable
        self.max_count = max_count
        self.batcher = StepBatcher(executor, metrics)
        self.in_progress = metrics.drawings_in_progress  # drawings being sampled now, all RPCs together

    # ---- plans ---------------------------------------------------------------------------------

    def plan(self, model: OnnxModel, *, count: int, seed: int, temperature: float | None, max_steps: int,
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

    def check_prefix(self, model: OnnxModel, rows: np.ndarray, what: str = "prefix") -> np.ndarray:
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
                state = await asyncio.get_running_loop().run_in_executor(
                    self.executor, model.run, model.graph_for("init_state"), {"z": z[None]})
                h, c = state["h"][0], state["c"][0]
            else:
                h = c = np.zeros(spec.hidden, np.float32)
            zz = z if d else None
            point = np.asarray(spec.start_point, np.float32)
            if plan.prefix is not None:
                prefix5, k = to_stroke5(plan.prefix, len(plan.prefix), spec.scale)
                for row in prefix5[:k]:
                    _, h, c = await self.batcher.step(model, point, zz, h, c)
                    point = row
            rows: list[tuple[float, float, int]] = []
            ended = False
            for _ in range(plan.max_steps):
                out, h, c = await self.batcher.step(model, point, zz, h, c)
                dx, dy, pen = sample_point(out, plan.temperature, rng)
                if pen == PEN_END:
                    ended = True
                    break
                rows.append((dx * spec.scale, dy * spec.scale, pen))
                await queue.put(DrawEvent(index, rows[-1][0], rows[-1][1], pen))
                point = stroke5_row(dx, dy, pen)
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

    async def _encoder(self, model: OnnxModel, drawings: list[np.ndarray]) -> dict[str, np.ndarray]:
        """The encode_strokes graph on checked drawings (each (K, 3) in data units): mu [and logvar]."""
        spec = model.manifest.strokes
        assert spec is not None
        packed = [to_stroke5(rows, spec.max_steps, spec.scale) for rows in drawings]
        feeds = {"strokes": np.stack([p[0] for p in packed]), "lengths": np.array([p[1] for p in packed], np.int64)}
        return await asyncio.get_running_loop().run_in_executor(
            self.executor, model.run, model.graph_for("encode_strokes"), feeds)

    async def encode(self, model: OnnxModel, drawings: list[np.ndarray]) -> tuple[list[SampleRecord], bool]:
        """Checked drawings -> their encoder means, stored as samples."""
        mus = (await self._encoder(model, drawings))["mu"]
        records = [SampleRecord(new_sample_id(), model.name, model.version, mu.astype(np.float32), "encode")
                   for mu in mus]
        return records, await self._store(records)

    async def posterior(self, model: OnnxModel, rows: np.ndarray, seeds: list[int]) -> np.ndarray:
        """Latents of a partial drawing: its encoder's mean plus sigma times the noise of each seed."""
        out = await self._encoder(model, [rows])
        mu, logvar = out["mu"][0].astype(np.float64), out.get("logvar")
        sigma = np.exp(0.5 * logvar[0].astype(np.float64)) if logvar is not None else np.zeros_like(mu)
        eps = np.stack([latents.latent_from_seed(s, len(mu)) for s in seeds]).astype(np.float64)
        return (mu[None] + sigma[None] * eps).astype(np.float32)

    async def frames(self, model: OnnxModel, z: np.ndarray, seed: int,
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

