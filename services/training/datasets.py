"""Data sets a job may name: the trainer's built-in sets (uploaded sets come later).

A client names a data set, never a path on the server; this is the one place a name becomes
what ``latentforge train --data`` reads.
"""

from __future__ import annotations

from services.errors import InvalidArgument, NotFound


def builtin_datasets() -> list[str]:
    """Names of the trainer's built-in data sets (mnist5k)."""
    from trainer.data.sources import SOURCES

    return [s.name for s in SOURCES if s.path_kind is None]


def resolve_dataset(name: str) -> str:
    """The --data value of a data set name; NotFound names the known ones."""
    if not name:
        raise InvalidArgument(f"dataset is required; use one of {', '.join(builtin_datasets())}")
    known = builtin_datasets()
    if name in known:
        return name
    raise NotFound(f"unknown data set {name!r}; known data sets: {', '.join(known)}")
