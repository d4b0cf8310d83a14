"""Stylize benchmark: the served Stylize RPC's latency by content size, on a style model.

    python -m scripts.bench_stylize [--models DIR --model NAME] [--out docs/benchmarks] [--calls 30]
    python -m scripts.bench_stylize --train-flags="--skips --recon-weight 1"   # the demo model's options
    python -m scripts.bench_stylize --smoke --out /tmp/x

Without ``--models`` it builds a style model: ``adain`` trained a few steps at 32 px with the
family's default network size (plus ``--train-flags``) and exported; the weights' quality does
not matter for speed, only the network's size does. The server runs as its own process with its
default settings plus the HTTP/JSON port (scripts/bench_serving.py's ``Server``); the client runs
here, on the same cores. The content is a photograph (scikit-image's astronaut, resized with
Pillow) and the style a 256x256 texture, PNG-encoded once outside the timing. The style is sent
once, then named by its style_id, so the timed calls measure the stylizer as a client that sends
a style once would; calls that send a new style image (cold: the style encoder and the cache put
as well) are measured apart. Alpha 1, PNG out. Writes ``stylize.md`` and ``stylize.json``.
"""

from __future__ import annotations

import argparse
import http.client
import io
import json
import os
import shlex
import shutil
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

from scripts.bench_serving import ROOT, Server, _cli, machine

SIZES = (256, 512, 1024)
SMOKE_SIZES = (64, 128)
STYLE_SIZE = 256
TARGET_SIZE = 512
TARGET_P50_MS = 1000.0
TARGET = f"{TARGET_SIZE}x{TARGET_SIZE} p50 <= 1 s on 2 CPU cores"
RPC_TIMEOUT_S = 300.0


# ---- model and images --------------------------------------------------------------------------

def build_model(work: Path, name: str, steps: int, image_size: int, train_flags: str) -> Path:
    """An ``adain`` model with the family's default network size (plus ``train_flags``), trained
    ``steps`` steps and exported to ``work/models/name``; reused while the recipe is the same."""
    repo = work / "models"
    recipe = {"steps": steps, "image_size": image_size, "train_flags": train_flags}
    stamp = work / "recipe.json"
    if (repo / name / "1" / "manifest.json").is_file() and stamp.is_file() and json.loads(stamp.read_text()) == recipe:
        return repo
    for old in (repo / name, work / "run"):
        if old.exists():
            shutil.rmtree(old)
    print(f"training adain for {steps} steps at {image_size} px {train_flags}".rstrip() + " ...", flush=True)
    _cli("train", "--model", "adain", "--data", "style:photos", "--image-size", str(image_size), "--steps", str(steps),
         "--out", str(work / "run"), "--sample-every", str(steps), "--checkpoint-every", str(steps),
         "--no-progress", *shlex.split(train_flags))
    _cli("export", str(work / "run"), "--repo", str(repo), "--name", name)
    stamp.write_text(json.dumps(recipe) + "\n")
    return repo


def model_info(repo: Path, name: str) -> dict[str, Any]:
    """The served model's name, version and its training options (network size and recipe)."""
    versions = sorted((int(p.name) for p in (repo / name).iterdir() if p.name.isdigit()), reverse=True)
    if not versions:
        raise SystemExit(f"no versions of model {name} in {repo}")
    manifest = json.loads((repo / name / str(versions[0]) / "manifest.json").read_text())
    config = manifest.get("training", {}).get("config", {})
    family = config.get("model")
    options = config.get(family, {}) if family else {}
    return {"name": name, "version": versions[0], "kind": manifest.get("kind"), "family": family,
            "width": options.get("width"), "levels": options.get("levels"), "skips": options.get("skips"),
            "options": options, "image_size": config.get("image_size"),
            "steps": manifest.get("source_checkpoint", {}).get("step", config.get("steps")),
            "data": config.get("data")}


def _png(pixels: np.ndarray, size: int) -> bytes:
    """``pixels`` (H, W, 3) uint8 centre-cropped to a square, resized to ``size`` and PNG-encoded."""
    from PIL import Image

    h, w = pixels.shape[:2]
    side = min(h, w)
    top, left = (h - side) // 2, (w - side) // 2
    image = Image.fromarray(np.ascontiguousarray(pixels[top:top + side, left:left + side]), "RGB")
    if side != size:
        image = image.resize((size, size), Image.LANCZOS)
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


def images(sizes: tuple[int, ...], cold: int) -> tuple[dict[int, bytes], bytes, list[bytes]]:
    """The contents by size (a photograph), the style sent once, and ``cold`` other styles (each
    a new image, so each call that sends one encodes it)."""
    from trainer.data.style_images import content_images, style_images

    photos = {p.name: p for p in content_images()}
    photo = photos.get("skimage:astronaut") or next(iter(photos.values()))
    styles = style_images()
    if len(styles) < cold + 1:
        raise SystemExit(f"{cold + 1} style images needed, {len(styles)} available")
    return ({s: _png(photo.pixels, s) for s in sizes}, _png(styles[0].pixels, STYLE_SIZE),
            [_png(s.pixels, STYLE_SIZE) for s in styles[1:cold + 1]])


# ---- calls ---------------------------------------------------------------------------------------

def _request(model: str, content: bytes, style: bytes | str) -> Any:
    """A StylizeRequest: ``content`` PNG, the style as PNG bytes or a style id, alpha 1, PNG out."""
    from latentforge.v1 import generation_pb2 as pb

    request = pb.StylizeRequest(model=model, content=pb.Image(png=content), alpha=1.0, format=pb.OUTPUT_FORMAT_PNG)
    entry = request.styles.add()
    if isinstance(style, str):
        entry.style_id = style
    else:
        entry.image.png = style
    return request


def summary(latencies_s: list[float], wall_s: float | None = None) -> dict[str, Any]:
    """p50, p95 and mean latency in ms, and images/s (calls over ``wall_s``, else over the sum)."""
    ms = np.asarray(latencies_s) * 1000.0
    wall = wall_s if wall_s is not None else float(np.sum(latencies_s))
    return {"calls": len(ms), "p50_ms": round(float(np.percentile(ms, 50)), 1),
            "p95_ms": round(float(np.percentile(ms, 95)), 1), "mean_ms": round(float(ms.mean()), 1),
            "images_per_s": round(len(ms) / wall, 3) if wall > 0 else None}


def _timed(call: Callable[[], None], n: int) -> list[float]:
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        call()
        out.append(time.perf_counter() - t0)
    return out


class Http:
    """One keep-alive HTTP/1.1 connection POSTing proto3 JSON to /v1/stylize; the answer is read
    whole (its JSON parsed only when asked, so the timed calls do not decode the image)."""

    def __init__(self, target: str) -> None:
        host, _, port = target.rpartition(":")
        self.conn = http.client.HTTPConnection(host, int(port), timeout=RPC_TIMEOUT_S)

    def post(self, body: bytes, parse: bool = False) -> dict[str, Any] | None:
        self.conn.request("POST", "/v1/stylize", body, {"Content-Type": "application/json"})
        answer = self.conn.getresponse()
        data = answer.read()
        if answer.status != 200:
            raise RuntimeError(f"POST /v1/stylize: {answer.status} {data[:300]!r}")
        return json.loads(data) if parse else None

    def close(self) -> None:
        self.conn.close()


def measure(server: Server, model: str, sizes: tuple[int, ...], calls: int, cold: int,
            warmup: int) -> tuple[list[dict[str, Any]], str]:
    """Every row: per size gRPC c=1, then at the main size HTTP/JSON c=1, cold styles and gRPC
    c=2; the style's id."""
    import grpc
    from google.protobuf import json_format

    from latentforge.v1 import generation_pb2_grpc as pb_grpc

    contents, style, cold_styles = images(sizes, cold)
    main_size = TARGET_SIZE if TARGET_SIZE in sizes else sizes[-1]
    limit = 64 * 1024 * 1024
    channel = grpc.insecure_channel(server.target, options=[("grpc.max_receive_message_length", limit),
                                                            ("grpc.max_send_message_length", limit)])
    stub = pb_grpc.GenerationServiceStub(channel)
    rows: list[dict[str, Any]] = []

    def row(label: str, size: int, protocol: str, concurrency: int, style_sent: str, stats: dict[str, Any]) -> None:
        rows.append({"label": label, "size": size, "protocol": protocol, "concurrency": concurrency,
                     "style": style_sent, **stats})
        print(f"  {label:<34} p50 {stats['p50_ms']:9.1f}  p95 {stats['p95_ms']:9.1f}  mean {stats['mean_ms']:9.1f} ms"
              f"  {stats['images_per_s'] or 0:7.2f} img/s", flush=True)

    try:
        # The style, sent once (on the smallest content): later calls name it by its id.
        first = stub.Stylize(_request(model, contents[sizes[0]], style), timeout=RPC_TIMEOUT_S)
        if not first.style_id or not first.samples_stored:
            raise RuntimeError("the server did not store the style: its id cannot be named in later calls")
        style_id = first.style_id
        for size in sizes:
            request = _request(model, contents[size], style_id)
            answer = stub.Stylize(request, timeout=RPC_TIMEOUT_S)
            if (answer.sample.image.png[:8] != b"\x89PNG\r\n\x1a\n" or answer.style_id != style_id):
                raise RuntimeError(f"unexpected answer at {size}x{size}")
            _timed(lambda: stub.Stylize(request, timeout=RPC_TIMEOUT_S), warmup)
            row(f"{size}x{size} gRPC c=1", size, "grpc", 1, "id",
                summary(_timed(lambda: stub.Stylize(request, timeout=RPC_TIMEOUT_S), calls)))

        size = main_size
        request = _request(model, contents[size], style_id)
        body = json_format.MessageToJson(request, indent=None).encode()
        client = Http(server.http_target)
        try:
            answer = client.post(body, parse=True)
            if not (answer or {}).get("sample", {}).get("image", {}).get("png"):
                raise RuntimeError("POST /v1/stylize answered without an image")
            _timed(lambda: client.post(body), warmup)
            row(f"{size}x{size} HTTP/JSON c=1", size, "http", 1, "id",
                summary(_timed(lambda: client.post(body), calls)))
        finally:
            client.close()

        cold_requests = iter([_request(model, contents[size], s) for s in cold_styles])
        cold_s = _timed(lambda: stub.Stylize(next(cold_requests), timeout=RPC_TIMEOUT_S), len(cold_styles))
        stats = summary(cold_s)
        stats["first_ms"] = round(cold_s[0] * 1000.0, 1)
        row(f"{size}x{size} gRPC c=1, style sent", size, "grpc", 1, "image (new)", stats)

        latencies: list[list[float]] = [[], []]
        errors: list[BaseException] = []

        def client_thread(k: int) -> None:
            try:
                latencies[k] = _timed(lambda: stub.Stylize(request, timeout=RPC_TIMEOUT_S), calls)
            except BaseException as exc:  # surfaced below, after both threads end
                errors.append(exc)

        threads = [threading.Thread(target=client_thread, args=(k,)) for k in range(2)]
        t0 = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        wall = time.perf_counter() - t0
        if errors:
            raise errors[0]
        row(f"{size}x{size} gRPC c=2", size, "grpc", 2, "id", summary(latencies[0] + latencies[1], wall))
    finally:
        channel.close()
    return rows, style_id


# ---- report --------------------------------------------------------------------------------------

def target(rows: list[dict[str, Any]], sizes: tuple[int, ...]) -> dict[str, Any]:
    """The issue's target: 512x512 through the served Stylize, p50 <= 1 s (gRPC, c=1, style by id)."""
    hit = next((r for r in rows if r["size"] == TARGET_SIZE and r["protocol"] == "grpc" and r["concurrency"] == 1
                and r["style"] == "id"), None)
    if hit is None:
        return {"target": TARGET, "met": None, "figure": f"not measured, sizes {', '.join(map(str, sizes))}"}
    return {"target": TARGET, "met": hit["p50_ms"] <= TARGET_P50_MS, "figure": f"p50 {hit['p50_ms']:.0f} ms"}


def markdown(results: dict[str, Any]) -> str:
    """The short page: machine, command, model, the table and the target."""
    m, model, t = results["machine"], results["model"], results["target"]
    verdict = "met" if t["met"] else "MISSED" if t["met"] is False else "n/a"
    lines = [
        "# Stylize latency",
        "",
        f"Measured {results['date']} with `{results['command']}` on {m['cpu']}, {m['cores']} cores, "
        f"{m['memory_gib']} GiB, {m['os']}; Python {m['python']}, ONNX Runtime {m['onnxruntime']}, "
        f"grpcio {m['grpcio']}. Load average at start {m['load_average_start']}, at end {m['load_average_end']}.",
        "",
        f"Model `{model['name']}` version {model['version']} ({model['family']}): width {model['width']}, "
        f"levels {model['levels']}, skips {model['skips']}; trained {model['steps']} steps at {model['image_size']} px "
        "(speed depends on the network's size, not its weights).",
        "",
        "The server runs as its own process with its default settings plus the HTTP/JSON port; the client "
        f"runs on the same cores. Content: a photograph resized to each size, PNG; style: a {STYLE_SIZE}x{STYLE_SIZE} "
        f"texture sent once, then named by its style_id; alpha 1, PNG out. {results['calls']} timed calls per row "
        f"(per client at c=2) after {results['warmup']} untimed; latency is the call as the client sees it. "
        "\"style sent\": each call sends a new style image (the style encoder and the cache put as well).",
        "",
        "| content | protocol | concurrency | style | p50 ms | p95 ms | mean ms | images/s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in results["rows"]:
        style = "sent (new image)" if r["style"] != "id" else "by id"
        lines.append(f"| {r['size']}x{r['size']} | {'HTTP/JSON' if r['protocol'] == 'http' else 'gRPC'} | "
                     f"{r['concurrency']} | {style} | {r['p50_ms']:.1f} | {r['p95_ms']:.1f} | {r['mean_ms']:.1f} | "
                     f"{r['images_per_s']:.2f} |")
    cold = next((r for r in results["rows"] if r["style"] != "id"), None)
    if cold is not None:
        lines += ["", f"First call that sent a style image: {cold['first_ms']:.1f} ms ({cold['calls']} calls with new "
                  "style images in that row)."]
    lines += ["", f"Target: {t['target']}: {verdict} ({t['figure']})", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Build (or take) the style model, serve it, measure, and write stylize.md and stylize.json."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=Path, help="a model repository holding the style model (else one is built)")
    parser.add_argument("--model", default="adain", help="the style model's name")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "benchmarks", help="where stylize.md/.json go")
    parser.add_argument("--work", type=Path, default=ROOT / "out" / "bench-stylize",
                        help="the built model is kept here")
    parser.add_argument("--calls", type=int, help="timed calls per row (default 30; 3 with --smoke)")
    parser.add_argument("--steps", type=int, help="training steps of the built model (default 50; 10 with --smoke)")
    parser.add_argument("--train-flags", default="",
                        help='more `latentforge train` options for the built model, e.g. --train-flags="--skips"')
    parser.add_argument("--smoke", action="store_true", help="sizes 64 and 128, 3 calls: checks the tooling works")
    args = parser.parse_args(argv)
    sizes = SMOKE_SIZES if args.smoke else SIZES
    calls = args.calls or (3 if args.smoke else 30)
    warmup = 1 if args.smoke else 2
    cold = min(5, calls)
    steps = args.steps or (10 if args.smoke else 50)
    sys.path.insert(0, str(ROOT))
    info = machine()
    repo = args.models or build_model(args.work, args.model, steps, 32, args.train_flags)
    model = model_info(repo, args.model)
    print(f"{model['name']} v{model['version']}: width {model['width']}, levels {model['levels']}, "
          f"skips {model['skips']}", flush=True)
    with Server(repo) as server:
        rows, style_id = measure(server, args.model, sizes, calls, cold, warmup)
    info["load_average_end"] = [round(x, 2) for x in os.getloadavg()]
    command = "python -m scripts.bench_stylize" + "".join(
        f" {flag}" for flag, given in (
            (f"--models {args.models} --model {args.model}", args.models),
            (f"--calls {args.calls}", args.calls), (f"--steps {args.steps}", args.steps),
            (f"--train-flags={shlex.quote(args.train_flags)}", args.train_flags), ("--smoke", args.smoke)) if given)
    results = {"machine": info, "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "command": command,
               "model": model, "sizes": list(sizes), "calls": calls, "warmup": warmup, "style_size": STYLE_SIZE,
               "style_id": style_id, "rows": rows, "target": target(rows, sizes)}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "stylize.json").write_text(json.dumps(results, indent=2) + "\n")
    (args.out / "stylize.md").write_text(markdown(results))
    t = results["target"]
    print(f"wrote {args.out / 'stylize.md'}, stylize.json\n  "
          f"{'MET' if t['met'] else 'MISSED' if t['met'] is False else 'n/a'} {t['target']}: {t['figure']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
