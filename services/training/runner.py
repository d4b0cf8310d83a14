"""One attempt of a job: `latentforge train` in a process of its own, and what it leaves behind.

``train_command`` builds the command line (under torchrun for more than one process);
``JobProcess`` starts it in a new process group whose leader dies with the service
(``services.training.leash``), reads its output line by line, and turns its end into an ``Outcome``;
``RunFolderTail`` follows the run folder the trainer writes (metrics.jsonl records, sample
grids, checkpoints) and turns what is new into events.

The job's process imports the same code as the service: it runs with the project root of the
imported ``latentforge`` package as its working directory and first PYTHONPATH entry.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Awaitable, Callable

import latentforge

PROJECT_ROOT = Path(latentforge.__file__).resolve().parent.parent

_CHECKPOINT = re.compile(r"^step_(\d+)\.pt$")
_GRID = re.compile(r"^(?:(?P<name>[a-z0-9_]+)_)?step_(?P<step>\d+)\.png$")
_LOG_LEVEL = re.compile(r"^\S+ \S+ (DEBUG|INFO|WARNING|ERROR|CRITICAL) ")
_PNG_END = b"IEND\xaeB`\x82"
_NOT_LOSSES = frozenset({"step", "epoch", "time", "step_seconds", "eval"})


def train_command(python: str, config_file: Path, run_dir: Path, nproc: int) -> list[str]:
    """The command of one attempt: a first start and a retry alike (``--resume auto``)."""
    train = ["-m", "latentforge", "train", "--config", str(config_file), "--out", str(run_dir), "--resume", "auto"]
    if nproc > 1:
        return [python, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(nproc), *train]
    return [python, *train]


def checkpoint_steps(run_dir: Path) -> list[int]:
    """Steps of the run's step checkpoints, ascending (what ``--resume auto`` continues from)."""
    folder = run_dir / "checkpoints"
    if not folder.is_dir():
        return []
    return sorted(int(m.group(1)) for p in folder.iterdir() if (m := _CHECKPOINT.match(p.name)))


def resume_step(run_dir: Path) -> int:
    """The step an attempt starts from: its newest checkpoint's, 0 without one."""
    steps = checkpoint_steps(run_dir)
    return steps[-1] if steps else 0


@dataclass(frozen=True)
class Outcome:
    """How an attempt ended: its exit status (128 + signal for a signal) and the last error
    line it printed."""

    exit_code: int
    error: str

    @property
    def signal_name(self) -> str | None:
        if self.exit_code > 128:
            try:
                return signal.Signals(self.exit_code - 128).name
            except ValueError:
                return None
        return None

    def describe(self) -> str:
        if self.exit_code == 0:
            return "succeeded"
        name = self.signal_name
        if name == "SIGKILL":
            return "killed by SIGKILL (out of memory, or killed from outside)"
        if name is not None:
            return f"killed by {name}"
        return self.error or f"exit status {self.exit_code}"

    @property
    def transient(self) -> bool:
        """Worth a retry from the last checkpoint: the process was killed (a signal, the OOM
        killer), not refused by the trainer (bad settings or data exit 2)."""
        return self.signal_name is not None


class JobProcess:
    """The process of one attempt; ``on_line(stream, level, text)`` gets each output line."""

    def __init__(self, argv: list[str], on_line: Callable[[str, str], Awaitable[None] | None],
                 env: dict[str, str] | None = None) -> None:
        self.argv = argv
        self.on_line = on_line
        self.env = env
        self.proc: asyncio.subprocess.Process | None = None
        self.last_error = ""

    @property
    def pid(self) -> int | None:
        return None if self.proc is None else self.proc.pid

    async def start(self) -> None:
        env = {**os.environ, **(self.env or {}), "PYTHONUNBUFFERED": "1"}
        env["PYTHONPATH"] = os.pathsep.join([str(PROJECT_ROOT), *filter(None, [env.get("PYTHONPATH")])])
        # A new process group (so a signal reaches torchrun's workers too), on a leash: the
        # process dies with the service (services/training/leash.py).
        leash = [sys.executable, "-m", "services.training.leash", str(os.getpid())]
        self.proc = await asyncio.create_subprocess_exec(
            *leash, *self.argv, cwd=str(PROJECT_ROOT), env=env, stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, start_new_session=True)

    async def _read(self, stream: asyncio.StreamReader, default_level: str) -> None:
        while True:
            raw = await stream.readline()
            if not raw:
                return
            text = raw.decode("utf-8", "replace").rstrip("\r\n")
            if not text.strip():
                continue
            match = _LOG_LEVEL.match(text)
            level = match.group(1).lower() if match else default_level
            if text.startswith("error:"):
                level = "error"
                self.last_error = text[len("error:"):].strip()
            elif level in ("error", "critical") or (default_level == "warning" and "Error" in text.split(":")[0]):
                self.last_error = text
            result = self.on_line(level, text)
            if asyncio.iscoroutine(result):
                await result

    async def wait(self) -> Outcome:
        """Until the process has ended and its output is read."""
        assert self.proc is not None and self.proc.stdout is not None and self.proc.stderr is not None
        await asyncio.gather(self._read(self.proc.stdout, "info"), self._read(self.proc.stderr, "warning"))
        code = await self.proc.wait()
        return Outcome(128 - code if code < 0 else code, self.last_error)

    def signal(self, signum: int) -> None:
        """Send ``signum`` to the whole process group (torchrun and its workers alike)."""
        if self.proc is not None and self.proc.returncode is None:
            try:
                os.killpg(self.proc.pid, signum)
            except ProcessLookupError:
                pass


def kill_leftover(run_dir: Path) -> int:
    """SIGKILL what is left of an attempt a previous service process started: every process
    whose command line names the run folder (a torchrun worker outlives its leader, which dies
    with the service). Linux /proc; returns how many were killed."""
    needle = str(run_dir).encode() + b"\0"  # one whole argument of the command line
    killed = 0
    for entry in Path("/proc").glob("[0-9]*"):
        try:
            if needle in (entry / "cmdline").read_bytes() and int(entry.name) != os.getpid():
                os.kill(int(entry.name), signal.SIGKILL)
                killed += 1
        except (OSError, ValueError):
            continue
    return killed


class RunFolderTail:
    """What is new in a run folder since the attempt started: metrics records (progress and
    evaluations), sample grids, checkpoints. ``poll()`` returns (kind, data, blob) tuples."""

    def __init__(self, run_dir: Path, from_step: int, total_steps: int) -> None:
        self.run_dir = run_dir
        self.total_steps = total_steps
        self.metrics = run_dir / "metrics.jsonl"
        self._prepare_metrics(from_step)
        self._last: tuple[int, float] | None = None
        self.step = from_step
        self.eval_step = 0
        samples = run_dir / "samples"
        self._grids = {p.name for p in samples.glob("*.png")} if samples.is_dir() else set()
        ckpts = run_dir / "checkpoints"
        self._ckpts = {p.name: p.stat().st_mtime_ns for p in ckpts.glob("*.pt")} if ckpts.is_dir() else {}

    def _prepare_metrics(self, from_step: int) -> None:
        """Drop lines after the checkpoint the attempt continues from (the trainer does the
        same when it starts; doing it first means nothing stale is read as new)."""
        if self.metrics.exists():
            kept = [line for line in self.metrics.read_text().splitlines()
                    if line.strip() and _step_of(line) <= from_step]
            self.metrics.write_text("".join(line + "\n" for line in kept))
            self._offset = self.metrics.stat().st_size
        else:
            self._offset = 0

    def poll(self) -> list[tuple[str, dict[str, Any], bytes | None]]:
        found: list[tuple[str, dict[str, Any], bytes | None]] = []
        found += self._poll_metrics()
        found += self._poll_checkpoints()
        found += self._poll_grids()
        return found

    def _poll_metrics(self) -> list[tuple[str, dict[str, Any], bytes | None]]:
        try:
            size = self.metrics.stat().st_size
        except FileNotFoundError:
            return []
        if size <= self._offset:
            return []  # nothing new (or the trainer is rewriting the same lines on start)
        with open(self.metrics, "rb") as fh:
            fh.seek(self._offset)
            chunk = fh.read(size - self._offset)
        end = chunk.rfind(b"\n")
        if end < 0:
            return []
        self._offset += end + 1
        found = []
        for line in chunk[:end].decode("utf-8", "replace").splitlines():
            try:
                record = json.loads(line)
            except ValueError:
                continue
            found += self._events_of(record)
        return found

    def _events_of(self, record: dict[str, Any]) -> list[tuple[str, dict[str, Any], bytes | None]]:
        step, now = int(record.get("step", 0)), float(record.get("time", 0.0))
        rate = 0.0
        if self._last is not None and now > self._last[1] and step > self._last[0]:
            rate = (step - self._last[0]) / (now - self._last[1])
        elif record.get("step_seconds"):
            rate = 1.0 / float(record["step_seconds"])
        self._last = (step, now)
        self.step = step
        losses = {k: float(v) for k, v in record.items()
                  if k not in _NOT_LOSSES and isinstance(v, (int, float)) and not isinstance(v, bool)}
        eta = (self.total_steps - step) / rate if rate > 0 else 0.0
        events = [("progress", {"step": step, "total_steps": self.total_steps, "steps_per_second": rate,
                                "eta_seconds": max(0.0, eta), "losses": losses,
                                "epoch": int(record.get("epoch", 0))}, None)]
        scores = record.get("eval")
        if isinstance(scores, dict):
            self.eval_step = step
            events.append(("evaluation", {"step": step, "scores": {
                k: float(v) for k, v in scores.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}},
                None))
        return events

    def _poll_checkpoints(self) -> list[tuple[str, dict[str, Any], bytes | None]]:
        folder = self.run_dir / "checkpoints"
        if not folder.is_dir():
            return []
        found = []
        for path in sorted(folder.glob("*.pt")):
            try:
                mtime = path.stat().st_mtime_ns
            except FileNotFoundError:  # pruned meanwhile
                continue
            if self._ckpts.get(path.name) == mtime:
                continue
            self._ckpts[path.name] = mtime
            match = _CHECKPOINT.match(path.name)
            step = int(match.group(1)) if match else (self.eval_step or self.step)
            found.append(("checkpoint", {"step": step, "name": path.name}, None))
        return found

    def _poll_grids(self) -> list[tuple[str, dict[str, Any], bytes | None]]:
        folder = self.run_dir / "samples"
        if not folder.is_dir():
            return []
        found = []
        for path in sorted(folder.glob("*.png"), key=lambda p: p.name):
            if path.name in self._grids or path.name.endswith("latest.png"):
                continue
            match = _GRID.match(path.name)
            if match is None:
                continue
            try:
                png = path.read_bytes()
            except FileNotFoundError:
                continue
            if not png.endswith(_PNG_END):
                continue  # still being written: the next poll takes it
            self._grids.add(path.name)
            found.append(("grid", {"step": int(match.group("step")), "name": match.group("name") or "samples"}, png))
        return found


def _step_of(line: str) -> int:
    try:
        return int(json.loads(line).get("step", 0))
    except (ValueError, AttributeError):
        return 0


def python_executable() -> str:
    """The interpreter jobs run with: the service's own."""
    return sys.executable
