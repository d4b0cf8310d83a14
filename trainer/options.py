"""Typed options: dataclass fields that carry their own help text and limits.

Every training option (the common ones in `trainer.config.TrainConfig`, each family's in
`trainer.families.configs`) is a dataclass field declared with `option(...)`. The metadata
is the one description of an option: the CLI builds its flags from it, `validate()` checks
values against it, and the same dataclasses describe a training job wherever one is
submitted. No torch here: the command line is built without importing the training stack.
"""

from __future__ import annotations

import dataclasses
import math
import typing
from dataclasses import dataclass, field
from typing import Any, Sequence


def option(
    default: Any,
    help: str,
    *,
    choices: Sequence[Any] | None = None,
    at_least: float | None = None,
    above: float | None = None,
    fixed: bool = False,
) -> Any:
    """A dataclass field with its help text and limits.

    `choices`: the allowed values; `at_least`: inclusive lower bound; `above`: exclusive lower
    bound (None values are always allowed for Optional fields); `fixed`: the option shapes
    the networks or the data, so a resumed run must keep the checkpoint's value.
    """
    meta = {"help": help, "choices": tuple(choices) if choices else None, "at_least": at_least, "above": above,
            "fixed": fixed}
    return field(default=default, metadata=meta)


@dataclass(frozen=True)
class OptionInfo:
    """One option as the CLI (or another front end) sees it."""

    name: str
    type: type  # the value type: int, float, str, bool (Optional unwrapped)
    optional: bool  # None is a valid value
    default: Any
    help: str
    choices: tuple[Any, ...] | None
    at_least: float | None
    above: float | None
    fixed: bool


def options_of(cls: type) -> list[OptionInfo]:
    """The options a dataclass declares with `option()`, in declaration order."""
    hints = typing.get_type_hints(cls)
    found = []
    for f in dataclasses.fields(cls):
        if "help" not in f.metadata:
            continue
        typ, optional = _unwrap(hints[f.name])
        meta = f.metadata
        found.append(OptionInfo(f.name, typ, optional, f.default, meta["help"], meta["choices"], meta["at_least"],
                                meta["above"], meta["fixed"]))
    return found


def option_help(declared: Sequence[tuple[str, OptionInfo]]) -> str:
    """One help text for an option that one or more configs declare (``(owner, info)`` pairs,
    e.g. the families that share ``latent_dim``): the most general wording, the choices, and
    the default, or each owner's where they differ."""
    text = min((info.help for _, info in declared), key=len)
    if declared[0][1].choices:
        text += " (" + " | ".join(map(str, declared[0][1].choices)) + ")"
    defaults = {owner: info.default for owner, info in declared}
    if len(set(map(repr, defaults.values()))) == 1:
        default = next(iter(defaults.values()))
        return text if default is None else f"{text} (default {_fmt(default)})"
    return f"{text} (default: " + ", ".join(f"{o} {_fmt(d)}" for o, d in defaults.items()) + ")"


def _fmt(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def _unwrap(hint: Any) -> tuple[type, bool]:
    args = typing.get_args(hint)
    if args and type(None) in args:
        rest = [a for a in args if a is not type(None)]
        return (rest[0] if len(rest) == 1 else object), True
    return (hint if isinstance(hint, type) else object), False


def coerce_numbers(obj: Any) -> None:
    """Integers given for float options (JSON `1`, a flag `--lr 1`) become floats, so a config
    reads back and compares the same however it was written."""
    for info in options_of(type(obj)):
        value = getattr(obj, info.name)
        if info.type is float and isinstance(value, int) and not isinstance(value, bool):
            setattr(obj, info.name, float(value))


def check_options(obj: Any) -> list[str]:
    """Problems with `obj`'s option values against their declared types and limits (a float
    must be finite: NaN passes every comparison, and infinity every lower bound)."""
    problems = []
    for info in options_of(type(obj)):
        name, value = info.name, getattr(obj, info.name)
        if value is None:
            if not info.optional:
                problems.append(f"{name} must be set")
            continue
        if info.type is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if info.type in (int, float, str, bool) and (
            not isinstance(value, info.type) or (info.type is not bool and isinstance(value, bool))
        ):
            kind = {float: "a number", int: "an integer", str: "a string", bool: "true or false"}[info.type]
            problems.append(f"{name} must be {kind} (got {value!r})")
            continue
        if info.type is float and not math.isfinite(value):
            problems.append(f"{name} must be a finite number (got {value!r})")
            continue
        if info.choices and value not in info.choices:
            problems.append(f"{name} must be {', '.join(map(str, info.choices[:-1]))} or {info.choices[-1]} "
                            f"(got {value!r})")
        if info.at_least is not None and value < info.at_least:
            problems.append(f"{name} must be >= {info.at_least:g} (got {value!r})")
        if info.above is not None and not value > info.above:
            problems.append(f"{name} must be > {info.above:g} (got {value!r})")
    return problems


@dataclass
class FamilyConfig:
    """Base of every family's options (a dataclass per family, in trainer.families.configs)."""

    def __post_init__(self) -> None:
        coerce_numbers(self)

    def problems(self) -> list[str]:
        """Checks beyond the declared limits; a family overrides this for rules across options."""
        return []

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)
