"""Stroke serving benchmark: GenerateStrokes at 1, 16 and 64 concurrent drawing sessions.

    python -m scripts.bench_strokes --models DIR --model kanji-sketch [--duration 10] [--out docs/benchmarks]

The server is `latentforge serve` with its default settings in its own process; the load
generator (here, grpc.aio) keeps `c` drawings in flight, each a GenerateStrokes call of one
drawing with a fresh seed at the model's default temperature, read to its end. Per
concurrency: drawings/s, points/s (and both relative to one session alone), time to the first
point and to the whole drawing (p50, p99), rows per decoder_step call (from the server's
latentforge_batch_size metric: how many drawings shared each ONNX Runtime call) and the server's
CPU time per point. Writes ``strokes.md`` and ``strokes.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np

from scripts.bench_serving import Server, machine

CONCURRENCY = (1, 16, 64)


def _metric_sum(url: str, name: str, **labels: str) -> float:
    from prometheus_client.parser import text_string_to_metric_families

    text = urllib.request.urlopen(url, timeout=10).read().decode()
    return sum(s.value for f in text_string_to_metric_families(text) for s in f.samples
               if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()))


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (Linux /proc), in seconds."""
    import os

    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def _load(target: str, model: str, concurrency: int, duration_s: float, warmup_s: float) -> dict[str, Any]:
    """c workers drawing back to back; what finished inside the window after warm-up."""
    import grpc

    from latentforge.v1 import generation_pb2 as pb
    from latentforge.v1 import generation_pb2_grpc as pb_grpc

    rng = random.Random(concurrency)
    start = time.perf_counter()
    begin, end = start + warmup_s, start + warmup_s + duration_s
    firsts: list[float] = []
    totals: list[float] = []
    points = drawings = 0
    async with grpc.aio.insecure_channel(target) as channel:
        stub = pb_grpc.GenerationServiceStub(channel)

        async def worker() -> None:
            nonlocal points, drawings
            while time.perf_counter() < end:
                t0 = time.perf_counter()
                first = None
                n = 0
                async for event in stub.GenerateStrokes(pb.GenerateStrokesRequest(
                        model=model, count=1, seed=rng.getrandbits(64))):
                    if event.WhichOneof("event") == "point":
                        n += 1
                        first = first or time.perf_counter()
                t1 = time.perf_counter()
                if t0 >= begin and t1 <= end:
                    drawings += 1
                    points += n
                    totals.append(t1 - t0)
                    if first is not None:
                        firsts.append(first - t0)

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    ms = lambda xs, q: round(float(np.percentile(xs, q)) * 1e3, 2) if xs else None
    return {"drawings_per_s": drawings / duration_s, "points_per_s": points / duration_s, "drawings": drawings,
            "points_per_drawing": points / max(drawings, 1), "first_point_p50_ms": ms(firsts, 50),
            "first_point_p99_ms": ms(firsts, 99), "drawing_p50_ms": ms(totals, 50), "drawing_p99_ms": ms(totals, 99)}


def bench(models: Path, model: str, duration_s: float, warmup_s: float = 1.0) -> dict[str, Any]:
    rows = []
    with Server(models) as server:
        for c in CONCURRENCY:
            calls0 = _metric_sum(server.metrics_url, "latentforge_batch_size_count", model=model, graph="decoder_step")
            rows0 = _metric_sum(server.metrics_url, "latentforge_batch_size_sum", model=model, graph="decoder_step")
            cpu0 = _cpu_seconds(server.proc.pid)
            row = asyncio.run(_load(server.target, model, c, duration_s, warmup_s))
            cpu = _cpu_seconds(server.proc.pid) - cpu0
            calls = _metric_sum(server.metrics_url, "latentforge_batch_size_count", model=model,
                                graph="decoder_step") - calls0
            steps = _metric_sum(server.metrics_url, "latentforge_batch_size_sum", model=model,
                                graph="decoder_step") - rows0
            # CPU over warm-up + window + drain, per point served in that time (every step is a point or an end)
            row.update(concurrency=c, rows_per_call=steps / max(calls, 1), server_cpu_us_per_step=cpu / max(steps, 1) * 1e6)
            rows.append(row)
            print(f"c={c}: {row['drawings_per_s']:.1f} drawings/s, {row['points_per_s']:.0f} points/s, "
                  f"{row['rows_per_call']:.1f} rows per call", file=sys.stderr)
    alone = rows[0]
    for row in rows:
        row["points_vs_alone"] = row["points_per_s"] / max(alone["points_per_s"], 1e-9)
        row["drawings_vs_alone"] = row["drawings_per_s"] / max(alone["drawings_per_s"], 1e-9)
    return {"model": model, "rows": rows}


def markdown(result: dict[str, Any], info: dict[str, Any], manifest: dict[str, Any], command: str) -> str:
    spec = manifest.get("strokes", {})
    lines = [
        "# Stroke serving benchmark", "",
        f"Produced by `{command}` on {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}.", "",
        (f"Machine: {info['cpu']}, {info['cores']} cores, {info['memory_gib']} GiB, {info['os']}, Python "
        f"{info['python']}, onnxruntime {info['onnxruntime']}, grpcio {info['grpcio']}; load average at start "
        f"{info['load_average_start']}. The machine is shared and the load generator runs on the same cores."), "",
        (f"Model `{result['model']}` ({manifest.get('kind')}: decoder LSTM {spec.get('hidden')}, "
        f"{spec.get('mixtures')} mixtures, latent {manifest.get('latent_dim')}, drawings of at most "
        f"{spec.get('max_steps')} points). Each session is one GenerateStrokes call of one "
        "drawing at the model's default temperature, read to its end; c sessions are kept in flight."), "",
        ("| sessions | drawings/s | points/s | points/s vs 1 alone | points per drawing | first point p50 ms | "
        "drawing p50 ms | drawing p99 ms | drawings per step call | server CPU us/step |"),
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in result["rows"]:
        lines.append(f"| {r['concurrency']} | {r['drawings_per_s']:.1f} | {r['points_per_s']:.0f} | "
                     f"{r['points_vs_alone']:.2f}x | {r['points_per_drawing']:.1f} | {r['first_point_p50_ms']} | "
                     f"{r['drawing_p50_ms']} | {r['drawing_p99_ms']} | {r['rows_per_call']:.1f} | "
                     f"{r['server_cpu_us_per_step']:.0f} |")
    lines += ["", ("Every live session's next step is a row of one shared `decoder_step` call: at 64 sessions a "
              "call carries many drawings, so the server's CPU per point falls and points/s rises with the "
              "sessions instead of staying at what one session alone gets."), ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", type=Path, required=True, help="model repository holding the stroke model")
    parser.add_argument("--model", required=True, help="stroke model name")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds measured per concurrency")
    parser.add_argument("--out", type=Path, default=Path("docs/benchmarks"))
    args = parser.parse_args(argv)
    from latentforge.manifest import list_versions

    versions = list_versions(args.models / args.model)
    manifest = json.loads((args.models / args.model / str(max(versions)) / "manifest.json").read_text())
    info = machine()
    result = bench(args.models, args.model, args.duration)
    args.out.mkdir(parents=True, exist_ok=True)
    command = "python -m scripts.bench_strokes " + " ".join(argv if argv is not None else sys.argv[1:])
    (args.out / "strokes.json").write_text(json.dumps({"machine": info, **result}, indent=2) + "\n")
    (args.out / "strokes.md").write_text(markdown(result, info, manifest, command))
    print(f"wrote {args.out / 'strokes.md'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
