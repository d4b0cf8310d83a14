"""The GenerationService RPCs: validate the request, run the model, render, store, answer.

Every RPC goes through ``_unary``/``_stream``, which set the request id, time the call, record
metrics, write one log line, and turn errors into gRPC statuses (``services.errors``) -
unexpected ones into INTERNAL with no details, so a client never sees a stack trace.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import itertools
import math
import random
import secrets
import time
from concurrent.futures import Executor
from typing import Any, AsyncIterator, Awaitable, Callable, Sequence

import grpc
import numpy as np

from latentforge.v1 import generation_pb2 as pb
from latentforge.v1 import generation_pb2_grpc as pb_grpc
from latentforge import images as imaging
from services import latents
from services.cache import (SAMPLE_ID_PATTERN, CacheUnavailable, SampleCache, SampleRecord, new_sample_id,
                            render_key)
from services.config import ServeConfig
from services.errors import FailedPrecondition, InvalidArgument, NotFound, ServiceError, Unavailable
from services.inference import Finish, InferenceRunner, OnnxModel
from services.logging_setup import event, get_logger, request_id_var
from services.metrics import Metrics
from services.model_repository import ModelRepository

log = get_logger("servicer")

REQUEST_ID_HEADER = "x-request-id"
SAMPLES_STORED_HEADER = "x-samples-stored"
DRAINING_MESSAGE = "the server is shutting down; retry on another replica"
MAX_STRENGTH = 10.0
_current_call: contextvars.ContextVar["_Call | None"] = contextvars.ContextVar("current_call", default=None)

_KINDS = {"gan": pb.MODEL_KIND_GAN, "vae": pb.MODEL_KIND_VAE}
_ORIGINS = {
    "generate": pb.SAMPLE_ORIGIN_GENERATE,
    "interpolate": pb.SAMPLE_ORIGIN_INTERPOLATE,
    "encode": pb.SAMPLE_ORIGIN_ENCODE,
    "variation": pb.SAMPLE_ORIGIN_VARIATION,
}


def _note(**fields: Any) -> None:
    """Add bounded, id-free facts about this request to its log line."""
    call = _current_call.get()
    if call is not None:
        call.fields.update(fields)


def _add_trailer(key: str, value: str) -> None:
    """Send a trailing metadata entry with the current RPC's status."""
    call = _current_call.get()
    if call is not None:
        call.extra_trailers.append((key, value))


# Server-made request ids: a random per-process prefix and a counter - unique without a system
# call per request.
_ID_PREFIX = secrets.token_hex(8)
_id_counter = itertools.count(1)


def _request_id(context: grpc.aio.ServicerContext) -> str:
    for key, value in context.invocation_metadata() or ():
        if key == REQUEST_ID_HEADER and isinstance(value, str) and SAMPLE_ID_PATTERN.match(value):
            return value
    return f"{_ID_PREFIX}{next(_id_counter):08x}"


# Seeds the server picks need to be unpredictable enough to differ, not secret: a generator
# seeded once from the OS avoids a system call per request.
_seed_source = random.Random(secrets.randbits(128))


def _random_seed() -> int:
    return _seed_source.getrandbits(64)


def _deadline(context: grpc.aio.ServicerContext) -> float | None:
    """The call's deadline in ``loop.time()`` seconds, or None when the client set none."""
    remaining = context.time_remaining()
    return None if remaining is None else asyncio.get_running_loop().time() + remaining


# Outcomes not logged when the per-RPC access log is off: success and the client's own limits.
_QUIET_CODES = frozenset({grpc.StatusCode.OK, grpc.StatusCode.RESOURCE_EXHAUSTED, grpc.StatusCode.CANCELLED,
                          grpc.StatusCode.DEADLINE_EXCEEDED})


class _Call:
    """Bookkeeping of one RPC: request id, timing, outcome."""

    def __init__(self, servicer: "GenerationServicer", method: str, context: grpc.aio.ServicerContext) -> None:
        self.servicer, self.method, self.context = servicer, method, context
        self.request_id = _request_id(context)
        self.code = grpc.StatusCode.OK
        self.message = ""
        self.fields: dict[str, Any] = {}
        self.extra_trailers: list[tuple[str, str]] = []

    def __enter__(self) -> "_Call":
        self._tokens = (request_id_var.set(self.request_id), _current_call.set(self))
        self.start = time.perf_counter()
        self.servicer._inflight(self.method).inc()
        self.servicer._active += 1
        return self

    def fail(self, exc: BaseException) -> None:
        """Record the status an exception maps to."""
        if isinstance(exc, ServiceError):
            self.code, self.message = exc.code, exc.message
        elif isinstance(exc, (asyncio.CancelledError, GeneratorExit)):
            self.code, self.message = grpc.StatusCode.CANCELLED, "cancelled"
        else:
            self.code = grpc.StatusCode.INTERNAL
            self.message = f"internal error; the server logged it under request id {self.request_id}"
            log.error("rpc_internal_error", exc_info=exc, extra={"fields": {"method": self.method}})

    def __exit__(self, *exc_info: Any) -> None:
        seconds = time.perf_counter() - self.start
        servicer = self.servicer
        servicer._inflight(self.method).dec()
        servicer._active -= 1
        if servicer._active == 0 and servicer._idle is not None:
            servicer._idle.set()
        code = self.code.name
        requests, duration = servicer._outcome(self.method, code)
        requests.inc()
        duration.observe(seconds)
        if servicer.config.access_log or self.code not in _QUIET_CODES:
            fields = {"method": self.method, "code": code, "duration_ms": round(seconds * 1000, 3), **self.fields}
            if self.message and self.code != grpc.StatusCode.INTERNAL:
                fields["message"] = self.message
            event(log, "rpc", **fields)
        request_id_var.reset(self._tokens[0])
        _current_call.reset(self._tokens[1])

    @property
    def trailers(self) -> tuple[tuple[str, str], ...]:
        return ((REQUEST_ID_HEADER, self.request_id), *self.extra_trailers)


def _unary(method: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
    name = method.__name__

    @functools.wraps(method)
    async def wrapper(self: "GenerationServicer", request: Any, context: grpc.aio.ServicerContext) -> Any:
        with _Call(self, name, context) as call:
            try:
                if self.draining:
                    raise Unavailable(DRAINING_MESSAGE)
                response = await method(self, request, context)
                context.set_trailing_metadata(call.trailers)
                return response
            except BaseException as exc:  # noqa: BLE001 - mapped to a status below
                call.fail(exc)
                if isinstance(exc, asyncio.CancelledError):
                    raise
        await context.abort(call.code, call.message, trailing_metadata=call.trailers)

    return wrapper


def _stream(method: Callable[..., AsyncIterator[Any]]) -> Callable[..., AsyncIterator[Any]]:
    name = method.__name__

    @functools.wraps(method)
    async def wrapper(self: "GenerationServicer", request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
        with _Call(self, name, context) as call:
            try:
                if self.draining:
                    raise Unavailable(DRAINING_MESSAGE)
                async for item in method(self, request, context):
                    yield item
                context.set_trailing_metadata(call.trailers)
                return
            except BaseException as exc:  # noqa: BLE001
                call.fail(exc)
                if isinstance(exc, (asyncio.CancelledError, GeneratorExit)):
                    raise
        await context.abort(call.code, call.message, trailing_metadata=call.trailers)

    return wrapper


class GenerationServicer(pb_grpc.GenerationServiceServicer):
    """Implements latentforge.v1.GenerationService on a model repository, runner and cache."""

    def __init__(self, config: ServeConfig, repository: ModelRepository, runner: InferenceRunner,
                 cache: SampleCache, metrics: Metrics, executor: Executor) -> None:
        self.config = config
        self.repository = repository
        self.runner = runner
        self.cache = cache
        self.metrics = metrics
        self.executor = executor
        # Labelled metric children, looked up once: .labels() takes a lock and builds a key.
        self._inflight_children: dict[str, Any] = {}
        self._outcome_children: dict[tuple[str, str], tuple[Any, Any]] = {}
        self._sample_children: dict[tuple[str, int, str], Any] = {}
        # Shutdown: once draining, new calls are refused with UNAVAILABLE while those in flight
        # (counted in _active) finish; _idle is set when the last one does.
        self.draining = False
        self._active = 0
        self._idle: asyncio.Event | None = None

    @property
    def in_flight(self) -> int:
        """RPCs being served now."""
        return self._active

    def start_draining(self) -> None:
        """Refuse new calls (UNAVAILABLE, retry elsewhere); calls in flight go on."""
        self.draining = True

    async def wait_idle(self, timeout_s: float) -> bool:
        """Wait until no RPC is in flight (True) or ``timeout_s`` has passed (False)."""
        if self._active == 0:
            return True
        self._idle = asyncio.Event()
        try:
            await asyncio.wait_for(self._idle.wait(), max(0.0, timeout_s))
            return True
        except asyncio.TimeoutError:
            return self._active == 0

    def _inflight(self, method: str) -> Any:
        child = self._inflight_children.get(method)
        if child is None:
            child = self._inflight_children[method] = self.metrics.inflight.labels(method)
        return child

    def _outcome(self, method: str, code: str) -> tuple[Any, Any]:
        pair = self._outcome_children.get((method, code))
        if pair is None:
            pair = self._outcome_children[(method, code)] = (
                self.metrics.requests.labels(method, code), self.metrics.request_duration.labels(method, code))
        return pair

    def _count_samples(self, model: OnnxModel, method: str, n: int) -> None:
        key = (model.name, model.version, method)
        child = self._sample_children.get(key)
        if child is None:
            child = self._sample_children[key] = self.metrics.samples.labels(model.name, str(model.version), method)
        child.inc(n)

    # ---- RPCs -------------------------------------------------------------------------------

    @_unary
    async def ListModels(self, request: pb.ListModelsRequest, context: grpc.aio.ServicerContext) -> pb.ListModelsResponse:
        models = [m for m in self.repository.all() if not request.name or m.name == request.name]
        if request.name and not models:
            raise NotFound(f"unknown model {request.name!r}; call ListModels with no name to see all models")
        return pb.ListModelsResponse(models=[self._model_info(m) for m in models], max_count=self.config.max_count)

    @_unary
    async def Generate(self, request: pb.GenerateRequest, context: grpc.aio.ServicerContext) -> pb.GenerateResponse:
        model, count, base_seed, psi, fmt = self._generate_args(request, "Generate")
        samples, stored = await self._generate_chunk(model, request, base_seed, 0, count, psi, fmt, "Generate",
                                                     _deadline(context))
        return pb.GenerateResponse(model=model.name, version=model.version, seed=base_seed,
                                   samples=samples, samples_stored=stored)

    @_stream
    async def GenerateStream(self, request: pb.GenerateRequest, context: grpc.aio.ServicerContext) -> AsyncIterator[pb.Sample]:
        model, count, base_seed, psi, fmt = self._generate_args(request, "GenerateStream")
        all_stored = True
        for start in range(0, count, self.config.stream_chunk):
            n = min(self.config.stream_chunk, count - start)
            samples, stored = await self._generate_chunk(model, request, base_seed, start, n, psi, fmt,
                                                         "GenerateStream", _deadline(context))
            all_stored &= stored
            for sample in samples:
                yield sample
        _add_trailer(SAMPLES_STORED_HEADER, "true" if all_stored else "false")

    @_unary
    async def Interpolate(self, request: pb.InterpolateRequest, context: grpc.aio.ServicerContext) -> pb.InterpolateResponse:
        model = self._resolve(request.model, request)
        model.require("Interpolate")
        steps = self._check_count(request.steps, "steps", minimum=2)
        psi = self._truncation(request)
        fmt = self._format(request.format)
        a, label_a = await self._endpoint(model, request.start, psi, "start")
        b, _ = await self._endpoint(model, request.end, psi, "end")
        if request.method == pb.INTERPOLATION_METHOD_SLERP:
            z = latents.slerp(a, b, steps)
        elif request.method in (pb.INTERPOLATION_METHOD_LERP, pb.INTERPOLATION_METHOD_UNSPECIFIED):
            z = latents.lerp(a, b, steps)
        else:
            raise InvalidArgument(f"unknown interpolation method {request.method}; use LERP or SLERP")
        label = self._check_label(model, request.label if request.HasField("label") else None)
        if label is None and model.manifest.num_classes:
            label = label_a if label_a is not None else 0
        labels = None if label is None else np.full(steps, label, dtype=np.int64)
        _note(model=model.name, version=model.version, steps=steps)
        rendered = await self._render(model, z, labels, fmt, _deadline(context))
        records = [SampleRecord(new_sample_id(), model.name, model.version, z[k], "interpolate", label=label)
                   for k in range(steps)]
        stored = await self._store(records)
        self._count_samples(model, "Interpolate", steps)
        frames = [self._sample(r, k, rendered[k], request.return_latents) for k, r in enumerate(records)]
        return pb.InterpolateResponse(model=model.name, version=model.version, frames=frames, samples_stored=stored)

    @_unary
    async def Encode(self, request: pb.EncodeRequest, context: grpc.aio.ServicerContext) -> pb.EncodeResponse:
        model = self._resolve(request.model, request)
        self._require_encoder(model, "Encode")
        batch = await self._input_images(model, request.images)
        mu, _ = await self.runner.encode(model, batch, _deadline(context))
        records = [SampleRecord(new_sample_id(), model.name, model.version, mu[k].astype(np.float32), "encode")
                   for k in range(len(mu))]
        stored = await self._store(records)
        samples = [pb.Sample(sample_id=r.sample_id, latent=r.latent.tolist(), index=k) for k, r in enumerate(records)]
        return pb.EncodeResponse(model=model.name, version=model.version, samples=samples, samples_stored=stored)

    @_unary
    async def Reconstruct(self, request: pb.ReconstructRequest, context: grpc.aio.ServicerContext) -> pb.ReconstructResponse:
        model = self._resolve(request.model, request)
        self._require_encoder(model, "Reconstruct")
        fmt = self._format(request.format)
        batch = await self._input_images(model, request.images)
        deadline = _deadline(context)
        mu, _ = await self.runner.encode(model, batch, deadline)
        rendered = await self._render(model, mu, None, fmt, deadline)
        self._count_samples(model, "Reconstruct", len(rendered))
        return pb.ReconstructResponse(model=model.name, version=model.version, images=rendered)

    @_unary
    async def Variations(self, request: pb.VariationsRequest, context: grpc.aio.ServicerContext) -> pb.VariationsResponse:
        parent = await self._record(request.sample_id)
        try:
            model = self.repository.resolve(parent.model, parent.version)
        except NotFound:
            raise NotFound(f"sample {parent.sample_id!r} was made by {parent.model} v{parent.version}, "
                           "which is no longer loaded") from None
        model.require("Variations")
        count = self._check_count(request.count, "count")
        strength = float(request.strength)
        if not math.isfinite(strength) or not 0.0 <= strength <= MAX_STRENGTH:
            raise InvalidArgument(f"strength must be finite and in [0, {MAX_STRENGTH}], got {request.strength}")
        fmt = self._format(request.format)
        base_seed = request.seed if request.HasField("seed") else _random_seed()
        seeds, z = latents.variations(parent.latent, base_seed, count, strength)
        labels = None if parent.label is None else np.full(count, parent.label, dtype=np.int64)
        _note(model=model.name, version=model.version, count=count)
        rendered = await self._render(model, z, labels, fmt, _deadline(context))
        records = [SampleRecord(new_sample_id(), model.name, model.version, z[k], "variation", seed=seeds[k],
                                label=parent.label, parent_id=parent.sample_id) for k in range(count)]
        stored = await self._store(records)
        self._count_samples(model, "Variations", count)
        samples = [self._sample(r, k, rendered[k], request.return_latents) for k, r in enumerate(records)]
        return pb.VariationsResponse(model=model.name, version=model.version, seed=base_seed,
                                     samples=samples, samples_stored=stored)

    @_unary
    async def GetSample(self, request: pb.GetSampleRequest, context: grpc.aio.ServicerContext) -> pb.GetSampleResponse:
        r = await self._record(request.sample_id)
        response = pb.GetSampleResponse(
            sample_id=r.sample_id, model=r.model, version=r.version, latent=r.latent.tolist(),
            origin=_ORIGINS.get(r.origin, pb.SAMPLE_ORIGIN_UNSPECIFIED), parent_sample_id=r.parent_id or "",
            created_unix_s=r.created,
        )
        if r.seed is not None:
            response.seed = r.seed
        if r.label is not None:
            response.label = r.label
        if r.truncation is not None:
            response.truncation = r.truncation
        return response

    # ---- request checks ---------------------------------------------------------------------

    def _resolve(self, name: str, request: Any) -> OnnxModel:
        version = None
        if request.HasField("version"):
            if request.version < 0:
                raise InvalidArgument(f"version must be >= 1 (or 0/absent for the newest), got {request.version}")
            version = request.version or None
        model = self.repository.resolve(name, version)
        _note(model=model.name, version=model.version)
        return model

    def _check_count(self, value: int, what: str, minimum: int = 1) -> int:
        if not minimum <= value <= self.config.max_count:
            raise InvalidArgument(f"{what} must be between {minimum} and {self.config.max_count}, got {value}")
        return int(value)

    @staticmethod
    def _truncation(request: Any) -> float | None:
        if not request.HasField("truncation"):
            return None
        psi = float(request.truncation)
        if not math.isfinite(psi) or psi < latents.MIN_TRUNCATION:
            raise InvalidArgument(f"truncation must be finite and >= {latents.MIN_TRUNCATION} (or absent), got {psi}")
        return psi

    @staticmethod
    def _check_label(model: OnnxModel, label: int | None) -> int | None:
        n = model.manifest.num_classes
        if label is None:
            return None
        if n == 0:
            raise InvalidArgument(f"model {model.name} is unconditional (num_classes=0); leave label unset")
        if not 0 <= label < n:
            raise InvalidArgument(f"label must be in 0..{n - 1} for model {model.name}, got {label}")
        return int(label)

    @staticmethod
    def _format(value: int) -> int:
        if value in (pb.OUTPUT_FORMAT_UNSPECIFIED, pb.OUTPUT_FORMAT_PNG):
            return pb.OUTPUT_FORMAT_PNG
        if value == pb.OUTPUT_FORMAT_TENSOR:
            return pb.OUTPUT_FORMAT_TENSOR
        raise InvalidArgument(f"unknown output format {value}; use OUTPUT_FORMAT_PNG or OUTPUT_FORMAT_TENSOR")

    @staticmethod
    def _require_encoder(model: OnnxModel, method: str) -> None:
        if not model.can_encode:
            raise InvalidArgument(
                f"{method} needs a VAE with an encoder; model {model.name} is a {model.manifest.kind.upper()}"
            )

    def _generate_args(self, request: pb.GenerateRequest,
                       method: str) -> tuple[OnnxModel, int, int, float | None, int]:
        model = self._resolve(request.model, request)
        model.require(method)
        count = self._check_count(request.count, "count")
        psi = self._truncation(request)
        self._check_label(model, request.label if request.HasField("label") else None)
        fmt = self._format(request.format)
        base_seed = request.seed if request.HasField("seed") else _random_seed()
        _note(count=count)
        return model, count, base_seed, psi, fmt

    # ---- building blocks --------------------------------------------------------------------

    async def _generate_chunk(self, model: OnnxModel, request: pb.GenerateRequest, base_seed: int, start: int,
                              n: int, psi: float | None, fmt: int, method: str,
                              deadline: float | None) -> tuple[list[pb.Sample], bool]:
        """Samples start..start+n-1 of a Generate request: latents, images, records.

        When the client named the seed, rendered outputs are looked up in the cache first and
        only the missing rows run through the model; a random seed never repeats, so those
        requests skip the lookup.
        """
        dim = model.manifest.latent_dim
        # Samples start.. of the request: seed (base + start + i) mod 2^64, as latents_from_seeds counts from 0.
        seeds, z = latents.latents_from_seeds(latents.sample_seed(base_seed, start), n, dim, psi)
        num_classes = model.manifest.num_classes
        if request.HasField("label"):
            label_list: list[int | None] = [request.label] * n
        elif num_classes:
            label_list = [s % num_classes for s in seeds]
        else:
            label_list = [None] * n
        labels = np.array(label_list, dtype=np.int64) if num_classes else None
        if self.config.render_cache and request.HasField("seed"):
            rendered = await self._render_cached(model, z, labels, label_list, fmt, deadline)
        else:
            rendered = await self._render(model, z, labels, fmt, deadline)
        records = [SampleRecord(new_sample_id(), model.name, model.version, z[i], "generate", seed=seeds[i],
                                label=label_list[i], truncation=psi) for i in range(n)]
        stored = await self._store(records)
        self._count_samples(model, method, n)
        return [self._sample(r, start + i, rendered[i], request.return_latents) for i, r in enumerate(records)], stored

    def _finisher(self, model: OnnxModel, fmt: int) -> Finish:
        """What turns a request's output rows into response payloads, on the worker thread."""
        if fmt == pb.OUTPUT_FORMAT_TENSOR:
            return lambda images: [np.ascontiguousarray(img, dtype="<f4").tobytes() for img in images]
        vr, level = model.value_range, self.config.png_compress_level
        return lambda images: imaging.encode_pngs(images, vr, level)

    def _image(self, model: OnnxModel, fmt: int, payload: bytes) -> pb.Image:
        if fmt == pb.OUTPUT_FORMAT_TENSOR:
            return pb.Image(tensor=pb.Tensor(dtype="float32", shape=model.image_shape, data=payload))
        return pb.Image(png=payload)

    async def _render(self, model: OnnxModel, z: np.ndarray, labels: np.ndarray | None, fmt: int,
                      deadline: float | None) -> list[pb.Image]:
        """Latents to images as proto messages; decoding and encoding run on a worker thread."""
        payloads = await self.runner.decode(model, z, labels, self._finisher(model, fmt), deadline)
        return [self._image(model, fmt, p) for p in payloads]

    async def _render_cached(self, model: OnnxModel, z: np.ndarray, labels: np.ndarray | None,
                             label_list: Sequence[int | None], fmt: int, deadline: float | None) -> list[pb.Image]:
        """``_render`` through the rendered-output cache: only the rows not cached run."""
        output = "f32" if fmt == pb.OUTPUT_FORMAT_TENSOR else f"png{self.config.png_compress_level}"
        keys = [render_key(model.name, model.version, z[i], label_list[i], output) for i in range(len(z))]
        payloads = await self.cache.get_rendered(keys)
        missing = [i for i, p in enumerate(payloads) if p is None]
        if missing:
            rows = np.asarray(missing)
            fresh = await self.runner.decode(model, z[rows], None if labels is None else labels[rows],
                                             self._finisher(model, fmt), deadline)
            for i, p in zip(missing, fresh):
                payloads[i] = p
            await self.cache.put_rendered({keys[i]: p for i, p in zip(missing, fresh)})
        return [self._image(model, fmt, p) for p in payloads]  # type: ignore[arg-type]

    async def _input_images(self, model: OnnxModel, items: Sequence[pb.Image]) -> np.ndarray:
        """Request images as one float32 (N, C, H, W) batch; INVALID_ARGUMENT naming the bad one."""
        self._check_count(len(items), "number of images")
        shape = model.image_shape
        vr = model.value_range

        def convert() -> np.ndarray:
            out = np.empty((len(items), *shape), dtype=np.float32)
            for k, item in enumerate(items):
                kind = item.WhichOneof("data")
                try:
                    if kind == "png":
                        out[k] = imaging.decode_png(item.png, shape, vr)
                    elif kind == "tensor":
                        out[k] = _tensor_image(item.tensor, shape)
                    else:
                        raise imaging.ImageError("image is empty; set png or tensor")
                except imaging.ImageError as exc:
                    raise InvalidArgument(f"images[{k}]: {exc}") from None
            return out

        _note(images=len(items))
        return await asyncio.get_running_loop().run_in_executor(self.executor, convert)

    async def _endpoint(self, model: OnnxModel, ep: pb.Endpoint, psi: float | None, which: str) -> tuple[np.ndarray, int | None]:
        """An interpolation end as a latent (and the stored label, for sample ids)."""
        dim = model.manifest.latent_dim
        kind = ep.WhichOneof("source")
        if kind == "sample_id":
            record = await self._record(ep.sample_id)
            if record.latent.size != dim:
                raise InvalidArgument(
                    f"{which} sample {ep.sample_id!r} has a latent of {record.latent.size} values "
                    f"(model {record.model}); model {model.name} needs {dim}")
            return record.latent, record.label
        if kind == "seed":
            if not model.has_task("sample"):
                raise FailedPrecondition(f"{which}: model {model.name} has no prior, so a seed names no latent; "
                                         "use a sample id (e.g. from Encode) or a latent")
            return latents.latent_from_seed(ep.seed, dim, psi), None
        if kind == "latent":
            try:
                return latents.check_latent(np.asarray(ep.latent.values, dtype=np.float32), dim), None
            except ValueError as exc:
                raise InvalidArgument(f"{which}: {exc}") from None
        raise InvalidArgument(f"{which} endpoint is missing; set its sample_id, seed or latent")

    async def _record(self, sample_id: str) -> SampleRecord:
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

    async def _store(self, records: list[SampleRecord]) -> bool:
        """Store records; a cache failure is counted and logged (by the cache), never raised."""
        try:
            await self.cache.put_many(records)
            return True
        except CacheUnavailable:
            return False

    @staticmethod
    def _sample(record: SampleRecord, index: int, image: pb.Image, with_latent: bool) -> pb.Sample:
        sample = pb.Sample(sample_id=record.sample_id, image=image, index=index)
        if record.seed is not None:
            sample.seed = record.seed
        if record.label is not None:
            sample.label = record.label
        if with_latent:
            sample.latent.extend(record.latent.tolist())
        return sample

    def _model_info(self, m: OnnxModel) -> pb.ModelInfo:
        man = m.manifest
        out = man.output
        return pb.ModelInfo(
            name=m.name, version=m.version, latest=self.repository.latest_version(m.name) == m.version,
            kind=_KINDS.get(man.kind, pb.MODEL_KIND_UNSPECIFIED), latent_dim=man.latent_dim,
            num_classes=man.num_classes,
            output=pb.OutputSpec(channels=out.channels, height=out.height, width=out.width,
                                 value_min=out.value_range[0], value_max=out.value_range[1],
                                 layout=out.layout, dtype=out.dtype),
            supported_methods=m.supported_methods(), execution_provider=m.provider,
            opset=man.opset, created=man.created,
        )


def _tensor_image(t: pb.Tensor, shape: tuple[int, int, int]) -> np.ndarray:
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
