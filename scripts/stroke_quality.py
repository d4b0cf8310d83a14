"""Score trained stroke (sketch-rnn) runs for the stroke quality table: held-out NLL and rendered drawings.

    python -m scripts.stroke_quality runs/kanji-a runs/kanji-b ... [--n 1000] [--temperatures 0.2,0.5,1]
        [--out docs/benchmarks/stroke_quality.md] [--note "what the runs are"]

For each run's newest checkpoint (or exported version, run in ONNX Runtime), the figures of `latentforge evaluate RUN` (trainer.quality.strokes):
the held-out L_s, L_p, raw KL and their total beside the same network untrained (its initial
weights: what training bought), then FID, KID and precision/recall of n prior drawings per
temperature rendered at 28x28, beside the floor real held-out drawings reach, and the
reconstructions' FID (and class reads, for labelled data). Writes one Markdown file with the
machine and the command.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import shlex
import sys
from pathlib import Path
from typing import Any

import torch

from trainer.checkpoint import load_checkpoint
from trainer.config import TrainConfig
from trainer.data import DataSpec
from trainer.families import build_family
from trainer.quality.scored import Report
from trainer.quality.strokes import (
    RunModel,
    evaluate_strokes,
    held_out,
    reconstruction_nll,
)


def untrained_nll(run: Path, data: str | None) -> dict[str, float]:
    """The held-out figures of the run's network at its initial weights (the run's seed)."""
    payload = load_checkpoint(run)
    config = TrainConfig.from_dict(payload["config"])
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        family = build_family(config, DataSpec.from_dict(payload["data"]), torch.device("cpu"))
    held = held_out(payload.get("hold_out"), data or payload["config"]["data"], int(family.max_steps), payload["path"])
    return reconstruction_nll(RunModel(family), held.strokes, held.lengths)


def _f(v: Any, fmt: str) -> str:
    return "-" if v is None else format(v, fmt)


def likelihood_rows(name: str, report: Report, fresh: dict[str, float] | None) -> list[str]:
    figures = report.tasks["draw_strokes"]
    h = figures.held_out
    where = f"{h['split']}, {h['count']}" + ("" if h["unseen"] else ", seen in training")
    rows = []
    pairs = [(f"{name} (step {report.source['step']})", figures.nll)]
    if fresh is not None:  # runs only: the same network at its initial weights
        pairs.append((f"{name} untrained", fresh))
    for label, nll in pairs:
        rows.append(f"| {label} | {figures.data['spec']} | {where} | {nll['offset_nll']:.4f} | {nll['pen_nll']:.4f} | "
                    f"{_f(nll.get('kl'), '.4f')} | {nll['total']:.4f} | {nll['nats_per_drawing']:.1f} |")
    return rows


def sample_rows(name: str, report: Report) -> list[str]:
    figures = report.tasks["draw_strokes"]
    rows = []
    f = figures.floor or {}
    for t, s in figures.samples.items():
        rows.append(f"| {name} | prior, t={t} | {s['fid']:.2f} | {s['kid']:.4f} | {s.get('precision', 0):.3f} | "
                    f"{s.get('recall', 0):.3f} | {_f(s.get('confident'), '.3f')} | {s['mean_points']:.1f} | "
                    f"{s['ended']:.2f} |")
    r = figures.reconstruction
    if r:
        read = f"read {r['read']:.3f} (originals {r['original_read']:.3f})" if "read" in r else "-"
        rows.append(f"| {name} | reconstructions from mu, t={r['temperature']:g} ({r['n']}) | {_f(r.get('fid'), '.2f')} "
                    f"| - | - | - | {read} | {r['mean_points']:.1f} | - |")
    rows.append(f"| {name} | real held-out drawings (floor, {f.get('n')}) | {f['fid']:.2f} | {f['kid']:.4f} | "
                f"{f.get('precision', 0):.3f} | {f.get('recall', 0):.3f} | {_f(f.get('confident'), '.3f')} | "
                f"{f['mean_points']:.1f} | {f['ended']:.2f} |")
    return rows


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (f"{cpu}, {os.cpu_count()} cores, {platform.system()} {platform.release()}, Python "
            f"{platform.python_version()}, torch {torch.__version__}, {torch.get_num_threads()} torch thread(s)")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("runs", nargs="+", type=Path,
                   help="run folders of stroke models (newest checkpoint each) or exported version folders")
    p.add_argument("--n", type=int, default=1000, help="prior drawings per temperature (default 1000)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--temperatures", default=None, help="comma-separated (default 0.2,0.5,1 and the grid's)")
    p.add_argument("--data", default=None, help="data to compare with (default: each run's own)")
    p.add_argument("--out", type=Path, default=Path("docs/benchmarks/stroke_quality.md"))
    p.add_argument("--note", default="", help="a paragraph on how the runs were trained, put above the tables")
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    temps = tuple(float(t) for t in args.temperatures.split(",")) if args.temperatures else None
    likelihood, samples = [], []
    for run in args.runs:
        report = evaluate_strokes(run, n=args.n, seed=args.seed, data=args.data, temperatures=temps)
        version = report.source.get("kind") == "version"
        name = f"{report.source['model']} v{report.source['version']} (ONNX)" if version else run.name
        likelihood += likelihood_rows(name, report, None if version else untrained_nll(run, args.data))
        samples += sample_rows(name, report)
        print(f"{run}: done in {report.seconds} s", file=sys.stderr)
    shown = list(argv if argv is not None else sys.argv[1:])
    if "--note" in shown:  # the note is printed below the command, not inside it
        shown[shown.index("--note") + 1] = "..."
    command = "python -m scripts.stroke_quality " + " ".join(shlex.quote(a) for a in shown)
    text = "\n".join([
        "# Stroke model quality (sketch-rnn)",
        "",
        f"Measured {dt.datetime.now(dt.UTC):%Y-%m-%d} on {machine()}.",
        "",
        f"    {command}",
        "",
        *([args.note, ""] if args.note else []),
        "## Held-out likelihood",
        "",
        ("On drawings the run held out (`--hold-out`), in eval mode, with the family's loss code: L_s the "
        "offsets' mixture NLL and L_p the pen states' cross-entropy, each summed over a drawing and divided by "
        "T, its padded length (as in training and the sketch-rnn paper); KL per latent dimension, raw (no KL "
        "tolerance); total = L_s + L_p + KL, the kind of figure in the paper's tables (its data and sizes differ, "
        "so not its values); nats = T (L_s + L_p) + KL summed over dimensions, the bound per drawing. "
        "\"untrained\": the same network at its initial weights."),
        "",
        "| run | data | held out | L_s | L_p | KL/dim | total | nats/drawing |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
        *likelihood,
        "",
        "## Rendered drawings",
        "",
        ("Drawings rendered at 28x28 (trainer.data.strokes.render) and scored in the feature space of the "
        "project's quality meter trained on the data set's rendered drawings (an autoencoder without labels, a "
        "classifier with them), against its training split (80%); the floor row is real held-out drawings "
        "measured the same way. FID, KID and precision/recall on chunks of the floor's size, averaged. "
        "points: mean points per drawing; ended: the share that drew the end state before T. Lower FID is better."),
        "",
        "| run | drawings | FID | KID | precision | recall | confident / read | points | ended |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
        *samples,
        "",
    ])
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
