"""docs/benchmarks/style.md: the style meter's figures of exported style models beside their
targets, the serving speed of Stylize (docs/benchmarks/stylize.json, `make bench-serving`), and
the demo's pictures.

    python -m scripts.style_report --model out/demo/models/photo-style/1 \
        [--one-style out/style-one/models/marble-style/1] [--pictures out/demo] [--out docs/benchmarks/style.md]

Each model is scored with `latentforge evaluate VERSION --n 200 --json` (ONNX Runtime, as served).
"""

from __future__ import annotations

import argparse
import json
import shlex
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
PICTURES = ("style_grid.png", "style_alpha.png", "style_colour.png")


def evaluate(version: Path, digits: int) -> dict[str, Any]:
    """The style figures of an exported version, as `latentforge evaluate --json` gives them."""
    out = subprocess.run([sys.executable, "-m", "latentforge", "evaluate", str(version), "--n", str(digits), "--json"],
                         check=True, text=True, stdout=subprocess.PIPE)
    report = json.loads(out.stdout)
    figures = report["tasks"]["stylize"]
    manifest = json.loads((version / "manifest.json").read_text())
    figures["model"] = f"{manifest['name']} v{manifest['version']}"
    figures["step"] = manifest["source_checkpoint"]["step"]
    figures["options"] = manifest["training"]["config"].get("family", {})
    figures["seconds"] = report["seconds"]
    return figures


def _mark(ok: bool) -> str:
    return "met" if ok else "**missed**"


def model_section(title: str, f: dict[str, Any], command: str) -> list[str]:
    """A model's figures beside the targets, and per style."""
    kept = f["content_kept"]
    monotone = f["content_monotone"]
    lines = [f"## {title}", "", f"`{f['model']}`, step {f['step']}; scored with `{command}` "
             f"({f['seconds']:.0f} s): {f['pairs']} content x style pairs at {f['size']} px, styles from "
             f"`{f['styles']}`.", "",
             "| figure | value | target | |", "|---|---|---|---|",
             f"| style match at alpha 1 | {f['style_match']:.1%} | >= 50% and above Reinhard "
             f"({f['style_match_reinhard']:.1%}) | "
             f"{_mark(f['style_match'] >= 0.5 and f['style_match'] > f['style_match_reinhard'])} |",
             f"| content kept at alpha 1 (edge SSIM) | {kept['1']:.3f} | >= 0.6, falling as alpha rises | "
             f"{_mark(kept['1'] >= 0.6 and monotone)} |"]
    if f.get("legible") is not None:
        lines.append(f"| still legible ({f['digits']} held-out digits) | {f['legible']:.1%} | >= 90% (unstylised "
                     f"{f['legible_unstylised']:.1%}) | {_mark(f['legible'] >= 0.9)} |")
    lines += ["", "Content kept by alpha: " + ", ".join(f"{a}: {v:.3f}" for a, v in kept.items())
              + f" ({'falls' if monotone else 'does NOT fall'} monotonically).", ""]
    lines += ["| style | style match |" + (" legible |" if f.get("legible_by_style") else ""),
              "|---|---|" + ("---|" if f.get("legible_by_style") else "")]
    for name, value in f["style_match_by_style"].items():
        legible = f.get("legible_by_style", {}).get(name)
        extra = "" if not f.get("legible_by_style") else f" {legible:.1%} |" if legible is not None else " |"
        lines.append(f"| {name} | {value:.1%} |{extra}")
    return lines + [""]


def speed_section(bench: Path) -> list[str]:
    """The Stylize rows of the serving benchmark, when it has been run."""
    if not bench.is_file():
        return ["## Speed", "", "Not measured yet: run `python -m scripts.bench_stylize` (or `make bench-serving`).", ""]
    data = json.loads(bench.read_text())
    t = data["target"]
    verdict = "met" if t["met"] else "**missed**" if t["met"] is False else "n/a"
    lines = ["## Speed", "", f"From [stylize.md](stylize.md) (`{data['command']}`, {data['date']}): the served "
             f"Stylize, the style named by its id, alpha 1, PNG out. Target {t['target']}: {verdict} ({t['figure']}).",
             "", "| content | protocol | concurrency | style | p50 ms | p95 ms |", "|---|---|---|---|---|---|"]
    for r in data["rows"]:
        lines.append(f"| {r['size']}x{r['size']} | {'HTTP/JSON' if r['protocol'] == 'http' else 'gRPC'} | "
                     f"{r['concurrency']} | {'by id' if r['style'] == 'id' else 'sent'} | {r['p50_ms']:.1f} | "
                     f"{r['p95_ms']:.1f} |")
    return lines + [""]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, required=True, help="an exported arbitrary-style version folder")
    parser.add_argument("--one-style", type=Path, default=None, help="an exported one-style version folder")
    parser.add_argument("--one-style-command", default="", help="how the one-style model was trained, for the text")
    parser.add_argument("--one-style-note", default="", help="a paragraph on the one-style model, for the text")
    parser.add_argument("--pictures", type=Path, default=Path("out/demo"), help="where the demo wrote its pictures")
    parser.add_argument("--digits", type=int, default=200)
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "benchmarks" / "style.md")
    args = parser.parse_args()

    images = ROOT / "docs" / "images"
    for name in PICTURES:  # kept small in the repository: a 256-colour palette
        if (args.pictures / name).is_file():
            with Image.open(args.pictures / name) as picture:
                picture.convert("RGB").quantize(256, method=Image.Quantize.MEDIANCUT).save(images / name, optimize=True)
    command = f"latentforge evaluate VERSION --n {args.digits}"
    lines = ["# Style transfer: the meter's figures", "",
             f"Measured on {platform.node() or 'this machine'} ({platform.machine()}, 2 CPU cores, no GPU), "
             f"{time.strftime('%Y-%m-%d')}, with `python -m scripts.style_report` "
             f"({shlex.join(sys.argv[1:])}). The meter (`trainer/quality/stylize.py`; "
             "[docs/quality.md](../quality.md)) uses a feature network training never saw (one layer of random "
             "filters at six scales, its own seed), crops training never saw, Reinhard et al.'s colour transfer "
             "(2001) as the classical baseline, and the digit classifier of the mnist5k meter.", ""]
    lines += model_section("Arbitrary style: `make demo`'s model", evaluate(args.model, args.digits), command)
    lines += ["Contents x styles (alpha 1), one content at alpha 0, 0.25, 0.5, 0.75 and 1, and with its own colours "
              "kept (`preserve_color`), as the demo draws them through the served Stylize:", "",
              "![contents x styles](../images/style_grid.png)", "", "![alpha](../images/style_alpha.png)", "",
              "![colours kept](../images/style_colour.png)", ""]
    if args.one_style is not None:
        title = "One style, fast" + (f": `{args.one_style_command}`" if args.one_style_command else "")
        lines += model_section(title, evaluate(args.one_style, args.digits), command)
        if args.one_style_note:
            lines += [args.one_style_note, ""]
    lines += speed_section(args.out.parent / "stylize.json")
    lines += ["## How the defaults were chosen", "",
              "[style_ablation.md](style_ablation.md) (`python -m scripts.style_ablation`) trains each setting the "
              "same steps and scores it with the same meter.", "",
              "## GPU", "", "No GPU machine was at hand for this measurement; the figures above are CPU-only.", ""]
    args.out.write_text("\n".join(lines))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
