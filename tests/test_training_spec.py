"""The JobSpec carries every training option the CLI has, typed, and converts to the trainer's
config in one place (services.training.spec)."""

from __future__ import annotations

import re

import pytest

from latentforge.v1 import training_pb2 as pb
from services.errors import InvalidArgument
from services.training.families import FAMILY_FIELDS
from services.training.servicer import spec_from_proto, spec_to_proto
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


def test_the_proto_names_each_familys_options_field_by_the_one_rule():
    """JobSpec's oneof is the services' table of families (services.training.families); it agrees
    exactly with the trainer's registry, by the naming rule read both ways."""
    from services.training.families import FAMILY_MESSAGES, family_field, field_family

    assert list(FAMILY_MESSAGES) == list(FAMILIES), "the proto's oneof and trainer.families.FAMILIES differ"
    for family in FAMILIES:
        assert "_" not in family and family == family.lower(), f"{family!r}: family names are lower-case, '-'-joined"
        assert field_family(family_field(family)) == family
        assert FAMILY_FIELDS[family] == family_field(family)
        assert type(getattr(pb.JobSpec(), family_field(family))) is FAMILY_MESSAGES[family]
        assert FAMILIES[family].load().needs[0] == FAMILIES[family].data  # what the family says it trains on


@pytest.mark.parametrize("family", list(FAMILIES))
def test_each_familys_options_travel_in_its_own_message_and_back(family):
    options = {o.name: o.default for o in options_of(FAMILIES[family].config) if o.default is not None}
    request = job_spec(family, "mnist5k", steps=5, **options)
    assert request.WhichOneof("family_options") == FAMILY_FIELDS[family]
    spec = spec_from_proto(request)
    assert spec.family == family and spec.family_options == options and spec.options == {"steps": 5}
    assert spec_from_proto(spec_to_proto(spec)) == spec
    # The family may be left out when its options are given: the oneof names it.
    request.family = ""
    assert spec_from_proto(request).family == family


def _proto_comments(message: str) -> dict[str, str]:
    """Each field's comment in training.proto's ``message``, by field name."""
    from pathlib import Path

    text = (Path(__file__).resolve().parent.parent / "proto/latentforge/v1/training.proto").read_text()
    body = text[text.index(f"message {message} {{"):]
    body = body[:body.index("\n}")]
    found, comment = {}, []
    for line in body.splitlines()[1:]:
        line = line.strip()
        if line.startswith("//"):
            comment.append(line[2:].strip())
            continue
        match = re.match(r"optional \w+ (\w+) =", line)
        if match:
            found[match.group(1)] = " ".join(comment)
        comment = []
    return found


def test_the_defaults_the_proto_comments_state_are_the_trainers():
    """Clients in other languages read the defaults in training.proto: where a comment states a
    number, a boolean or a quoted word, it is the trainer's default."""
    checked = 0
    for message, config in [(pb.TrainingOptions, TrainConfig)] + [
            (type(getattr(pb.JobSpec(), FAMILY_FIELDS[f])), e.config) for f, e in FAMILIES.items()]:
        comments = _proto_comments(message.DESCRIPTOR.name)
        for o in options_of(config):
            if o.name not in comments:
                continue
            match = re.search(r"default:? ([^;()]+)\)", comments[o.name])
            stated = match.group(1).strip() if match else ""
            if re.fullmatch(r"-?[\d.]+(e-?\d+)?", stated):
                value, default = float(stated), o.default
            elif stated in ("true", "false"):
                value, default = stated == "true", o.default
            elif re.fullmatch(r'"[^"]*"', stated):
                value, default = stated.strip('"'), o.default
            else:
                continue
            assert value == default, f"{message.DESCRIPTOR.name}.{o.name}: the proto says default {stated}, the " \
                                     f"trainer's is {o.default!r}"
            checked += 1
    assert checked > 60
