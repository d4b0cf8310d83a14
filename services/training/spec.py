"""A training job's spec, transport-neutral, and its one conversion to the trainer's options.

``JobSpec`` is what a client asks for: the family, the data set, the common options and the
family's own (each as the trainer names it), where to publish, and how the job runs. The
options are the trainer's typed options (``trainer.config.TrainConfig`` and the family's
dataclass in ``trainer.families.configs``); ``train_config`` is the one place a spec becomes
a ``TrainConfig``, checked with the trainer's own rules. ``SERVICE_MANAGED`` names the
options a client does not set directly, and why.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Mapping

from services.errors import InvalidArgument

# Options of `latentforge train` that a JobSpec does not carry as options, and why.
SERVICE_MANAGED = {
    "model": "JobSpec.family",
    "data": "JobSpec.dataset",
    "progress": "the service reads metrics.jsonl; a job has no terminal progress bar",
    "progress_every": "the service reads metrics.jsonl; a job has no terminal progress bar",
}

IDEMPOTENCY_KEY_MAX = 128


@dataclass(frozen=True)
class JobSpec:
    """What to train on what, with which options, and where to publish it."""

    family: str
    dataset: str
    options: dict[str, Any] = field(default_factory=dict)  # common options that are set, by name
    family_options: dict[str, Any] = field(default_factory=dict)  # the family's options that are set
    model_name: str = ""
    publish: bool = False
    idempotency_key: str = ""
    max_retries: int = 0
    nproc: int = 1

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "JobSpec":
        return cls(**data)


def train_config(spec: JobSpec, data: str) -> Any:
    """The trainer's ``TrainConfig`` of a job (``data``: what --data reads), validated;
    InvalidArgument names each bad option."""
    from trainer.config import TrainConfig
    from trainer.families import FAMILIES

    if spec.family not in FAMILIES:
        raise InvalidArgument(f"unknown family {spec.family!r}; use one of {', '.join(FAMILIES)}")
    managed = sorted(set(spec.options) & set(SERVICE_MANAGED))
    if managed:
        raise InvalidArgument(f"options {', '.join(managed)} are not job options ("
                              + "; ".join(f"{k}: {SERVICE_MANAGED[k]}" for k in managed) + ")")
    try:
        cfg = TrainConfig.from_layers({"model": spec.family, "data": data, **spec.options,
                                       spec.family: dict(spec.family_options), "progress": False})
        cfg.validate()
    except (TypeError, ValueError) as exc:
        raise InvalidArgument(f"bad job spec: {exc}") from None
    return cfg


def trainer_config_file(cfg: Any) -> dict[str, Any]:
    """The nested config a job's ``latentforge train --config`` reads (the run folder is a flag)."""
    data = cfg.to_dict()
    data.pop("out", None)
    return data
