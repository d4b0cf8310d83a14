"""A small synchronous Python client of GenerationService, returning numpy/Pillow/dataclasses.

    with GenerationClient("localhost:50051") as client:
        result = client.generate("mnist-dcgan", count=16, seed=7)
        result.samples[0].pil().save("first.png")
"""

from __future__ import annotations

import dataclasses
import io
import itertools
import queue
import secrets
import threading
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Sequence

import grpc
import numpy as np
from PIL import Image

from latentforge.v1 import generation_pb2 as pb
from latentforge.v1 import generation_pb2_grpc as pb_grpc
from services.rpc.security import client_channel

_FORMATS = {"png": pb.OUTPUT_FORMAT_PNG, "tensor": pb.OUTPUT_FORMAT_TENSOR}
_KINDS = {pb.MODEL_KIND_GAN: "gan", pb.MODEL_KIND_VAE: "vae", pb.MODEL_KIND_AE: "ae",
          pb.MODEL_KIND_COMPLETION: "completion", pb.MODEL_KIND_STROKE_VAE: "stroke_vae",
          pb.MODEL_KIND_STYLE: "style"}
_ORIGINS = {pb.SAMPLE_ORIGIN_GENERATE: "generate", pb.SAMPLE_ORIGIN_INTERPOLATE: "interpolate",
            pb.SAMPLE_ORIGIN_ENCODE: "encode", pb.SAMPLE_ORIGIN_VARIATION: "variation",
            pb.SAMPLE_ORIGIN_COMPLETE: "complete", pb.SAMPLE_ORIGIN_DRAW: "draw",
            pb.SAMPLE_ORIGIN_CONTINUE: "continue", pb.SAMPLE_ORIGIN_STYLIZE: "stylize"}
# Pen states: latentforge.strokes' numbers <-> the proto's.
_PEN_OUT = {pb.PEN_STATE_UNSPECIFIED: 0, pb.PEN_STATE_DOWN: 0, pb.PEN_STATE_UP: 1}
_PEN_IN = {0: pb.PEN_STATE_DOWN, 1: pb.PEN_STATE_UP}


@dataclass(frozen=True)
class Quality:
    """A model version's scores by the project's quality meter (see docs/quality.md)."""

    scores: dict[str, float]  # fid, fid_floor, precision, recall, ... (FID: lower is better)
    details: dict[str, str]  # source ("training" or "export"), meter, data, ...
    meter_version: str

    @property
    def fid(self) -> float | None:
        return self.scores.get("fid")

    @property
    def fid_floor(self) -> float | None:
        """The FID real held-out images reach at the same sample count: what "good" is."""
        return self.scores.get("fid_floor")


@dataclass(frozen=True)
class ModelInfo:
    """One loaded model version, as ListModels describes it."""

    name: str
    version: int
    latest: bool
    kind: str
    latent_dim: int
    num_classes: int
    shape: tuple[int, int, int]
    value_range: tuple[float, float]
    supported_methods: tuple[str, ...]
    execution_provider: str
    quality: Quality | None = None  # None when the version was exported without scores
    class_names: tuple[str, ...] = ()  # by label, for a conditional model with named classes
    strokes: dict[str, float] | None = None  # stroke models: max_steps, mixtures, scale, temperature

    def label_of(self, label: int | str) -> int:
        """The label index of a class given by index ("7", 7) or by name ("seven")."""
        if isinstance(label, int) or str(label).strip().lstrip("-").isdigit():
            return int(label)
        if label in self.class_names:
            return self.class_names.index(label)
        if self.num_classes == 0:
            raise ValueError(f"{self.name} v{self.version} is unconditional: it takes no label")
        known = ", ".join(self.class_names) if self.class_names else "none (use a number 0.." \
            f"{self.num_classes - 1})"
        raise ValueError(f"{self.name} v{self.version} has no class {label!r}; its classes: {known}")


@dataclass(frozen=True)
class GeneratedImage:
    """An image from the server: PNG bytes or a float32 (C, H, W) tensor."""

    png: bytes | None = None
    tensor: np.ndarray | None = None

    def pil(self) -> Image.Image:
        """As a Pillow image (PNG output only)."""
        if self.png is None:
            raise ValueError("this image was returned as a tensor; use .tensor")
        return Image.open(io.BytesIO(self.png))

    def array(self) -> np.ndarray:
        """PNG output as uint8 (H, W) or (H, W, C); tensor output as float32 (C, H, W)."""
        return self.tensor if self.tensor is not None else np.asarray(self.pil())


@dataclass(frozen=True)
class Sample:
    """One sample: its id, seed (when it has one), image and latent (when asked)."""

    sample_id: str
    index: int
    image: GeneratedImage | None
    seed: int | None = None
    label: int | None = None
    latent: np.ndarray | None = None
    strokes: np.ndarray | None = None  # a stroke model's drawing (Interpolate frames): rows (dx, dy, pen)

    def pil(self) -> Image.Image:
        """The image as a Pillow image (PNG output)."""
        if self.image is None:
            raise ValueError("this sample has no image (Encode samples carry only a latent)")
        return self.image.pil()


@dataclass(frozen=True)
class Result:
    """Samples of one call and the model version that made them."""

    model: str
    version: int
    samples: list[Sample]
    seed: int | None = None
    stored: bool = True


@dataclass(frozen=True)
class Drawing:
    """A finished drawing of a stroke model: its points (K, 3) rows (dx, dy, pen) in the model's
    data units, pen 0 = down after the point, 1 = lifted (``latentforge.strokes``)."""

    index: int
    sample_id: str
    seed: int
    points: np.ndarray
    ended: bool  # the model ended it (else it reached max_steps)
    stored: bool
    svg: str = ""
    png: bytes = b""
    latent: np.ndarray | None = None


@dataclass(frozen=True)
class StoredSample:
    """GetSample's answer."""

    sample_id: str
    model: str
    version: int
    latent: np.ndarray
    origin: str
    seed: int | None = None
    label: int | None = None
    truncation: float | None = None
    parent_sample_id: str | None = None
    created_unix_s: float = 0.0


@dataclass(frozen=True)
class Stylized:
    """Stylize's answer: the stored sample, the style's id (name it in later calls instead of
    sending the image again) and each requested style's id."""

    model: str
    version: int
    sample: Sample
    style_id: str
    style_ids: list[str]
    stored: bool = True


@dataclass(frozen=True)
class Endpoint:
    """One end of an interpolation: exactly one of sample_id, seed, latent."""

    sample_id: str | None = None
    seed: int | None = None
    latent: Sequence[float] | None = None

    def to_proto(self) -> pb.Endpoint:
        given = [x is not None for x in (self.sample_id, self.seed, self.latent)]
        if sum(given) != 1:
            raise ValueError("an Endpoint needs exactly one of sample_id, seed, latent")
        if self.sample_id is not None:
            return pb.Endpoint(sample_id=self.sample_id)
        if self.seed is not None:
            return pb.Endpoint(seed=self.seed)
        return pb.Endpoint(latent=pb.Latent(values=[float(v) for v in np.asarray(self.latent).ravel()]))


def image_from_proto(image: pb.Image) -> GeneratedImage:
    kind = image.WhichOneof("data")
    if kind == "png":
        return GeneratedImage(png=image.png)
    if kind == "tensor":
        t = image.tensor
        return GeneratedImage(tensor=np.frombuffer(t.data, dtype="<f4").reshape(tuple(t.shape)).astype(np.float32))
    raise ValueError("empty image in response")


def image_to_proto(image: Any) -> pb.Image:
    """PNG bytes, a Pillow image, or a float32 (C, H, W) array in the model's value range."""
    if isinstance(image, (bytes, bytearray)):
        return pb.Image(png=bytes(image))
    if isinstance(image, Image.Image):
        buf = io.BytesIO()
        image.save(buf, format="PNG")
        return pb.Image(png=buf.getvalue())
    arr = np.ascontiguousarray(image, dtype="<f4")
    return pb.Image(tensor=pb.Tensor(dtype="float32", shape=list(arr.shape), data=arr.tobytes()))


def mask_to_proto(mask: Any) -> pb.Mask:
    """A completion mask: PNG bytes or a Pillow image, a float32 array, or (x, y, w, h) holes."""
    if isinstance(mask, (bytes, bytearray, Image.Image)):
        return pb.Mask(png=image_to_proto(mask).png)
    if isinstance(mask, np.ndarray):
        arr = np.ascontiguousarray(mask, dtype="<f4")
        return pb.Mask(tensor=pb.Tensor(dtype="float32", shape=list(arr.shape), data=arr.tobytes()))
    boxes = [pb.Box(x=int(x), y=int(y), width=int(w), height=int(h)) for x, y, w, h in mask]
    return pb.Mask(holes=pb.BoxList(boxes=boxes))


def sample_from_proto(s: pb.Sample) -> Sample:
    return Sample(
        sample_id=s.sample_id,
        index=s.index,
        image=image_from_proto(s.image) if s.HasField("image") else None,
        seed=s.seed if s.HasField("seed") else None,
        label=s.label if s.HasField("label") else None,
        latent=np.asarray(s.latent, dtype=np.float32) if len(s.latent) else None,
        strokes=strokes_from_proto(s.strokes) if s.HasField("strokes") else None,
    )


class GenerationClient:
    """Blocking client; one channel, reused. Errors surface as grpc.RpcError."""

    def __init__(self, target: str, timeout_s: float = 30.0, max_message_bytes: int = 64 * 1024 * 1024, *,
                 tls: bool = False, tls_ca: Path | None = None, tls_cert: Path | None = None,
                 tls_key: Path | None = None, token: str | None = None) -> None:
        """Plaintext by default; TLS when `tls` or a TLS file is given (mTLS with cert + key);
        `token` is sent as ``authorization: Bearer <token>`` on every call."""
        self.target = target
        self.timeout_s = timeout_s
        self._channel = client_channel(target, tls=tls, ca=tls_ca, cert=tls_cert, key=tls_key, token=token, options=[
            ("grpc.max_receive_message_length", max_message_bytes),
            ("grpc.max_send_message_length", max_message_bytes),
        ])
        self.stub = pb_grpc.GenerationServiceStub(self._channel)

    def close(self) -> None:
        self._channel.close()

    def __enter__(self) -> "GenerationClient":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def wait_ready(self, timeout_s: float = 10.0) -> None:
        """Block until the channel is connected."""
        grpc.channel_ready_future(self._channel).result(timeout=timeout_s)

    def health(self, service: str = "") -> str:
        """The grpc.health.v1 status of the server ("" = overall): SERVING, NOT_SERVING, ..."""
        from grpc_health.v1 import health_pb2, health_pb2_grpc

        response = health_pb2_grpc.HealthStub(self._channel).Check(
            health_pb2.HealthCheckRequest(service=service), timeout=self.timeout_s)
        return health_pb2.HealthCheckResponse.ServingStatus.Name(response.status)

    def wait_serving(self, timeout_s: float = 60.0, poll_s: float = 0.1) -> None:
        """Block until health says SERVING (models loaded and warmed up); TimeoutError if not."""
        import time

        deadline = time.monotonic() + timeout_s
        while True:
            try:
                if self.health() == "SERVING":
                    return
            except grpc.RpcError:
                pass  # not listening yet
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.target} did not report SERVING within {timeout_s:g} s")
            time.sleep(poll_s)

    def max_count(self) -> int:
        """The server's limit on samples per request (ListModelsResponse.max_count)."""
        return int(self.stub.ListModels(pb.ListModelsRequest(), timeout=self.timeout_s).max_count)

    def list_models(self, name: str = "") -> list[ModelInfo]:
        response = self.stub.ListModels(pb.ListModelsRequest(name=name), timeout=self.timeout_s)
        return [
            ModelInfo(
                name=m.name, version=m.version, latest=m.latest, kind=_KINDS.get(m.kind, "unknown"),
                latent_dim=m.latent_dim, num_classes=m.num_classes,
                shape=(m.output.channels, m.output.height, m.output.width),
                value_range=(m.output.value_min, m.output.value_max),
                supported_methods=tuple(m.supported_methods), execution_provider=m.execution_provider,
                quality=Quality(dict(m.quality.scores), dict(m.quality.details), m.quality.meter_version)
                if m.HasField("quality") else None,
                class_names=tuple(m.class_names),
                strokes={"max_steps": m.strokes.max_steps, "mixtures": m.strokes.mixtures, "scale": m.strokes.scale,
                         "temperature": m.strokes.temperature} if m.HasField("strokes") else None,
            )
            for m in response.models
        ]

    def generate(self, model: str, count: int = 1, *, seed: int | None = None, version: int | None = None,
                 truncation: float | None = None, label: int | None = None, fmt: str = "png",
                 return_latents: bool = False) -> Result:
        request = self._generate_request(model, count, seed, version, truncation, label, fmt, return_latents)
        r = self.stub.Generate(request, timeout=self.timeout_s)
        return Result(r.model, r.version, [sample_from_proto(s) for s in r.samples], r.seed, r.samples_stored)

    def max_stream_count(self) -> int:
        """The server's limit on samples per GenerateStream (ListModelsResponse.max_stream_count)."""
        response = self.stub.ListModels(pb.ListModelsRequest(), timeout=self.timeout_s)
        return int(response.max_stream_count or response.max_count)

    def generate_stream(self, model: str, count: int = 1, *, seed: int | None = None, version: int | None = None,
                        truncation: float | None = None, label: int | None = None, fmt: str = "png",
                        return_latents: bool = False, timeout_s: float | None = None) -> Iterator[Sample]:
        """Yields ``count`` samples as the server sends them, any ``count``: above the server's
        stream limit, in streams of the limit whose seeds continue where the last stopped
        (seed + k), which are exactly the samples one stream would give; indices run on.
        ``timeout_s`` is each stream's deadline (default none: a long stream may take long)."""
        limit = self.max_stream_count() if count > 1 else 1
        if count > limit and seed is None:
            seed = secrets.randbits(64)  # one base seed for every stream, so the samples follow on
        done = 0
        while True:
            n = min(count - done, limit) if count > limit else count
            request = self._generate_request(model, n, None if seed is None else (seed + done) % 2**64, version,
                                             truncation, label, fmt, return_latents)
            for s in self.stub.GenerateStream(request, timeout=timeout_s):
                sample = sample_from_proto(s)
                yield dataclasses.replace(sample, index=done + sample.index) if done else sample
            done += n
            if done >= count:
                return

    def session(self, max_in_flight: int = 256) -> Session:
        """A Session stream: many requests in flight on one call, each answered by id (see Session)."""
        return Session(self, max_in_flight)

    def interpolate(self, model: str, start: Endpoint, end: Endpoint, steps: int = 8, *, slerp: bool = False,
                    version: int | None = None, truncation: float | None = None, label: int | None = None,
                    fmt: str = "png", return_latents: bool = False) -> Result:
        request = pb.InterpolateRequest(
            model=model, start=start.to_proto(), end=end.to_proto(), steps=steps,
            method=pb.INTERPOLATION_METHOD_SLERP if slerp else pb.INTERPOLATION_METHOD_LERP,
            format=_FORMATS[fmt], return_latents=return_latents)
        _set_optional(request, version=version, truncation=truncation, label=label)
        r = self.stub.Interpolate(request, timeout=self.timeout_s)
        return Result(r.model, r.version, [sample_from_proto(s) for s in r.frames], None, r.samples_stored)

    def encode(self, model: str, images: Sequence[Any], *, version: int | None = None) -> Result:
        request = pb.EncodeRequest(model=model, images=[image_to_proto(i) for i in images])
        _set_optional(request, version=version)
        r = self.stub.Encode(request, timeout=self.timeout_s)
        return Result(r.model, r.version, [sample_from_proto(s) for s in r.samples], None, r.samples_stored)

    def reconstruct(self, model: str, images: Sequence[Any], *, version: int | None = None,
                    fmt: str = "png") -> list[GeneratedImage]:
        request = pb.ReconstructRequest(model=model, images=[image_to_proto(i) for i in images], format=_FORMATS[fmt])
        _set_optional(request, version=version)
        r = self.stub.Reconstruct(request, timeout=self.timeout_s)
        return [image_from_proto(i) for i in r.images]

    def variations(self, sample_id: str, count: int = 4, strength: float = 0.5, *, seed: int | None = None,
                   fmt: str = "png", return_latents: bool = False) -> Result:
        request = pb.VariationsRequest(sample_id=sample_id, count=count, strength=strength,
                                       format=_FORMATS[fmt], return_latents=return_latents)
        _set_optional(request, seed=seed)
        r = self.stub.Variations(request, timeout=self.timeout_s)
        return Result(r.model, r.version, [sample_from_proto(s) for s in r.samples], r.seed, r.samples_stored)

    def complete(self, model: str, image: Any, mask: Any, count: int = 4, *, seed: int | None = None,
                 version: int | None = None, iterations: int = 0, label: int | None = None, fmt: str = "png",
                 return_latents: bool = False) -> Result:
        """Candidate fillings of ``image``'s hole. ``mask``: PNG bytes or a Pillow image (white =
        known), a float32 (H, W) or (1, H, W) array (1 = known), or a list of (x, y, w, h) holes."""
        request = pb.CompleteRequest(model=model, image=image_to_proto(image), mask=mask_to_proto(mask), count=count,
                                     iterations=iterations, format=_FORMATS[fmt], return_latents=return_latents)
        _set_optional(request, seed=seed, version=version, label=label)
        r = self.stub.Complete(request, timeout=self.timeout_s)
        return Result(r.model, r.version, [sample_from_proto(s) for s in r.candidates], r.seed, r.samples_stored)

    def stylize(self, model: str, content: Any = None, style: Any = None, *, content_sample_id: str | None = None,
                alpha: float | None = None, preserve_color: bool = False, mask: Any = None,
                version: int | None = None, fmt: str = "png") -> Stylized:
        """``content`` (PNG bytes, a Pillow image or a float32 (3, H, W) array in [0, 1]; or a
        stored sample by ``content_sample_id``) painted in ``style``: an image, a style id (a
        str), or a list of (image or id, weight) pairs for a mix; None for a one-style model.
        ``mask``: as for ``complete``, but white / 1 / the rectangles are stylised."""
        request = pb.StylizeRequest(model=model, preserve_color=preserve_color, format=_FORMATS[fmt])
        if content is not None:
            request.content.CopyFrom(image_to_proto(content))
        if content_sample_id:
            request.content_sample_id = content_sample_id
        entries = [] if style is None else style if isinstance(style, list) else [(style, None)]
        for given, weight in entries:
            entry = request.styles.add()
            if isinstance(given, str):
                entry.style_id = given
            else:
                entry.image.CopyFrom(image_to_proto(given))
            if weight is not None:
                entry.weight = weight
        if mask is not None:
            request.mask.CopyFrom(mask_to_proto(mask))
        _set_optional(request, alpha=alpha, version=version)
        r = self.stub.Stylize(request, timeout=self.timeout_s)
        return Stylized(r.model, r.version, sample_from_proto(r.sample), r.style_id, list(r.style_ids),
                        r.samples_stored)

    def get_sample(self, sample_id: str) -> StoredSample:
        r = self.stub.GetSample(pb.GetSampleRequest(sample_id=sample_id), timeout=self.timeout_s)
        return StoredSample(
            sample_id=r.sample_id, model=r.model, version=r.version,
            latent=np.asarray(r.latent, dtype=np.float32), origin=_ORIGINS.get(r.origin, "unknown"),
            seed=r.seed if r.HasField("seed") else None, label=r.label if r.HasField("label") else None,
            truncation=r.truncation if r.HasField("truncation") else None,
            parent_sample_id=r.parent_sample_id or None, created_unix_s=r.created_unix_s,
        )

    def draw_stream(self, model: str, count: int = 1, *, seed: int | None = None, temperature: float | None = None,
                    max_steps: int = 0, svg: bool = False, png_size: int = 0, prefix: Any = None,
                    sample_id: str = "", version: int | None = None, return_latents: bool = False):
        """Stream a stroke model's drawings (GenerateStrokes; ContinueStrokes when ``prefix``, rows
        (dx, dy, pen), is given): yields (index, (dx, dy, pen)) for each point as it is drawn, and a
        Drawing when drawing ``index`` is finished. Closing the generator cancels the call."""
        fields = dict(model=model, count=count, max_steps=max_steps, svg=svg, png_size=png_size,
                      return_latents=return_latents)
        if prefix is None:
            request = pb.GenerateStrokesRequest(**fields)
            call = self.stub.GenerateStrokes
        else:
            request = pb.ContinueStrokesRequest(prefix=strokes_to_proto(prefix), sample_id=sample_id, **fields)
            call = self.stub.ContinueStrokes
        _set_optional(request, seed=seed, temperature=temperature, version=version)
        points: dict[int, list[tuple[float, float, int]]] = {}
        before = np.asarray(prefix, np.float32).reshape(-1, 3) if prefix is not None else np.zeros((0, 3), np.float32)
        stream = call(request, timeout=self.timeout_s)
        try:
            for event in stream:
                if event.WhichOneof("event") == "point":
                    point = (event.point.dx, event.point.dy, _PEN_OUT.get(event.point.pen, 0))
                    points.setdefault(event.index, []).append(point)
                    yield event.index, point
                    continue
                d = event.done
                rows = np.concatenate([before, np.asarray(points.pop(event.index, []), np.float32).reshape(-1, 3)])
                yield Drawing(event.index, d.sample_id, d.seed, rows, d.ended, d.stored, d.svg, d.png,
                              np.asarray(d.latent, np.float32) if return_latents else None)
        finally:
            stream.cancel()

    def draw(self, model: str, count: int = 1, **options: Any) -> list[Drawing]:
        """The finished drawings of ``draw_stream`` (same options), by index."""
        done = [d for d in self.draw_stream(model, count, **options) if isinstance(d, Drawing)]
        return sorted(done, key=lambda d: d.index)

    def encode_strokes(self, model: str, drawings: Sequence[Any], *, version: int | None = None) -> Result:
        """Drawings (each rows (dx, dy, pen)) -> stored samples with their latents."""
        request = pb.EncodeStrokesRequest(model=model, drawings=[strokes_to_proto(d) for d in drawings])
        _set_optional(request, version=version)
        r = self.stub.EncodeStrokes(request, timeout=self.timeout_s)
        return Result(r.model, r.version, [sample_from_proto(s) for s in r.samples], None, r.samples_stored)

    @staticmethod
    def _generate_request(model, count, seed, version, truncation, label, fmt, return_latents) -> pb.GenerateRequest:
        request = pb.GenerateRequest(model=model, count=count, format=_FORMATS[fmt], return_latents=return_latents)
        _set_optional(request, seed=seed, version=version, truncation=truncation, label=label)
        return request


def strokes_to_proto(rows: Any) -> pb.StrokeDrawing:
    """Rows (dx, dy, pen) as a StrokeDrawing (pen 0 = down, 1 = lifted)."""
    return pb.StrokeDrawing(points=[pb.StrokePoint(dx=float(dx), dy=float(dy), pen=_PEN_IN.get(int(pen), pen + 1))
                                    for dx, dy, pen in np.asarray(rows, np.float64).reshape(-1, 3)])


def strokes_from_proto(drawing: pb.StrokeDrawing) -> np.ndarray:
    """A StrokeDrawing as float32 rows (dx, dy, pen)."""
    return np.array([(p.dx, p.dy, _PEN_OUT.get(p.pen, 0)) for p in drawing.points], np.float32).reshape(-1, 3)


class SessionRequestError(Exception):
    """One request of a Session failed; ``code`` is its gRPC status, ``message`` what to fix."""

    def __init__(self, request_id: str, code: grpc.StatusCode, message: str) -> None:
        super().__init__(f"request {request_id}: {code.name}: {message}")
        self.request_id, self.code, self.message = request_id, code, message


_CODES = {c.value[0]: c for c in grpc.StatusCode}


class Session:
    """Many requests in flight on one Session stream, answered by id as they complete.

        with client.session() as session:
            futures = [session.submit_generate("mnist-dcgan", seed=k) for k in range(100)]
            results = [f.result() for f in futures]

    ``submit_*`` returns a ``concurrent.futures.Future`` of a ``Result`` (or of a
    ``SessionRequestError`` for that request alone); ``generate`` waits for one. At most
    ``max_in_flight`` requests wait for answers (``submit_*`` blocks beyond, as the server does).
    Leaving the ``with`` block closes the stream after every answer came; ``cancel()`` ends it at
    once, and the server drops the requests it has queued. If the stream itself ends with an
    error (e.g. UNAVAILABLE when the server shuts down), every unanswered future gets that
    ``grpc.RpcError``: those requests were not run.
    """

    def __init__(self, client: GenerationClient, max_in_flight: int = 256) -> None:
        self._outbox: queue.Queue[pb.SessionRequest | None] = queue.Queue()
        self._slots = threading.BoundedSemaphore(max_in_flight)
        self._pending: dict[str, Future] = {}
        self._lock = threading.Lock()
        self._ids = itertools.count()
        self._call = client.stub.Session(iter(self._outbox.get, None))
        self._reader = threading.Thread(target=self._read, name="lf-session", daemon=True)
        self._reader.start()

    def __enter__(self) -> "Session":
        return self

    def __exit__(self, *exc: Any) -> None:
        if exc[0] is None:
            self.close()
        else:
            self.cancel()

    def submit(self, request: pb.SessionRequest) -> Future:
        """Send a SessionRequest (its ``id`` is set here when empty); a future of its answer."""
        if not request.id:
            request.id = str(next(self._ids))
        self._slots.acquire()
        future: Future = Future()
        with self._lock:
            if request.id in self._pending:
                self._slots.release()
                raise ValueError(f"request id {request.id!r} is already waiting for an answer")
            self._pending[request.id] = future
        self._outbox.put(request)
        return future

    def submit_generate(self, model: str, count: int = 1, *, seed: int | None = None, version: int | None = None,
                        truncation: float | None = None, label: int | None = None, fmt: str = "png",
                        return_latents: bool = False, request_id: str = "") -> Future:
        """Generate, as ``GenerationClient.generate``; a future of its ``Result``."""
        request = GenerationClient._generate_request(model, count, seed, version, truncation, label, fmt,
                                                     return_latents)
        return self.submit(pb.SessionRequest(id=request_id, generate=request))

    def submit_variations(self, sample_id: str, count: int = 4, strength: float = 0.5, *, seed: int | None = None,
                          fmt: str = "png", return_latents: bool = False, request_id: str = "") -> Future:
        """Variations, as ``GenerationClient.variations``; a future of its ``Result``."""
        request = pb.VariationsRequest(sample_id=sample_id, count=count, strength=strength, format=_FORMATS[fmt],
                                       return_latents=return_latents)
        _set_optional(request, seed=seed)
        return self.submit(pb.SessionRequest(id=request_id, variations=request))

    def generate(self, model: str, count: int = 1, timeout_s: float | None = None, **options: Any) -> Result:
        """One Generate on the session, waited for."""
        return self.submit_generate(model, count, **options).result(timeout_s)

    def close(self, timeout_s: float | None = None) -> None:
        """Send no more requests; wait until every answer came and the stream ended."""
        self._outbox.put(None)
        self._reader.join(timeout_s)

    def cancel(self) -> None:
        """End the stream now; the server drops this session's queued requests."""
        self._call.cancel()
        self._outbox.put(None)
        self._reader.join(10)

    def _read(self) -> None:
        error: BaseException | None = None
        try:
            for response in self._call:
                with self._lock:
                    future = self._pending.pop(response.id, None)
                if future is None:
                    continue  # an answer for an id this object did not send
                self._slots.release()
                which = response.WhichOneof("result")
                if which == "error":
                    future.set_exception(SessionRequestError(
                        response.id, _CODES.get(response.error.code, grpc.StatusCode.UNKNOWN), response.error.message))
                else:
                    r = getattr(response, which)
                    future.set_result(Result(r.model, r.version, [sample_from_proto(s) for s in r.samples], r.seed,
                                             r.samples_stored))
        except grpc.RpcError as exc:
            error = exc
        finally:
            self._outbox.put(None)  # the stream is over: end the request iterator too
            with self._lock:
                left, self._pending = self._pending, {}
            for future in left.values():
                future.set_exception(error or RuntimeError("the session ended without answering this request"))
                self._slots.release()


def _set_optional(message: Any, **fields: Any) -> None:
    for name, value in fields.items():
        if value is not None:
            setattr(message, name, value)
