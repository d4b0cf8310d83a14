"""The training loop: batches in, one family step per batch, checkpoints, grids and metrics out.

Layout of a run folder (rank 0 writes all of it):

    <out>/run.json                    config, data and family, hold-out, step, best, updated at the end
    <out>/metrics.jsonl               one JSON object per logged step ("eval": scores, when evaluated)
    <out>/checkpoints/step_*.pt       atomic, newest `keep_checkpoints` kept
    <out>/checkpoints/best.pt         the best-scoring weights so far (trainer.evaluation), never pruned
    <out>/samples/step_*.png          grids from one fixed latent batch (+ latest.png); a
                                      conditional family's grid has one row per class
    <out>/samples/recon_step_*.png    VAE: originals beside reconstructions

Hold-out: a run trains without the quality meter's held-out split at share `hold_out` (unset:
its family's `default_hold_out`, 0.2 for completion and 0 for the others), so the held-out
images the meter scores (e.g. the digits a completion model completes) were never seen in
training. run.json, every checkpoint and the exported manifest record it as
{"share", "seed", "source_count", "held_out"}.

Resuming continues exactly: the data order is a function of (seed, step), and the
checkpoint restores networks, optimisers and every rank's RNG state.

A run ends at `steps`, or when its time budget (`time_budget`) is spent, whichever comes
first. Both are totals for the run, not for one session: `steps` counts every step since the
start, and the budget counts the training time every session has spent (stored in each
checkpoint as `elapsed_seconds`; the clock runs from the first step of a session, so loading
data and training the quality meter do not count, and the final evaluation and checkpoint
come after the budget). A run that spent its budget is finished like one that reached
`steps` (run.json: `"finished": true, "stopped": "time-budget"`); `--resume` then continues
it only with a larger `--time-budget` (or 0 for none), and `--resume auto` leaves it as it is.

A stop request (SIGTERM/SIGINT through `trainer.stopping`) ends the run after the current
step: every rank stops after the same step, a checkpoint is written at it, and run.json
records the step and the reason; resuming from it continues exactly as well. The ranks
agree on a spent budget the same way (one all-reduce per step carries both).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch.utils.data import DistributedSampler

from latentforge.cpus import available_cpus
from trainer.checkpoint import (
    CheckpointError,
    checkpoint_step,
    latest_checkpoint,
    list_checkpoints,
    load_checkpoint,
    save_best_checkpoint,
    save_checkpoint,
)
from trainer.config import TrainConfig, fixed_options
from trainer.data import Batch, DataError, TrainingData, data_kind, load_data
from trainer.distributed import DistContext, init_distributed, shutdown
from trainer.evaluation import Evaluator, scores_of
from trainer.families import build_family, data_problem, family_entry
from trainer.families.base import Family
from trainer.grids import save_grid
from trainer.progress import Progress, format_duration
from trainer.stopping import StopRequest

log = logging.getLogger(__name__)

TIME_BUDGET = "time-budget"  # TrainResult.stopped / run.json "stopped" when the budget ended the run


@dataclass
class TrainResult:
    """What a finished run left behind."""

    run_dir: Path
    step: int
    checkpoint: Path | None
    metrics: Path
    samples: Path | None
    stopped: str | None = None  # why the run ended before cfg.steps ("SIGTERM", "time-budget"), None when it did not
    best: dict[str, Any] | None = None  # the quality record of checkpoints/best.pt, when the run has one

    @property
    def finished(self) -> bool:
        """The run reached cfg.steps or spent its time budget (a signal's stop is not finished)."""
        return self.stopped in (None, TIME_BUDGET)

    @property
    def best_checkpoint(self) -> Path | None:
        path = self.run_dir / "checkpoints" / "best.pt"
        return path if self.best is not None and path.is_file() else None


Resume = bool | Literal["auto"]


def train(cfg: TrainConfig, resume: Resume = False, stop: StopRequest | None = None) -> TrainResult:
    """Train (or continue) a run as the config describes; under torchrun, on every rank.

    `resume`: False starts a fresh run (refused when the folder holds checkpoints), True
    continues from the newest checkpoint (refused when there is none), "auto" continues when
    there are checkpoints and starts fresh otherwise; a run that already reached `cfg.steps`
    or spent its time budget is then left as it is. `stop`, when its request is set, ends the
    run after the current step with a checkpoint (see `trainer.stopping`).
    """
    cfg.validate()
    family_entry(cfg.model).load()  # fail on a broken family before loading any data
    problem = data_problem(cfg.model, data_kind(cfg.data), cfg.data)  # or on data of the wrong kind
    if problem:
        raise DataError(problem)
    if resume not in (True, False, "auto"):
        raise ValueError(f"resume must be True, False or 'auto' (got {resume!r})")
    ctx = init_distributed(cfg.device)
    try:
        result = _train(cfg, resume, ctx, stop if stop is not None else StopRequest())
    except BaseException:
        shutdown(ctx, together=False)
        raise
    shutdown(ctx)
    return result


def _train(cfg: TrainConfig, resume: Resume, ctx: DistContext, stop: StopRequest) -> TrainResult:
    if cfg.threads > 0:
        torch.set_num_threads(cfg.threads)
    elif ctx.enabled and ctx.device.type == "cpu":
        torch.set_num_threads(max(1, available_cpus() // ctx.local_world_size))

    # Every rank decides from the same view of the run folder, or none goes on: a rank that
    # started fresh beside ranks that resumed would never meet them in a collective.
    found = list_checkpoints(cfg.out)
    seen = ctx.gather(checkpoint_step(found[-1]) if found else None)
    if len(set(seen)) > 1:
        raise CheckpointError(f"the processes see different checkpoints in {cfg.out} (newest step by rank: {seen}); "
                              "every process must read the same run folder (a shared volume)")
    latest = seen[0]
    budget = cfg.time_budget_seconds
    if resume == "auto":
        if latest is not None:
            reason = _already_done(cfg, latest, budget)
            if reason is not None:
                log.info("%s already %s; nothing to train", cfg.out, reason)
                return _result(cfg.out, latest, latest_checkpoint(cfg.out) if ctx.is_main else None,
                               best=_run_info(cfg.out).get("best"))
        resume = latest is not None
    if not resume and latest is not None:
        raise CheckpointError(f"{cfg.out} already holds checkpoints; pass --resume to continue it or a new --out")
    payload = _resume_payload(cfg) if resume else None
    data = load_data(cfg.data, cfg.image_size, cfg.channels, cfg.min_image_size)
    data, hold_out = hold_out_data(data, hold_out_share(cfg))
    per_rank = len(data) // ctx.world_size
    if per_rank < cfg.batch_size:
        raise DataError(
            f"{data.source}: {len(data)} examples give {per_rank} per process, fewer than "
            f"batch_size {cfg.batch_size}; lower --batch-size or add data"
        )

    family = build_family(cfg, data.spec, ctx.device)
    start = 0
    spent = 0.0  # training seconds earlier sessions of this run spent (counted against the budget)
    if payload is not None:
        family.load_state(payload)
        start = int(payload["step"])
        spent = float(payload.get("elapsed_seconds", 0.0))
        rng = payload.get("rng") or []
        if len(rng) == ctx.world_size:
            _set_rng_state(rng[ctx.rank], ctx.device)
        else:
            torch.manual_seed(cfg.seed + 7919 * (ctx.rank + 1) + start)
    else:
        torch.manual_seed(cfg.seed + 7919 * (ctx.rank + 1))
    family.wrap(ctx.wrap)

    out = cfg.out
    metrics_path = out / "metrics.jsonl"
    evaluator: Evaluator | None = None
    if ctx.is_main:
        out.mkdir(parents=True, exist_ok=True)
        evaluator = Evaluator.open(cfg, data, family, out)  # may train the meter once per data set
        _write_run_info(out, cfg, data, family, ctx, start, elapsed=spent, hold_out=hold_out,
                        best=evaluator.best if evaluator is not None else _run_info(out).get("best"))
        _truncate_metrics(metrics_path, start)
    ctx.barrier()

    batches = _Batches(data, cfg, ctx)
    fixed_batch = batches.spread(max(1, cfg.grid_size // 2))

    progress = (Progress(cfg.steps, start, f"train {cfg.model}", cfg.progress_every, budget_s=budget, spent_s=spent)
                if ctx.is_main and cfg.progress else None)
    last_ckpt: Path | None = None
    window: list[float] = []
    stopped: str | None = None
    done = start
    began = time.monotonic()
    metrics_file = open(metrics_path, "a") if ctx.is_main else None
    try:
        for step in range(start, cfg.steps):
            epoch, batch = batches.at(step)
            t0 = time.perf_counter()
            metrics = family.train_step(batch, step)
            if metrics_file is not None:
                window.append(time.perf_counter() - t0)
            done = step + 1
            final = done == cfg.steps
            # Collective: every rank learns whether (and why) any rank was asked to stop, and
            # whether any rank's clock says the budget is spent (the low bit; a signal outranks
            # it). The decision rests on the agreed value alone: a signal landing after the
            # all-reduce counts at the next step, on every rank alike.
            over_budget = budget is not None and spent + time.monotonic() - began >= budget
            agreed = 0 if final else ctx.max(2 * stop.code + int(over_budget))
            stop.agree(agreed // 2)
            signalled = agreed // 2 != 0
            budget_spent = agreed == 1
            ending = final or budget_spent  # the run is finished after this step
            quality = None
            scoring = evaluator is not None and not signalled and (done % cfg.eval_every == 0 or ending)
            if scoring or ending:
                family.prepare_snapshot(data, done)
            if scoring:
                quality = evaluator.evaluate(family, done)
            if metrics_file is not None and (done % cfg.log_every == 0 or ending or quality is not None):
                record: dict[str, Any] = {"step": done, "epoch": epoch, "time": round(time.time(), 3)}
                if window:
                    record["step_seconds"] = sum(window) / len(window)
                record.update({k: round(v, 6) for k, v in metrics.items()})
                if quality is not None:
                    record["eval"] = scores_of(quality)
                metrics_file.write(json.dumps(record) + "\n")
                metrics_file.flush()
                window.clear()
            if ctx.is_main and (done % cfg.sample_every == 0 or ending):
                _save_grids(out, family, cfg, fixed_batch, done)
            if done % cfg.checkpoint_every == 0 or ending or signalled:
                rng = ctx.gather(_rng_state(ctx.device))  # collective: every rank takes part
                if ctx.is_main:
                    elapsed = spent + time.monotonic() - began
                    extra = {"elapsed_seconds": round(elapsed, 3), "hold_out": hold_out}
                    if quality is not None:
                        extra["quality"] = quality
                    last_ckpt = save_checkpoint(out, done, _payload(cfg, data, family, rng, extra),
                                                cfg.keep_checkpoints)
                ctx.barrier()
            if quality is not None and evaluator is not None and evaluator.improved(quality):
                # Not needed to resume (step checkpoints are), so rank 0 alone writes it.
                save_best_checkpoint(out, done, _payload(cfg, data, family, [], {"quality": quality,
                                                                                 "hold_out": hold_out}))
                log.info("step %d: FID %.3f (floor %.3f), the best so far: %s", done, quality["fid"],
                         quality.get("fid_floor", float("nan")), out / "checkpoints" / "best.pt")
            elif quality is not None:
                log.info("step %d: FID %.3f (floor %.3f); best %.3f at step %s", done, quality["fid"],
                         quality.get("fid_floor", float("nan")), evaluator.best["fid"], evaluator.best["step"])
            if progress is not None:
                progress.update(done, metrics if done % cfg.log_every == 0 or ending else None, quality,
                                evaluator.best if evaluator is not None else None)
            if signalled:
                stopped = stop.reason
                log.warning("stopped at step %d of %d (%s); resume with --resume", done, cfg.steps, stopped)
                break
            if budget_spent:
                stopped = TIME_BUDGET
                log.info("time budget of %s spent at step %d of %d", format_duration(budget), done, cfg.steps)
                break
    finally:
        if progress is not None:
            progress.close()
        if metrics_file is not None:
            metrics_file.close()
    best = evaluator.best if evaluator is not None else None
    if ctx.is_main:
        _write_run_info(out, cfg, data, family, ctx, done, finished=stopped in (None, TIME_BUDGET), stopped=stopped,
                        elapsed=spent + time.monotonic() - began, best=best, hold_out=hold_out)
    return _result(out, done, last_ckpt, stopped, best)


def hold_out_share(cfg: TrainConfig) -> float:
    """The share of the data a run holds out: its `hold_out`, or its family's default."""
    if cfg.hold_out is not None:
        return float(cfg.hold_out)
    return float(family_entry(cfg.model).load().default_hold_out)


def hold_out_data(data: TrainingData, share: float) -> tuple[TrainingData, dict[str, Any]]:
    """The data without the quality meter's held-out split at `share` (the meter's own
    `split_indices`, with its seed: at share 0.2, exactly the images the meter holds out; a
    larger share holds out a superset of them), and the record run.json, the checkpoints and
    the manifest keep of it. Share 0 keeps everything."""
    from trainer.quality.features import DEFAULT_SETTINGS, split_indices

    total = len(data)
    record: dict[str, Any] = {"share": share, "seed": DEFAULT_SETTINGS.seed, "source_count": total, "held_out": 0}
    if share <= 0:
        return data, record
    kept, held = split_indices(total, share, DEFAULT_SETTINGS.seed)
    record["held_out"] = int(len(held))
    subset = dataclasses.replace(data, **{name: array[kept] for name, array in data.arrays().items()})
    log.info("holding out %d of %d examples (share %g, the quality meter's split)", len(held), total, share)
    return subset, record


def _result(out: Path, step: int, checkpoint: Path | None, stopped: str | None = None,
            best: dict[str, Any] | None = None) -> TrainResult:
    samples = out / "samples" / "latest.png"
    return TrainResult(out, step, checkpoint, out / "metrics.jsonl", samples if samples.exists() else None, stopped,
                       best)


def _already_done(cfg: TrainConfig, latest: int, budget: float | None) -> str | None:
    """Why a run whose newest checkpoint is at step `latest` has nothing left to train, or None."""
    if latest >= cfg.steps:
        return f"reached step {latest} of {cfg.steps}"
    if budget is not None:
        spent = float(load_checkpoint(latest_checkpoint(cfg.out)).get("elapsed_seconds", 0.0))
        if spent >= budget:
            return f"spent its time budget ({format_duration(spent)} of {format_duration(budget)})"
    return None


def _run_info(out: Path) -> dict[str, Any]:
    """run.json of a run folder, or {} when it is absent or unreadable."""
    try:
        info = json.loads((out / "run.json").read_text())
    except (OSError, ValueError):
        return {}
    return info if isinstance(info, dict) else {}


class _Batches:
    """The batch of every step, a function of (seed, step) alone, so a resumed run sees the
    same batches. Small data sets live on the training device, so a step does not copy its
    batch there."""

    def __init__(self, data: TrainingData, cfg: TrainConfig, ctx: DistContext) -> None:
        arrays = data.arrays()
        on_device = ctx.device.type != "cpu" and sum(a.nbytes for a in arrays.values()) <= cfg.device_data_max_bytes
        self.tensors = {k: torch.from_numpy(a).to(ctx.device) if on_device else torch.from_numpy(a)
                        for k, a in arrays.items()}
        self.device = ctx.device
        self.batch_size = cfg.batch_size
        self.sampler = DistributedSampler(range(len(data)), num_replicas=ctx.world_size, rank=ctx.rank,
                                          shuffle=True, seed=cfg.seed, drop_last=True)
        self.steps_per_epoch = len(self.sampler) // cfg.batch_size
        self.epoch = -1
        self.indices: list[int] = []
        self.seed = cfg.seed
        # A family option: batches drawn `length_buckets` at a time and sorted by length (strokes).
        self.length_buckets = int(getattr(cfg.family, "length_buckets", 0) or 0)
        self.lengths = (self.tensors["lengths"].cpu().tolist()
                        if self.length_buckets and "lengths" in self.tensors else None)

    def _batch(self, index) -> Batch:
        return Batch(**{k: t[index].to(self.device) for k, t in self.tensors.items()})

    def spread(self, n: int) -> Batch:
        """`n` examples evenly spaced over the data (the reconstruction grids' fixed batch), so
        a data set stored sorted by class still shows every class, not n of its first."""
        count = len(next(iter(self.tensors.values())))
        return self._batch(torch.linspace(0, count - 1, min(n, count)).round().long())

    def at(self, step: int) -> tuple[int, Batch]:
        """(epoch, batch) of a step."""
        epoch, offset = divmod(step, self.steps_per_epoch)
        if epoch != self.epoch:
            self.epoch = epoch
            self.sampler.set_epoch(epoch)
            self.indices = list(self.sampler)
            if self.lengths is not None:
                self.indices = bucket_by_length(self.indices, self.lengths, self.batch_size,
                                                self.length_buckets, (self.seed, epoch))
        return epoch, self._batch(self.indices[offset * self.batch_size:(offset + 1) * self.batch_size])


def bucket_by_length(indices: list[int], lengths: list[int], batch_size: int, pool: int,
                     seed: tuple[int, int]) -> list[int]:
    """An epoch's shuffled `indices` regrouped so each batch holds examples of similar length:
    every run of `pool` batches is sorted by length and cut into batches, then the order of all
    the epoch's batches is shuffled (from `seed`, so a resumed run sees the same batches). The
    examples of each pool and the batch size stay; what is left after the last whole batch is
    dropped, as the loop drops it."""
    whole = len(indices) // batch_size * batch_size
    span = max(1, pool) * batch_size
    batches: list[list[int]] = []
    for start in range(0, whole, span):
        chunk = sorted(indices[start:min(start + span, whole)], key=lambda i: lengths[i])
        batches += [chunk[j:j + batch_size] for j in range(0, len(chunk), batch_size)]
    order = np.random.default_rng(list(seed)).permutation(len(batches))
    return [i for k in order for i in batches[k]]


def _rng_state(device: torch.device) -> torch.Tensor | list[torch.Tensor]:
    """This rank's generator state: the CPU's, plus the device's when training on CUDA."""
    if device.type == "cuda":
        return [torch.get_rng_state(), torch.cuda.get_rng_state(device)]
    return torch.get_rng_state()


def _set_rng_state(state: torch.Tensor | list[torch.Tensor], device: torch.device) -> None:
    if isinstance(state, list):
        torch.set_rng_state(state[0])
        if device.type == "cuda" and len(state) > 1:
            torch.cuda.set_rng_state(state[1], device)
    else:
        torch.set_rng_state(state)


def _resume_payload(cfg: TrainConfig) -> dict[str, Any]:
    payload = load_checkpoint(latest_checkpoint(cfg.out))
    saved_cfg = TrainConfig.from_dict(payload["config"])
    saved, now = fixed_options(saved_cfg), fixed_options(cfg)
    if saved["model"] != now["model"]:
        saved, now = {"model": saved["model"]}, {"model": now["model"]}
    mismatched = [k for k in now if saved.get(k) != now[k]]
    if mismatched:
        detail = ", ".join(f"{k}: checkpoint {saved.get(k)!r} vs now {now[k]!r}" for k in mismatched)
        raise CheckpointError(f"cannot resume {cfg.out}: settings differ from the checkpoint ({detail})")
    if int(payload["step"]) >= cfg.steps:
        raise CheckpointError(
            f"{cfg.out} already reached step {payload['step']}; pass --steps larger than that to continue"
        )
    budget, spent = cfg.time_budget_seconds, float(payload.get("elapsed_seconds", 0.0))
    if budget is not None and spent >= budget:
        raise CheckpointError(
            f"{cfg.out} already spent its time budget ({format_duration(spent)} of {format_duration(budget)}); "
            "pass a larger --time-budget, or --time-budget 0 for none, to continue"
        )
    return payload


def _payload(cfg: TrainConfig, data: TrainingData, family: Family, rng: list[torch.Tensor],
             extra: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "family": family.name,
        "config": cfg.to_dict(),
        "data": data.spec.to_dict(),
        "rng": rng,
        **(extra or {}),
        **family.state(),
    }


@dataclass
class _GridInputs:
    """The fixed inputs of the sample grids: latents, labels of a conditional family, columns."""

    z: torch.Tensor
    labels: torch.Tensor | None
    columns: int | None


def _grid_inputs(family: Family, cfg: TrainConfig) -> _GridInputs:
    """One fixed latent batch (seeded by the run's seed, drawn again at each grid: a learned
    prior changes as it is refitted); for a conditional family, one row per class, the same
    latents in every row, so a column shows one latent across the classes."""
    gen = torch.Generator().manual_seed(cfg.seed)
    k = family.num_classes
    if k <= 0:
        return _GridInputs(family.latents(cfg.grid_size, gen), None, None)
    columns = max(1, cfg.grid_size // k)
    z = family.latents(columns, gen).repeat(k, 1)
    return _GridInputs(z, torch.arange(k).repeat_interleave(columns), columns)


def _sample(family: Family, z: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
    if labels is None:
        return family.sample(z)
    return family.sample(z, labels.to(family.device))  # conditional families take labels too


def _save_grids(out: Path, family: Family, cfg: TrainConfig, fixed_batch: Batch, step: int) -> None:
    folder = out / "samples"
    fixed = _grid_inputs(family, cfg)
    path = save_grid(_sample(family, fixed.z, fixed.labels), folder / f"step_{step:08d}.png", columns=fixed.columns)
    shutil.copyfile(path, folder / "latest.png")
    for name, grid in family.extra_grids(fixed_batch).items():
        # Originals and reconstructions alternate, so an even column count pairs them.
        cols = 2 * max(1, int((grid.shape[0] // 2) ** 0.5))
        path = save_grid(grid, folder / f"{name}_step_{step:08d}.png", columns=cols)
        shutil.copyfile(path, folder / f"{name}_latest.png")


def _write_run_info(out: Path, cfg: TrainConfig, data: TrainingData, family: Family, ctx: DistContext,
                    step: int, finished: bool = False, stopped: str | None = None, elapsed: float = 0.0,
                    best: dict[str, Any] | None = None, hold_out: dict[str, Any] | None = None) -> None:
    info = {
        "family": family.name,
        "kind": family.kind,
        "latent_dim": family.latent_dim,
        "value_range": list(family.value_range),
        "config": cfg.to_dict(),
        "data": data.spec.to_dict(),
        "hold_out": hold_out,  # what was kept out of training (hold_out_data); share 0 = nothing
        "world_size": ctx.world_size,
        "device": str(ctx.device),
        "step": step,
        "finished": finished,
        "stopped": stopped,
        "elapsed_seconds": round(elapsed, 3),  # training time of every session, counted against time_budget
        "best": None if best is None else {"path": "checkpoints/best.pt", **best},
        "torch": torch.__version__,
    }
    tmp = out / ".run.json.tmp"
    tmp.write_text(json.dumps(info, indent=2) + "\n")
    tmp.replace(out / "run.json")


def _truncate_metrics(path: Path, step: int) -> None:
    """On resume, drop metric lines logged after the checkpoint we continue from."""
    if not path.exists():
        return
    kept = [line for line in path.read_text().splitlines() if line.strip() and json.loads(line)["step"] <= step]
    path.write_text("".join(line + "\n" for line in kept))
