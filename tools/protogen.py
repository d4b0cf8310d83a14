"""Regenerate the committed Python code for ``proto/`` (``python -m tools.protogen``).

The generated modules live in ``latentforge/v1/`` and are committed; a test regenerates them
into a temporary folder and checks nothing changed. Needs grpcio-tools (the ``dev`` extra).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROTO_ROOT = ROOT / "proto"
PROTO_FILES = ("latentforge/v1/generation.proto", "latentforge/v1/training.proto")
GENERATED_SUFFIXES = ("_pb2.py", "_pb2.pyi", "_pb2_grpc.py")


def generate(out_dir: Path = ROOT) -> list[Path]:
    """Run protoc on every file in PROTO_FILES into out_dir; returns the files written."""
    from grpc_tools import protoc  # only a build-time dependency

    out_dir = Path(out_dir)
    args = [
        "grpc_tools.protoc",
        f"-I{PROTO_ROOT}",
        f"--python_out={out_dir}",
        f"--pyi_out={out_dir}",
        f"--grpc_python_out={out_dir}",
        *(str(PROTO_ROOT / name) for name in PROTO_FILES),
    ]
    if protoc.main(args) != 0:
        raise RuntimeError(f"protoc failed: {' '.join(args)}")
    written = []
    for name in PROTO_FILES:
        stem = name[: -len(".proto")]
        written += [out_dir / f"{stem}{suffix}" for suffix in GENERATED_SUFFIXES]
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT, help="output root (default: repo root)")
    args = parser.parse_args(argv)
    for path in generate(args.out):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
