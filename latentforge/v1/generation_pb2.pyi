from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ModelKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    MODEL_KIND_UNSPECIFIED: _ClassVar[ModelKind]
    MODEL_KIND_GAN: _ClassVar[ModelKind]
    MODEL_KIND_VAE: _ClassVar[ModelKind]
    MODEL_KIND_AE: _ClassVar[ModelKind]
    MODEL_KIND_COMPLETION: _ClassVar[ModelKind]
    MODEL_KIND_STROKE_VAE: _ClassVar[ModelKind]
    MODEL_KIND_STYLE: _ClassVar[ModelKind]

class OutputFormat(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    OUTPUT_FORMAT_UNSPECIFIED: _ClassVar[OutputFormat]
    OUTPUT_FORMAT_PNG: _ClassVar[OutputFormat]
    OUTPUT_FORMAT_TENSOR: _ClassVar[OutputFormat]

class InterpolationMethod(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    INTERPOLATION_METHOD_UNSPECIFIED: _ClassVar[InterpolationMethod]
    INTERPOLATION_METHOD_LERP: _ClassVar[InterpolationMethod]
    INTERPOLATION_METHOD_SLERP: _ClassVar[InterpolationMethod]

class SampleOrigin(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SAMPLE_ORIGIN_UNSPECIFIED: _ClassVar[SampleOrigin]
    SAMPLE_ORIGIN_GENERATE: _ClassVar[SampleOrigin]
    SAMPLE_ORIGIN_INTERPOLATE: _ClassVar[SampleOrigin]
    SAMPLE_ORIGIN_ENCODE: _ClassVar[SampleOrigin]
    SAMPLE_ORIGIN_VARIATION: _ClassVar[SampleOrigin]
    SAMPLE_ORIGIN_COMPLETE: _ClassVar[SampleOrigin]
    SAMPLE_ORIGIN_DRAW: _ClassVar[SampleOrigin]
    SAMPLE_ORIGIN_CONTINUE: _ClassVar[SampleOrigin]
    SAMPLE_ORIGIN_STYLIZE: _ClassVar[SampleOrigin]

class CompletionMethod(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    COMPLETION_METHOD_UNSPECIFIED: _ClassVar[CompletionMethod]
    COMPLETION_METHOD_MODEL: _ClassVar[CompletionMethod]
    COMPLETION_METHOD_ITERATIVE: _ClassVar[CompletionMethod]

class PenState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PEN_STATE_UNSPECIFIED: _ClassVar[PenState]
    PEN_STATE_DOWN: _ClassVar[PenState]
    PEN_STATE_UP: _ClassVar[PenState]
MODEL_KIND_UNSPECIFIED: ModelKind
MODEL_KIND_GAN: ModelKind
MODEL_KIND_VAE: ModelKind
MODEL_KIND_AE: ModelKind
MODEL_KIND_COMPLETION: ModelKind
MODEL_KIND_STROKE_VAE: ModelKind
MODEL_KIND_STYLE: ModelKind
OUTPUT_FORMAT_UNSPECIFIED: OutputFormat
OUTPUT_FORMAT_PNG: OutputFormat
OUTPUT_FORMAT_TENSOR: OutputFormat
INTERPOLATION_METHOD_UNSPECIFIED: InterpolationMethod
INTERPOLATION_METHOD_LERP: InterpolationMethod
INTERPOLATION_METHOD_SLERP: InterpolationMethod
SAMPLE_ORIGIN_UNSPECIFIED: SampleOrigin
SAMPLE_ORIGIN_GENERATE: SampleOrigin
SAMPLE_ORIGIN_INTERPOLATE: SampleOrigin
SAMPLE_ORIGIN_ENCODE: SampleOrigin
SAMPLE_ORIGIN_VARIATION: SampleOrigin
SAMPLE_ORIGIN_COMPLETE: SampleOrigin
SAMPLE_ORIGIN_DRAW: SampleOrigin
SAMPLE_ORIGIN_CONTINUE: SampleOrigin
SAMPLE_ORIGIN_STYLIZE: SampleOrigin
COMPLETION_METHOD_UNSPECIFIED: CompletionMethod
COMPLETION_METHOD_MODEL: CompletionMethod
COMPLETION_METHOD_ITERATIVE: CompletionMethod
PEN_STATE_UNSPECIFIED: PenState
PEN_STATE_DOWN: PenState
PEN_STATE_UP: PenState

class Tensor(_message.Message):
    __slots__ = ("dtype", "shape", "data")
    DTYPE_FIELD_NUMBER: _ClassVar[int]
    SHAPE_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    dtype: str
    shape: _containers.RepeatedScalarFieldContainer[int]
    data: bytes
    def __init__(self, dtype: _Optional[str] = ..., shape: _Optional[_Iterable[int]] = ..., data: _Optional[bytes] = ...) -> None: ...

class Image(_message.Message):
    __slots__ = ("png", "tensor")
    PNG_FIELD_NUMBER: _ClassVar[int]
    TENSOR_FIELD_NUMBER: _ClassVar[int]
    png: bytes
    tensor: Tensor
    def __init__(self, png: _Optional[bytes] = ..., tensor: _Optional[_Union[Tensor, _Mapping]] = ...) -> None: ...

class OutputSpec(_message.Message):
    __slots__ = ("channels", "height", "width", "value_min", "value_max", "layout", "dtype")
    CHANNELS_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    WIDTH_FIELD_NUMBER: _ClassVar[int]
    VALUE_MIN_FIELD_NUMBER: _ClassVar[int]
    VALUE_MAX_FIELD_NUMBER: _ClassVar[int]
    LAYOUT_FIELD_NUMBER: _ClassVar[int]
    DTYPE_FIELD_NUMBER: _ClassVar[int]
    channels: int
    height: int
    width: int
    value_min: float
    value_max: float
    layout: str
    dtype: str
    def __init__(self, channels: _Optional[int] = ..., height: _Optional[int] = ..., width: _Optional[int] = ..., value_min: _Optional[float] = ..., value_max: _Optional[float] = ..., layout: _Optional[str] = ..., dtype: _Optional[str] = ...) -> None: ...

class ModelInfo(_message.Message):
    __slots__ = ("name", "version", "latest", "kind", "latent_dim", "num_classes", "output", "supported_methods", "execution_provider", "opset", "created", "quality", "class_names", "strokes")
    NAME_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    LATEST_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    LATENT_DIM_FIELD_NUMBER: _ClassVar[int]
    NUM_CLASSES_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_FIELD_NUMBER: _ClassVar[int]
    SUPPORTED_METHODS_FIELD_NUMBER: _ClassVar[int]
    EXECUTION_PROVIDER_FIELD_NUMBER: _ClassVar[int]
    OPSET_FIELD_NUMBER: _ClassVar[int]
    CREATED_FIELD_NUMBER: _ClassVar[int]
    QUALITY_FIELD_NUMBER: _ClassVar[int]
    CLASS_NAMES_FIELD_NUMBER: _ClassVar[int]
    STROKES_FIELD_NUMBER: _ClassVar[int]
    name: str
    version: int
    latest: bool
    kind: ModelKind
    latent_dim: int
    num_classes: int
    output: OutputSpec
    supported_methods: _containers.RepeatedScalarFieldContainer[str]
    execution_provider: str
    opset: int
    created: str
    quality: ModelQuality
    class_names: _containers.RepeatedScalarFieldContainer[str]
    strokes: StrokeInfo
    def __init__(self, name: _Optional[str] = ..., version: _Optional[int] = ..., latest: _Optional[bool] = ..., kind: _Optional[_Union[ModelKind, str]] = ..., latent_dim: _Optional[int] = ..., num_classes: _Optional[int] = ..., output: _Optional[_Union[OutputSpec, _Mapping]] = ..., supported_methods: _Optional[_Iterable[str]] = ..., execution_provider: _Optional[str] = ..., opset: _Optional[int] = ..., created: _Optional[str] = ..., quality: _Optional[_Union[ModelQuality, _Mapping]] = ..., class_names: _Optional[_Iterable[str]] = ..., strokes: _Optional[_Union[StrokeInfo, _Mapping]] = ...) -> None: ...

class StrokeInfo(_message.Message):
    __slots__ = ("max_steps", "mixtures", "scale", "temperature")
    MAX_STEPS_FIELD_NUMBER: _ClassVar[int]
    MIXTURES_FIELD_NUMBER: _ClassVar[int]
    SCALE_FIELD_NUMBER: _ClassVar[int]
    TEMPERATURE_FIELD_NUMBER: _ClassVar[int]
    max_steps: int
    mixtures: int
    scale: float
    temperature: float
    def __init__(self, max_steps: _Optional[int] = ..., mixtures: _Optional[int] = ..., scale: _Optional[float] = ..., temperature: _Optional[float] = ...) -> None: ...

class ModelQuality(_message.Message):
    __slots__ = ("scores", "details", "meter_version")
    class ScoresEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    class DetailsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    SCORES_FIELD_NUMBER: _ClassVar[int]
    DETAILS_FIELD_NUMBER: _ClassVar[int]
    METER_VERSION_FIELD_NUMBER: _ClassVar[int]
    scores: _containers.ScalarMap[str, float]
    details: _containers.ScalarMap[str, str]
    meter_version: str
    def __init__(self, scores: _Optional[_Mapping[str, float]] = ..., details: _Optional[_Mapping[str, str]] = ..., meter_version: _Optional[str] = ...) -> None: ...

class ListModelsRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class ListModelsResponse(_message.Message):
    __slots__ = ("models", "max_count", "max_stream_count")
    MODELS_FIELD_NUMBER: _ClassVar[int]
    MAX_COUNT_FIELD_NUMBER: _ClassVar[int]
    MAX_STREAM_COUNT_FIELD_NUMBER: _ClassVar[int]
    models: _containers.RepeatedCompositeFieldContainer[ModelInfo]
    max_count: int
    max_stream_count: int
    def __init__(self, models: _Optional[_Iterable[_Union[ModelInfo, _Mapping]]] = ..., max_count: _Optional[int] = ..., max_stream_count: _Optional[int] = ...) -> None: ...

class Sample(_message.Message):
    __slots__ = ("sample_id", "seed", "image", "latent", "label", "index", "strokes")
    SAMPLE_ID_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    IMAGE_FIELD_NUMBER: _ClassVar[int]
    LATENT_FIELD_NUMBER: _ClassVar[int]
    LABEL_FIELD_NUMBER: _ClassVar[int]
    INDEX_FIELD_NUMBER: _ClassVar[int]
    STROKES_FIELD_NUMBER: _ClassVar[int]
    sample_id: str
    seed: int
    image: Image
    latent: _containers.RepeatedScalarFieldContainer[float]
    label: int
    index: int
    strokes: StrokeDrawing
    def __init__(self, sample_id: _Optional[str] = ..., seed: _Optional[int] = ..., image: _Optional[_Union[Image, _Mapping]] = ..., latent: _Optional[_Iterable[float]] = ..., label: _Optional[int] = ..., index: _Optional[int] = ..., strokes: _Optional[_Union[StrokeDrawing, _Mapping]] = ...) -> None: ...

class GenerateRequest(_message.Message):
    __slots__ = ("model", "version", "count", "seed", "truncation", "label", "format", "return_latents")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    TRUNCATION_FIELD_NUMBER: _ClassVar[int]
    LABEL_FIELD_NUMBER: _ClassVar[int]
    FORMAT_FIELD_NUMBER: _ClassVar[int]
    RETURN_LATENTS_FIELD_NUMBER: _ClassVar[int]
    model: str
    version: int
    count: int
    seed: int
    truncation: float
    label: int
    format: OutputFormat
    return_latents: bool
    def __init__(self, model: _Optional[str] = ..., version: _Optional[int] = ..., count: _Optional[int] = ..., seed: _Optional[int] = ..., truncation: _Optional[float] = ..., label: _Optional[int] = ..., format: _Optional[_Union[OutputFormat, str]] = ..., return_latents: _Optional[bool] = ...) -> None: ...

class GenerateResponse(_message.Message):
    __slots__ = ("model", "version", "seed", "samples", "samples_stored")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    SAMPLES_FIELD_NUMBER: _ClassVar[int]
    SAMPLES_STORED_FIELD_NUMBER: _ClassVar[int]
    model: str
    version: int
    seed: int
    samples: _containers.RepeatedCompositeFieldContainer[Sample]
    samples_stored: bool
    def __init__(self, model: _Optional[str] = ..., version: _Optional[int] = ..., seed: _Optional[int] = ..., samples: _Optional[_Iterable[_Union[Sample, _Mapping]]] = ..., samples_stored: _Optional[bool] = ...) -> None: ...

class Latent(_message.Message):
    __slots__ = ("values",)
    VALUES_FIELD_NUMBER: _ClassVar[int]
    values: _containers.RepeatedScalarFieldContainer[float]
    def __init__(self, values: _Optional[_Iterable[float]] = ...) -> None: ...

class Endpoint(_message.Message):
    __slots__ = ("sample_id", "seed", "latent")
    SAMPLE_ID_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    LATENT_FIELD_NUMBER: _ClassVar[int]
    sample_id: str
    seed: int
    latent: Latent
    def __init__(self, sample_id: _Optional[str] = ..., seed: _Optional[int] = ..., latent: _Optional[_Union[Latent, _Mapping]] = ...) -> None: ...

class InterpolateRequest(_message.Message):
    __slots__ = ("model", "version", "start", "end", "steps", "method", "truncation", "label", "format", "return_latents", "seed", "temperature")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    START_FIELD_NUMBER: _ClassVar[int]
    END_FIELD_NUMBER: _ClassVar[int]
    STEPS_FIELD_NUMBER: _ClassVar[int]
    METHOD_FIELD_NUMBER: _ClassVar[int]
    TRUNCATION_FIELD_NUMBER: _ClassVar[int]
    LABEL_FIELD_NUMBER: _ClassVar[int]
    FORMAT_FIELD_NUMBER: _ClassVar[int]
    RETURN_LATENTS_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    TEMPERATURE_FIELD_NUMBER: _ClassVar[int]
    model: str
    version: int
    start: Endpoint
    end: Endpoint
    steps: int
    method: InterpolationMethod
    truncation: float
    label: int
    format: OutputFormat
    return_latents: bool
    seed: int
    temperature: float
    def __init__(self, model: _Optional[str] = ..., version: _Optional[int] = ..., start: _Optional[_Union[Endpoint, _Mapping]] = ..., end: _Optional[_Union[Endpoint, _Mapping]] = ..., steps: _Optional[int] = ..., method: _Optional[_Union[InterpolationMethod, str]] = ..., truncation: _Optional[float] = ..., label: _Optional[int] = ..., format: _Optional[_Union[OutputFormat, str]] = ..., return_latents: _Optional[bool] = ..., seed: _Optional[int] = ..., temperature: _Optional[float] = ...) -> None: ...

class InterpolateResponse(_message.Message):
    __slots__ = ("model", "version", "frames", "samples_stored")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    FRAMES_FIELD_NUMBER: _ClassVar[int]
    SAMPLES_STORED_FIELD_NUMBER: _ClassVar[int]
    model: str
    version: int
    frames: _containers.RepeatedCompositeFieldContainer[Sample]
    samples_stored: bool
    def __init__(self, model: _Optional[str] = ..., version: _Optional[int] = ..., frames: _Optional[_Iterable[_Union[Sample, _Mapping]]] = ..., samples_stored: _Optional[bool] = ...) -> None: ...

class EncodeRequest(_message.Message):
    __slots__ = ("model", "version", "images")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    IMAGES_FIELD_NUMBER: _ClassVar[int]
    model: str
    version: int
    images: _containers.RepeatedCompositeFieldContainer[Image]
    def __init__(self, model: _Optional[str] = ..., version: _Optional[int] = ..., images: _Optional[_Iterable[_Union[Image, _Mapping]]] = ...) -> None: ...

class EncodeResponse(_message.Message):
    __slots__ = ("model", "version", "samples", "samples_stored")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    SAMPLES_FIELD_NUMBER: _ClassVar[int]
    SAMPLES_STORED_FIELD_NUMBER: _ClassVar[int]
    model: str
    version: int
    samples: _containers.RepeatedCompositeFieldContainer[Sample]
    samples_stored: bool
    def __init__(self, model: _Optional[str] = ..., version: _Optional[int] = ..., samples: _Optional[_Iterable[_Union[Sample, _Mapping]]] = ..., samples_stored: _Optional[bool] = ...) -> None: ...

class ReconstructRequest(_message.Message):
    __slots__ = ("model", "version", "images", "format")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    IMAGES_FIELD_NUMBER: _ClassVar[int]
    FORMAT_FIELD_NUMBER: _ClassVar[int]
    model: str
    version: int
    images: _containers.RepeatedCompositeFieldContainer[Image]
    format: OutputFormat
    def __init__(self, model: _Optional[str] = ..., version: _Optional[int] = ..., images: _Optional[_Iterable[_Union[Image, _Mapping]]] = ..., format: _Optional[_Union[OutputFormat, str]] = ...) -> None: ...

class ReconstructResponse(_message.Message):
    __slots__ = ("model", "version", "images")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    IMAGES_FIELD_NUMBER: _ClassVar[int]
    model: str
    version: int
    images: _containers.RepeatedCompositeFieldContainer[Image]
    def __init__(self, model: _Optional[str] = ..., version: _Optional[int] = ..., images: _Optional[_Iterable[_Union[Image, _Mapping]]] = ...) -> None: ...

class VariationsRequest(_message.Message):
    __slots__ = ("sample_id", "count", "strength", "seed", "format", "return_latents")
    SAMPLE_ID_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    STRENGTH_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    FORMAT_FIELD_NUMBER: _ClassVar[int]
    RETURN_LATENTS_FIELD_NUMBER: _ClassVar[int]
    sample_id: str
    count: int
    strength: float
    seed: int
    format: OutputFormat
    return_latents: bool
    def __init__(self, sample_id: _Optional[str] = ..., count: _Optional[int] = ..., strength: _Optional[float] = ..., seed: _Optional[int] = ..., format: _Optional[_Union[OutputFormat, str]] = ..., return_latents: _Optional[bool] = ...) -> None: ...

class VariationsResponse(_message.Message):
    __slots__ = ("model", "version", "seed", "samples", "samples_stored")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    SAMPLES_FIELD_NUMBER: _ClassVar[int]
    SAMPLES_STORED_FIELD_NUMBER: _ClassVar[int]
    model: str
    version: int
    seed: int
    samples: _containers.RepeatedCompositeFieldContainer[Sample]
    samples_stored: bool
    def __init__(self, model: _Optional[str] = ..., version: _Optional[int] = ..., seed: _Optional[int] = ..., samples: _Optional[_Iterable[_Union[Sample, _Mapping]]] = ..., samples_stored: _Optional[bool] = ...) -> None: ...

class Box(_message.Message):
    __slots__ = ("x", "y", "width", "height")
    X_FIELD_NUMBER: _ClassVar[int]
    Y_FIELD_NUMBER: _ClassVar[int]
    WIDTH_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    x: int
    y: int
    width: int
    height: int
    def __init__(self, x: _Optional[int] = ..., y: _Optional[int] = ..., width: _Optional[int] = ..., height: _Optional[int] = ...) -> None: ...

class Mask(_message.Message):
    __slots__ = ("png", "tensor", "holes")
    PNG_FIELD_NUMBER: _ClassVar[int]
    TENSOR_FIELD_NUMBER: _ClassVar[int]
    HOLES_FIELD_NUMBER: _ClassVar[int]
    png: bytes
    tensor: Tensor
    holes: BoxList
    def __init__(self, png: _Optional[bytes] = ..., tensor: _Optional[_Union[Tensor, _Mapping]] = ..., holes: _Optional[_Union[BoxList, _Mapping]] = ...) -> None: ...

class BoxList(_message.Message):
    __slots__ = ("boxes",)
    BOXES_FIELD_NUMBER: _ClassVar[int]
    boxes: _containers.RepeatedCompositeFieldContainer[Box]
    def __init__(self, boxes: _Optional[_Iterable[_Union[Box, _Mapping]]] = ...) -> None: ...

class CompleteRequest(_message.Message):
    __slots__ = ("model", "version", "image", "mask", "count", "seed", "iterations", "format", "return_latents", "label")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    IMAGE_FIELD_NUMBER: _ClassVar[int]
    MASK_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    ITERATIONS_FIELD_NUMBER: _ClassVar[int]
    FORMAT_FIELD_NUMBER: _ClassVar[int]
    RETURN_LATENTS_FIELD_NUMBER: _ClassVar[int]
    LABEL_FIELD_NUMBER: _ClassVar[int]
    model: str
    version: int
    image: Image
    mask: Mask
    count: int
    seed: int
    iterations: int
    format: OutputFormat
    return_latents: bool
    label: int
    def __init__(self, model: _Optional[str] = ..., version: _Optional[int] = ..., image: _Optional[_Union[Image, _Mapping]] = ..., mask: _Optional[_Union[Mask, _Mapping]] = ..., count: _Optional[int] = ..., seed: _Optional[int] = ..., iterations: _Optional[int] = ..., format: _Optional[_Union[OutputFormat, str]] = ..., return_latents: _Optional[bool] = ..., label: _Optional[int] = ...) -> None: ...

class CompleteResponse(_message.Message):
    __slots__ = ("model", "version", "seed", "candidates", "samples_stored", "method")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    CANDIDATES_FIELD_NUMBER: _ClassVar[int]
    SAMPLES_STORED_FIELD_NUMBER: _ClassVar[int]
    METHOD_FIELD_NUMBER: _ClassVar[int]
    model: str
    version: int
    seed: int
    candidates: _containers.RepeatedCompositeFieldContainer[Sample]
    samples_stored: bool
    method: CompletionMethod
    def __init__(self, model: _Optional[str] = ..., version: _Optional[int] = ..., seed: _Optional[int] = ..., candidates: _Optional[_Iterable[_Union[Sample, _Mapping]]] = ..., samples_stored: _Optional[bool] = ..., method: _Optional[_Union[CompletionMethod, str]] = ...) -> None: ...

class StyleEntry(_message.Message):
    __slots__ = ("image", "style_id", "weight")
    IMAGE_FIELD_NUMBER: _ClassVar[int]
    STYLE_ID_FIELD_NUMBER: _ClassVar[int]
    WEIGHT_FIELD_NUMBER: _ClassVar[int]
    image: Image
    style_id: str
    weight: float
    def __init__(self, image: _Optional[_Union[Image, _Mapping]] = ..., style_id: _Optional[str] = ..., weight: _Optional[float] = ...) -> None: ...

class StylizeRequest(_message.Message):
    __slots__ = ("model", "version", "content", "content_sample_id", "styles", "alpha", "preserve_color", "mask", "format")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    CONTENT_FIELD_NUMBER: _ClassVar[int]
    CONTENT_SAMPLE_ID_FIELD_NUMBER: _ClassVar[int]
    STYLES_FIELD_NUMBER: _ClassVar[int]
    ALPHA_FIELD_NUMBER: _ClassVar[int]
    PRESERVE_COLOR_FIELD_NUMBER: _ClassVar[int]
    MASK_FIELD_NUMBER: _ClassVar[int]
    FORMAT_FIELD_NUMBER: _ClassVar[int]
    model: str
    version: int
    content: Image
    content_sample_id: str
    styles: _containers.RepeatedCompositeFieldContainer[StyleEntry]
    alpha: float
    preserve_color: bool
    mask: Mask
    format: OutputFormat
    def __init__(self, model: _Optional[str] = ..., version: _Optional[int] = ..., content: _Optional[_Union[Image, _Mapping]] = ..., content_sample_id: _Optional[str] = ..., styles: _Optional[_Iterable[_Union[StyleEntry, _Mapping]]] = ..., alpha: _Optional[float] = ..., preserve_color: _Optional[bool] = ..., mask: _Optional[_Union[Mask, _Mapping]] = ..., format: _Optional[_Union[OutputFormat, str]] = ...) -> None: ...

class StylizeResponse(_message.Message):
    __slots__ = ("model", "version", "sample", "style_id", "style_ids", "samples_stored")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    SAMPLE_FIELD_NUMBER: _ClassVar[int]
    STYLE_ID_FIELD_NUMBER: _ClassVar[int]
    STYLE_IDS_FIELD_NUMBER: _ClassVar[int]
    SAMPLES_STORED_FIELD_NUMBER: _ClassVar[int]
    model: str
    version: int
    sample: Sample
    style_id: str
    style_ids: _containers.RepeatedScalarFieldContainer[str]
    samples_stored: bool
    def __init__(self, model: _Optional[str] = ..., version: _Optional[int] = ..., sample: _Optional[_Union[Sample, _Mapping]] = ..., style_id: _Optional[str] = ..., style_ids: _Optional[_Iterable[str]] = ..., samples_stored: _Optional[bool] = ...) -> None: ...

class StrokePoint(_message.Message):
    __slots__ = ("dx", "dy", "pen")
    DX_FIELD_NUMBER: _ClassVar[int]
    DY_FIELD_NUMBER: _ClassVar[int]
    PEN_FIELD_NUMBER: _ClassVar[int]
    dx: float
    dy: float
    pen: PenState
    def __init__(self, dx: _Optional[float] = ..., dy: _Optional[float] = ..., pen: _Optional[_Union[PenState, str]] = ...) -> None: ...

class StrokeDrawing(_message.Message):
    __slots__ = ("points",)
    POINTS_FIELD_NUMBER: _ClassVar[int]
    points: _containers.RepeatedCompositeFieldContainer[StrokePoint]
    def __init__(self, points: _Optional[_Iterable[_Union[StrokePoint, _Mapping]]] = ...) -> None: ...

class GenerateStrokesRequest(_message.Message):
    __slots__ = ("model", "version", "seed", "temperature", "max_steps", "count", "svg", "png_size", "return_latents")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    TEMPERATURE_FIELD_NUMBER: _ClassVar[int]
    MAX_STEPS_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    SVG_FIELD_NUMBER: _ClassVar[int]
    PNG_SIZE_FIELD_NUMBER: _ClassVar[int]
    RETURN_LATENTS_FIELD_NUMBER: _ClassVar[int]
    model: str
    version: int
    seed: int
    temperature: float
    max_steps: int
    count: int
    svg: bool
    png_size: int
    return_latents: bool
    def __init__(self, model: _Optional[str] = ..., version: _Optional[int] = ..., seed: _Optional[int] = ..., temperature: _Optional[float] = ..., max_steps: _Optional[int] = ..., count: _Optional[int] = ..., svg: _Optional[bool] = ..., png_size: _Optional[int] = ..., return_latents: _Optional[bool] = ...) -> None: ...

class ContinueStrokesRequest(_message.Message):
    __slots__ = ("model", "version", "prefix", "sample_id", "seed", "temperature", "max_steps", "count", "svg", "png_size", "return_latents")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    PREFIX_FIELD_NUMBER: _ClassVar[int]
    SAMPLE_ID_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    TEMPERATURE_FIELD_NUMBER: _ClassVar[int]
    MAX_STEPS_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    SVG_FIELD_NUMBER: _ClassVar[int]
    PNG_SIZE_FIELD_NUMBER: _ClassVar[int]
    RETURN_LATENTS_FIELD_NUMBER: _ClassVar[int]
    model: str
    version: int
    prefix: StrokeDrawing
    sample_id: str
    seed: int
    temperature: float
    max_steps: int
    count: int
    svg: bool
    png_size: int
    return_latents: bool
    def __init__(self, model: _Optional[str] = ..., version: _Optional[int] = ..., prefix: _Optional[_Union[StrokeDrawing, _Mapping]] = ..., sample_id: _Optional[str] = ..., seed: _Optional[int] = ..., temperature: _Optional[float] = ..., max_steps: _Optional[int] = ..., count: _Optional[int] = ..., svg: _Optional[bool] = ..., png_size: _Optional[int] = ..., return_latents: _Optional[bool] = ...) -> None: ...

class StrokeEvent(_message.Message):
    __slots__ = ("index", "point", "done")
    INDEX_FIELD_NUMBER: _ClassVar[int]
    POINT_FIELD_NUMBER: _ClassVar[int]
    DONE_FIELD_NUMBER: _ClassVar[int]
    index: int
    point: StrokePoint
    done: StrokeDone
    def __init__(self, index: _Optional[int] = ..., point: _Optional[_Union[StrokePoint, _Mapping]] = ..., done: _Optional[_Union[StrokeDone, _Mapping]] = ...) -> None: ...

class StrokeDone(_message.Message):
    __slots__ = ("sample_id", "seed", "points", "ended", "svg", "png", "latent", "stored", "model", "version")
    SAMPLE_ID_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    POINTS_FIELD_NUMBER: _ClassVar[int]
    ENDED_FIELD_NUMBER: _ClassVar[int]
    SVG_FIELD_NUMBER: _ClassVar[int]
    PNG_FIELD_NUMBER: _ClassVar[int]
    LATENT_FIELD_NUMBER: _ClassVar[int]
    STORED_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    sample_id: str
    seed: int
    points: int
    ended: bool
    svg: str
    png: bytes
    latent: _containers.RepeatedScalarFieldContainer[float]
    stored: bool
    model: str
    version: int
    def __init__(self, sample_id: _Optional[str] = ..., seed: _Optional[int] = ..., points: _Optional[int] = ..., ended: _Optional[bool] = ..., svg: _Optional[str] = ..., png: _Optional[bytes] = ..., latent: _Optional[_Iterable[float]] = ..., stored: _Optional[bool] = ..., model: _Optional[str] = ..., version: _Optional[int] = ...) -> None: ...

class EncodeStrokesRequest(_message.Message):
    __slots__ = ("model", "version", "drawings")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    DRAWINGS_FIELD_NUMBER: _ClassVar[int]
    model: str
    version: int
    drawings: _containers.RepeatedCompositeFieldContainer[StrokeDrawing]
    def __init__(self, model: _Optional[str] = ..., version: _Optional[int] = ..., drawings: _Optional[_Iterable[_Union[StrokeDrawing, _Mapping]]] = ...) -> None: ...

class EncodeStrokesResponse(_message.Message):
    __slots__ = ("model", "version", "samples", "samples_stored")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    SAMPLES_FIELD_NUMBER: _ClassVar[int]
    SAMPLES_STORED_FIELD_NUMBER: _ClassVar[int]
    model: str
    version: int
    samples: _containers.RepeatedCompositeFieldContainer[Sample]
    samples_stored: bool
    def __init__(self, model: _Optional[str] = ..., version: _Optional[int] = ..., samples: _Optional[_Iterable[_Union[Sample, _Mapping]]] = ..., samples_stored: _Optional[bool] = ...) -> None: ...

class GetSampleRequest(_message.Message):
    __slots__ = ("sample_id",)
    SAMPLE_ID_FIELD_NUMBER: _ClassVar[int]
    sample_id: str
    def __init__(self, sample_id: _Optional[str] = ...) -> None: ...

class GetSampleResponse(_message.Message):
    __slots__ = ("sample_id", "model", "version", "seed", "latent", "label", "truncation", "origin", "parent_sample_id", "created_unix_s")
    SAMPLE_ID_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    LATENT_FIELD_NUMBER: _ClassVar[int]
    LABEL_FIELD_NUMBER: _ClassVar[int]
    TRUNCATION_FIELD_NUMBER: _ClassVar[int]
    ORIGIN_FIELD_NUMBER: _ClassVar[int]
    PARENT_SAMPLE_ID_FIELD_NUMBER: _ClassVar[int]
    CREATED_UNIX_S_FIELD_NUMBER: _ClassVar[int]
    sample_id: str
    model: str
    version: int
    seed: int
    latent: _containers.RepeatedScalarFieldContainer[float]
    label: int
    truncation: float
    origin: SampleOrigin
    parent_sample_id: str
    created_unix_s: float
    def __init__(self, sample_id: _Optional[str] = ..., model: _Optional[str] = ..., version: _Optional[int] = ..., seed: _Optional[int] = ..., latent: _Optional[_Iterable[float]] = ..., label: _Optional[int] = ..., truncation: _Optional[float] = ..., origin: _Optional[_Union[SampleOrigin, str]] = ..., parent_sample_id: _Optional[str] = ..., created_unix_s: _Optional[float] = ...) -> None: ...

class SessionRequest(_message.Message):
    __slots__ = ("id", "generate", "variations")
    ID_FIELD_NUMBER: _ClassVar[int]
    GENERATE_FIELD_NUMBER: _ClassVar[int]
    VARIATIONS_FIELD_NUMBER: _ClassVar[int]
    id: str
    generate: GenerateRequest
    variations: VariationsRequest
    def __init__(self, id: _Optional[str] = ..., generate: _Optional[_Union[GenerateRequest, _Mapping]] = ..., variations: _Optional[_Union[VariationsRequest, _Mapping]] = ...) -> None: ...

class SessionError(_message.Message):
    __slots__ = ("code", "message")
    CODE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    code: int
    message: str
    def __init__(self, code: _Optional[int] = ..., message: _Optional[str] = ...) -> None: ...

class SessionResponse(_message.Message):
    __slots__ = ("id", "generate", "variations", "error")
    ID_FIELD_NUMBER: _ClassVar[int]
    GENERATE_FIELD_NUMBER: _ClassVar[int]
    VARIATIONS_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    id: str
    generate: GenerateResponse
    variations: VariationsResponse
    error: SessionError
    def __init__(self, id: _Optional[str] = ..., generate: _Optional[_Union[GenerateResponse, _Mapping]] = ..., variations: _Optional[_Union[VariationsResponse, _Mapping]] = ..., error: _Optional[_Union[SessionError, _Mapping]] = ...) -> None: ...
