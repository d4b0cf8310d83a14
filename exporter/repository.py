"""Publish a trained run as the next version of a model in the repository.

The version folder is built under a hidden staging name inside the model folder, checked
(onnx.checker, ONNX Runtime parity), hashed, described by manifest.json, and only then
renamed into place: a reader sees a complete version or none. A model that fails a check
is not written.

Which checkpoint: a run's checkpoints/best.pt (the best-scoring weights, see
trainer/evaluation.py) when it has one, else its newest step checkpoint; or the one asked for.
The manifest's `quality` holds the scores of the project's meter: those the trainer measured
on that checkpoint (best.pt and the checkpoint of an evaluated step carry them), or, with
`evaluate=N`, N samples of the exported graph itself scored before it is published.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import shutil
import uuid
from dataclasses import replace
from pathlib import Path

import onnx
import torch

from exporter.onnx_export import (
    DEFAULT_OPSET,
    PARITY_BATCH_SIZES,
    ExportError,
    export_graph,
    measure_parity,
    read_signature,
    write_fp16_variant,
    write_ort_cpu_variant,
)
from exporter.stroke_parity import (
    LOOP_KEY,
    LOOP_TOLERANCE,
    loop_parity,
    parity_drawings,
)
from latentforge import __version__
from latentforge.manifest import (
    MANIFEST_NAME,
    NAME_PATTERN,
    FileEntry,
    Manifest,
    OutputSpec,
    Parity,
    Quality,
    Signature,
    StrokeSpec,
    sha256_file,
)
from latentforge.runtime import PLAIN, ModelRuntime
from trainer.checkpoint import load_checkpoint, resolve_checkpoint
from trainer.families import restore_family
from trainer.families.sketch_rnn import RENDER_SIZE

log = logging.getLogger(__name__)

PARITY_TOLERANCE = 1e-4
# float16 keeps ~3 significant digits; on images in [-1, 1] the error is typically ~1e-3.
FP16_TOLERANCE = 2e-2
VARIANTS = ("fp16", "ort-cpu")


def export_run(
    run: Path,
    repo: Path,
    name: str,
    checkpoint: Path | str | None = None,
    opset: int = DEFAULT_OPSET,
    tolerance: float = PARITY_TOLERANCE,
    variants: tuple[str, ...] = (),
    evaluate: int = 0,
) -> Path:
    """Export a run's checkpoint to `repo/name/<next version>/`.

    `checkpoint`: "best", "latest", a .pt file, or None for best.pt when the run has one and
    its newest checkpoint otherwise (`run` may also be a .pt file). `evaluate`: when > 0, score
    that many samples of the exported image graph with the quality meter (ONNX Runtime, as
    served) and record them as the manifest's quality instead of the trainer's.

    Returns the new version folder. Raises CheckpointError for a missing or broken
    checkpoint, ExportError when a graph fails export, onnx.checker or parity, QualityError
    when `evaluate` cannot score the model.
    """
    unknown = sorted(set(variants) - set(VARIANTS))
    if unknown:
        raise ExportError(f"unknown variant(s) {', '.join(unknown)}; choose from {', '.join(VARIANTS)}")
    if not NAME_PATTERN.match(name):
        raise ExportError(f"model name {name!r} must match {NAME_PATTERN.pattern} (lower case, digits, . _ -)")
    if evaluate < 0:
        raise ExportError(f"evaluate must be >= 0 samples (got {evaluate})")
    run = Path(run)
    path = run if run.is_file() and checkpoint is None else resolve_checkpoint(run, checkpoint)
    payload = load_checkpoint(path)  # format 1 is upgraded
    family = restore_family(payload, torch.device("cpu"))
    strokes = StrokeSpec(**family.stroke_spec()) if hasattr(family, "stroke_spec") else None
    if strokes is None and len(payload["data"]["shape"]) != 3:
        raise ExportError(f"{path} holds a {payload['family']} model of data of shape {list(payload['data']['shape'])} "
                          "that says neither its image shape (C, H, W) nor how to draw its strokes")

    model_dir = Path(repo) / name
    model_dir.mkdir(parents=True, exist_ok=True)
    staging = model_dir / f".staging-{uuid.uuid4().hex[:12]}"
    staging.mkdir()
    try:
        graphs: dict[str, str] = {}
        signatures: dict[str, Signature] = {}
        errors: dict[str, float] = {}
        variant_files: dict[str, dict[str, str]] = {}
        for graph in family.export_graphs():
            fname = f"{graph.role}.onnx"
            export_graph(graph, staging / fname, opset)
            err = measure_parity(graph, staging / fname)
            log.info("%s: parity max abs error %.3g at batch sizes %s", graph.role, err, PARITY_BATCH_SIZES)
            if not err <= tolerance:  # also catches NaN
                raise ExportError(
                    f"{graph.role}: ONNX Runtime differs from PyTorch by {err:.3g} (> {tolerance:g}); not published"
                )
            graphs[graph.role] = fname
            signatures[graph.role] = read_signature(staging / fname, graph.optional_inputs)
            errors[graph.role] = err
            for variant in variants:
                vname = f"{graph.role}.{variant}.onnx"
                writer = write_fp16_variant if variant == "fp16" else write_ort_cpu_variant
                writer(staging / fname, staging / vname)
                verr = measure_parity(graph, staging / vname)
                limit = FP16_TOLERANCE if variant == "fp16" else tolerance
                log.info("%s@%s: parity max abs error %.3g", graph.role, variant, verr)
                if not verr <= limit:
                    raise ExportError(
                        f"{graph.role} ({variant}): differs from PyTorch by {verr:.3g} (> {limit:g}); not published"
                    )
                variant_files.setdefault(variant, {})[graph.role] = vname
                errors[f"{graph.role}@{variant}"] = verr
        names = list(graphs.values()) + [f for roles in variant_files.values() for f in roles.values()]
        files = {f: FileEntry(sha256=sha256_file(staging / f), bytes=(staging / f).stat().st_size) for f in names}
        c, h, w = (1, RENDER_SIZE, RENDER_SIZE) if strokes is not None else tuple(payload["data"]["shape"])
        if family.any_size:  # the graphs take and give images of any size
            c, h, w = family.shape[0], 0, 0
        manifest_fields = dict(
            name=name,
            kind=family.kind,
            latent_dim=family.latent_dim,
            num_classes=family.num_classes,
            classes=tuple(family.data.class_names) if family.num_classes else (),
            tasks=dict(family.tasks),
            conventions=dict(family.conventions),
            strokes=strokes,
            signatures=signatures,
            output=OutputSpec(channels=c, height=h, width=w, value_range=family.value_range),
            graphs=graphs,
            files=files,
            opset=opset,
            variants=variant_files,
            parity=Parity(
                max_abs_error=max(errors[role] for role in graphs),
                tolerance=tolerance,
                batch_sizes=PARITY_BATCH_SIZES,
                per_graph=dict(errors),
            ),
            source_checkpoint={
                "path": str(Path(payload["path"]).resolve()),
                "sha256": sha256_file(Path(payload["path"])),
                "step": int(payload["step"]),
                "family": payload["family"],
            },
            created=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            training=_training_record(payload),
            producer=_producer(),
            quality=_training_quality(payload),
        )
        if strokes is not None:  # the staged graphs as the service runs them, through the manifest-to-be
            staged = ModelRuntime(Manifest(version=1, **manifest_fields), staging, PLAIN)
            errors[LOOP_KEY] = _check_stroke_loop(payload, family, staged)
            manifest_fields["parity"] = replace(manifest_fields["parity"], per_graph=dict(errors))
        if evaluate > 0:
            manifest_fields["quality"] = _evaluate_staged(staging, manifest_fields, evaluate)
        return _publish(model_dir, staging, manifest_fields)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)


def _check_stroke_loop(payload: dict, family, staged: ModelRuntime) -> float:
    """The step graph run in a loop as the service runs it, against PyTorch on held-out drawings;
    ExportError when they part by more than LOOP_TOLERANCE."""
    strokes, lengths, where = parity_drawings(payload, family)
    err = loop_parity(family, staged, strokes, lengths)
    log.info("decoder_step run in a loop over %s: max abs error %.3g against PyTorch's teacher-forced pass",
             where, err)
    if not err <= LOOP_TOLERANCE:
        raise ExportError(f"decoder_step run step by step from ONNX Runtime differs from PyTorch by {err:.3g} "
                          f"(> {LOOP_TOLERANCE:g}) over {where}; not published")
    return err


def _training_record(payload: dict) -> dict:
    """The manifest's `training`: the run's config and data, and the share of the data it held
    out (absent for checkpoints from before hold-out existed, which trained on all of it)."""
    record = {"config": payload["config"], "data": payload["data"]}
    if isinstance(payload.get("hold_out"), dict):
        record["hold_out"] = payload["hold_out"]
    return record


def _quality(record: dict, source: str) -> Quality:
    """A manifest quality block from a flat record of the meter's figures (numbers and strings)."""
    scores: dict[str, float | str] = {"source": source}
    for key, value in record.items():
        if key == "meter_version" or isinstance(value, bool) or value is None:
            continue
        if isinstance(value, (int, float, str)):
            scores[key] = value if isinstance(value, str) else float(value)
    return Quality(meter_version=str(record.get("meter_version", "")), scores=scores)


def _training_quality(payload: dict) -> Quality | None:
    """The scores the trainer measured on this checkpoint (best.pt, or an evaluated step), if any."""
    record = payload.get("quality")
    return _quality(record, "training") if isinstance(record, dict) and "fid" in record else None


def _evaluate_staged(staging: Path, fields: dict, n: int) -> Quality:
    """Score the staged version as it will be served (ONNX Runtime): a model with the complete task
    on its completions of n held-out images (it has no prior to sample, so no FID), a stroke model
    by its held-out likelihood and n drawings per temperature, a style model by the style meter (n
    legibility digits), any other on n samples of its image graph."""
    from trainer.quality.evaluate import evaluate_model

    completes, draws = "complete" in fields["tasks"], "draw_strokes" in fields["tasks"]
    (staging / MANIFEST_NAME).write_text(Manifest(version=1, **fields).to_json())  # provisional
    try:
        report = evaluate_model(staging, n)  # the figures its tasks call for, as `latentforge evaluate` gives
    finally:
        (staging / MANIFEST_NAME).unlink(missing_ok=True)
    summary = report.summary()
    if fields["tasks"].keys() & {"stylize", "stylize_fixed"}:
        log.info("exported graphs scored on %d content x style pairs: style match %.1f%% (Reinhard %.1f%%), content "
                 "kept %.3f at alpha 1, legible %s", summary["pairs"], 100 * summary["style_match"],
                 100 * summary["style_match_reinhard"], summary["content_kept"], summary.get("legible", "n/a"))
    elif draws:
        log.info("exported graphs scored: held-out total %.4f (L_s %.4f, L_p %.4f, KL %.4f), %d drawings per "
                 "temperature", summary.get("total", float("nan")), summary.get("offset_nll", float("nan")),
                 summary.get("pen_nll", float("nan")), summary.get("kl", float("nan")), summary["n"])
    elif completes:
        log.info("exported graph scored on %d held-out images x %d candidates: bottom half PSNR %.2f dB, "
                 "best-of-%d read %s", summary["n"], summary["candidates"], summary.get("bottom_psnr", float("nan")),
                 summary["candidates"], summary.get("bottom_best_read", "n/a"))
    else:
        log.info("exported graph scored on %d samples: FID %.3f (real-data floor %.3f)", n,
                 summary.get("fid", float("nan")), summary.get("fid_floor", float("nan")))
    return _quality(summary, "export")


def _publish(model_dir: Path, staging: Path, fields: dict) -> Path:
    """Claim the next version number with an exclusive mkdir, then rename staging onto it."""
    for _ in range(100):
        version = max(_numeric_dirs(model_dir), default=0) + 1  # claimed folders count too
        target = model_dir / str(version)
        try:
            target.mkdir()  # exclusive: a concurrent exporter gets FileExistsError and retries
        except FileExistsError:
            continue
        try:
            manifest = Manifest(version=version, **fields)
            manifest.validate()
            (staging / "manifest.json").write_text(manifest.to_json())
            os.replace(staging, target)  # replaces the empty placeholder atomically
        except BaseException:
            target.rmdir()  # give the version number back
            raise
        log.info("published %s", target)
        return target
    raise ExportError(f"could not claim a version folder in {model_dir}")


def _numeric_dirs(model_dir: Path) -> list[int]:
    return [int(p.name) for p in model_dir.iterdir() if p.is_dir() and p.name.isdigit()]


def _producer() -> dict[str, str]:
    import onnxruntime

    return {
        "latentforge": __version__,
        "torch": torch.__version__,
        "onnx": onnx.__version__,
        "onnxruntime": onnxruntime.__version__,
    }
