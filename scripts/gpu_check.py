"""GPU check: load a model version on the GPU the way the server does, compare it with the CPU,
and measure it at a few batch sizes. Run it on a machine with onnxruntime-gpu (``.[gpu]``):

    python -m scripts.gpu_check --model-path models/rgb64-dcgan/1 [--precision fp16] \\
        [--providers TensorrtExecutionProvider,CUDAExecutionProvider,CPUExecutionProvider] \\
        [--tensorrt-cache /tmp/trt] [--batch-sizes 1,8,64,256] [--json gpu_check.json]

It checks that the first requested provider really runs the image graph (ONNX Runtime falls
back to the CPU silently), that its outputs match the plain float32 graph on the CPU within
tolerance (1e-3 for float32 - TF32 and kernel choice differ from the CPU - and the exporter's
2e-2 for fp16), that IO binding (inputs copied once to the device, outputs written straight
into host arrays) gives the same outputs as plain runs, and reports images/s and latency with
and without IO binding. Exit status 0 when every check passes, 1 when one fails, 2 when the
requested provider is not available (unless ``--allow-cpu``, which runs the same code paths on
the CPU: the test suite does that on machines without a GPU).
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
FP32_TOLERANCE = 1e-3
FP16_TOLERANCE = 2e-2  # the exporter's limit for the fp16 variant


def _max_error(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.max(np.abs(a.astype(np.float64) - b.astype(np.float64))))


def check(model_path: Path, providers: list[str], precision: str, batch_sizes: list[int], duration_s: float,
          tensorrt_cache: str | None, allow_cpu: bool) -> tuple[int, dict[str, Any]]:
    """Run every check; returns (exit status, report)."""
    import onnxruntime as ort

    from latentforge.runtime import CPU, OrtSettings, decode_feeds
    from tools.ortbench import load_model, measure_batch

    report: dict[str, Any] = {"onnxruntime": ort.__version__, "device": ort.get_device(),
                              "available_providers": ort.get_available_providers(), "requested": providers,
                              "precision": precision, "checks": {}}
    missing = [p for p in providers if p not in ort.get_available_providers()]
    if missing and not allow_cpu:
        report["error"] = f"providers not available here: {missing} (install onnxruntime-gpu, or --allow-cpu)"
        return 2, report
    usable = [p for p in providers if p not in missing] or [CPU]
    if CPU not in usable:
        usable.append(CPU)
    settings = OrtSettings(providers=tuple(usable), intra_op_threads=1, precision=precision, io_binding="on",
                           tensorrt_cache_dir=tensorrt_cache)
    model = load_model(model_path, settings)
    unbound = load_model(model_path, replace(settings, io_binding="off"))
    reference = load_model(model_path, OrtSettings(providers=(CPU,), intra_op_threads=1, prefer_ort_variant=False))
    report.update(provider=model.provider, files=model.files, variant=model.variant or "plain")
    checks = report["checks"]
    checks["provider"] = {"ok": model.provider == usable[0], "wanted": providers[0], "got": model.provider,
                          "fell_back_to_cpu": bool(missing)}

    tolerance = FP16_TOLERANCE if model.variant == "fp16" else FP32_TOLERANCE
    rng = np.random.default_rng(0)
    worst, worst_binding = 0.0, 0.0
    m = model.manifest
    for n in sorted({1, 7, *[b for b in batch_sizes if b <= 64]}):
        z = rng.standard_normal((n, m.latent_dim)).astype(np.float32)
        labels = rng.integers(0, m.num_classes, n).astype(np.int64) if m.num_classes else None
        out = model.run_task("decode", decode_feeds(z, labels))["image"]
        worst = max(worst, _max_error(out, reference.run_task("decode", decode_feeds(z, labels))["image"]))
        worst_binding = max(worst_binding, _max_error(out, unbound.run_task("decode", decode_feeds(z, labels))["image"]))
    checks["parity_vs_cpu"] = {"ok": worst <= tolerance, "max_abs_error": worst, "tolerance": tolerance}
    checks["io_binding_vs_plain"] = {"ok": worst_binding <= 1e-5, "max_abs_error": worst_binding}

    report["bench"] = [{"io_binding": bound, **asdict(measure_batch(model if bound else unbound, b, 1, duration_s))}
                       for b in batch_sizes for bound in (True, False)]
    for row in report["bench"]:
        print(f"batch {row['batch_size']:>4} io_binding={'on ' if row['io_binding'] else 'off'} "
              f"{row['images_per_s']:>10.1f} images/s  p50 {row['call_ms'].get('p50', 0):.3f} ms/call")
    ok = all(c["ok"] for c in checks.values())
    return (0 if ok else 1), report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-path", type=Path, required=True, help="a version folder, e.g. models/rgb64-dcgan/1")
    parser.add_argument("--providers", default="CUDAExecutionProvider,CPUExecutionProvider",
                        help="ONNX Runtime providers in order (default CUDA, then CPU)")
    parser.add_argument("--precision", choices=("fp32", "fp16"), default="fp32",
                        help="fp16: the manifest's fp16 variant (export with --fp16)")
    parser.add_argument("--tensorrt-cache", help="TensorRT engine cache folder (with TensorrtExecutionProvider)")
    parser.add_argument("--batch-sizes", default="1,8,64,256")
    parser.add_argument("--duration", type=float, default=2.0, help="seconds per batch size")
    parser.add_argument("--allow-cpu", action="store_true", help="run on the CPU when the GPU provider is missing")
    parser.add_argument("--json", type=Path, help="write the report here")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(ROOT))
    status, report = check(args.model_path, [p.strip() for p in args.providers.split(",") if p.strip()],
                           args.precision, [int(b) for b in args.batch_sizes.split(",")], args.duration,
                           args.tensorrt_cache, args.allow_cpu)
    for name, c in report["checks"].items():
        print(f"{'PASS' if c['ok'] else 'FAIL'} {name}: {json.dumps({k: v for k, v in c.items() if k != 'ok'})}")
    if "error" in report:
        print(f"error: {report['error']}", file=sys.stderr)
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    return status



if __name__ == "__main__":
    sys.exit(main())
