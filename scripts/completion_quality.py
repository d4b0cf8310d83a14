"""The completion quality table: how well exported models fill the hole of held-out digits.

    python -m scripts.completion_quality models/mnist-completion/1 models/mnist-vae/1 models/mnist-ae/1 \\
        [--n 1000] [--candidates 4] [--iterations 8] [--out docs/benchmarks/completion.md]

For each version folder (run in ONNX Runtime, as served): the figures of ``latentforge evaluate
VERSION --completion`` (trainer/quality/completion.py) per mask kind, a model with the
``complete`` task through its graph, a VAE or autoencoder through the iterative method with each
``--iterations`` count asked for; then the baseline that fills the hole with the mean training
image. Writes one Markdown table headed by the command that made it.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from latentforge.completion import EVAL_MASKS
from trainer.quality.completion import (
    DEFAULT_CANDIDATES,
    DEFAULT_ITERATIONS,
    evaluate_completion,
)
from trainer.quality.scored import Report


def _name(report: Report) -> str:
    src, figures = report.source, report.tasks["complete"]
    who = f"{src['model']} v{src['version']}" if src.get("kind") == "version" else report.target
    how = "complete graph" if figures.method == "graph" else f"iterative, {figures.iterations} rounds"
    return f"{who} ({src.get('family')}, {how})"


def _pct(v: float | None) -> str:
    return "-" if v is None else f"{v:.1%}"


def markdown(reports: list[Report], command: str) -> str:
    """The reports' complete figures as one Markdown table, the baseline (from the first report) last."""
    first = reports[0].tasks["complete"]
    k = first.candidates
    lines = [
        f"`{command}`",
        "",
        (f"{first.n} held-out digits of {first.data['spec']} (the meter's held-out split), {k} candidates each, "
         f"stroke masks from seed {first.mask_seed}; hole-only PSNR (dB) and SSIM of candidate 0; read: "
         f"candidate 0 read as the original's label by the meter's classifier (it reads "
         f"{_pct(first.original_read)} of the whole originals so); best of {k}: any candidate read so; "
         f"diversity: mean pairwise RMS between the {k} candidates over the hole."),
        "",
        f"| model | mask | PSNR | SSIM | read as original | best of {k} read | diversity | seconds |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in reports:
        figures = r.tasks["complete"]
        for i, kind in enumerate(figures.scores):
            s = figures.scores[kind]
            lines.append(f"| {_name(r)} | {kind} | {s['psnr']:.2f} | {s['ssim']:.3f} | {_pct(s['read'])} | "
                         f"{_pct(s['best_read'])} | {s['diversity']:.3f} | {r.seconds:.0f} |" if i == 0 else
                         f"| | {kind} | {s['psnr']:.2f} | {s['ssim']:.3f} | {_pct(s['read'])} | "
                         f"{_pct(s['best_read'])} | {s['diversity']:.3f} | |")
    for i, kind in enumerate(first.baseline):
        b = first.baseline[kind]
        label = "baseline: mean training image in the hole" if i == 0 else ""
        lines.append(f"| {label} | {kind} | {b['psnr']:.2f} | {b['ssim']:.3f} | {_pct(b['read'])} | "
                     f"{_pct(b['read'])} | 0 | |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m scripts.completion_quality", description=__doc__.splitlines()[0])
    parser.add_argument("versions", type=Path, nargs="+", help="exported version folders (or run folders)")
    parser.add_argument("--n", type=int, default=1000, help="held-out images (default 1000: all of mnist5k's)")
    parser.add_argument("--candidates", type=int, default=DEFAULT_CANDIDATES)
    parser.add_argument("--iterations", type=int, nargs="+", default=[DEFAULT_ITERATIONS],
                        help=f"rounds of the iterative method, one row set each (default {DEFAULT_ITERATIONS})")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cache-dir", type=Path, default=None, help="meter cache (default as latentforge evaluate)")
    parser.add_argument("--out", type=Path, default=None, help="write the table here (default: print it)")
    args = parser.parse_args(argv)
    command = "python -m scripts.completion_quality " + shlex.join(sys.argv[1:] if argv is None else argv)
    reports = []
    for path in args.versions:
        for i, rounds in enumerate(args.iterations):
            report = evaluate_completion(path, args.n, args.seed, args.candidates, rounds, cache_dir=args.cache_dir)
            reports.append(report)
            figures = report.tasks["complete"]
            print(f"{_name(report)}: " + ", ".join(
                f"{kind} {figures.scores[kind]['psnr']:.2f} dB" for kind in EVAL_MASKS if kind in figures.scores),
                file=sys.stderr)
            if figures.method == "graph":
                break  # rounds apply to the iterative method only
    table = markdown(reports, command)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(table)
    print(table, end="")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
