from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class JobState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    JOB_STATE_UNSPECIFIED: _ClassVar[JobState]
    JOB_STATE_QUEUED: _ClassVar[JobState]
    JOB_STATE_STARTING: _ClassVar[JobState]
    JOB_STATE_RUNNING: _ClassVar[JobState]
    JOB_STATE_SUCCEEDED: _ClassVar[JobState]
    JOB_STATE_FAILED: _ClassVar[JobState]
    JOB_STATE_CANCELLED: _ClassVar[JobState]

class DatasetFormat(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    DATASET_FORMAT_UNSPECIFIED: _ClassVar[DatasetFormat]
    DATASET_FORMAT_ZIP: _ClassVar[DatasetFormat]
    DATASET_FORMAT_TAR: _ClassVar[DatasetFormat]
    DATASET_FORMAT_NPZ: _ClassVar[DatasetFormat]
    DATASET_FORMAT_IMAGE: _ClassVar[DatasetFormat]
JOB_STATE_UNSPECIFIED: JobState
JOB_STATE_QUEUED: JobState
JOB_STATE_STARTING: JobState
JOB_STATE_RUNNING: JobState
JOB_STATE_SUCCEEDED: JobState
JOB_STATE_FAILED: JobState
JOB_STATE_CANCELLED: JobState
DATASET_FORMAT_UNSPECIFIED: DatasetFormat
DATASET_FORMAT_ZIP: DatasetFormat
DATASET_FORMAT_TAR: DatasetFormat
DATASET_FORMAT_NPZ: DatasetFormat
DATASET_FORMAT_IMAGE: DatasetFormat

class TrainingOptions(_message.Message):
    __slots__ = ("steps", "time_budget", "batch_size", "seed", "image_size", "channels", "min_image_size", "sample_every", "checkpoint_every", "keep_checkpoints", "grid_size", "log_every", "eval_every", "eval_samples", "threads", "device", "device_data_max_bytes", "hold_out")
    STEPS_FIELD_NUMBER: _ClassVar[int]
    TIME_BUDGET_FIELD_NUMBER: _ClassVar[int]
    BATCH_SIZE_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    IMAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    CHANNELS_FIELD_NUMBER: _ClassVar[int]
    MIN_IMAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    SAMPLE_EVERY_FIELD_NUMBER: _ClassVar[int]
    CHECKPOINT_EVERY_FIELD_NUMBER: _ClassVar[int]
    KEEP_CHECKPOINTS_FIELD_NUMBER: _ClassVar[int]
    GRID_SIZE_FIELD_NUMBER: _ClassVar[int]
    LOG_EVERY_FIELD_NUMBER: _ClassVar[int]
    EVAL_EVERY_FIELD_NUMBER: _ClassVar[int]
    EVAL_SAMPLES_FIELD_NUMBER: _ClassVar[int]
    THREADS_FIELD_NUMBER: _ClassVar[int]
    DEVICE_FIELD_NUMBER: _ClassVar[int]
    DEVICE_DATA_MAX_BYTES_FIELD_NUMBER: _ClassVar[int]
    HOLD_OUT_FIELD_NUMBER: _ClassVar[int]
    steps: int
    time_budget: str
    batch_size: int
    seed: int
    image_size: int
    channels: int
    min_image_size: int
    sample_every: int
    checkpoint_every: int
    keep_checkpoints: int
    grid_size: int
    log_every: int
    eval_every: int
    eval_samples: int
    threads: int
    device: str
    device_data_max_bytes: int
    hold_out: float
    def __init__(self, steps: _Optional[int] = ..., time_budget: _Optional[str] = ..., batch_size: _Optional[int] = ..., seed: _Optional[int] = ..., image_size: _Optional[int] = ..., channels: _Optional[int] = ..., min_image_size: _Optional[int] = ..., sample_every: _Optional[int] = ..., checkpoint_every: _Optional[int] = ..., keep_checkpoints: _Optional[int] = ..., grid_size: _Optional[int] = ..., log_every: _Optional[int] = ..., eval_every: _Optional[int] = ..., eval_samples: _Optional[int] = ..., threads: _Optional[int] = ..., device: _Optional[str] = ..., device_data_max_bytes: _Optional[int] = ..., hold_out: _Optional[float] = ...) -> None: ...

class DCGANOptions(_message.Message):
    __slots__ = ("latent_dim", "width", "gan_loss", "lr", "lr_d", "beta1", "beta2", "grad_clip", "ema_decay", "spectral_norm", "r1_gamma", "r1_every", "augment", "conditional")
    LATENT_DIM_FIELD_NUMBER: _ClassVar[int]
    WIDTH_FIELD_NUMBER: _ClassVar[int]
    GAN_LOSS_FIELD_NUMBER: _ClassVar[int]
    LR_FIELD_NUMBER: _ClassVar[int]
    LR_D_FIELD_NUMBER: _ClassVar[int]
    BETA1_FIELD_NUMBER: _ClassVar[int]
    BETA2_FIELD_NUMBER: _ClassVar[int]
    GRAD_CLIP_FIELD_NUMBER: _ClassVar[int]
    EMA_DECAY_FIELD_NUMBER: _ClassVar[int]
    SPECTRAL_NORM_FIELD_NUMBER: _ClassVar[int]
    R1_GAMMA_FIELD_NUMBER: _ClassVar[int]
    R1_EVERY_FIELD_NUMBER: _ClassVar[int]
    AUGMENT_FIELD_NUMBER: _ClassVar[int]
    CONDITIONAL_FIELD_NUMBER: _ClassVar[int]
    latent_dim: int
    width: int
    gan_loss: str
    lr: float
    lr_d: float
    beta1: float
    beta2: float
    grad_clip: float
    ema_decay: float
    spectral_norm: bool
    r1_gamma: float
    r1_every: int
    augment: str
    conditional: bool
    def __init__(self, latent_dim: _Optional[int] = ..., width: _Optional[int] = ..., gan_loss: _Optional[str] = ..., lr: _Optional[float] = ..., lr_d: _Optional[float] = ..., beta1: _Optional[float] = ..., beta2: _Optional[float] = ..., grad_clip: _Optional[float] = ..., ema_decay: _Optional[float] = ..., spectral_norm: _Optional[bool] = ..., r1_gamma: _Optional[float] = ..., r1_every: _Optional[int] = ..., augment: _Optional[str] = ..., conditional: _Optional[bool] = ...) -> None: ...

class VAEOptions(_message.Message):
    __slots__ = ("latent_dim", "width", "recon", "conditional", "beta", "kl_warmup_steps", "perceptual", "temperature", "lr", "beta1", "beta2", "grad_clip", "prior", "prior_components")
    LATENT_DIM_FIELD_NUMBER: _ClassVar[int]
    WIDTH_FIELD_NUMBER: _ClassVar[int]
    RECON_FIELD_NUMBER: _ClassVar[int]
    CONDITIONAL_FIELD_NUMBER: _ClassVar[int]
    BETA_FIELD_NUMBER: _ClassVar[int]
    KL_WARMUP_STEPS_FIELD_NUMBER: _ClassVar[int]
    PERCEPTUAL_FIELD_NUMBER: _ClassVar[int]
    TEMPERATURE_FIELD_NUMBER: _ClassVar[int]
    LR_FIELD_NUMBER: _ClassVar[int]
    BETA1_FIELD_NUMBER: _ClassVar[int]
    BETA2_FIELD_NUMBER: _ClassVar[int]
    GRAD_CLIP_FIELD_NUMBER: _ClassVar[int]
    PRIOR_FIELD_NUMBER: _ClassVar[int]
    PRIOR_COMPONENTS_FIELD_NUMBER: _ClassVar[int]
    latent_dim: int
    width: int
    recon: str
    conditional: bool
    beta: float
    kl_warmup_steps: int
    perceptual: float
    temperature: float
    lr: float
    beta1: float
    beta2: float
    grad_clip: float
    prior: str
    prior_components: int
    def __init__(self, latent_dim: _Optional[int] = ..., width: _Optional[int] = ..., recon: _Optional[str] = ..., conditional: _Optional[bool] = ..., beta: _Optional[float] = ..., kl_warmup_steps: _Optional[int] = ..., perceptual: _Optional[float] = ..., temperature: _Optional[float] = ..., lr: _Optional[float] = ..., beta1: _Optional[float] = ..., beta2: _Optional[float] = ..., grad_clip: _Optional[float] = ..., prior: _Optional[str] = ..., prior_components: _Optional[int] = ...) -> None: ...

class AEOptions(_message.Message):
    __slots__ = ("latent_dim", "width", "recon", "denoise_std", "lr", "beta1", "beta2", "grad_clip")
    LATENT_DIM_FIELD_NUMBER: _ClassVar[int]
    WIDTH_FIELD_NUMBER: _ClassVar[int]
    RECON_FIELD_NUMBER: _ClassVar[int]
    DENOISE_STD_FIELD_NUMBER: _ClassVar[int]
    LR_FIELD_NUMBER: _ClassVar[int]
    BETA1_FIELD_NUMBER: _ClassVar[int]
    BETA2_FIELD_NUMBER: _ClassVar[int]
    GRAD_CLIP_FIELD_NUMBER: _ClassVar[int]
    latent_dim: int
    width: int
    recon: str
    denoise_std: float
    lr: float
    beta1: float
    beta2: float
    grad_clip: float
    def __init__(self, latent_dim: _Optional[int] = ..., width: _Optional[int] = ..., recon: _Optional[str] = ..., denoise_std: _Optional[float] = ..., lr: _Optional[float] = ..., beta1: _Optional[float] = ..., beta2: _Optional[float] = ..., grad_clip: _Optional[float] = ...) -> None: ...

class CompletionOptions(_message.Message):
    __slots__ = ("latent_dim", "width", "z_inject", "candidates", "recon_weight", "adv_weight", "mode_seeking", "gan_loss", "lr", "lr_d", "beta1", "beta2", "grad_clip", "ema_decay", "first_candidate", "mode_weight")
    LATENT_DIM_FIELD_NUMBER: _ClassVar[int]
    WIDTH_FIELD_NUMBER: _ClassVar[int]
    Z_INJECT_FIELD_NUMBER: _ClassVar[int]
    CANDIDATES_FIELD_NUMBER: _ClassVar[int]
    RECON_WEIGHT_FIELD_NUMBER: _ClassVar[int]
    ADV_WEIGHT_FIELD_NUMBER: _ClassVar[int]
    MODE_SEEKING_FIELD_NUMBER: _ClassVar[int]
    GAN_LOSS_FIELD_NUMBER: _ClassVar[int]
    LR_FIELD_NUMBER: _ClassVar[int]
    LR_D_FIELD_NUMBER: _ClassVar[int]
    BETA1_FIELD_NUMBER: _ClassVar[int]
    BETA2_FIELD_NUMBER: _ClassVar[int]
    GRAD_CLIP_FIELD_NUMBER: _ClassVar[int]
    EMA_DECAY_FIELD_NUMBER: _ClassVar[int]
    FIRST_CANDIDATE_FIELD_NUMBER: _ClassVar[int]
    MODE_WEIGHT_FIELD_NUMBER: _ClassVar[int]
    latent_dim: int
    width: int
    z_inject: str
    candidates: int
    recon_weight: float
    adv_weight: float
    mode_seeking: float
    gan_loss: str
    lr: float
    lr_d: float
    beta1: float
    beta2: float
    grad_clip: float
    ema_decay: float
    first_candidate: str
    mode_weight: float
    def __init__(self, latent_dim: _Optional[int] = ..., width: _Optional[int] = ..., z_inject: _Optional[str] = ..., candidates: _Optional[int] = ..., recon_weight: _Optional[float] = ..., adv_weight: _Optional[float] = ..., mode_seeking: _Optional[float] = ..., gan_loss: _Optional[str] = ..., lr: _Optional[float] = ..., lr_d: _Optional[float] = ..., beta1: _Optional[float] = ..., beta2: _Optional[float] = ..., grad_clip: _Optional[float] = ..., ema_decay: _Optional[float] = ..., first_candidate: _Optional[str] = ..., mode_weight: _Optional[float] = ...) -> None: ...

class SketchRNNOptions(_message.Message):
    __slots__ = ("latent_dim", "enc_rnn", "dec_rnn", "mixtures", "unconditional", "layer_norm", "recurrent_dropout", "kl_weight", "kl_weight_start", "kl_decay_rate", "kl_min", "lr", "lr_decay", "min_lr", "grad_clip_value", "scale_augment", "drop_points", "grid_temperature", "pen_loss", "length_buckets")
    LATENT_DIM_FIELD_NUMBER: _ClassVar[int]
    ENC_RNN_FIELD_NUMBER: _ClassVar[int]
    DEC_RNN_FIELD_NUMBER: _ClassVar[int]
    MIXTURES_FIELD_NUMBER: _ClassVar[int]
    UNCONDITIONAL_FIELD_NUMBER: _ClassVar[int]
    LAYER_NORM_FIELD_NUMBER: _ClassVar[int]
    RECURRENT_DROPOUT_FIELD_NUMBER: _ClassVar[int]
    KL_WEIGHT_FIELD_NUMBER: _ClassVar[int]
    KL_WEIGHT_START_FIELD_NUMBER: _ClassVar[int]
    KL_DECAY_RATE_FIELD_NUMBER: _ClassVar[int]
    KL_MIN_FIELD_NUMBER: _ClassVar[int]
    LR_FIELD_NUMBER: _ClassVar[int]
    LR_DECAY_FIELD_NUMBER: _ClassVar[int]
    MIN_LR_FIELD_NUMBER: _ClassVar[int]
    GRAD_CLIP_VALUE_FIELD_NUMBER: _ClassVar[int]
    SCALE_AUGMENT_FIELD_NUMBER: _ClassVar[int]
    DROP_POINTS_FIELD_NUMBER: _ClassVar[int]
    GRID_TEMPERATURE_FIELD_NUMBER: _ClassVar[int]
    PEN_LOSS_FIELD_NUMBER: _ClassVar[int]
    LENGTH_BUCKETS_FIELD_NUMBER: _ClassVar[int]
    latent_dim: int
    enc_rnn: int
    dec_rnn: int
    mixtures: int
    unconditional: bool
    layer_norm: bool
    recurrent_dropout: float
    kl_weight: float
    kl_weight_start: float
    kl_decay_rate: float
    kl_min: float
    lr: float
    lr_decay: float
    min_lr: float
    grad_clip_value: float
    scale_augment: float
    drop_points: float
    grid_temperature: float
    pen_loss: str
    length_buckets: int
    def __init__(self, latent_dim: _Optional[int] = ..., enc_rnn: _Optional[int] = ..., dec_rnn: _Optional[int] = ..., mixtures: _Optional[int] = ..., unconditional: _Optional[bool] = ..., layer_norm: _Optional[bool] = ..., recurrent_dropout: _Optional[float] = ..., kl_weight: _Optional[float] = ..., kl_weight_start: _Optional[float] = ..., kl_decay_rate: _Optional[float] = ..., kl_min: _Optional[float] = ..., lr: _Optional[float] = ..., lr_decay: _Optional[float] = ..., min_lr: _Optional[float] = ..., grad_clip_value: _Optional[float] = ..., scale_augment: _Optional[float] = ..., drop_points: _Optional[float] = ..., grid_temperature: _Optional[float] = ..., pen_loss: _Optional[str] = ..., length_buckets: _Optional[int] = ...) -> None: ...

class AdaINOptions(_message.Message):
    __slots__ = ("lr", "beta1", "beta2", "encoder_seed", "width", "levels", "style_weight", "content_weight", "alpha_blend", "styles", "recon_weight", "skips", "content_levels", "colour_stats")
    LR_FIELD_NUMBER: _ClassVar[int]
    BETA1_FIELD_NUMBER: _ClassVar[int]
    BETA2_FIELD_NUMBER: _ClassVar[int]
    ENCODER_SEED_FIELD_NUMBER: _ClassVar[int]
    WIDTH_FIELD_NUMBER: _ClassVar[int]
    LEVELS_FIELD_NUMBER: _ClassVar[int]
    STYLE_WEIGHT_FIELD_NUMBER: _ClassVar[int]
    CONTENT_WEIGHT_FIELD_NUMBER: _ClassVar[int]
    ALPHA_BLEND_FIELD_NUMBER: _ClassVar[int]
    STYLES_FIELD_NUMBER: _ClassVar[int]
    RECON_WEIGHT_FIELD_NUMBER: _ClassVar[int]
    SKIPS_FIELD_NUMBER: _ClassVar[int]
    CONTENT_LEVELS_FIELD_NUMBER: _ClassVar[int]
    COLOUR_STATS_FIELD_NUMBER: _ClassVar[int]
    lr: float
    beta1: float
    beta2: float
    encoder_seed: int
    width: int
    levels: int
    style_weight: float
    content_weight: float
    alpha_blend: str
    styles: str
    recon_weight: float
    skips: bool
    content_levels: int
    colour_stats: bool
    def __init__(self, lr: _Optional[float] = ..., beta1: _Optional[float] = ..., beta2: _Optional[float] = ..., encoder_seed: _Optional[int] = ..., width: _Optional[int] = ..., levels: _Optional[int] = ..., style_weight: _Optional[float] = ..., content_weight: _Optional[float] = ..., alpha_blend: _Optional[str] = ..., styles: _Optional[str] = ..., recon_weight: _Optional[float] = ..., skips: _Optional[bool] = ..., content_levels: _Optional[int] = ..., colour_stats: _Optional[bool] = ...) -> None: ...

class StyleOptions(_message.Message):
    __slots__ = ("lr", "beta1", "beta2", "encoder_seed", "encoder_width", "width", "blocks", "style_loss", "style_weight", "content_weight", "tv_weight", "content")
    LR_FIELD_NUMBER: _ClassVar[int]
    BETA1_FIELD_NUMBER: _ClassVar[int]
    BETA2_FIELD_NUMBER: _ClassVar[int]
    ENCODER_SEED_FIELD_NUMBER: _ClassVar[int]
    ENCODER_WIDTH_FIELD_NUMBER: _ClassVar[int]
    WIDTH_FIELD_NUMBER: _ClassVar[int]
    BLOCKS_FIELD_NUMBER: _ClassVar[int]
    STYLE_LOSS_FIELD_NUMBER: _ClassVar[int]
    STYLE_WEIGHT_FIELD_NUMBER: _ClassVar[int]
    CONTENT_WEIGHT_FIELD_NUMBER: _ClassVar[int]
    TV_WEIGHT_FIELD_NUMBER: _ClassVar[int]
    CONTENT_FIELD_NUMBER: _ClassVar[int]
    lr: float
    beta1: float
    beta2: float
    encoder_seed: int
    encoder_width: int
    width: int
    blocks: int
    style_loss: str
    style_weight: float
    content_weight: float
    tv_weight: float
    content: str
    def __init__(self, lr: _Optional[float] = ..., beta1: _Optional[float] = ..., beta2: _Optional[float] = ..., encoder_seed: _Optional[int] = ..., encoder_width: _Optional[int] = ..., width: _Optional[int] = ..., blocks: _Optional[int] = ..., style_loss: _Optional[str] = ..., style_weight: _Optional[float] = ..., content_weight: _Optional[float] = ..., tv_weight: _Optional[float] = ..., content: _Optional[str] = ...) -> None: ...

class JobSpec(_message.Message):
    __slots__ = ("family", "dataset", "options", "dcgan", "vae", "ae", "completion", "sketch_rnn", "adain", "style", "model_name", "publish", "idempotency_key", "max_retries", "nproc")
    FAMILY_FIELD_NUMBER: _ClassVar[int]
    DATASET_FIELD_NUMBER: _ClassVar[int]
    OPTIONS_FIELD_NUMBER: _ClassVar[int]
    DCGAN_FIELD_NUMBER: _ClassVar[int]
    VAE_FIELD_NUMBER: _ClassVar[int]
    AE_FIELD_NUMBER: _ClassVar[int]
    COMPLETION_FIELD_NUMBER: _ClassVar[int]
    SKETCH_RNN_FIELD_NUMBER: _ClassVar[int]
    ADAIN_FIELD_NUMBER: _ClassVar[int]
    STYLE_FIELD_NUMBER: _ClassVar[int]
    MODEL_NAME_FIELD_NUMBER: _ClassVar[int]
    PUBLISH_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    MAX_RETRIES_FIELD_NUMBER: _ClassVar[int]
    NPROC_FIELD_NUMBER: _ClassVar[int]
    family: str
    dataset: str
    options: TrainingOptions
    dcgan: DCGANOptions
    vae: VAEOptions
    ae: AEOptions
    completion: CompletionOptions
    sketch_rnn: SketchRNNOptions
    adain: AdaINOptions
    style: StyleOptions
    model_name: str
    publish: bool
    idempotency_key: str
    max_retries: int
    nproc: int
    def __init__(self, family: _Optional[str] = ..., dataset: _Optional[str] = ..., options: _Optional[_Union[TrainingOptions, _Mapping]] = ..., dcgan: _Optional[_Union[DCGANOptions, _Mapping]] = ..., vae: _Optional[_Union[VAEOptions, _Mapping]] = ..., ae: _Optional[_Union[AEOptions, _Mapping]] = ..., completion: _Optional[_Union[CompletionOptions, _Mapping]] = ..., sketch_rnn: _Optional[_Union[SketchRNNOptions, _Mapping]] = ..., adain: _Optional[_Union[AdaINOptions, _Mapping]] = ..., style: _Optional[_Union[StyleOptions, _Mapping]] = ..., model_name: _Optional[str] = ..., publish: _Optional[bool] = ..., idempotency_key: _Optional[str] = ..., max_retries: _Optional[int] = ..., nproc: _Optional[int] = ...) -> None: ...

class Attempt(_message.Message):
    __slots__ = ("number", "reason", "from_step", "started_unix_s", "finished_unix_s", "exit_code", "outcome")
    NUMBER_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    FROM_STEP_FIELD_NUMBER: _ClassVar[int]
    STARTED_UNIX_S_FIELD_NUMBER: _ClassVar[int]
    FINISHED_UNIX_S_FIELD_NUMBER: _ClassVar[int]
    EXIT_CODE_FIELD_NUMBER: _ClassVar[int]
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    number: int
    reason: str
    from_step: int
    started_unix_s: float
    finished_unix_s: float
    exit_code: int
    outcome: str
    def __init__(self, number: _Optional[int] = ..., reason: _Optional[str] = ..., from_step: _Optional[int] = ..., started_unix_s: _Optional[float] = ..., finished_unix_s: _Optional[float] = ..., exit_code: _Optional[int] = ..., outcome: _Optional[str] = ...) -> None: ...

class PublishedModel(_message.Message):
    __slots__ = ("name", "version", "quality")
    class QualityEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    NAME_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    QUALITY_FIELD_NUMBER: _ClassVar[int]
    name: str
    version: int
    quality: _containers.ScalarMap[str, float]
    def __init__(self, name: _Optional[str] = ..., version: _Optional[int] = ..., quality: _Optional[_Mapping[str, float]] = ...) -> None: ...

class Job(_message.Message):
    __slots__ = ("job_id", "spec", "state", "reason", "step", "total_steps", "created_unix_s", "started_unix_s", "finished_unix_s", "attempts", "published", "last_seq", "cancel_requested")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    SPEC_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    STEP_FIELD_NUMBER: _ClassVar[int]
    TOTAL_STEPS_FIELD_NUMBER: _ClassVar[int]
    CREATED_UNIX_S_FIELD_NUMBER: _ClassVar[int]
    STARTED_UNIX_S_FIELD_NUMBER: _ClassVar[int]
    FINISHED_UNIX_S_FIELD_NUMBER: _ClassVar[int]
    ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    PUBLISHED_FIELD_NUMBER: _ClassVar[int]
    LAST_SEQ_FIELD_NUMBER: _ClassVar[int]
    CANCEL_REQUESTED_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    spec: JobSpec
    state: JobState
    reason: str
    step: int
    total_steps: int
    created_unix_s: float
    started_unix_s: float
    finished_unix_s: float
    attempts: _containers.RepeatedCompositeFieldContainer[Attempt]
    published: PublishedModel
    last_seq: int
    cancel_requested: bool
    def __init__(self, job_id: _Optional[str] = ..., spec: _Optional[_Union[JobSpec, _Mapping]] = ..., state: _Optional[_Union[JobState, str]] = ..., reason: _Optional[str] = ..., step: _Optional[int] = ..., total_steps: _Optional[int] = ..., created_unix_s: _Optional[float] = ..., started_unix_s: _Optional[float] = ..., finished_unix_s: _Optional[float] = ..., attempts: _Optional[_Iterable[_Union[Attempt, _Mapping]]] = ..., published: _Optional[_Union[PublishedModel, _Mapping]] = ..., last_seq: _Optional[int] = ..., cancel_requested: _Optional[bool] = ...) -> None: ...

class GetJobRequest(_message.Message):
    __slots__ = ("job_id",)
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    def __init__(self, job_id: _Optional[str] = ...) -> None: ...

class ListJobsRequest(_message.Message):
    __slots__ = ("state", "model_name", "page_size", "page_token")
    STATE_FIELD_NUMBER: _ClassVar[int]
    MODEL_NAME_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    state: JobState
    model_name: str
    page_size: int
    page_token: str
    def __init__(self, state: _Optional[_Union[JobState, str]] = ..., model_name: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListJobsResponse(_message.Message):
    __slots__ = ("jobs", "next_page_token")
    JOBS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    jobs: _containers.RepeatedCompositeFieldContainer[Job]
    next_page_token: str
    def __init__(self, jobs: _Optional[_Iterable[_Union[Job, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class CancelJobRequest(_message.Message):
    __slots__ = ("job_id",)
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    def __init__(self, job_id: _Optional[str] = ...) -> None: ...

class ResumeJobRequest(_message.Message):
    __slots__ = ("job_id",)
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    def __init__(self, job_id: _Optional[str] = ...) -> None: ...

class WatchJobRequest(_message.Message):
    __slots__ = ("job_id", "from_seq")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    FROM_SEQ_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    from_seq: int
    def __init__(self, job_id: _Optional[str] = ..., from_seq: _Optional[int] = ...) -> None: ...

class StateChange(_message.Message):
    __slots__ = ("state", "reason", "attempt")
    STATE_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    state: JobState
    reason: str
    attempt: int
    def __init__(self, state: _Optional[_Union[JobState, str]] = ..., reason: _Optional[str] = ..., attempt: _Optional[int] = ...) -> None: ...

class Progress(_message.Message):
    __slots__ = ("step", "total_steps", "steps_per_second", "eta_seconds", "losses", "epoch")
    class LossesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    STEP_FIELD_NUMBER: _ClassVar[int]
    TOTAL_STEPS_FIELD_NUMBER: _ClassVar[int]
    STEPS_PER_SECOND_FIELD_NUMBER: _ClassVar[int]
    ETA_SECONDS_FIELD_NUMBER: _ClassVar[int]
    LOSSES_FIELD_NUMBER: _ClassVar[int]
    EPOCH_FIELD_NUMBER: _ClassVar[int]
    step: int
    total_steps: int
    steps_per_second: float
    eta_seconds: float
    losses: _containers.ScalarMap[str, float]
    epoch: int
    def __init__(self, step: _Optional[int] = ..., total_steps: _Optional[int] = ..., steps_per_second: _Optional[float] = ..., eta_seconds: _Optional[float] = ..., losses: _Optional[_Mapping[str, float]] = ..., epoch: _Optional[int] = ...) -> None: ...

class Evaluation(_message.Message):
    __slots__ = ("step", "scores")
    class ScoresEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    STEP_FIELD_NUMBER: _ClassVar[int]
    SCORES_FIELD_NUMBER: _ClassVar[int]
    step: int
    scores: _containers.ScalarMap[str, float]
    def __init__(self, step: _Optional[int] = ..., scores: _Optional[_Mapping[str, float]] = ...) -> None: ...

class SampleGrid(_message.Message):
    __slots__ = ("step", "name", "png")
    STEP_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    PNG_FIELD_NUMBER: _ClassVar[int]
    step: int
    name: str
    png: bytes
    def __init__(self, step: _Optional[int] = ..., name: _Optional[str] = ..., png: _Optional[bytes] = ...) -> None: ...

class LogLine(_message.Message):
    __slots__ = ("level", "text", "attempt")
    LEVEL_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    level: str
    text: str
    attempt: int
    def __init__(self, level: _Optional[str] = ..., text: _Optional[str] = ..., attempt: _Optional[int] = ...) -> None: ...

class CheckpointWritten(_message.Message):
    __slots__ = ("step", "name")
    STEP_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    step: int
    name: str
    def __init__(self, step: _Optional[int] = ..., name: _Optional[str] = ...) -> None: ...

class JobEvent(_message.Message):
    __slots__ = ("seq", "time_unix_s", "job_id", "state", "progress", "evaluation", "grid", "log", "checkpoint", "published")
    SEQ_FIELD_NUMBER: _ClassVar[int]
    TIME_UNIX_S_FIELD_NUMBER: _ClassVar[int]
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    PROGRESS_FIELD_NUMBER: _ClassVar[int]
    EVALUATION_FIELD_NUMBER: _ClassVar[int]
    GRID_FIELD_NUMBER: _ClassVar[int]
    LOG_FIELD_NUMBER: _ClassVar[int]
    CHECKPOINT_FIELD_NUMBER: _ClassVar[int]
    PUBLISHED_FIELD_NUMBER: _ClassVar[int]
    seq: int
    time_unix_s: float
    job_id: str
    state: StateChange
    progress: Progress
    evaluation: Evaluation
    grid: SampleGrid
    log: LogLine
    checkpoint: CheckpointWritten
    published: PublishedModel
    def __init__(self, seq: _Optional[int] = ..., time_unix_s: _Optional[float] = ..., job_id: _Optional[str] = ..., state: _Optional[_Union[StateChange, _Mapping]] = ..., progress: _Optional[_Union[Progress, _Mapping]] = ..., evaluation: _Optional[_Union[Evaluation, _Mapping]] = ..., grid: _Optional[_Union[SampleGrid, _Mapping]] = ..., log: _Optional[_Union[LogLine, _Mapping]] = ..., checkpoint: _Optional[_Union[CheckpointWritten, _Mapping]] = ..., published: _Optional[_Union[PublishedModel, _Mapping]] = ...) -> None: ...

class DatasetHeader(_message.Message):
    __slots__ = ("name", "format", "sha256", "size_bytes")
    NAME_FIELD_NUMBER: _ClassVar[int]
    FORMAT_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    SIZE_BYTES_FIELD_NUMBER: _ClassVar[int]
    name: str
    format: DatasetFormat
    sha256: str
    size_bytes: int
    def __init__(self, name: _Optional[str] = ..., format: _Optional[_Union[DatasetFormat, str]] = ..., sha256: _Optional[str] = ..., size_bytes: _Optional[int] = ...) -> None: ...

class DatasetChunk(_message.Message):
    __slots__ = ("header", "data")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    header: DatasetHeader
    data: bytes
    def __init__(self, header: _Optional[_Union[DatasetHeader, _Mapping]] = ..., data: _Optional[bytes] = ...) -> None: ...

class Dataset(_message.Message):
    __slots__ = ("name", "dataset_id", "sha256", "format", "size_bytes", "count", "shape", "class_names", "skipped_files", "created_unix_s")
    NAME_FIELD_NUMBER: _ClassVar[int]
    DATASET_ID_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    FORMAT_FIELD_NUMBER: _ClassVar[int]
    SIZE_BYTES_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    SHAPE_FIELD_NUMBER: _ClassVar[int]
    CLASS_NAMES_FIELD_NUMBER: _ClassVar[int]
    SKIPPED_FILES_FIELD_NUMBER: _ClassVar[int]
    CREATED_UNIX_S_FIELD_NUMBER: _ClassVar[int]
    name: str
    dataset_id: str
    sha256: str
    format: DatasetFormat
    size_bytes: int
    count: int
    shape: _containers.RepeatedScalarFieldContainer[int]
    class_names: _containers.RepeatedScalarFieldContainer[str]
    skipped_files: int
    created_unix_s: float
    def __init__(self, name: _Optional[str] = ..., dataset_id: _Optional[str] = ..., sha256: _Optional[str] = ..., format: _Optional[_Union[DatasetFormat, str]] = ..., size_bytes: _Optional[int] = ..., count: _Optional[int] = ..., shape: _Optional[_Iterable[int]] = ..., class_names: _Optional[_Iterable[str]] = ..., skipped_files: _Optional[int] = ..., created_unix_s: _Optional[float] = ...) -> None: ...

class ListDatasetsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListDatasetsResponse(_message.Message):
    __slots__ = ("datasets", "builtin")
    DATASETS_FIELD_NUMBER: _ClassVar[int]
    BUILTIN_FIELD_NUMBER: _ClassVar[int]
    datasets: _containers.RepeatedCompositeFieldContainer[Dataset]
    builtin: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, datasets: _Optional[_Iterable[_Union[Dataset, _Mapping]]] = ..., builtin: _Optional[_Iterable[str]] = ...) -> None: ...

class DeleteDatasetRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class ListFamiliesRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class TrainingOption(_message.Message):
    __slots__ = ("name", "type", "default_value", "help", "choices")
    NAME_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    DEFAULT_VALUE_FIELD_NUMBER: _ClassVar[int]
    HELP_FIELD_NUMBER: _ClassVar[int]
    CHOICES_FIELD_NUMBER: _ClassVar[int]
    name: str
    type: str
    default_value: str
    help: str
    choices: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, name: _Optional[str] = ..., type: _Optional[str] = ..., default_value: _Optional[str] = ..., help: _Optional[str] = ..., choices: _Optional[_Iterable[str]] = ...) -> None: ...

class FamilyInfo(_message.Message):
    __slots__ = ("name", "summary", "data", "options_field", "options", "data_kinds")
    NAME_FIELD_NUMBER: _ClassVar[int]
    SUMMARY_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    OPTIONS_FIELD_FIELD_NUMBER: _ClassVar[int]
    OPTIONS_FIELD_NUMBER: _ClassVar[int]
    DATA_KINDS_FIELD_NUMBER: _ClassVar[int]
    name: str
    summary: str
    data: str
    options_field: str
    options: _containers.RepeatedCompositeFieldContainer[TrainingOption]
    data_kinds: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, name: _Optional[str] = ..., summary: _Optional[str] = ..., data: _Optional[str] = ..., options_field: _Optional[str] = ..., options: _Optional[_Iterable[_Union[TrainingOption, _Mapping]]] = ..., data_kinds: _Optional[_Iterable[str]] = ...) -> None: ...

class ListFamiliesResponse(_message.Message):
    __slots__ = ("common", "families")
    COMMON_FIELD_NUMBER: _ClassVar[int]
    FAMILIES_FIELD_NUMBER: _ClassVar[int]
    common: _containers.RepeatedCompositeFieldContainer[TrainingOption]
    families: _containers.RepeatedCompositeFieldContainer[FamilyInfo]
    def __init__(self, common: _Optional[_Iterable[_Union[TrainingOption, _Mapping]]] = ..., families: _Optional[_Iterable[_Union[FamilyInfo, _Mapping]]] = ...) -> None: ...
