"""`latentforge export`: publish a run as the next model-repository version."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from latentforge.cli import missing_extra, one_line


def register(sub: argparse._SubParsersAction) -> None:
    """Add the `export` sub-command."""
    p = sub.add_parser(
        "export",
        help="export a trained run to the ONNX model repository",
        description="Export a run's best checkpoint (checkpoints/best.pt, when the run evaluated; else its "
        "newest) to <repo>/<name>/<next version>/ after onnx.checker and an ONNX Runtime parity check. "
        "The manifest's quality holds the meter's scores of that checkpoint (or, with --evaluate, of "
        "the exported graph).",
    )
    p.add_argument("run", type=Path, help="run folder written by `latentforge train` (or a .pt checkpoint)")
    p.add_argument("--checkpoint", default=None, metavar="latest|best|PATH",
                   help="which checkpoint of the run: best (checkpoints/best.pt), latest (the newest step), "
                   "or a .pt file (default: best when the run has one, else latest)")
    p.add_argument("--evaluate", type=int, nargs="?", const=2000, default=0, metavar="N",
                   help="score N samples (default 2000) of the exported graph with the quality meter "
                   "(`latentforge evaluate`) and record them in the manifest")
    p.add_argument("--repo", type=Path, default=Path("models"), help="model repository root (default models)")
    p.add_argument("--name", required=True, help="model name, e.g. mnist-dcgan")
    p.add_argument("--opset", type=int, default=None, help="ONNX opset (default 18)")
    p.add_argument("--tolerance", type=float, default=None, help="max abs parity error allowed (default 1e-4)")
    p.add_argument("--fp16", dest="variants", action="append_const", const="fp16",
                   help="also write float16 copies of the graphs (for GPU serving), parity-checked")
    p.add_argument("--ort-optimized", dest="variants", action="append_const", const="ort-cpu",
                   help="also write copies pre-optimised by ONNX Runtime for its CPU provider")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        from exporter.onnx_export import DEFAULT_OPSET, ExportError
        from exporter.repository import PARITY_TOLERANCE, export_run
        from trainer.checkpoint import CheckpointError
    except ModuleNotFoundError as exc:
        return missing_extra("export", "train", exc)
    from latentforge.manifest import Manifest

    is_file = args.run.is_file()
    if is_file and args.checkpoint is not None:
        print("error: pass a run folder with --checkpoint, or a .pt file alone", file=sys.stderr)
        return 2
    try:
        version_dir = export_run(
            args.run.parent.parent if is_file else args.run,
            args.repo,
            args.name,
            checkpoint=args.run if is_file else args.checkpoint,
            opset=args.opset or DEFAULT_OPSET,
            tolerance=args.tolerance if args.tolerance is not None else PARITY_TOLERANCE,
            variants=tuple(args.variants or ()),
            evaluate=args.evaluate,
        )
    except (CheckpointError, ExportError, ValueError, OSError) as exc:  # QualityError is a ValueError
        print(f"error: {one_line(exc)}", file=sys.stderr)
        return 2
    manifest = Manifest.read(version_dir)
    source = manifest.source_checkpoint
    print(f"exported {args.name} version {version_dir.name} to {version_dir} "
          f"(from {Path(source['path']).name}, step {source['step']})")
    if manifest.quality is not None:
        q = manifest.quality.scores
        if q.get("task") == "draw_strokes":
            from latentforge.strokes import quality_summary

            print(f"stroke quality ({q.get('source')}, {int(q.get('n', 0))} drawings per temperature): "
                  f"{quality_summary(q)}")
        elif q.get("task") == "complete":
            print(f"completion quality ({q.get('source')}, {int(q.get('n', 0))} held-out images, bottom half hidden): "
                  f"best of {int(q.get('candidates', 0))} read as the original {100 * q['bottom_best_read']:.1f}%, "
                  f"hole PSNR {q['bottom_psnr']:.2f} dB")
        elif q.get("task") == "stylize":
            legible = q.get("legible")
            print(f"style quality ({q.get('source')}, {int(q.get('pairs', 0))} content x style pairs): style match "
                  f"{100 * q['style_match']:.1f}% (Reinhard {100 * q['style_match_reinhard']:.1f}%), content kept "
                  f"{q['content_kept']:.3f} at alpha 1"
                  + ("" if legible is None else f", {100 * legible:.1f}% of {int(q['digits'])} stylised digits legible"))
        else:
            print(f"quality ({q.get('source')}, {int(q.get('n', 0))} samples): FID {q.get('fid', float('nan')):.3f}, "
                  f"real-data floor {q.get('fid_floor', float('nan')):.3f}")
    return 0
