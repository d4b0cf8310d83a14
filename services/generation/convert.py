"""Proto messages <-> the typed requests and results of the generation pipeline.

Every conversion of the GenerationService's messages lives here, so that any surface that
speaks those messages (the gRPC servicer; an HTTP/JSON surface, whose bodies are the proto3
JSON mapping of the same messages) converts them the same way and holds no logic of its own:
one function per request message (message -> typed request) and per result (typed result ->
message). A message that cannot be converted (an unknown enum value) is an InvalidArgument.

Responses that carry images are built in place (``into``, ``add``): a message built apart and
then put in another is copied, image bytes and all.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Iterable, Iterator, Sequence

import numpy as np

from latentforge.manifest import Quality
from latentforge.strokes import PEN_DOWN, PEN_UP
from latentforge.v1 import generation_pb2 as pb
from services.errors import InvalidArgument
from services.generation.capabilities import supported_rpcs
from services.generation.requests import (
    CompleteRequest,
    ContinueRequest,
    DrawRequest,
    EncodeRequest,
    EncodeStrokesRequest,
    Endpoint,
    GenerateRequest,
    HolesInput,
    ImageInput,
    InterpolateRequest,
    MaskInput,
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

if TYPE_CHECKING:
    from latentforge.runtime import ModelRuntime
    from services.generation.cache import SampleRecord
    from services.generation.strokes import DrawEvent

# The manifest's kind as the proto enum (reported by ListModels; capabilities come from tasks).
KINDS = {"gan": pb.MODEL_KIND_GAN, "vae": pb.MODEL_KIND_VAE, "ae": pb.MODEL_KIND_AE,
         "completion": pb.MODEL_KIND_COMPLETION, "stroke_vae": pb.MODEL_KIND_STROKE_VAE,
         "adain": pb.MODEL_KIND_STYLE, "style": pb.MODEL_KIND_STYLE}
ORIGINS = {
    "generate": pb.SAMPLE_ORIGIN_GENERATE,
    "interpolate": pb.SAMPLE_ORIGIN_INTERPOLATE,
    "encode": pb.SAMPLE_ORIGIN_ENCODE,
    "variation": pb.SAMPLE_ORIGIN_VARIATION,
    "complete": pb.SAMPLE_ORIGIN_COMPLETE,
    "draw": pb.SAMPLE_ORIGIN_DRAW,
    "continue": pb.SAMPLE_ORIGIN_CONTINUE,
    "stylize": pb.SAMPLE_ORIGIN_STYLIZE,
}
# Proto pen states -> latentforge.strokes' (PEN_STATE_UNSPECIFIED reads as down), and back.
PENS_IN = {pb.PEN_STATE_UNSPECIFIED: PEN_DOWN, pb.PEN_STATE_DOWN: PEN_DOWN, pb.PEN_STATE_UP: PEN_UP}
PENS_OUT = {PEN_DOWN: pb.PEN_STATE_DOWN, PEN_UP: pb.PEN_STATE_UP}
METHODS = {"model": pb.COMPLETION_METHOD_MODEL, "iterative": pb.COMPLETION_METHOD_ITERATIVE}
OUTPUTS = {pb.OUTPUT_FORMAT_UNSPECIFIED: OutputFormat.PNG, pb.OUTPUT_FORMAT_PNG: OutputFormat.PNG,
           pb.OUTPUT_FORMAT_TENSOR: OutputFormat.TENSOR}
INTERPOLATION_METHODS = (pb.INTERPOLATION_METHOD_LERP, pb.INTERPOLATION_METHOD_SLERP,
                         pb.INTERPOLATION_METHOD_UNSPECIFIED)


# ---- fields ------------------------------------------------------------------------------------

def optional(message: Any, field: str) -> Any:
    """An optional scalar field's value, or None when the client left it unset."""
    return getattr(message, field) if message.HasField(field) else None


def output_format(value: int) -> OutputFormat:
    """An OutputFormat enum value; unknown ones are an InvalidArgument."""
    output = OUTPUTS.get(value)
    if output is None:
        raise InvalidArgument(f"unknown output format {value}; use OUTPUT_FORMAT_PNG or OUTPUT_FORMAT_TENSOR")
    return output


def endpoint(ep: pb.Endpoint) -> Endpoint:
    """An interpolation end: its sample id, seed or latent (none set: an empty Endpoint)."""
    kind = ep.WhichOneof("source")
    if kind == "sample_id":
        return Endpoint(sample_id=ep.sample_id)
    if kind == "seed":
        return Endpoint(seed=ep.seed)
    if kind == "latent":
        return Endpoint(latent=ep.latent.values)
    return Endpoint()


def images(items: Iterable[pb.Image]) -> list[ImageInput]:
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


def mask(request: pb.CompleteRequest | pb.StylizeRequest) -> MaskInput:
    """A CompleteRequest's or StylizeRequest's mask: PNG bytes, a raw tensor, rectangles, or None."""
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


def rows(points: Iterable[pb.StrokePoint]) -> np.ndarray:
    """StrokePoints as float32 (K, 3) rows (dx, dy, pen) with latentforge.strokes' pens; an
    unknown pen state is an InvalidArgument."""
    try:
        return np.array([(p.dx, p.dy, PENS_IN[p.pen]) for p in points], np.float32).reshape(-1, 3)
    except KeyError:
        raise InvalidArgument("a point's pen must be PEN_STATE_DOWN or PEN_STATE_UP") from None


# ---- request messages -> typed requests -----------------------------------------------------------

def generate_request(r: pb.GenerateRequest) -> GenerateRequest:
    """Generate, GenerateStream and a Session's generate."""
    # The hot path: optional fields read inline rather than through optional().
    return GenerateRequest(model=r.model, version=r.version if r.HasField("version") else None, count=r.count,
                           seed=r.seed if r.HasField("seed") else None,
                           truncation=r.truncation if r.HasField("truncation") else None,
                           label=r.label if r.HasField("label") else None, output=output_format(r.format))


def interpolate_request(r: pb.InterpolateRequest) -> InterpolateRequest:
    if r.method not in INTERPOLATION_METHODS:
        raise InvalidArgument(f"unknown interpolation method {r.method}; use LERP or SLERP")
    output = output_format(r.format)
    return InterpolateRequest(
        model=r.model, version=optional(r, "version"), start=endpoint(r.start), end=endpoint(r.end), steps=r.steps,
        slerp=r.method == pb.INTERPOLATION_METHOD_SLERP, truncation=optional(r, "truncation"),
        label=optional(r, "label"), output=output, seed=optional(r, "seed"),
        temperature=optional(r, "temperature"))


def encode_request(r: pb.EncodeRequest) -> EncodeRequest:
    return EncodeRequest(model=r.model, version=optional(r, "version"), images=images(r.images))


def reconstruct_request(r: pb.ReconstructRequest) -> EncodeRequest:
    output = output_format(r.format)
    return EncodeRequest(model=r.model, version=optional(r, "version"), images=images(r.images), output=output)


def variations_request(r: pb.VariationsRequest) -> VariationsRequest:
    """Variations and a Session's variations."""
    return VariationsRequest(sample_id=r.sample_id, count=r.count, strength=r.strength, seed=optional(r, "seed"),
                             output=output_format(r.format))


def complete_request(r: pb.CompleteRequest) -> CompleteRequest:
    output = output_format(r.format)
    image = images([r.image])[0] if r.HasField("image") else None
    return CompleteRequest(model=r.model, version=optional(r, "version"), image=image, mask=mask(r), count=r.count,
                           seed=optional(r, "seed"), iterations=r.iterations, label=optional(r, "label"),
                           output=output)


def stylize_request(r: pb.StylizeRequest) -> StylizeRequest:
    """Stylize: the content, each style entry (image or id, and weight), alpha, mask, format."""
    output = output_format(r.format)
    content = images([r.content])[0] if r.HasField("content") else None
    styles = [StyleInput(image=images([e.image])[0] if e.HasField("image") else None,
                         style_id=e.style_id or None, weight=optional(e, "weight")) for e in r.styles]
    return StylizeRequest(model=r.model, version=optional(r, "version"), content=content,
                          content_sample_id=r.content_sample_id or None, styles=styles, alpha=optional(r, "alpha"),
                          preserve_color=r.preserve_color, mask=mask(r), output=output)


def draw_request(r: pb.GenerateStrokesRequest) -> DrawRequest:
    return DrawRequest(model=r.model, version=optional(r, "version"), count=r.count, seed=optional(r, "seed"),
                       temperature=optional(r, "temperature"), max_steps=r.max_steps, svg=r.svg,
                       png_size=r.png_size)


def continue_request(r: pb.ContinueStrokesRequest) -> ContinueRequest:
    return ContinueRequest(model=r.model, version=optional(r, "version"), prefix=rows(r.prefix.points),
                           sample_id=r.sample_id or None, count=r.count, seed=optional(r, "seed"),
                           temperature=optional(r, "temperature"), max_steps=r.max_steps, svg=r.svg,
                           png_size=r.png_size)


def encode_strokes_request(r: pb.EncodeStrokesRequest) -> EncodeStrokesRequest:
    return EncodeStrokesRequest(model=r.model, version=optional(r, "version"),
                                drawings=[rows(d.points) for d in r.drawings])


# ---- typed results -> response messages --------------------------------------------------------

def list_models_response(listings: Sequence[ModelListing], max_count: int,
                         max_stream_count: int) -> pb.ListModelsResponse:
    return pb.ListModelsResponse(models=[model_info(entry) for entry in listings], max_count=max_count,
                                 max_stream_count=max_stream_count)


# ``samples_stored: true`` of a GenerateResponse, serialised: appended to a response serialised
# before its samples were stored (false is the default, not written), it sets the field, as a
# parser merges a field that comes again.
SAMPLES_STORED = pb.GenerateResponse(samples_stored=True).SerializeToString()


def generate_response(made: Samples, output: OutputFormat, with_latents: bool,
                      into: pb.GenerateResponse | None = None) -> pb.GenerateResponse:
    """A Generate result (filled into ``into``, e.g. a SessionResponse's, when given)."""
    response = pb.GenerateResponse() if into is None else into
    _samples_header(response, made)
    add_samples(response.samples, made, output, 0, with_latents)
    return response


def stream_samples(made: Samples, output: OutputFormat, start: int, with_latent: bool) -> Iterator[pb.Sample]:
    """One GenerateStream chunk's samples, indexed from ``start``, each built when asked for."""
    payloads = made.payloads
    assert payloads is not None
    shape = made.model.image_shape if output is OutputFormat.TENSOR else None
    for i, record in enumerate(made.records):
        yield fill_sample(pb.Sample(), record, start + i, payloads[i], shape, with_latent)


def variations_response(made: Samples, output: OutputFormat, with_latents: bool,
                        into: pb.VariationsResponse | None = None) -> pb.VariationsResponse:
    """A Variations result (filled into ``into``, e.g. a SessionResponse's, when given)."""
    response = pb.VariationsResponse() if into is None else into
    _samples_header(response, made)
    add_samples(response.samples, made, output, 0, with_latents)
    return response


def interpolate_response(made: Samples, output: OutputFormat, with_latents: bool) -> pb.InterpolateResponse:
    """Interpolate's frames; a stroke model's frames carry their drawings too."""
    response = pb.InterpolateResponse(model=made.model.name, version=made.model.version,
                                      samples_stored=made.stored)
    add_samples(response.frames, made, output, 0, with_latents)
    for frame, points in zip(response.frames, made.drawings or ()):
        frame.strokes.CopyFrom(drawing(points))
    return response


def encode_response(made: Samples) -> pb.EncodeResponse:
    return pb.EncodeResponse(model=made.model.name, version=made.model.version, samples=latent_samples(made.records),
                             samples_stored=made.stored)


def reconstruct_response(made: Rendered, output: OutputFormat) -> pb.ReconstructResponse:
    return pb.ReconstructResponse(model=made.model.name, version=made.model.version,
                                  images=[image(made.model, output, p) for p in made.payloads])


def complete_response(made: Samples, output: OutputFormat, with_latents: bool) -> pb.CompleteResponse:
    response = pb.CompleteResponse(model=made.model.name, version=made.model.version, seed=made.seed,
                                   samples_stored=made.stored, method=METHODS[made.method or "model"])
    add_samples(response.candidates, made, output, 0, with_latents)
    return response


def stylize_response(made: Stylized, output: OutputFormat) -> pb.StylizeResponse:
    """Stylize's stored sample (a PNG, or a float32 tensor of the content's size) and style ids."""
    response = pb.StylizeResponse(model=made.model.name, version=made.model.version, style_id=made.style_id,
                                  style_ids=made.style_ids, samples_stored=made.stored)
    fill_sample(response.sample, made.record, 0, made.payload,
                made.shape if output is OutputFormat.TENSOR else None, False)
    return response


def stroke_event(event: DrawEvent, with_latent: bool) -> pb.StrokeEvent:
    """A drawing's next point, or its end (StrokeDone)."""
    if not event.done:
        return pb.StrokeEvent(index=event.index, point=pb.StrokePoint(dx=event.dx, dy=event.dy,
                                                                      pen=PENS_OUT[event.pen]))
    record = event.record
    assert record is not None
    done = pb.StrokeDone(sample_id=record.sample_id, seed=record.seed or 0, points=event.points,
                         ended=event.ended, svg=event.svg, png=event.png, stored=event.stored,
                         model=record.model, version=record.version)
    if with_latent:
        done.latent.extend(record.latent.tolist())
    return pb.StrokeEvent(index=event.index, done=done)


def encode_strokes_response(made: Samples) -> pb.EncodeStrokesResponse:
    return pb.EncodeStrokesResponse(model=made.model.name, version=made.model.version,
                                    samples_stored=made.stored, samples=latent_samples(made.records))


def sample_response(r: SampleRecord) -> pb.GetSampleResponse:
    """GetSample: a stored sample's record."""
    response = pb.GetSampleResponse(
        sample_id=r.sample_id, model=r.model, version=r.version, latent=r.latent.tolist(),
        origin=ORIGINS.get(r.origin, pb.SAMPLE_ORIGIN_UNSPECIFIED), parent_sample_id=r.parent_id or "",
        created_unix_s=r.created,
    )
    if r.seed is not None:
        response.seed = r.seed
    if r.label is not None:
        response.label = r.label
    if r.truncation is not None:
        response.truncation = r.truncation
    return response


def session_error(request_id: str, code: int, message: str) -> pb.SessionResponse:
    """A Session request's failure, answered under its id."""
    return pb.SessionResponse(id=request_id, error=pb.SessionError(code=code, message=message))


# ---- parts of responses ------------------------------------------------------------------------

def drawing(points: np.ndarray) -> pb.StrokeDrawing:
    """(K, 3) rows in data units as a StrokeDrawing."""
    return pb.StrokeDrawing(points=[pb.StrokePoint(dx=float(dx), dy=float(dy), pen=PENS_OUT[int(pen)])
                                    for dx, dy, pen in points])


def image(model: ModelRuntime, output: OutputFormat, payload: bytes) -> pb.Image:
    """A rendered payload as an Image: PNG bytes, or a float32 tensor of the model's shape."""
    if output is OutputFormat.TENSOR:
        return pb.Image(tensor=pb.Tensor(dtype="float32", shape=model.image_shape, data=payload))
    return pb.Image(png=payload)


def latent_samples(records: Sequence[SampleRecord]) -> list[pb.Sample]:
    """Samples without images (Encode, EncodeStrokes): id, latent and index."""
    return [pb.Sample(sample_id=r.sample_id, latent=r.latent.tolist(), index=k) for k, r in enumerate(records)]


def add_samples(into: Any, made: Samples, output: OutputFormat, start: int, with_latents: bool) -> None:
    """Append the rendered samples of a result, indexed from ``start``, to a repeated Sample
    field. Each is built in place (``add``): a message built apart and then put in a response
    would be copied, image bytes and all."""
    payloads = made.payloads
    assert payloads is not None
    shape = made.model.image_shape if output is OutputFormat.TENSOR else None
    for i, r in enumerate(made.records):
        fill_sample(into.add(), r, start + i, payloads[i], shape, with_latents)


def fill_sample(sample: pb.Sample, record: SampleRecord, index: int, payload: bytes,
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


def model_info(entry: ModelListing) -> pb.ModelInfo:
    """A loaded model version as ListModels reports it; its supported methods come from its tasks."""
    m = entry.model
    man = m.manifest
    out = man.output
    return pb.ModelInfo(
        name=m.name, version=m.version, latest=entry.latest,
        kind=KINDS.get(man.kind, pb.MODEL_KIND_UNSPECIFIED), latent_dim=man.latent_dim,
        num_classes=man.num_classes,
        output=pb.OutputSpec(channels=out.channels, height=out.height, width=out.width,
                             value_min=out.value_range[0], value_max=out.value_range[1],
                             layout=out.layout, dtype=out.dtype),
        supported_methods=supported_rpcs(man.tasks), execution_provider=m.provider,
        opset=man.opset, created=man.created, quality=quality(man.quality), class_names=list(man.classes),
        strokes=None if man.strokes is None else pb.StrokeInfo(
            max_steps=man.strokes.max_steps, mixtures=man.strokes.mixtures, scale=man.strokes.scale,
            temperature=man.strokes.temperature),
    )


def quality(q: Quality | None) -> pb.ModelQuality | None:
    """The manifest's quality block: numeric scores apart from text details."""
    if q is None:
        return None
    scores = {k: float(v) for k, v in q.scores.items() if not isinstance(v, str)}
    details = {k: v for k, v in q.scores.items() if isinstance(v, str)}
    return pb.ModelQuality(scores=scores, details=details, meter_version=q.meter_version)


def _samples_header(response: Any, made: Samples) -> None:
    """The fields Generate and Variations responses share, set in place."""
    response.SetInParent()
    response.model = made.model.name
    response.version = made.model.version
    response.seed = made.seed
    response.samples_stored = made.stored
