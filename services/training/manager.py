"""The job manager: submit, cancel, resume and watch training jobs; knows nothing of gRPC.

Jobs wait in a FIFO queue and run ``max_concurrent_jobs`` at a time, each attempt in a process
of its own (``services.training.runner``). While one runs, the manager reads its output and
run folder into events, stored with the job (``services.training.store``) and handed to its
watchers. When an attempt ends, the job SUCCEEDED (after publishing, when asked), is
CANCELLED (CancelJob sent SIGTERM; the trainer checkpoints and exits), is queued again from its
last checkpoint (killed by a signal or out of memory, while ``max_retries`` allows), or FAILED
with the reason. On start the manager continues jobs the previous service process left running.
Data sets (built-in and uploaded) are the ``DatasetLibrary``'s (``services.training.datasets``);
the manager checks that a job's data set exists and refuses to delete one a live job uses.
"""

from __future__ import annotations

import asyncio
import json
import logging
import shutil
import signal
import sys
import time
import uuid
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import AsyncIterator, Awaitable, Callable

from latentforge.manifest import NAME_PATTERN
from services.errors import AlreadyExists, FailedPrecondition, InvalidArgument, NotFound, ResourceExhausted
from services.rpc.logs import event, get_logger
from services.training.archives import remove
from services.training.config import TrainingConfig
from services.training.disk import disk_full_is_a_limit
from services.training.datasets import DatasetLibrary, UploadHeader
from services.training.metrics import TrainingMetrics
from services.training.publish import PublishError, publish_run
from services.training.runner import (JobProcess, RunFolderTail, kill_leftover, resume_step, train_command)
from services.training.spec import IDEMPOTENCY_KEY_MAX, JobSpec, train_config, trainer_config_file
from services.training.store import (ACTIVE, CANCELLED, FAILED, QUEUED, RUNNING, STARTING, SUCCEEDED, TERMINAL,
                                     DatasetRecord, Event, Job, JobStore, StoreFull)

log = get_logger("training")

MAX_PAGE_SIZE = 1000
DEFAULT_PAGE_SIZE = 100


@dataclass
class _Running:
    """A job whose attempt is being run."""

    task: asyncio.Task | None = None
    proc: JobProcess | None = None
    family: str = ""


class JobManager:
    """Training jobs: the queue, the running attempts, the store and the watchers."""

    def __init__(self, config: TrainingConfig, metrics: TrainingMetrics, python: str | None = None) -> None:
        self.config = config
        self.metrics = metrics
        self.python = python or sys.executable
        # Absolute: the job processes run in the project root, not in the service's directory.
        self.data_dir = Path(config.data_dir).resolve()
        self.models = Path(config.models).resolve()
        self.jobs_dir = self.data_dir / "jobs"
        self.store = JobStore(self.data_dir / "jobs.sqlite3")
        self.datasets = DatasetLibrary(config, self.store, metrics, self.data_dir, self.python,
                                       check_disk=self._check_disk)
        self.queue: deque[tuple[str, str]] = deque()  # (job id, why it is started)
        self.running: dict[str, _Running] = {}
        self._watchers: dict[str, set[asyncio.Event]] = {}
        self._closing = False
        # Called after a job has published (``serve --training``: the generation service reloads).
        self.on_published: Callable[[], Awaitable[None]] | None = None

    # ---- life cycle -------------------------------------------------------------------------

    async def start(self) -> None:
        """Queue again what the previous service process left running or queued; clear away
        half-done uploads."""
        self.datasets.start()
        for job in self.store.in_states(ACTIVE):
            kill_leftover(self.run_dir(job.job_id))
            for attempt in job.attempts:
                if not attempt.finished:
                    self.store.finish_attempt(job.job_id, attempt.number, None, "the service stopped")
            if self.config.resume_on_start:
                self._set_state(job.job_id, QUEUED, "the service restarted; the job continues from its last "
                                                     "checkpoint")
                self.queue.append((job.job_id, "service restarted"))
            else:
                self._set_state(job.job_id, FAILED, "the service stopped while the job ran; ResumeJob continues "
                                                     "it from its last checkpoint")
        for job in self.store.in_states((QUEUED,)):
            if all(job_id != job.job_id for job_id, _ in self.queue):
                self.queue.append((job.job_id, "submitted"))
        self._refresh_metrics()
        self._schedule()

    async def close(self) -> None:
        """Stop every running attempt (SIGTERM: each writes a checkpoint), leaving the jobs
        RUNNING in the store, so that the next start continues them."""
        self.end_watches()
        tasks = [r.task for r in self.running.values() if r.task is not None]
        for running in self.running.values():
            if running.proc is not None:
                running.proc.signal(signal.SIGTERM)
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=self.config.stop_grace_s)
            for running in self.running.values():
                if running.proc is not None:
                    running.proc.signal(signal.SIGKILL)
            if pending:
                await asyncio.wait(pending, timeout=10)
        self.store.close()

    # ---- requests ---------------------------------------------------------------------------

    def submit(self, spec: JobSpec) -> Job:
        """A new job (or, for an idempotency key used before with the same spec, that job, even
        when its data set has been deleted since)."""
        if spec.idempotency_key:
            existing = self.store.by_idempotency_key(spec.idempotency_key)
            if existing is not None:
                if existing.spec != spec:
                    raise AlreadyExists(f"idempotency key {spec.idempotency_key!r} was used for job "
                                        f"{existing.job_id} with a different spec; use a new key")
                return existing
        cfg = self._check(spec)
        if len(self.queue) >= self.config.max_queued_jobs and len(self.running) >= self.config.max_concurrent_jobs:
            raise ResourceExhausted(f"the job queue is full ({len(self.queue)} waiting, limit "
                                    f"{self.config.max_queued_jobs}); retry when a job has finished")
        job_id = uuid.uuid4().hex[:16]
        job_dir = self.jobs_dir / job_id
        try:
            with disk_full_is_a_limit("a job"):
                job_dir.mkdir(parents=True)
                (job_dir / "train.json").write_text(json.dumps(trainer_config_file(cfg), indent=2) + "\n")
            self.store.add_job(job_id, spec, cfg.steps)  # StoreFull on a full disk: nothing is kept
        except BaseException:
            remove(job_dir)
            raise
        self.queue.append((job_id, "submitted"))
        try:
            self._set_state(job_id, QUEUED, "submitted")
        except StoreFull:  # the job is stored QUEUED already; only its first state event is lost
            pass
        event(log, "job_submitted", job_id=job_id, family=spec.family, dataset=spec.dataset, steps=cfg.steps)
        self._schedule()
        return self.get(job_id)

    def get(self, job_id: str) -> Job:
        job = self.store.get(job_id) if job_id else None
        if job is None:
            raise NotFound(f"no job {job_id!r}; ListJobs lists the jobs there are")
        return job

    def list(self, state: str | None, model_name: str | None, page_size: int, page_token: str) -> tuple[list[Job], str]:
        """A page of jobs, newest first, and the token of the next page ("" on the last)."""
        if page_size < 0 or page_size > MAX_PAGE_SIZE:
            raise InvalidArgument(f"page_size must be 0..{MAX_PAGE_SIZE} (got {page_size})")
        size = page_size or DEFAULT_PAGE_SIZE
        before = None
        if page_token:
            if not page_token.isdigit():
                raise InvalidArgument("page_token is not one this server gave; pass next_page_token as it came")
            before = int(page_token)
        jobs = self.store.list(state, model_name, before, size + 1)
        more = len(jobs) > size
        jobs = jobs[:size]
        return jobs, str(jobs[-1].row) if more else ""

    def cancel(self, job_id: str) -> Job:
        job = self.get(job_id)
        if job.state in TERMINAL:
            raise FailedPrecondition(f"job {job_id} is {job.state} already; only queued or running jobs can be "
                                     "cancelled")
        queued = [entry for entry in self.queue if entry[0] == job_id]
        if queued:
            for entry in queued:
                self.queue.remove(entry)
            self._set_state(job_id, CANCELLED, "cancelled before it started")
            return self.get(job_id)
        self.store.update(job_id, cancel_requested=True)
        running = self.running.get(job_id)
        if running is not None and running.proc is not None:
            running.proc.signal(signal.SIGTERM)
        event(log, "job_cancel_requested", job_id=job_id)
        return self.get(job_id)

    def resume(self, job_id: str) -> Job:
        job = self.get(job_id)
        if job.state not in (CANCELLED, FAILED):
            raise FailedPrecondition(f"job {job_id} is {job.state}; only CANCELLED or FAILED jobs can be resumed")
        data = json.loads((self.jobs_dir / job_id / "train.json").read_text())["data"]
        if Path(data).is_absolute() and not Path(data).exists():
            raise FailedPrecondition(f"job {job_id}'s data set {job.spec.dataset!r} was deleted; submit a new job")
        self._check_disk()
        if len(self.queue) >= self.config.max_queued_jobs and len(self.running) >= self.config.max_concurrent_jobs:
            raise ResourceExhausted(f"the job queue is full ({len(self.queue)} waiting); retry when a job has "
                                    "finished")
        self.store.update(job_id, cancel_requested=False, finished=0.0)
        self._set_state(job_id, QUEUED, "resume requested")
        self.queue.append((job_id, "resumed"))
        self._schedule()
        return self.get(job_id)

    async def watch(self, job_id: str, from_seq: int) -> AsyncIterator[Event]:
        """Stored events from ``from_seq`` on, then live ones, until the job has ended."""
        self.get(job_id)
        if from_seq < 0:
            raise InvalidArgument(f"from_seq must be >= 0 (got {from_seq})")
        wake = asyncio.Event()
        wakes = self._watchers.setdefault(job_id, set())
        wakes.add(wake)
        self.metrics.watchers.inc()
        try:
            next_seq = max(1, from_seq)
            while True:
                wake.clear()
                page = self.store.events(job_id, next_seq)
                for item in page:
                    yield item
                    next_seq = item.seq + 1
                if page:
                    continue
                job = self.store.get(job_id)
                if self._closing or job is None or (job.state in TERMINAL and next_seq > job.last_seq):
                    return
                await wake.wait()
        finally:
            wakes.discard(wake)
            if not wakes and self._watchers.get(job_id) is wakes:
                del self._watchers[job_id]
            self.metrics.watchers.dec()

    def end_watches(self) -> None:
        """End every WatchJob stream (the server drains; clients reconnect with from_seq)."""
        self._closing = True
        for wakes in self._watchers.values():
            for wake in wakes:
                wake.set()

    @property
    def watcher_count(self) -> int:
        return sum(len(w) for w in self._watchers.values())

    # ---- data sets --------------------------------------------------------------------------

    async def upload_dataset(self, header: UploadHeader, chunks: AsyncIterator[bytes]) -> DatasetRecord:
        """Receive, verify and check an uploaded data set (``DatasetLibrary.upload``)."""
        return await self.datasets.upload(header, chunks)

    def list_datasets(self) -> tuple[list[DatasetRecord], list[str]]:
        """The uploaded data sets, oldest first, and the built-in names."""
        from services.training.datasets import builtin_datasets

        return self.datasets.list(), builtin_datasets()

    def delete_dataset(self, name: str) -> DatasetRecord:
        """Delete an uploaded data set; refused while a queued or running job names it."""
        users = [j.job_id for j in self.store.in_states((QUEUED, STARTING, RUNNING)) if j.spec.dataset == name]
        return self.datasets.delete(name, users)

    # ---- checks -----------------------------------------------------------------------------

    def disk_shortage(self, needed_bytes: int = 0) -> str | None:
        """The one disk-space check (SubmitJob, ResumeJob, each job's start, UploadDataset): what is
        short in the data folder, or None when ``needed_bytes`` fit and min_free_disk_bytes stay free."""
        free = shutil.disk_usage(self.data_dir).free
        keep = self.config.min_free_disk_bytes
        if free >= keep + needed_bytes:
            return None
        return f"{free} bytes free in the data folder, {keep} kept free" + (
            f", {needed_bytes} needed" if needed_bytes else "")

    def _check_disk(self, what: str = "a job", needed_bytes: int = 0) -> None:
        shortage = self.disk_shortage(needed_bytes)
        if shortage is not None:
            raise ResourceExhausted(f"not enough disk space for {what}: {shortage}; free some space or delete old "
                                    "data sets")

    def _check(self, spec: JobSpec):
        """The job's TrainConfig, after every check a spec must pass before it is queued."""
        from trainer.families import data_problem

        c = self.config
        data = self.datasets.resolve(spec.dataset)
        cfg = train_config(spec, data)
        problem = data_problem(spec.family, self.datasets.kind(spec.dataset), spec.dataset)
        if problem:
            raise InvalidArgument(problem)
        if cfg.steps > c.max_steps:
            raise InvalidArgument(f"steps {cfg.steps} is above this server's limit of {c.max_steps}")
        budget = cfg.time_budget_seconds
        if budget is not None and budget > c.max_time_budget_s:
            raise InvalidArgument(f"time_budget {cfg.time_budget} is above this server's limit of "
                                  f"{c.max_time_budget_s:g} s")
        if not 1 <= spec.nproc <= c.max_nproc:
            raise InvalidArgument(f"nproc must be 1..{c.max_nproc} (got {spec.nproc})")
        if not 0 <= spec.max_retries <= c.max_retries:
            raise InvalidArgument(f"max_retries must be 0..{c.max_retries} (got {spec.max_retries})")
        if spec.publish and not spec.model_name:
            raise InvalidArgument("publish needs a model_name to publish under, e.g. mnist-dcgan")
        if spec.model_name and not NAME_PATTERN.match(spec.model_name):
            raise InvalidArgument(f"model_name {spec.model_name!r} must match {NAME_PATTERN.pattern} "
                                  "(lower case, digits, . _ -)")
        if len(spec.idempotency_key) > IDEMPOTENCY_KEY_MAX:
            raise InvalidArgument(f"idempotency_key must be at most {IDEMPOTENCY_KEY_MAX} characters")
        self._check_disk()
        return cfg

    # ---- running ----------------------------------------------------------------------------

    def run_dir(self, job_id: str) -> Path:
        return self.jobs_dir / job_id / "run"

    def _schedule(self) -> None:
        while not self._closing and self.queue and len(self.running) < self.config.max_concurrent_jobs:
            job_id, reason = self.queue.popleft()
            running = self.running[job_id] = _Running()
            running.task = asyncio.get_running_loop().create_task(self._run(job_id, reason), name=f"job-{job_id}")
        self.metrics.queue_length.set(len(self.queue))

    async def _run(self, job_id: str, reason: str) -> None:
        try:
            await self._attempt(job_id, reason)
        except StoreFull as exc:  # the disk filled up under the store: the job cannot go on
            await self._fail_once_stored(job_id, exc.message)
        except Exception as exc:  # a bug here must not leave the job RUNNING forever
            event(log, "job_runner_error", level=logging.ERROR, job_id=job_id, error=f"{type(exc).__name__}: {exc}")
            if not self._closing:
                self._set_state(job_id, FAILED, f"internal error in the runner: {type(exc).__name__}")
        finally:
            self.running.pop(job_id, None)
            self.metrics.set_rate(job_id, "", None)
            if not self._closing:
                self._schedule()

    async def _fail_once_stored(self, job_id: str, reason: str) -> None:
        """Stop the job's process and mark it FAILED as soon as the store can be written again
        (space freed by whoever filled the disk, or by the trainer's own temporary files)."""
        running = self.running.get(job_id)
        if running is not None and running.proc is not None:
            running.proc.signal(signal.SIGKILL)
        event(log, "job_store_full", level=logging.ERROR, job_id=job_id)
        while not self._closing:
            try:
                self.store.update(job_id, pid=None)
                self._set_state(job_id, FAILED, reason)
                return
            except StoreFull:
                await asyncio.sleep(max(1.0, self.config.poll_interval_s))

    async def _attempt(self, job_id: str, reason: str) -> None:
        job = self.get(job_id)
        spec = job.spec
        run_dir = self.run_dir(job_id)
        shortage = self.disk_shortage()
        if shortage is not None:
            self._set_state(job_id, FAILED, f"not enough disk space to start: {shortage}")
            return
        from_step = resume_step(run_dir)
        attempt = self.store.add_attempt(job_id, reason, from_step)
        self.store.update(job_id, step=from_step, **({} if job.started else {"started": attempt.started}))
        self._set_state(job_id, STARTING, reason if from_step == 0 else f"{reason}; from step {from_step}",
                        attempt.number)
        tail = RunFolderTail(run_dir, from_step, job.total_steps)
        public = self._public_text(job)
        proc = JobProcess(train_command(self.python, self.jobs_dir / job_id / "train.json", run_dir, spec.nproc),
                          on_line=lambda level, text: self._event(job_id, "log", {
                              "level": level, "text": public(text), "attempt": attempt.number}))
        running = self.running[job_id]
        running.proc, running.family = proc, spec.family
        await proc.start()
        self.store.update(job_id, pid=proc.pid)
        if self.store.get(job_id).cancel_requested:
            proc.signal(signal.SIGTERM)
        state = STARTING
        waiting = asyncio.ensure_future(proc.wait())
        run_info = run_dir / "run.json"
        while True:
            done, _ = await asyncio.wait({waiting}, timeout=self.config.poll_interval_s)
            if state == STARTING and run_info.exists() and run_info.stat().st_mtime >= attempt.started - 1:
                state = RUNNING
                self._set_state(job_id, RUNNING, "", attempt.number)
            self._drain_tail(job_id, tail, spec.family)
            if done:
                break
        outcome = waiting.result()
        self._drain_tail(job_id, tail, spec.family)
        self.store.update(job_id, pid=None)
        self.metrics.set_rate(job_id, spec.family, None)
        cancelled = self.store.get(job_id).cancel_requested
        described = "cancelled" if cancelled and outcome.exit_code != 0 else public(outcome.describe())
        if self._closing:
            self.store.finish_attempt(job_id, attempt.number, outcome.exit_code, "the service stopped")
            return  # left RUNNING: the next start continues it
        self.store.finish_attempt(job_id, attempt.number, outcome.exit_code, described)
        event(log, "job_attempt_ended", job_id=job_id, attempt=attempt.number, exit_code=outcome.exit_code,
              outcome=described)
        if outcome.exit_code == 0:
            if state == STARTING:
                self._set_state(job_id, RUNNING, "", attempt.number)
            if spec.publish:
                try:
                    published = await publish_run(self.python, run_dir, self.models, spec.model_name)
                except PublishError as exc:
                    self._set_state(job_id, FAILED, str(exc), attempt.number)
                    return
                self.store.update(job_id, published=published.to_dict())
                if self.on_published is not None:
                    await self.on_published()
                self._event(job_id, "published", published.to_dict())
            self._set_state(job_id, SUCCEEDED, "", attempt.number)
        elif cancelled:
            self._set_state(job_id, CANCELLED, "cancelled", attempt.number)
        elif outcome.transient and job.retries < spec.max_retries:
            used = job.retries + 1
            self.store.update(job_id, retries=used)
            self._set_state(job_id, QUEUED, f"retry {used} of {spec.max_retries}: {described}", attempt.number)
            self.queue.appendleft((job_id, f"retry {used} of {spec.max_retries} after: {described}"))
        else:
            self._set_state(job_id, FAILED, described, attempt.number)

    def _public_text(self, job: Job) -> Callable[[str], str]:
        """What a job's reasons and log lines say, without the server's folders: its data's path
        becomes its data set's name, and the data folder "<data-dir>"."""
        data = json.loads((self.jobs_dir / job.job_id / "train.json").read_text())["data"]
        replacements = [(str(self.data_dir), "<data-dir>")]
        if Path(data).is_absolute():
            replacements.insert(0, (data, job.spec.dataset))

        def public(text: str) -> str:
            for path, name in replacements:
                text = text.replace(path, name)
            return text

        return public

    def _drain_tail(self, job_id: str, tail: RunFolderTail, family: str) -> None:
        for kind, data, blob in tail.poll():
            self._event(job_id, kind, data, blob)
            try:
                if kind == "progress":
                    self.store.update(job_id, step=data["step"])
                    self.metrics.set_rate(job_id, family, data["steps_per_second"])
                elif kind == "checkpoint" and data["name"].startswith("step_"):
                    # A run stopped by a signal checkpoints a step it did not log.
                    self.store.update(job_id, step=max(data["step"], tail.step))
            except StoreFull:  # a full disk: the next progress record sets the step
                pass

    # ---- events -----------------------------------------------------------------------------

    def _event(self, job_id: str, kind: str, data: dict, blob: bytes | None = None) -> None:
        """Store an event and wake the job's watchers. On a full disk the event is left out (and
        logged): it takes no sequence number, so the numbers stay contiguous."""
        try:
            self.store.add_event(job_id, kind, data, blob)
        except StoreFull:
            event(log, "job_event_dropped", level=logging.WARNING, job_id=job_id, kind=kind, why="disk full")
            return
        for wake in self._watchers.get(job_id, ()):
            wake.set()

    def _set_state(self, job_id: str, state: str, reason: str = "", attempt: int = 0) -> None:
        fields: dict = {"state": state, "reason": reason if state in (FAILED, CANCELLED) else ""}
        if state in TERMINAL:
            now = time.time()
            fields["finished"] = now
            fields["cancel_requested"] = False
            job = self.store.get(job_id)
            if job is not None and job.started:
                self.metrics.job_duration.labels(state.lower()).observe(max(0.0, now - job.started))
            self.metrics.jobs_ended.labels(state.lower()).inc()
        self.store.update(job_id, **fields)
        self._event(job_id, "state", {"state": state, "reason": reason, "attempt": attempt})
        event(log, "job_state", job_id=job_id, state=state, reason=reason)
        self._refresh_metrics()

    def _refresh_metrics(self) -> None:
        self.metrics.set_counts(self.store.count_by_state())
        self.metrics.queue_length.set(len(self.queue))
