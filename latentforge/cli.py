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
import os
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
    Part("services", "services.cli", ("serve", "serve-training", "generate", "interpolate", "complete", "stylize",
                                       "models"), "serve"),
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


class _Parser(argparse.ArgumentParser):
    """argparse, with usage errors in one line that points to --help (sub-commands inherit it)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser, with the sub-commands of every installed part."""
    parser = _Parser(
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


TRACEBACK_ENV = "LATENTFORGE_TRACEBACK"  # set to 1 to see a failing command's traceback
PROJECT_PACKAGES = ("latentforge", "trainer", "exporter", "services", "tools")


def main(argv: Sequence[str] | None = None) -> int:
    """Parse arguments and run the chosen sub-command; returns the exit status.

    A command reports the errors it expects itself; anything that still escapes is printed as one
    line (what failed, and for an unexpected error how to see where), never as a traceback,
    unless LATENTFORGE_TRACEBACK=1.
    """
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print(f"latentforge {args.command}: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001 - the last resort: one line, not a traceback
        if os.environ.get(TRACEBACK_ENV) == "1":
            raise
        print(f"latentforge {args.command}: error: {one_line(exc)}", file=sys.stderr)
        return 1


def one_line(exc: BaseException) -> str:
    """An exception as one line that says what to do: a gRPC status with its message, a file that
    cannot be read or written, or the error's own message (an unexpected kind named, with how to
    see its traceback)."""
    code = getattr(exc, "code", None)
    details = getattr(exc, "details", None)
    if callable(code) and callable(details):  # grpc.RpcError
        name = getattr(code(), "name", str(code()))
        hint = " (is the server running at --target?)" if name == "UNAVAILABLE" else ""
        return f"{name}: {details()}{hint}"
    if isinstance(exc, OSError) and exc.strerror:
        where = f" {exc.filename}" if exc.filename else ""
        return f"cannot use{where}: {exc.strerror}"
    message = " ".join(str(exc).split()) or type(exc).__name__
    if isinstance(exc, ValueError) or type(exc).__module__.split(".")[0] in PROJECT_PACKAGES:
        return message  # bad values and the project's own errors say what to fix
    return f"unexpected {type(exc).__name__}: {message} (set {TRACEBACK_ENV}=1 to see where)"


if __name__ == "__main__":
    sys.exit(main())
