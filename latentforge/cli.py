"""The `latentforge` command: one entry point, sub-commands owned by each part.

Each part registers its own sub-commands (``trainer.cli``, ``exporter.cli``, ``services.cli``,
``tools.bench``). Their modules import nothing heavy at import time, so that ``latentforge
serve`` works on a serving install without torch. An install may also lack whole parts (the
serving image ships no ``trainer/``, the trainer image no ``services/``): their sub-commands
are still listed, and running one says which extra to install instead of failing with an
import error.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import sys
from dataclasses import dataclass
from typing import Any, Sequence

from latentforge import __version__


@dataclass(frozen=True)
class Part:
    """A part of the project: its package, the module with ``register(subparsers)``, the
    sub-commands it adds and the extra that brings what it needs."""

    package: str
    module: str
    commands: tuple[str, ...]
    extra: str


PARTS = (
    Part("trainer", "trainer.cli", ("train",), "train"),
    Part("trainer", "trainer.quality.cli", ("evaluate",), "train"),
    Part("exporter", "exporter.cli", ("export",), "train"),
    Part("services", "services.cli", ("serve", "serve-training", "generate", "interpolate", "complete", "models"), "serve"),
    Part("services", "services.training.cli", ("jobs", "datasets"), "serve"),
    Part("tools", "tools.bench", ("bench",), "serve"),
)


def installed(part: Part) -> bool:
    """Whether the part's package is present in this install (without importing it)."""
    return importlib.util.find_spec(part.package) is not None


def _missing(part: Part, command: str) -> Any:
    def run(args: argparse.Namespace) -> int:
        print(f"latentforge {command}: this install has no '{part.package}' package; install the "
              f"'{part.extra}' extra of the full project: pip install 'latentforge[{part.extra}]'",
              file=sys.stderr)
        return 2

    return run


def missing_extra(command: str, extra: str, exc: ModuleNotFoundError) -> int:
    """Say which extra a sub-command needs when one of its imports is missing; exit status 2."""
    print(f"latentforge {command} needs the '{extra}' extra ({exc.name} is missing): "
          f"pip install -e '.[{extra}]'", file=sys.stderr)
    return 2


def build_parser() -> argparse.ArgumentParser:
    """The argument parser, with the sub-commands of every installed part."""
    parser = argparse.ArgumentParser(
        prog="latentforge",
        description="Train generative image models, export them to ONNX, serve them over gRPC.",
    )
    parser.add_argument("--version", action="version", version=f"latentforge {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for part in PARTS:
        if installed(part):
            importlib.import_module(part.module).register(sub)
            continue
        for command in part.commands:
            p = sub.add_parser(command, help=f"(not installed: needs the '{part.extra}' extra)", add_help=False)
            p.add_argument("rest", nargs=argparse.REMAINDER)
            p.set_defaults(func=_missing(part, command))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Parse arguments and run the chosen sub-command; returns the exit status."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
