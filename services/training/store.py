"""The job store: jobs, their attempts and their events, and the uploaded data sets, in one
SQLite file in the data folder.

Everything a client can ask about a job lives here, so it survives a restart of the service:
the spec, the state and its reason, each attempt (why it started, how it ended), and every
event with its per-job sequence number and time (state changes, progress, evaluations, sample
grids as PNG bytes, log lines, checkpoints, the published model). The store is used from the
service's event loop thread only; each write is its own short transaction. An uploaded data
set's record (name, id, sha256, what the trainer read from it) is written once its files are
in place, and deleted before they are removed. A write that finds the disk full raises
StoreFull (RESOURCE_EXHAUSTED) and changes nothing; SQLite keeps the file whole and readable.
"""

from __future__ import annotations

import functools
import json
import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, TypeVar

from services.errors import ResourceExhausted
from services.training.disk import DISK_FULL
from services.training.spec import JobSpec

# Job states (JobState in the proto without its prefix).
QUEUED, STARTING, RUNNING = "QUEUED", "STARTING", "RUNNING"
SUCCEEDED, FAILED, CANCELLED = "SUCCEEDED", "FAILED", "CANCELLED"
STATES = (QUEUED, STARTING, RUNNING, SUCCEEDED, FAILED, CANCELLED)
TERMINAL = frozenset({SUCCEEDED, FAILED, CANCELLED})
ACTIVE = frozenset({STARTING, RUNNING})

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    job_id TEXT NOT NULL UNIQUE,
    spec TEXT NOT NULL,
    state TEXT NOT NULL,
    reason TEXT NOT NULL DEFAULT '',
    step INTEGER NOT NULL DEFAULT 0,
    total_steps INTEGER NOT NULL DEFAULT 0,
    created REAL NOT NULL,
    started REAL NOT NULL DEFAULT 0,
    finished REAL NOT NULL DEFAULT 0,
    idempotency_key TEXT UNIQUE,
    model_name TEXT NOT NULL DEFAULT '',
    published TEXT,
    last_seq INTEGER NOT NULL DEFAULT 0,
    cancel_requested INTEGER NOT NULL DEFAULT 0,
    pid INTEGER,
    retries INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS jobs_state ON jobs (state);
CREATE TABLE IF NOT EXISTS attempts (
    job_id TEXT NOT NULL,
    number INTEGER NOT NULL,
    reason TEXT NOT NULL,
    from_step INTEGER NOT NULL,
    started REAL NOT NULL,
    finished REAL NOT NULL DEFAULT 0,
    exit_code INTEGER,
    outcome TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (job_id, number)
);
CREATE TABLE IF NOT EXISTS events (
    job_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    time REAL NOT NULL,
    kind TEXT NOT NULL,
    data TEXT NOT NULL,
    blob BLOB,
    PRIMARY KEY (job_id, seq)
);
CREATE TABLE IF NOT EXISTS datasets (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL UNIQUE,
    dataset_id TEXT NOT NULL UNIQUE,
    sha256 TEXT NOT NULL,
    format TEXT NOT NULL,
    size_bytes INTEGER NOT NULL,
    count INTEGER NOT NULL,
    shape TEXT NOT NULL,
    class_names TEXT NOT NULL,
    skipped_files INTEGER NOT NULL,
    created REAL NOT NULL,
    path TEXT NOT NULL
);
"""


@dataclass
class Attempt:
    """One start of a job's process."""

    number: int
    reason: str
    from_step: int
    started: float
    finished: float = 0.0
    exit_code: int | None = None
    outcome: str = ""


@dataclass
class Job:
    """A job as stored."""

    row: int
    job_id: str
    spec: JobSpec
    state: str
    reason: str
    step: int
    total_steps: int
    created: float
    started: float
    finished: float
    published: dict[str, Any] | None
    last_seq: int
    cancel_requested: bool
    pid: int | None
    retries: int = 0  # the retries it has used (JobSpec.max_retries bounds them)
    attempts: list[Attempt] = field(default_factory=list)


@dataclass(frozen=True)
class Event:
    """One event of a job: ``kind`` names it (state, progress, evaluation, grid, log,
    checkpoint, published), ``data`` holds its fields, ``blob`` a grid's PNG bytes."""

    job_id: str
    seq: int
    time: float
    kind: str
    data: dict[str, Any]
    blob: bytes | None = None


@dataclass(frozen=True)
class DatasetRecord:
    """An uploaded data set as stored; ``path`` is where its data lies, relative to its folder."""

    name: str
    dataset_id: str
    sha256: str
    format: str
    size_bytes: int
    count: int
    shape: tuple[int, ...]
    class_names: tuple[str, ...]
    skipped_files: int
    created: float
    path: str


class StoreFull(ResourceExhausted):
    """A write to the store found the disk full; nothing was written."""


_Write = TypeVar("_Write", bound=Callable[..., Any])


def _writes(method: _Write) -> _Write:
    """A store method that writes: SQLite's "database or disk is full" becomes StoreFull."""

    @functools.wraps(method)
    def wrapper(self: "JobStore", *args: Any, **kwargs: Any) -> Any:
        try:
            return method(self, *args, **kwargs)
        except sqlite3.OperationalError as exc:
            if getattr(exc, "sqlite_errorcode", None) != sqlite3.SQLITE_FULL and "full" not in str(exc):
                raise
            raise StoreFull(f"{DISK_FULL}: the job store cannot be written now; free some space, then "
                            "retry") from None

    return wrapper  # type: ignore[return-value]


_DATASET_COLUMNS = ("name", "dataset_id", "sha256", "format", "size_bytes", "count", "shape", "class_names",
                    "skipped_files", "created", "path")


class JobStore:
    """Jobs, attempts and events in ``path`` (SQLite, WAL)."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(str(path), isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.executescript(_SCHEMA)
        self._migrate()

    def _migrate(self) -> None:
        """Bring a store an earlier version wrote up to the schema: ``jobs.retries`` (added after
        the first release; before, retries were the attempts whose reason began "retry ")."""
        columns = {row[1] for row in self.db.execute("PRAGMA table_info(jobs)")}
        if "retries" not in columns:
            self.db.execute("ALTER TABLE jobs ADD COLUMN retries INTEGER NOT NULL DEFAULT 0")
            self.db.execute("UPDATE jobs SET retries = (SELECT COUNT(*) FROM attempts a WHERE a.job_id = jobs.job_id "
                            "AND a.reason LIKE 'retry %')")

    def close(self) -> None:
        self.db.close()

    # ---- jobs -------------------------------------------------------------------------------

    @_writes
    def add_job(self, job_id: str, spec: JobSpec, total_steps: int) -> Job:
        self.db.execute(
            "INSERT INTO jobs (job_id, spec, state, total_steps, created, idempotency_key, model_name) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            (job_id, json.dumps(spec.to_dict()), QUEUED, total_steps, time.time(), spec.idempotency_key or None,
             spec.model_name))
        job = self.get(job_id)
        assert job is not None
        return job

    def get(self, job_id: str) -> Job | None:
        row = self.db.execute("SELECT * FROM jobs WHERE job_id = ?", (job_id,)).fetchone()
        return None if row is None else self._job(row)

    def by_idempotency_key(self, key: str) -> Job | None:
        row = self.db.execute("SELECT * FROM jobs WHERE idempotency_key = ?", (key,)).fetchone()
        return None if row is None else self._job(row)

    def list(self, state: str | None = None, model_name: str | None = None, before_row: int | None = None,
             limit: int = 100) -> list[Job]:
        """Jobs newest first, filtered; ``before_row`` continues a page."""
        where, args = [], []
        if state:
            where.append("state = ?")
            args.append(state)
        if model_name:
            where.append("model_name = ?")
            args.append(model_name)
        if before_row is not None:
            where.append("id < ?")
            args.append(before_row)
        sql = "SELECT * FROM jobs" + (" WHERE " + " AND ".join(where) if where else "") + " ORDER BY id DESC LIMIT ?"
        return [self._job(row) for row in self.db.execute(sql, (*args, limit)).fetchall()]

    def in_states(self, states: frozenset[str] | tuple[str, ...]) -> list[Job]:
        """Jobs in any of ``states``, oldest first."""
        marks = ",".join("?" * len(states))
        rows = self.db.execute(f"SELECT * FROM jobs WHERE state IN ({marks}) ORDER BY id", tuple(states)).fetchall()
        return [self._job(row) for row in rows]

    def count_by_state(self) -> dict[str, int]:
        counts = dict.fromkeys(STATES, 0)
        for state, n in self.db.execute("SELECT state, COUNT(*) FROM jobs GROUP BY state"):
            counts[state] = n
        return counts

    @_writes
    def update(self, job_id: str, **fields: Any) -> None:
        """Set columns of a job (``published`` as a dict)."""
        if "published" in fields and fields["published"] is not None:
            fields["published"] = json.dumps(fields["published"])
        if "cancel_requested" in fields:
            fields["cancel_requested"] = int(bool(fields["cancel_requested"]))
        sets = ", ".join(f"{k} = ?" for k in fields)
        self.db.execute(f"UPDATE jobs SET {sets} WHERE job_id = ?", (*fields.values(), job_id))

    # ---- attempts ---------------------------------------------------------------------------

    @_writes
    def add_attempt(self, job_id: str, reason: str, from_step: int) -> Attempt:
        (number,) = self.db.execute("SELECT COALESCE(MAX(number), 0) + 1 FROM attempts WHERE job_id = ?",
                                    (job_id,)).fetchone()
        attempt = Attempt(number, reason, from_step, time.time())
        self.db.execute("INSERT INTO attempts (job_id, number, reason, from_step, started) VALUES (?, ?, ?, ?, ?)",
                        (job_id, number, reason, from_step, attempt.started))
        return attempt

    @_writes
    def finish_attempt(self, job_id: str, number: int, exit_code: int | None, outcome: str) -> None:
        self.db.execute("UPDATE attempts SET finished = ?, exit_code = ?, outcome = ? WHERE job_id = ? AND number = ?",
                        (time.time(), exit_code, outcome, job_id, number))

    # ---- events -----------------------------------------------------------------------------

    @_writes
    def add_event(self, job_id: str, kind: str, data: dict[str, Any], blob: bytes | None = None) -> Event:
        """Append an event with the job's next sequence number (one transaction)."""
        now = time.time()
        self.db.execute("BEGIN IMMEDIATE")
        try:
            (seq,) = self.db.execute("SELECT last_seq + 1 FROM jobs WHERE job_id = ?", (job_id,)).fetchone()
            self.db.execute("INSERT INTO events (job_id, seq, time, kind, data, blob) VALUES (?, ?, ?, ?, ?, ?)",
                            (job_id, seq, now, kind, json.dumps(data), blob))
            self.db.execute("UPDATE jobs SET last_seq = ? WHERE job_id = ?", (seq, job_id))
            self.db.execute("COMMIT")
        except BaseException:
            if self.db.in_transaction:  # SQLite may have rolled back already (a full disk)
                self.db.execute("ROLLBACK")
            raise
        return Event(job_id, seq, now, kind, data, blob)

    def events(self, job_id: str, from_seq: int, limit: int = 500) -> list[Event]:
        rows = self.db.execute(
            "SELECT seq, time, kind, data, blob FROM events WHERE job_id = ? AND seq >= ? ORDER BY seq LIMIT ?",
            (job_id, from_seq, limit)).fetchall()
        return [Event(job_id, seq, t, kind, json.loads(data), blob) for seq, t, kind, data, blob in rows]

    def iter_events(self, job_id: str, from_seq: int = 1) -> Iterator[Event]:
        while True:
            page = self.events(job_id, from_seq)
            yield from page
            if len(page) < 500:
                return
            from_seq = page[-1].seq + 1

    # ---- data sets --------------------------------------------------------------------------

    @_writes
    def add_dataset(self, record: DatasetRecord) -> None:
        values = {**record.__dict__, "shape": json.dumps(list(record.shape)),
                  "class_names": json.dumps(list(record.class_names))}
        self.db.execute(f"INSERT INTO datasets ({', '.join(_DATASET_COLUMNS)}) VALUES "
                        f"({', '.join('?' * len(_DATASET_COLUMNS))})", tuple(values[c] for c in _DATASET_COLUMNS))

    def dataset(self, name: str) -> DatasetRecord | None:
        row = self.db.execute(f"SELECT {', '.join(_DATASET_COLUMNS)} FROM datasets WHERE name = ?",
                              (name,)).fetchone()
        return None if row is None else self._dataset(row)

    def datasets(self) -> list[DatasetRecord]:
        """Every uploaded data set, oldest first."""
        rows = self.db.execute(f"SELECT {', '.join(_DATASET_COLUMNS)} FROM datasets ORDER BY id").fetchall()
        return [self._dataset(row) for row in rows]

    @_writes
    def delete_dataset(self, name: str) -> None:
        self.db.execute("DELETE FROM datasets WHERE name = ?", (name,))

    @staticmethod
    def _dataset(row: tuple) -> DatasetRecord:
        r = dict(zip(_DATASET_COLUMNS, row))
        return DatasetRecord(**{**r, "shape": tuple(json.loads(r["shape"])),
                                "class_names": tuple(json.loads(r["class_names"]))})

    # ---- rows -------------------------------------------------------------------------------

    def _job(self, row: tuple) -> Job:
        cols = [d[0] for d in self.db.execute("SELECT * FROM jobs LIMIT 0").description]
        r = dict(zip(cols, row))
        job = Job(row=r["id"], job_id=r["job_id"], spec=JobSpec.from_dict(json.loads(r["spec"])), state=r["state"],
                  reason=r["reason"], step=r["step"], total_steps=r["total_steps"], created=r["created"],
                  started=r["started"], finished=r["finished"],
                  published=json.loads(r["published"]) if r["published"] else None, last_seq=r["last_seq"],
                  cancel_requested=bool(r["cancel_requested"]), pid=r["pid"], retries=r["retries"])
        job.attempts = [Attempt(*a) for a in self.db.execute(
            "SELECT number, reason, from_step, started, finished, exit_code, outcome FROM attempts "
            "WHERE job_id = ? ORDER BY number", (job.job_id,)).fetchall()]
        return job
