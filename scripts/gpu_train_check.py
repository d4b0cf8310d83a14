"""GPU training check: train a family on CUDA for a few hundred steps, then check that what it
learnt is the same model on the CPU and in its ONNX export. Run it on a machine with a CUDA
build of torch:

    python -m scripts.gpu_train_check --model completion --data mnist5k.npz [--steps 300] \\
        [--batch-size 16] [--out /tmp/gpu-check] [--json gpu_train_check.json]

Checks: the run trains on the GPU (the family's networks live there) with finite losses; its
checkpoint, restored on the CPU, computes what the GPU computes from the same inputs (within
1e-4 in float32; the error with TF32, torch's default for convolutions, is reported beside it); the exporter publishes it (ONNX Runtime parity on the
CPU, within the exporter's 1e-4). For a completion family the compared computation is
``complete`` on held masks and latents, for the others ``sample``. Prints a JSON report; exit
status 0 when every check passes, 1 when one fails, 2 when CUDA is not available.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

GPU_CPU_TOLERANCE = 1e-4  # float32 on both; with TF32 (torch's default for convolutions) ~1e-3 is normal


def _outputs(family: Any, n: int) -> Any:
    """What the family computes from fixed inputs: completions of fixed images, or samples."""
    import numpy as np
    import torch

    from latentforge.completion import training_masks

    g = torch.Generator().manual_seed(0)
    z = torch.randn(n, family.latent_dim, generator=g)
    if hasattr(family, "complete"):
        c, h, w = family.shape
        images = torch.rand(n, c, h, w, generator=g)
        masks = torch.from_numpy(training_masks(np.random.default_rng(0), n, h, w))
        return family.complete(images.to(family.device), masks.to(family.device), z.to(family.device)).cpu()
    return family.sample(z).cpu()


def check(model: str, data: str, steps: int, batch_size: int, out: Path,
          device: str = "cuda") -> tuple[int, dict[str, Any]]:
    """Run every check; returns (exit status, report). ``device`` "cpu" runs the same code paths on
    the CPU (then the networks_on_gpu check fails: for trying the script out, not for a verdict)."""
    import torch

    from exporter.repository import export_run
    from latentforge.manifest import Manifest
    from trainer.checkpoint import load_checkpoint, resolve_checkpoint
    from trainer.config import TrainConfig
    from trainer.families import restore_family
    from trainer.loop import train

    report: dict[str, Any] = {"torch": torch.__version__, "cuda": torch.cuda.is_available(), "model": model,
                              "steps": steps, "checks": {}}
    if device == "cuda" and not torch.cuda.is_available():
        report["error"] = "CUDA is not available to torch here"
        return 2, report
    report["device_name"] = torch.cuda.get_device_name(0) if device == "cuda" else "cpu"
    run = out / f"{model}-cuda"
    cfg = TrainConfig.from_dict({"model": model, "data": data, "out": run, "steps": steps, "batch_size": batch_size,
                                 "device": device, "eval_every": 0, "sample_every": steps, "checkpoint_every": steps,
                                 "progress": False})
    started = time.perf_counter()
    result = train(cfg)
    report["train_seconds"] = round(time.perf_counter() - started, 2)
    report["steps_per_second"] = round(steps / report["train_seconds"], 2)
    losses = [json.loads(line) for line in result.metrics.read_text().splitlines() if line.strip()]
    last = {k: v for k, v in losses[-1].items() if isinstance(v, float)}
    finite = all(v == v and abs(v) != float("inf") for v in last.values())
    report["checks"]["finite_losses"] = {"ok": finite, "last": last}

    payload = load_checkpoint(resolve_checkpoint(run, "latest"))
    on_gpu = restore_family(payload, torch.device(device))
    on_cpu = restore_family(payload, torch.device("cpu"))
    where = {str(p.device) for m in on_gpu.modules.values() for p in m.parameters()}
    report["checks"]["networks_on_gpu"] = {"ok": where == {"cuda:0"}, "devices": sorted(where)}
    reference = _outputs(on_cpu, 16)
    tf32 = float((_outputs(on_gpu, 16) - reference).abs().max())  # torch's default: TF32 convolutions
    cudnn, matmul = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    try:
        err = float((_outputs(on_gpu, 16) - reference).abs().max())  # full float32 on the GPU
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = cudnn, matmul
    report["checks"]["gpu_matches_cpu"] = {"ok": err <= GPU_CPU_TOLERANCE, "max_abs_error": err,
                                           "max_abs_error_tf32": tf32, "tolerance": GPU_CPU_TOLERANCE}
    try:
        version = export_run(run, out / "models", f"{model}-cuda")
        manifest = Manifest.read(version)
        report["checks"]["export"] = {"ok": True, "parity": manifest.parity.max_abs_error,
                                      "tasks": manifest.tasks, "version": str(version)}
    except Exception as exc:  # noqa: BLE001 - reported, not raised: the report is the output
        report["checks"]["export"] = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
    ok = all(c["ok"] for c in report["checks"].values())
    return (0 if ok else 1), report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m scripts.gpu_train_check", description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="completion")
    parser.add_argument("--data", default="mnist5k", help="a data spec, e.g. mnist5k or a .npz of digits")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--out", type=Path, default=Path("/tmp/gpu-train-check"))
    parser.add_argument("--json", type=Path, help="also write the report here")
    parser.add_argument("--device", default="cuda", choices=("cuda", "cpu"),
                        help="cpu: try the script's code paths on a machine without a GPU")
    args = parser.parse_args(argv)
    status, report = check(args.model, args.data, args.steps, args.batch_size, args.out, args.device)
    text = json.dumps(report, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")
    return status


if __name__ == "__main__":
    sys.exit(main())
