"""The `latentforge` command: one entry point, sub-commands owned by each part.

Each part registers its own sub-commands (``trainer.cli``, ``exporter.cli``,
``services.cli``). Their modules import nothing heavy at import time, so that
``latentforge serve`` works on a serving install without torch, and ``latentforge train``
says clearly which extra is missing instead of failing with an import error.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from typing import Sequence

from latentforge import __version__

# Modules that expose `register(subparsers)`; each sub-command sets `func(args) -> int`.
_PARTS = ("trainer.cli", "exporter.cli", "services.cli")


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser, with every part's sub-commands."""
    parser = argparse.ArgumentParser(
        prog="latentforge",
        description="Train GANs/VAEs on images, export them to ONNX, serve them over gRPC.",
    )
    parser.add_argument("--version", action="version", version=f"latentforge {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in _PARTS:
        importlib.import_module(name).register(sub)
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
