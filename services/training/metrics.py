"""The training service's metrics, in the server's registry (names: ``latentforge_training_*``).

Labels are bounded: a job state, a family, an outcome; never a job id.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from services.training.store import STATES

UPLOAD_OUTCOMES = ("accepted", "invalid", "too_large", "exists", "aborted")
DURATION_BUCKETS = (10, 30, 60, 120, 300, 600, 1800, 3600, 7200, 21600, 86400)


class TrainingMetrics:
    """Jobs by state, jobs ended, queue length, job durations, steps/s of running jobs, live
    watchers; uploads by outcome, bytes uploaded, data sets stored."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.jobs = Gauge("latentforge_training_jobs", "Training jobs in the store, by state.", ["state"],
                          registry=registry)
        self.queue_length = Gauge("latentforge_training_queue_length", "Jobs waiting for a free slot.",
                                  registry=registry)
        self.job_duration = Histogram(
            "latentforge_training_job_duration_seconds",
            "Time from a job's first start to its end, by final state.", ["state"], buckets=DURATION_BUCKETS,
            registry=registry)
        self.steps_per_second = Gauge(
            "latentforge_training_steps_per_second", "Training speed of the running jobs, summed by family.",
            ["family"], registry=registry)
        self.watchers = Gauge("latentforge_training_watchers", "WatchJob streams open now.", registry=registry)
        self.jobs_ended = Counter("latentforge_training_jobs_ended_total",
                                  "Jobs that ended, by final state (succeeded, failed, cancelled).", ["state"],
                                  registry=registry)
        self.uploads = Counter(
            "latentforge_training_dataset_uploads_total",
            "Data set uploads by outcome: accepted, invalid, too_large, exists, aborted.", ["outcome"],
            registry=registry)
        self.upload_bytes = Counter("latentforge_training_dataset_upload_bytes_total",
                                    "Bytes received by UploadDataset, accepted or not.", registry=registry)
        self.datasets = Gauge("latentforge_training_datasets", "Uploaded data sets stored.", registry=registry)
        # Every bounded label value starts at zero, so dashboards and alerts see the series
        # before the first job ends (the families are those a JobSpec may name).
        from latentforge.v1 import training_pb2 as pb

        for state in ("succeeded", "failed", "cancelled"):
            self.jobs_ended.labels(state)
            self.job_duration.labels(state)
        for option in pb.JobSpec.DESCRIPTOR.oneofs_by_name["family_options"].fields:
            self.steps_per_second.labels(option.name).set(0)
        for outcome in UPLOAD_OUTCOMES:
            self.uploads.labels(outcome)
        self._rates: dict[str, tuple[str, float]] = {}

    def set_counts(self, counts: dict[str, int]) -> None:
        for state in STATES:
            self.jobs.labels(state.lower()).set(counts.get(state, 0))

    def set_rate(self, job_id: str, family: str, rate: float | None) -> None:
        """The speed of one running job (None: it stopped running)."""
        before = self._rates.pop(job_id, None)
        if rate is not None:
            self._rates[job_id] = (family, rate)
        for fam in {f for f, _ in self._rates.values()} | ({before[0]} if before else set()):
            self.steps_per_second.labels(fam).set(sum(r for f, r in self._rates.values() if f == fam))
