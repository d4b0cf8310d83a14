"""The job store keeps the retries a job has used as a field, and brings a store written before
that field up to date."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from services.training.spec import JobSpec
from services.training.store import JobStore

# The jobs and attempts tables as the first release wrote them (no jobs.retries).
_FIRST_RELEASE = """
CREATE TABLE jobs (
    id INTEGER PRIMARY KEY AUTOINCREMENT, job_id TEXT NOT NULL UNIQUE, spec TEXT NOT NULL, state TEXT NOT NULL,
    reason TEXT NOT NULL DEFAULT '', step INTEGER NOT NULL DEFAULT 0, total_steps INTEGER NOT NULL DEFAULT 0,
    created REAL NOT NULL, started REAL NOT NULL DEFAULT 0, finished REAL NOT NULL DEFAULT 0,
    idempotency_key TEXT UNIQUE, model_name TEXT NOT NULL DEFAULT '', published TEXT,
    last_seq INTEGER NOT NULL DEFAULT 0, cancel_requested INTEGER NOT NULL DEFAULT 0, pid INTEGER);
CREATE TABLE attempts (
    job_id TEXT NOT NULL, number INTEGER NOT NULL, reason TEXT NOT NULL, from_step INTEGER NOT NULL,
    started REAL NOT NULL, finished REAL NOT NULL DEFAULT 0, exit_code INTEGER, outcome TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (job_id, number));
"""


def test_retries_are_a_field_of_the_job(tmp_path: Path):
    store = JobStore(tmp_path / "jobs.sqlite3")
    job = store.add_job("a", JobSpec("ae", "mnist5k", max_retries=2), 10)
    assert job.retries == 0
    store.update("a", retries=1)
    assert store.get("a").retries == 1
    store.close()


def test_a_store_from_before_the_retries_field_counts_the_retries_it_recorded(tmp_path: Path):
    path = tmp_path / "jobs.sqlite3"
    db = sqlite3.connect(path)
    db.executescript(_FIRST_RELEASE)
    spec = '{"family": "ae", "dataset": "mnist5k", "max_retries": 2}'
    for job_id in ("a", "b"):
        db.execute("INSERT INTO jobs (job_id, spec, state, created) VALUES (?, ?, 'QUEUED', 0)", (job_id, spec))
    db.executemany("INSERT INTO attempts (job_id, number, reason, from_step, started) VALUES (?, ?, ?, 0, 0)", [
        ("a", 1, "submitted"), ("a", 2, "retry 1 of 2 after: killed by SIGKILL"), ("a", 3, "resumed"),
        ("b", 1, "submitted")])
    db.commit()
    db.close()
    store = JobStore(path)
    assert (store.get("a").retries, store.get("b").retries) == (1, 0)
    store.close()
    again = JobStore(path)  # opened again: nothing to bring up to date
    assert again.get("a").retries == 1
    again.close()
