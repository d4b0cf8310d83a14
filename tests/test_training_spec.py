"""The JobSpec carries every training option the CLI has, typed, and converts to the trainer's
config in one place (services.training.spec)."""

from __future__ import annotations

import pytest

from latentforge.v1 import training_pb2 as pb
from services.errors import InvalidArgument
from services.training.servicer import FAMILY_FIELDS, spec_from_proto, spec_to_proto
from services.training.spec import SERVICE_MANAGED, train_config
from services.training.client import job_spec
from trainer.cli import option_flags
from trainer.config import TrainConfig
from trainer.families import FAMILIES
from trainer.options import options_of

_PROTO_TYPES = {int: pb.TrainingOptions.DESCRIPTOR.fields_by_name["steps"].TYPE_INT64,
                float: pb.DCGANOptions.DESCRIPTOR.fields_by_name["lr"].TYPE_DOUBLE,
                str: pb.TrainingOptions.DESCRIPTOR.fields_by_name["device"].TYPE_STRING,
                bool: pb.DCGANOptions.DESCRIPTOR.fields_by_name["conditional"].TYPE_BOOL}


def _check_message(message, options) -> None:
    fields = message.DESCRIPTOR.fields_by_name
    names = {o.name for o in options}
    missing = sorted(names - set(fields))
    assert not missing, f"{message.DESCRIPTOR.name} lacks training options {missing}: add them to training.proto"
    stale = sorted(set(fields) - names)
    assert not stale, f"{message.DESCRIPTOR.name} has fields the trainer no longer has: {stale}"
    for o in options:
        field = fields[o.name]
        assert field.type == _PROTO_TYPES[o.type], f"{message.DESCRIPTOR.name}.{o.name} has the wrong type"
        assert field.has_presence, f"{message.DESCRIPTOR.name}.{o.name} must be optional (unset = default)"


def test_every_cli_training_option_has_a_job_spec_field():
    common = [o for o in options_of(TrainConfig) if o.name not in SERVICE_MANAGED]
    _check_message(pb.TrainingOptions, common)
    assert set(FAMILY_FIELDS) == set(FAMILIES), "a family without its options message in JobSpec"
    oneof = {f.name for f in pb.JobSpec.DESCRIPTOR.oneofs_by_name["family_options"].fields}
    assert oneof == set(FAMILY_FIELDS.values())
    for family, entry in FAMILIES.items():
        message = type(getattr(pb.JobSpec(), FAMILY_FIELDS[family]))
        _check_message(message, options_of(entry.config))
    # Every flag of `latentforge train` is covered: a common option, a family's, or managed.
    for name in option_flags():
        assert (name in SERVICE_MANAGED or name in pb.TrainingOptions.DESCRIPTOR.fields_by_name
                or any(name in type(getattr(pb.JobSpec(), f)).DESCRIPTOR.fields_by_name
                       for f in FAMILY_FIELDS.values())), name


def test_job_spec_converts_to_the_trainers_config():
    request = job_spec("vae", "mnist5k", model_name="m", steps=40, time_budget="2m", beta=2.0, width=16,
                       conditional=True)
    spec = spec_from_proto(request)
    assert spec.options == {"steps": 40, "time_budget": "2m"}
    assert spec.family_options == {"beta": 2.0, "width": 16, "conditional": True}
    cfg = train_config(spec, "mnist5k")
    assert (cfg.model, cfg.data, cfg.steps, cfg.time_budget, cfg.progress) == ("vae", "mnist5k", 40, "2m", False)
    assert (cfg.family.beta, cfg.family.width, cfg.family.conditional, cfg.family.lr) == (2.0, 16, True, 1e-3)
    assert spec_from_proto(spec_to_proto(spec)) == spec  # what GetJob shows is what was submitted


@pytest.mark.parametrize("request_, words", [
    (job_spec("dcgan", steps=-5), "steps must be >= 1"),
    (job_spec("dcgan", gan_loss="wasserstein"), "gan_loss must be"),
    (job_spec("dcgan", beta1=1.5), "beta1 must be < 1"),
    (job_spec("gan"), "unknown family 'gan'"),
    (job_spec("dcgan", time_budget="soon"), "not a duration"),
])
def test_bad_options_are_refused_by_name(request_, words):
    with pytest.raises(InvalidArgument, match=words):
        train_config(spec_from_proto(request_), "mnist5k")


def test_options_of_another_family_are_refused():
    request = pb.JobSpec(family="dcgan", dataset="mnist5k", vae=pb.VAEOptions(beta=2.0))
    with pytest.raises(InvalidArgument, match="family is 'dcgan' but the options given are 'vae'"):
        spec_from_proto(request)
    with pytest.raises(ValueError, match="beta: not an option"):
        job_spec("dcgan", beta=2.0)
