"""The GenerationService RPCs: proto messages to typed requests for the generation pipeline,
and its results back to proto messages. Nothing else happens here.

Every RPC goes through ``services.rpc.calls`` (``@unary`` / ``@stream``), which sets the request
id, times the call, records metrics, writes one log line, and turns errors into statuses.
"""

from __future__ import annotations

import secrets
from typing import Any, AsyncIterator

import grpc
import numpy as np

from latentforge.manifest import Quality
from latentforge.strokes import PEN_DOWN, PEN_UP
from latentforge.v1 import generation_pb2 as pb
from latentforge.v1 import generation_pb2_grpc as pb_grpc
from services.generation.cache import SampleRecord
from services.errors import InvalidArgument
from services.generation.pipeline import GenerationPipeline
from services.generation.requests import (
    CompleteRequest,
    EncodeRequest,
    Endpoint,
    GenerateRequest,
    HolesInput,
    ImageInput,
    InterpolateRequest,
    MaskInput,
    ModelListing,
    OutputFormat,
    Samples,
    TensorInput,
    VariationsRequest,
)
from services.generation.session import Sessions
from services.generation.strokes import DrawPlan
from services.generation.inference import OnnxModel
from services.rpc.calls import CallTracker, add_trailer, deadline, stream, unary

SAMPLES_STORED_HEADER = "x-samples-stored"

_KINDS = {"gan": pb.MODEL_KIND_GAN, "vae": pb.MODEL_KIND_VAE, "ae": pb.MODEL_KIND_AE,
          "completion": pb.MODEL_KIND_COMPLETION, "stroke_vae": pb.MODEL_KIND_STROKE_VAE}
_ORIGINS = {
    "generate": pb.SAMPLE_ORIGIN_GENERATE,
    "interpolate": pb.SAMPLE_ORIGIN_INTERPOLATE,
    "encode": pb.SAMPLE_ORIGIN_ENCODE,
    "variation": pb.SAMPLE_ORIGIN_VARIATION,
    "complete": pb.SAMPLE_ORIGIN_COMPLETE,
    "draw": pb.SAMPLE_ORIGIN_DRAW,
    "continue": pb.SAMPLE_ORIGIN_CONTINUE,
}
# Proto pen states -> latentforge.strokes' (PEN_STATE_UNSPECIFIED reads as down), and back.
_PENS_IN = {pb.PEN_STATE_UNSPECIFIED: PEN_DOWN, pb.PEN_STATE_DOWN: PEN_DOWN, pb.PEN_STATE_UP: PEN_UP}
_PENS_OUT = {PEN_DOWN: pb.PEN_STATE_DOWN, PEN_UP: pb.PEN_STATE_UP}
_METHODS = {"model": pb.COMPLETION_METHOD_MODEL, "iterative": pb.COMPLETION_METHOD_ITERATIVE}
_OUTPUTS = {pb.OUTPUT_FORMAT_UNSPECIFIED: OutputFormat.PNG, pb.OUTPUT_FORMAT_PNG: OutputFormat.PNG,
            pb.OUTPUT_FORMAT_TENSOR: OutputFormat.TENSOR}


class GenerationServicer(pb_grpc.GenerationServiceServicer):
    """Implements latentforge.v1.GenerationService on a generation pipeline."""

    def __init__(self, pipeline: GenerationPipeline, calls: CallTracker) -> None:
        self.pipeline = pipeline
        self.calls = calls  # the server's call tracker, which @unary/@stream use
        self.sessions = Sessions(calls, pipeline.config.session_max_in_flight)  # open Session streams

    @unary
    async def ListModels(self, request: pb.ListModelsRequest, context: grpc.aio.ServicerContext) -> pb.ListModelsResponse:
        listings = self.pipeline.models(request.name)
        return pb.ListModelsResponse(models=[_model_info(entry) for entry in listings],
                                     max_count=self.pipeline.max_count,
                                     max_stream_count=self.pipeline.config.max_stream_count)

    @unary
    async def Generate(self, request: pb.GenerateRequest, context: grpc.aio.ServicerContext) -> pb.GenerateResponse:
        plan = self.pipeline.plan_generate(_generate_request(request))
        made = await self.pipeline.generate(plan, 0, plan.count, deadline(context))
        response = pb.GenerateResponse(model=plan.model.name, version=plan.model.version, seed=plan.seed,
                                       samples_stored=made.stored)
        _add_samples(response.samples, made, plan.output, 0, request.return_latents)
        return response

    @stream
    async def GenerateStream(self, request: pb.GenerateRequest,
                             context: grpc.aio.ServicerContext) -> AsyncIterator[pb.Sample]:
        # Flow control: grpc.aio's yield returns once the message was taken by the HTTP/2
        # transport, which takes no more than the client's receive window allows; the next
        # chunk is rendered only after every sample of the last one was taken. So the server is
        # at most one chunk plus that window ahead of what the client has read, and a cancelled
        # call (CancelledError at either await) stops between chunks, its queued batch dropped.
        pipeline = self.pipeline
        limit = pipeline.config.max_stream_count
        if request.count > limit:
            raise InvalidArgument(
                f"count must be between 1 and {limit} for GenerateStream, got {request.count}; ask for the "
                f"rest in another stream with seed + {limit} (sample k of seed s is sample 0 of seed s + k)")
        plan = pipeline.plan_generate(_generate_request(request), "GenerateStream", max_count=limit)
        chunk, until = pipeline.config.stream_chunk, deadline(context)
        all_stored = True
        for start in range(0, plan.count, chunk):
            made = await pipeline.generate(plan, start, min(chunk, plan.count - start), until, "GenerateStream")
            all_stored &= made.stored
            shape = plan.model.image_shape if plan.output is OutputFormat.TENSOR else None
            assert made.payloads is not None
            for i, record in enumerate(made.records):
                yield _fill_sample(pb.Sample(), record, start + i, made.payloads[i], shape, request.return_latents)
        add_trailer(SAMPLES_STORED_HEADER, "true" if all_stored else "false")

    @stream
    async def Session(self, requests: AsyncIterator[pb.SessionRequest],
                      context: grpc.aio.ServicerContext) -> AsyncIterator[pb.SessionResponse]:
        """Many requests on one stream, answered by id as they complete (``services.generation.session``)."""
        pipeline = self.pipeline

        async def generate(request: pb.GenerateRequest, until: float | None) -> pb.SessionResponse:
            plan = pipeline.plan_generate(_generate_request(request))
            made = await pipeline.generate(plan, 0, plan.count, until, "Session.Generate")
            response = pb.SessionResponse(generate=pb.GenerateResponse(
                model=plan.model.name, version=plan.model.version, seed=plan.seed, samples_stored=made.stored))
            _add_samples(response.generate.samples, made, plan.output, 0, request.return_latents)
            return response

        async def variations(request: pb.VariationsRequest, until: float | None) -> pb.SessionResponse:
            output = _output(request.format)
            made = await pipeline.variations(VariationsRequest(
                sample_id=request.sample_id, count=request.count, strength=request.strength,
                seed=_optional(request, "seed"), output=output), until)
            response = pb.SessionResponse(variations=pb.VariationsResponse(
                model=made.model.name, version=made.model.version, seed=made.seed, samples_stored=made.stored))
            _add_samples(response.variations.samples, made, output, 0, request.return_latents)
            return response

        handlers = {"generate": ("Session.Generate", generate), "variations": ("Session.Variations", variations)}
        async for response in self.sessions.serve(requests, context, handlers):
            yield response

    @unary
    async def Interpolate(self, request: pb.InterpolateRequest,
                          context: grpc.aio.ServicerContext) -> pb.InterpolateResponse:
        if request.method not in (pb.INTERPOLATION_METHOD_LERP, pb.INTERPOLATION_METHOD_SLERP,
                                  pb.INTERPOLATION_METHOD_UNSPECIFIED):
            raise InvalidArgument(f"unknown interpolation method {request.method}; use LERP or SLERP")
        output = _output(request.format)
        made = await self.pipeline.interpolate(InterpolateRequest(
            model=request.model, version=_optional(request, "version"), start=_endpoint(request.start),
            end=_endpoint(request.end), steps=request.steps, slerp=request.method == pb.INTERPOLATION_METHOD_SLERP,
            truncation=_optional(request, "truncation"), label=_optional(request, "label"), output=output,
            seed=_optional(request, "seed"), temperature=_optional(request, "temperature")),
            deadline(context))
        response = pb.InterpolateResponse(model=made.model.name, version=made.model.version,
                                          samples_stored=made.stored)
        _add_samples(response.frames, made, output, 0, request.return_latents)
        for frame, rows in zip(response.frames, made.drawings or ()):
            frame.strokes.CopyFrom(_drawing(rows))
        return response

    @unary
    async def Encode(self, request: pb.EncodeRequest, context: grpc.aio.ServicerContext) -> pb.EncodeResponse:
        made = await self.pipeline.encode(EncodeRequest(
            model=request.model, version=_optional(request, "version"), images=_images(request.images)),
            deadline(context))
        samples = [pb.Sample(sample_id=r.sample_id, latent=r.latent.tolist(), index=k)
                   for k, r in enumerate(made.records)]
        return pb.EncodeResponse(model=made.model.name, version=made.model.version, samples=samples,
                                 samples_stored=made.stored)

    @unary
    async def Reconstruct(self, request: pb.ReconstructRequest,
                          context: grpc.aio.ServicerContext) -> pb.ReconstructResponse:
        output = _output(request.format)
        made = await self.pipeline.reconstruct(EncodeRequest(
            model=request.model, version=_optional(request, "version"), images=_images(request.images),
            output=output), deadline(context))
        return pb.ReconstructResponse(model=made.model.name, version=made.model.version,
                                      images=[_image(made.model, output, p) for p in made.payloads])

    @unary
    async def Variations(self, request: pb.VariationsRequest,
                         context: grpc.aio.ServicerContext) -> pb.VariationsResponse:
        output = _output(request.format)
        made = await self.pipeline.variations(VariationsRequest(
            sample_id=request.sample_id, count=request.count, strength=request.strength,
            seed=_optional(request, "seed"), output=output), deadline(context))
        response = pb.VariationsResponse(model=made.model.name, version=made.model.version, seed=made.seed,
                                         samples_stored=made.stored)
        _add_samples(response.samples, made, output, 0, request.return_latents)
        return response

    @unary
    async def Complete(self, request: pb.CompleteRequest, context: grpc.aio.ServicerContext) -> pb.CompleteResponse:
        output = _output(request.format)
        image = _images([request.image])[0] if request.HasField("image") else None
        made = await self.pipeline.complete(CompleteRequest(
            model=request.model, version=_optional(request, "version"), image=image, mask=_mask(request),
            count=request.count, seed=_optional(request, "seed"), iterations=request.iterations,
            label=_optional(request, "label"), output=output), deadline(context))
        response = pb.CompleteResponse(model=made.model.name, version=made.model.version, seed=made.seed,
                                       samples_stored=made.stored, method=_METHODS[made.method or "model"])
        _add_samples(response.candidates, made, output, 0, request.return_latents)
        return response

    @stream
    async def GenerateStrokes(self, request: pb.GenerateStrokesRequest,
                              context: grpc.aio.ServicerContext) -> AsyncIterator[pb.StrokeEvent]:
        model = self.pipeline.model_for(request.model, _optional(request, "version"), "GenerateStrokes")
        plan = self.pipeline.strokes.plan(
            model, count=request.count or 1, seed=_seed(request), temperature=_optional(request, "temperature"),
            max_steps=request.max_steps, svg=request.svg, png_size=request.png_size)
        async for event in self._draw(plan, "draw", "GenerateStrokes", request.return_latents):
            yield event

    @stream
    async def ContinueStrokes(self, request: pb.ContinueStrokesRequest,
                              context: grpc.aio.ServicerContext) -> AsyncIterator[pb.StrokeEvent]:
        pipeline = self.pipeline
        model = pipeline.model_for(request.model, _optional(request, "version"), "ContinueStrokes")
        prefix = pipeline.strokes.check_prefix(model, _rows(request.prefix.points))
        count, seed = request.count or 1, _seed(request)
        given = None
        if request.sample_id:
            given = np.repeat((await pipeline.stored_latent(request.sample_id, model))[None], max(count, 1), 0)
        elif model.manifest.latent_dim:
            if not model.has_task("encode_strokes"):
                raise InvalidArgument(f"model {model.name} has no encoder: name the latent to continue with "
                                      "(sample_id)")
            given = await pipeline.strokes.posterior(model, prefix, [(seed + i) % 2**64 for i in range(count)])
        plan = pipeline.strokes.plan(
            model, count=count, seed=seed, temperature=_optional(request, "temperature"), max_steps=request.max_steps,
            svg=request.svg, png_size=request.png_size, prefix=prefix, latents_given=given,
            parent_id=request.sample_id or None)
        async for event in self._draw(plan, "continue", "ContinueStrokes", request.return_latents):
            yield event

    async def _draw(self, plan: DrawPlan, origin: str, operation: str,
                    with_latents: bool) -> AsyncIterator[pb.StrokeEvent]:
        """A plan's drawings as a stream of StrokeEvents; the samples are counted as they finish."""
        model = plan.model
        async for event in self.pipeline.strokes.stream(plan, origin):
            if not event.done:
                yield pb.StrokeEvent(index=event.index, point=pb.StrokePoint(dx=event.dx, dy=event.dy,
                                                                             pen=_PENS_OUT[event.pen]))
                continue
            record = event.record
            assert record is not None
            self.pipeline.count_samples(model, operation, 1)
            done = pb.StrokeDone(sample_id=record.sample_id, seed=record.seed or 0, points=event.points,
                                 ended=event.ended, svg=event.svg, png=event.png, stored=event.stored,
                                 model=model.name, version=model.version)
            if with_latents:
                done.latent.extend(record.latent.tolist())
            yield pb.StrokeEvent(index=event.index, done=done)

    @unary
    async def EncodeStrokes(self, request: pb.EncodeStrokesRequest,
                            context: grpc.aio.ServicerContext) -> pb.EncodeStrokesResponse:
        pipeline = self.pipeline
        model = pipeline.model_for(request.model, _optional(request, "version"), "EncodeStrokes")
        if not 1 <= len(request.drawings) <= pipeline.max_count:
            raise InvalidArgument(f"send 1 to {pipeline.max_count} drawings, got {len(request.drawings)}")
        drawings = [pipeline.strokes.check_prefix(model, _rows(d.points), f"drawing {k}")
                    for k, d in enumerate(request.drawings)]
        records, stored = await pipeline.strokes.encode(model, drawings)
        return pb.EncodeStrokesResponse(
            model=model.name, version=model.version, samples_stored=stored,
            samples=[pb.Sample(sample_id=r.sample_id, latent=r.latent.tolist(), index=k) for k, r in enumerate(records)])

    @unary
    async def GetSample(self, request: pb.GetSampleRequest, context: grpc.aio.ServicerContext) -> pb.GetSampleResponse:
        r = await self.pipeline.sample(request.sample_id)
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


# ---- proto -> typed requests ---------------------------------------------------------------------

def _optional(message: Any, field: str) -> Any:
    """An optional scalar field's value, or None when the client left it unset."""
    return getattr(message, field) if message.HasField(field) else None


def _output(value: int) -> OutputFormat:
    output = _OUTPUTS.get(value)
    if output is None:
        raise InvalidArgument(f"unknown output format {value}; use OUTPUT_FORMAT_PNG or OUTPUT_FORMAT_TENSOR")
    return output


def _generate_request(r: pb.GenerateRequest) -> GenerateRequest:
    # The hot path: optional fields read inline rather than through _optional.
    return GenerateRequest(model=r.model, version=r.version if r.HasField("version") else None, count=r.count,
                           seed=r.seed if r.HasField("seed") else None,
                           truncation=r.truncation if r.HasField("truncation") else None,
                           label=r.label if r.HasField("label") else None, output=_output(r.format))


def _endpoint(ep: pb.Endpoint) -> Endpoint:
    kind = ep.WhichOneof("source")
    if kind == "sample_id":
        return Endpoint(sample_id=ep.sample_id)
    if kind == "seed":
        return Endpoint(seed=ep.seed)
    if kind == "latent":
        return Endpoint(latent=ep.latent.values)
    return Endpoint()


def _images(items: Any) -> list[ImageInput]:
    """Request images as PNG bytes, raw tensors, or None where empty."""
    out: list[ImageInput] = []
    for item in items:
        kind = item.WhichOneof("data")
        if kind == "png":
            out.append(item.png)
        elif kind == "tensor":
            t = item.tensor
            out.append(TensorInput(dtype=t.dtype, shape=tuple(t.shape), data=t.data))
        else:
            out.append(None)
    return out


def _mask(request: pb.CompleteRequest) -> MaskInput:
    if not request.HasField("mask"):
        return None
    kind = request.mask.WhichOneof("data")
    if kind == "png":
        return request.mask.png
    if kind == "tensor":
        t = request.mask.tensor
        return TensorInput(dtype=t.dtype, shape=tuple(t.shape), data=t.data)
    if kind == "holes":
        return HolesInput([(b.x, b.y, b.width, b.height) for b in request.mask.holes.boxes])
    return None


def _seed(request: Any) -> int:
    """The request's base seed, or a random one."""
    return request.seed if request.HasField("seed") else secrets.randbits(64)


def _rows(points: Any) -> np.ndarray:
    """Proto StrokePoints as (K, 3) rows (dx, dy, pen); an unknown pen state is an InvalidArgument."""
    try:
        return np.array([(p.dx, p.dy, _PENS_IN[p.pen]) for p in points], np.float64).reshape(-1, 3)
    except KeyError:
        raise InvalidArgument("a point's pen must be PEN_STATE_DOWN or PEN_STATE_UP") from None


# ---- typed results -> proto ------------------------------------------------------------------------

def _drawing(rows: np.ndarray) -> pb.StrokeDrawing:
    """(K, 3) rows in data units as a StrokeDrawing."""
    return pb.StrokeDrawing(points=[pb.StrokePoint(dx=float(dx), dy=float(dy), pen=_PENS_OUT[int(pen)])
                                    for dx, dy, pen in rows])


def _image(model: OnnxModel, output: OutputFormat, payload: bytes) -> pb.Image:
    if output is OutputFormat.TENSOR:
        return pb.Image(tensor=pb.Tensor(dtype="float32", shape=model.image_shape, data=payload))
    return pb.Image(png=payload)


def _add_samples(into: Any, made: Samples, output: OutputFormat, start: int, with_latents: bool) -> None:
    """Append the rendered samples of a result, indexed from ``start``, to a repeated Sample
    field. Each is built in place (``add``): a message built apart and then put in a response
    would be copied, image bytes and all."""
    payloads = made.payloads
    assert payloads is not None
    shape = made.model.image_shape if output is OutputFormat.TENSOR else None
    for i, r in enumerate(made.records):
        _fill_sample(into.add(), r, start + i, payloads[i], shape, with_latents)


def _fill_sample(sample: pb.Sample, record: SampleRecord, index: int, payload: bytes,
                 tensor_shape: tuple[int, ...] | None, with_latent: bool) -> pb.Sample:
    """Set one sample's fields; the image is a PNG, or a float32 tensor of ``tensor_shape``."""
    sample.sample_id = record.sample_id
    sample.index = index
    if tensor_shape is None:
        sample.image.png = payload
    else:
        tensor = sample.image.tensor
        tensor.dtype = "float32"
        tensor.shape.extend(tensor_shape)
        tensor.data = payload
    if record.seed is not None:
        sample.seed = record.seed
    if record.label is not None:
        sample.label = record.label
    if with_latent:
        sample.latent.extend(record.latent.tolist())
    return sample


def _model_info(entry: ModelListing) -> pb.ModelInfo:
    m = entry.model
    man = m.manifest
    out = man.output
    return pb.ModelInfo(
        name=m.name, version=m.version, latest=entry.latest,
        kind=_KINDS.get(man.kind, pb.MODEL_KIND_UNSPECIFIED), latent_dim=man.latent_dim,
        num_classes=man.num_classes,
        output=pb.OutputSpec(channels=out.channels, height=out.height, width=out.width,
                             value_min=out.value_range[0], value_max=out.value_range[1],
                             layout=out.layout, dtype=out.dtype),
        supported_methods=m.supported_methods(), execution_provider=m.provider,
        opset=man.opset, created=man.created, quality=_quality(man.quality), class_names=list(man.classes),
        strokes=None if man.strokes is None else pb.StrokeInfo(
            max_steps=man.strokes.max_steps, mixtures=man.strokes.mixtures, scale=man.strokes.scale,
            temperature=man.strokes.temperature),
    )


def _quality(quality: Quality | None) -> pb.ModelQuality | None:
    """The manifest's quality block: numeric scores apart from text details."""
    if quality is None:
        return None
    scores = {k: float(v) for k, v in quality.scores.items() if not isinstance(v, str)}
    details = {k: v for k, v in quality.scores.items() if isinstance(v, str)}
    return pb.ModelQuality(scores=scores, details=details, meter_version=quality.meter_version)
