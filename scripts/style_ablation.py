"""Ablation of the arbitrary-style family (adain): which objective, encoder and weights give the
best style transfer for the same training steps, by the project's style meter.

Each setting trains the same number of steps with `latentforge train --model adain --data
style:photos` (fixed seed, batch 8, both threads) at --image-size, then `latentforge evaluate`
scores the run (PyTorch, the graphs it would export): style match at alpha 1 beside Reinhard's
colour transfer, content kept at alpha 1, and legibility of held-out digits stylised with five
textures. The table goes to docs/benchmarks/style_ablation.md with each setting's grid.

    python -m scripts.style_ablation --steps 3000 --image-size 64 --out out/style-ablation \
        --doc docs/benchmarks/style_ablation.md

Settings are named on the command line (``--settings base,recon,...``); see SETTINGS.
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

# Huang & Belongie's setting, which the others change: the deepest level only, their two losses.
PAPER: dict[str, Any] = {"skips": False, "recon_weight": 0.0, "colour_stats": False, "content_levels": 1}
# name -> (adain options, what it tests); options not named are the family's defaults.
SETTINGS: dict[str, tuple[dict[str, Any], str]] = {
    "paper": (PAPER, "Huang & Belongie's losses (content at the AdaIN target, style statistics) at the deepest level"),
    "recon-only": ({**PAPER, "recon_weight": 1.0, "content_weight": 0.0, "style_weight": 0.0},
                   "WCT's decoder: reconstruction only, the style from AdaIN at inference"),
    "recon+paper": ({**PAPER, "recon_weight": 1.0}, "the paper's losses and the reconstruction loss"),
    "levels-2": ({**PAPER, "levels": 2}, "two encoder levels (stride 2): statistics of shallower features"),
    "skips": ({**PAPER, "skips": True}, "AdaIN at every level and a decoder that takes every level (U-Net skips)"),
    "skips+recon": ({**PAPER, "skips": True, "recon_weight": 1.0}, "skips, and the reconstruction loss"),
    "skips+recon+style-4": ({**PAPER, "skips": True, "recon_weight": 1.0, "style_weight": 4.0},
                            "skips and reconstruction, twice the style weight"),
    "skips+recon-0.5+style-4": ({**PAPER, "skips": True, "recon_weight": 0.5, "style_weight": 4.0},
                                "skips, half the reconstruction weight, twice the style weight"),
    "skips+recon+colour": ({**PAPER, "skips": True, "recon_weight": 1.0, "colour_stats": True},
                           "skips and reconstruction, the style's pixel statistics given to the decoded image"),
    "defaults": ({}, "the family's defaults: skips, reconstruction, colour statistics, the content loss at every level"),
}


# What the table says, and the one measurement at the demo's length that chose the last default.
READING = """## Reading

- With the paper's losses alone, a random encoder's deepest level (stride 4, 64 channels) loses the
  content: its edges are gone (content kept 0.16) and the style is mostly a tint. Training the
  decoder only to reconstruct (WCT) keeps more content but blurs, and a blurred image is further
  from any texture than the content was (negative style match).
- Skips (AdaIN at every level, a decoder that takes every level) are what brings the texture: style
  match 22.7% -> 49.9%. The reconstruction loss beside them keeps the content (0.35 -> 0.72) and the
  digits legible, for a little style. A larger style weight did not raise the meter's style match:
  the loss network and the meter's filters are different random networks, and the surplus fits
  the first.
- Giving the decoded image the style's own pixel statistics (a colour transfer inside the graph,
  after the decoder) lifts style match past Reinhard's and past the target (61.0%).
- The demo trains 8 minutes (about 3,500 steps), and there the content fades as training goes on
  with the content loss at the deepest level only: the same options at 8 minutes gave style match
  72.0%, content kept 0.421, legible 60.1%. With the content loss at every level (the default,
  `content_levels 0`) 8 minutes give 65.6%, 0.626 and 63.5%: both the style and the content
  targets met; legibility is not (see docs/benchmarks/style.md).

    latentforge train --model adain --data style:photos --image-size 64 --batch-size 8 --eval-every 0 \\
        --steps 1000000 --time-budget 8m --content-levels 1 --out runs/content-1   # and --content-levels 0
    latentforge evaluate runs/content-1 --n 200
"""


def _latentforge(*args: str, capture: bool = False) -> str:
    out = subprocess.run([sys.executable, "-m", "latentforge", *args], check=True, text=True,
                         stdout=subprocess.PIPE if capture else None)
    return out.stdout if capture else ""


def _flags(options: dict[str, Any]) -> list[str]:
    """Options as `latentforge train` flags (booleans as --x / --no-x)."""
    flags = []
    for key, value in options.items():
        flag = key.replace("_", "-")
        flags += [f"--{flag}" if value else f"--no-{flag}"] if isinstance(value, bool) else [f"--{flag}", str(value)]
    return flags


def run_setting(name: str, options: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    """Train one setting, score it, and return its row."""
    run = args.out / name
    if run.exists() and not args.reuse:
        shutil.rmtree(run)
    started = time.perf_counter()
    if not (run / "checkpoints").is_dir():
        _latentforge("train", "--model", "adain", "--data", "style:photos", "--image-size", str(args.image_size),
                     "--steps", str(args.steps), "--batch-size", "8", "--seed", "0", "--threads", "2",
                     "--sample-every", str(args.steps), "--checkpoint-every", str(args.steps), "--log-every", "100",
                     "--out", str(run), *_flags(options))
    seconds = time.perf_counter() - started
    record = json.loads((run / "run.json").read_text())
    seconds = float(record.get("elapsed_seconds", seconds))
    report = json.loads(_latentforge("evaluate", str(run), "--n", str(args.digits), "--json", capture=True))
    figures = report["tasks"]["stylize"]
    return {"name": name, "options": options, "train_s": round(seconds, 1),
            "style_match": figures["style_match"], "reinhard": figures["style_match_reinhard"],
            "content_kept": figures["content_kept"]["1"], "content_kept_half": figures["content_kept"]["0.5"],
            "monotone": figures["content_monotone"], "legible": figures["legible"],
            "grid": str(sorted((run / "samples").glob("styles_step_*.png"))[-1])}


def write_doc(rows: list[dict[str, Any]], args: argparse.Namespace) -> None:
    """The results table as markdown, with how it was measured."""
    lines = [
        "# Arbitrary style (adain): ablation",
        "",
        f"Each setting trained {args.steps} steps at {args.image_size} px (batch 8, seed 0, contents "
        "`style:photos`, styles `style:textures`) and was scored by `latentforge evaluate` (the style "
        "meter, `trainer/quality/stylize.py`): style match at alpha 1 (share of the gap from the content to "
        "another crop of the style closed, in the meter's own texture statistics) beside Reinhard's colour "
        "transfer on the same 72 pairs, content kept (edge SSIM) at alpha 1 and 0.5, and the share of "
        f"{args.digits} held-out digits the meter still reads after five textures. Targets: style match >= 50% "
        "and above Reinhard, content kept >= 0.6, legible >= 90%.",
        "",
        f"Measured on {platform.node() or 'this machine'} ({platform.processor() or platform.machine()}, "
        f"2 cores), {time.strftime('%Y-%m-%d')}:",
        "",
        f"    python -m scripts.style_ablation --steps {args.steps} --image-size {args.image_size} "
        f"--settings {','.join(r['name'] for r in rows)}",
        "",
        "| setting | what it tests | style match | Reinhard | content kept a=1 | a=0.5 | monotone | legible |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(f"| {r['name']} | {SETTINGS[r['name']][1]} | {r['style_match']:.1%} | {r['reinhard']:.1%} | "
                     f"{r['content_kept']:.3f} | {r['content_kept_half']:.3f} | {'yes' if r['monotone'] else 'no'} | "
                     f"{r['legible']:.1%} |")
    args.doc.write_text("\n".join(lines) + "\n\n" + READING)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--digits", type=int, default=200, help="held-out digits per legibility style")
    parser.add_argument("--settings", default=",".join(SETTINGS))
    parser.add_argument("--out", type=Path, default=Path("out/style-ablation"))
    parser.add_argument("--doc", type=Path, default=None, help="write the markdown table here")
    parser.add_argument("--json", type=Path, default=None, help="append each row here as JSON")
    parser.add_argument("--reuse", action="store_true", help="score runs already trained instead of training again")
    args = parser.parse_args()
    names = [n for n in args.settings.split(",") if n]
    unknown = [n for n in names if n not in SETTINGS]
    if unknown:
        parser.error(f"unknown settings {unknown}; choose from {', '.join(SETTINGS)}")
    rows = []
    for name in names:
        row = run_setting(name, SETTINGS[name][0], args)
        rows.append(row)
        print(json.dumps(row), flush=True)
        if args.json:
            with args.json.open("a") as fh:
                fh.write(json.dumps(row) + "\n")
    if args.doc:
        write_doc(rows, args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
