"""Before/after of the generation server on the same machine: the server of an older commit and
this checkout's, started in turns on the same models under the same load.

    python -m scripts.serving_ab --before b0c7e5f [--models out/bench-serving/models] [--rounds 2]

Figures measured months apart on a shared machine do not compare (the machine itself changes);
this runs both servers now, alternating, and reports each side's median over the rounds: server
CPU per image (the figure that noise disturbs least), images/s and p50, at count=1 with c=1 and
c=64. The older commit is checked out in a temporary git worktree and run with this checkout's
virtual environment. Writes ``serving_before_after.md`` next to the other benchmarks.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def _serve(code: Path, models: Path) -> tuple[subprocess.Popen, str]:
    from scripts.bench_serving import _free_port

    port, metrics_port = _free_port(), _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "latentforge", "serve", "--models", str(models), "--host", "127.0.0.1",
         "--port", str(port), "--metrics-port", str(metrics_port)],
        cwd=code, env={**os.environ, "PYTHONPATH": str(code), "LATENTFORGE_RELOAD_INTERVAL_S": "0"},
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    target = f"127.0.0.1:{port}"
    from services.client import GenerationClient

    with GenerationClient(target) as client:
        client.wait_serving(timeout_s=120)
    return proc, target


def _measure(code: Path, models: Path, model: str, concurrency: int, duration: float) -> dict[str, Any]:
    from tools.loadgen import LoadSpec, ServerCpu, run_load

    proc, target = _serve(code, models)
    try:
        spec = LoadSpec(target=target, model=model, concurrency=concurrency, count=1, duration_s=duration)
        return asyncio.run(run_load(spec, ServerCpu(pid=proc.pid))).to_dict()
    finally:
        proc.terminate()
        proc.wait(20)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--before", required=True, help="git revision of the 'before' server")
    parser.add_argument("--models", type=Path, default=ROOT / "out" / "bench-serving" / "models",
                        help="model repository (default: the one `make bench-serving` builds)")
    parser.add_argument("--model-names", default="mnist-dcgan,rgb64-dcgan")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "benchmarks")
    args = parser.parse_args(argv)
    from scripts.bench_serving import machine

    info = machine()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        before = Path(tmp) / "before"
        subprocess.run(["git", "worktree", "add", "--detach", str(before), args.before], cwd=ROOT, check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            for model in args.model_names.split(","):
                for c in (1, 64):
                    runs: dict[str, list[dict[str, Any]]] = {"before": [], "after": []}
                    for _ in range(args.rounds):
                        for side, code in (("before", before), ("after", ROOT)):
                            runs[side].append(_measure(code, args.models, model, c, args.duration))
                            r = runs[side][-1]
                            print(f"{model} c={c} {side}: {r['images_per_s']:.0f} img/s, server "
                                  f"{r['server_cpu_us_per_image']:.0f} us/img", file=sys.stderr, flush=True)
                    med = {side: {k: statistics.median(r[k] if k != "p50" else r["latencies_ms"]["p50"] for r in rs)
                                  for k in ("images_per_s", "server_cpu_us_per_image", "p50")}
                           for side, rs in runs.items()}
                    rows.append((model, c, med))
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(before)], cwd=ROOT, check=False)
    lines = ["# Serving before and after, on the same machine", "",
             (f"Produced by `python -m scripts.serving_ab {' '.join(argv if argv is not None else sys.argv[1:])}` on "
             f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}: `latentforge serve` of commit `{args.before}` "
             "(before) and of this checkout (after), default settings, started in turns on the same models, "
             f"count=1 Generate (PNG) from `latentforge bench`'s load generator, {args.duration:g} s per run, the "
             f"median of {args.rounds} rounds per side."), "",
             (f"Machine: {info['cpu']}, {info['cores']} cores, {info['memory_gib']} GiB, Python {info['python']}, "
             f"onnxruntime {info['onnxruntime']}, grpcio {info['grpcio']}; load average at start "
             f"{info['load_average_start']} (shared: compare the two sides of one row)."), "",
             ("| model | clients | before images/s | after images/s | x | before server CPU us/img | "
             "after server CPU us/img | change | before p50 ms | after p50 ms |"),
             "|---|---|---|---|---|---|---|---|---|---|"]
    for model, c, m in rows:
        b, a = m["before"], m["after"]
        lines.append(f"| {model} | {c} | {b['images_per_s']:.0f} | {a['images_per_s']:.0f} | "
                     f"{a['images_per_s'] / b['images_per_s']:.2f} | {b['server_cpu_us_per_image']:.0f} | "
                     f"{a['server_cpu_us_per_image']:.0f} | "
                     f"{100 * (a['server_cpu_us_per_image'] / b['server_cpu_us_per_image'] - 1):+.0f}% | "
                     f"{b['p50']:.2f} | {a['p50']:.2f} |")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "serving_before_after.md").write_text("\n".join(lines) + "\n")
    print(f"wrote {args.out / 'serving_before_after.md'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
