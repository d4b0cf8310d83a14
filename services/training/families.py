"""Which options message goes with which family, read from the proto: the one table that the
servicer, the Python client and the CLI use.

The source is JobSpec's ``oneof family_options`` (proto/latentforge/v1/training.proto): each of
its fields carries one family's options message, and is named after the family by one rule,
``family_field``: the family's name with "-" written "_" ("sketch-rnn" -> ``sketch_rnn``).
Family names are lower-case words joined by "-" (never "_"), so the rule reads back both ways.
The trainer's registry (``trainer.families.FAMILIES``) must list exactly these families, each
message field being an option of the family's config dataclass; tests/test_training_spec.py
checks that they agree. A new family adds its options message to the oneof and its entry to
the registry; nothing here changes.

No trainer and no torch here: the client and the CLI run on a serving install too.
"""

from __future__ import annotations

from typing import Any

from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message

from latentforge.v1 import training_pb2 as pb

FAMILY_ONEOF = "family_options"


def family_field(family: str) -> str:
    """JobSpec's oneof field of a family's options: its name with "-" as "_"."""
    return family.replace("-", "_")


def field_family(field: str) -> str:
    """The family whose options a JobSpec oneof field holds (``family_field`` read back)."""
    return field.replace("_", "-")


_ONEOF = pb.JobSpec.DESCRIPTOR.oneofs_by_name[FAMILY_ONEOF]
# Family name -> JobSpec oneof field name, in the proto's order.
FAMILY_FIELDS: dict[str, str] = {field_family(f.name): f.name for f in _ONEOF.fields}
# Family name -> its options message class.
FAMILY_MESSAGES: dict[str, type[Message]] = {
    field_family(f.name): getattr(pb, f.message_type.name) for f in _ONEOF.fields}
# The options every run has.
COMMON_MESSAGE: type[Message] = pb.TrainingOptions


def option_fields(message: type[Message]) -> dict[str, FieldDescriptor]:
    """An options message's fields by name (each is a trainer option of the same name)."""
    return dict(message.DESCRIPTOR.fields_by_name)


def family_options(spec: pb.JobSpec) -> Message | None:
    """The options message a JobSpec carries in its oneof, or None."""
    chosen = spec.WhichOneof(FAMILY_ONEOF)
    return getattr(spec, chosen) if chosen else None


def set_family_options(spec: pb.JobSpec, family: str, options: dict[str, Any]) -> None:
    """Put ``family``'s options (by name) into the spec's oneof; ValueError names an unknown
    family or an option the family does not have."""
    message = FAMILY_MESSAGES.get(family)
    if message is None:
        raise ValueError(f"unknown family {family!r}; use one of {', '.join(FAMILY_MESSAGES)}")
    unknown = sorted(set(options) - set(option_fields(message)))
    if unknown:
        raise ValueError(f"{', '.join(unknown)}: not an option of every run or of {family}")
    getattr(spec, FAMILY_FIELDS[family]).CopyFrom(message(**options))


def trainer_options() -> dict[str, dict[str, Any]] | None:
    """The trainer's option descriptions (``trainer.options.OptionInfo``) by owner ("common" or a
    family) and name; None on an install without the trainer (the serving image). Imports no
    torch."""
    try:
        from trainer.config import TrainConfig
        from trainer.families import FAMILIES
        from trainer.options import options_of
    except ModuleNotFoundError:
        return None
    found = {"common": {o.name: o for o in options_of(TrainConfig)}}
    found.update({family: {o.name: o for o in options_of(entry.config)} for family, entry in FAMILIES.items()})
    return found


_TYPES = {FieldDescriptor.TYPE_INT64: "int", FieldDescriptor.TYPE_INT32: "int", FieldDescriptor.TYPE_DOUBLE: "float",
          FieldDescriptor.TYPE_FLOAT: "float", FieldDescriptor.TYPE_BOOL: "bool", FieldDescriptor.TYPE_STRING: "string"}


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return f"{value:g}" if isinstance(value, float) else str(value)


def _described(message: type[Message], declared: dict[str, Any]) -> list[pb.TrainingOption]:
    """An options message's fields, each with the trainer's default, help and choices."""
    out = []
    for name, field in option_fields(message).items():
        info = declared.get(name)
        option = pb.TrainingOption(name=name, type=_TYPES[field.type])
        if info is not None:
            option.default_value = _text(info.default)
            option.help = info.help
            option.choices.extend(_text(c) for c in info.choices or ())
        out.append(option)
    return out


def list_families() -> pb.ListFamiliesResponse:
    """Every family and every option a JobSpec may set: the proto's fields, described by the
    trainer (default, help, choices; bare names and types where the trainer is not installed)."""
    trainer = trainer_options() or {}
    try:
        from trainer.families import FAMILIES as registry
    except ModuleNotFoundError:
        registry = {}
    response = pb.ListFamiliesResponse(common=_described(COMMON_MESSAGE, trainer.get("common", {})))
    for family, message in FAMILY_MESSAGES.items():
        entry = registry.get(family)
        response.families.add(name=family, options_field=FAMILY_FIELDS[family],
                              summary=entry.summary if entry else "", data=entry.data if entry else "",
                              data_kinds=entry.data_kinds if entry else (),
                              options=_described(message, trainer.get(family, {})))
    return response


__all__ = ["COMMON_MESSAGE", "FAMILY_FIELDS", "FAMILY_MESSAGES", "FAMILY_ONEOF", "family_field", "family_options",
           "field_family", "list_families", "option_fields", "set_family_options", "trainer_options"]
