"""The typed requests the generation pipeline takes and the results it gives back.

Transport-neutral: ``services.generation.convert`` builds these from proto messages and turns
the results into proto messages, for any surface; nothing here knows of gRPC. ``version`` None
(or 0) means the newest one. Plain slotted dataclasses: one is made per request, so they stay
cheap.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import TYPE_CHECKING, Sequence

if TYPE_CHECKING:
    import numpy as np

    from services.generation.cache import SampleRecord
    from latentforge.runtime import ModelRuntime


class OutputFormat(enum.Enum):
    """How rendered images come back: PNG bytes, or raw float32 (C, H, W) little-endian bytes."""

    PNG = "png"
    TENSOR = "tensor"


@dataclass(slots=True)
class TensorInput:
    """A raw input image as the client sent it (checked against the model by the pipeline)."""

    dtype: str
    shape: tuple[int, ...]
    data: bytes


# One input image: PNG bytes, a raw tensor, or None when the client sent an empty one.
ImageInput = bytes | TensorInput | None


@dataclass(slots=True)
class HolesInput:
    """A mask given as rectangles to fill, each (x, y, width, height)."""

    boxes: list[tuple[int, int, int, int]]


# A completion mask: PNG bytes, a raw tensor, rectangles, or None when the client sent none.
MaskInput = bytes | TensorInput | HolesInput | None


@dataclass(slots=True)
class Endpoint:
    """One end of an interpolation: a stored sample, a seed, or a latent (exactly one is set)."""

    sample_id: str | None = None
    seed: int | None = None
    latent: Sequence[float] | None = None


@dataclass(slots=True)
class GenerateRequest:
    model: str
    version: int | None
    count: int
    seed: int | None  # None: the server picks one
    truncation: float | None
    label: int | None
    output: OutputFormat


@dataclass(slots=True)
class InterpolateRequest:
    model: str
    version: int | None
    start: Endpoint
    end: Endpoint
    steps: int
    slerp: bool
    truncation: float | None
    label: int | None
    output: OutputFormat
    seed: int | None = None  # stroke models: the seed of every frame's pen draws
    temperature: float | None = None  # stroke models: the frames' sampling temperature


@dataclass(slots=True)
class EncodeRequest:
    """Encode (images -> latents) and Reconstruct (images -> latents -> images)."""

    model: str
    version: int | None
    images: Sequence[ImageInput]
    output: OutputFormat = OutputFormat.PNG  # Reconstruct only


@dataclass(slots=True)
class VariationsRequest:
    sample_id: str
    count: int
    strength: float
    seed: int | None  # None: the server picks one
    output: OutputFormat


@dataclass(slots=True)
class CompleteRequest:
    model: str
    version: int | None
    image: ImageInput
    mask: MaskInput
    count: int
    seed: int | None  # None: the server picks one
    iterations: int  # 0: the server's default (iterative method only)
    label: int | None
    output: OutputFormat


@dataclass(slots=True)
class DrawRequest:
    """GenerateStrokes: ``count`` drawings from a stroke model, each from its own seed."""

    model: str
    version: int | None
    count: int  # 0: one drawing
    seed: int | None  # None: the server picks one; drawing i uses seed (seed + i) mod 2^64
    temperature: float | None  # None: the model's default
    max_steps: int  # 0: the model's longest training drawing
    svg: bool  # also render each finished drawing as SVG
    png_size: int  # also render it as a PNG this many pixels square; 0: no PNG


@dataclass(slots=True)
class ContinueRequest:
    """ContinueStrokes: ``count`` continuations of a partial drawing."""

    model: str
    version: int | None
    prefix: "np.ndarray"  # float32 (K, 3) rows (dx, dy, pen) in the data's units, pens of latentforge.strokes
    sample_id: str | None  # continue with this stored sample's latent; None: the prefix's encoding
    count: int  # 0: one continuation
    seed: int | None  # None: the server picks one
    temperature: float | None
    max_steps: int
    svg: bool
    png_size: int


@dataclass(slots=True)
class EncodeStrokesRequest:
    """EncodeStrokes: drawings -> latents (the encoder's mean)."""

    model: str
    version: int | None
    drawings: Sequence["np.ndarray"]  # each float32 (K, 3) rows, as ContinueRequest.prefix


@dataclass(slots=True)
class StyleInput:
    """One style of a Stylize request, or one part of a mix: an image or the id of a style sent
    before (exactly one set), and its weight (None: 1)."""

    image: ImageInput = None
    style_id: str | None = None
    weight: float | None = None


@dataclass(slots=True)
class StylizeRequest:
    """Stylize: a content image (or a stored sample's) painted in a style."""

    model: str
    version: int | None
    content: ImageInput  # None with content_sample_id set (or when the client sent none)
    content_sample_id: str | None
    styles: Sequence[StyleInput]  # empty for a one-style model
    alpha: float | None  # None: 1 (full style)
    preserve_color: bool
    mask: MaskInput  # None: stylise everywhere; else 1 = stylise (holes: the rectangles stylised)
    output: OutputFormat


@dataclass(slots=True)
class Stylized:
    """A Stylize result: the stored sample, its rendered output and the style's ids."""

    model: "ModelRuntime"
    record: "SampleRecord"
    payload: bytes
    shape: tuple[int, int, int]  # (3, H, W) of the image, the content's size
    style_id: str  # "" for a one-style model
    style_ids: list[str]  # each requested style's id, in order
    stored: bool  # the sample (and any new style) reached the cache


@dataclass(slots=True)
class GeneratePlan:
    """A checked Generate request: its model version, its base seed and labels settled."""

    model: "ModelRuntime"
    count: int
    seed: int
    truncation: float | None
    label: int | None
    output: OutputFormat
    seed_given: bool  # the client named the seed (only then can rendered outputs repeat)


@dataclass(slots=True)
class Samples:
    """Samples made by one request (or one chunk of a stream): their stored records, and
    ``payloads[i]`` the rendered output of ``records[i]`` (None for Encode)."""

    model: "ModelRuntime"
    records: list["SampleRecord"]
    payloads: list[bytes] | None
    stored: bool  # every record reached the sample cache
    seed: int | None = None  # the base seed (Generate, Variations, Complete)
    method: str | None = None  # Complete: "model" or "iterative"
    drawings: list | None = None  # stroke models' Interpolate: each frame's drawing, (K, 3) rows


@dataclass(slots=True)
class Rendered:
    """Images made without new samples (Reconstruct)."""

    model: "ModelRuntime"
    payloads: list[bytes]


@dataclass(slots=True)
class ModelListing:
    model: "ModelRuntime"
    latest: bool  # the newest loaded version of its name
