"""A small synchronous Python client of TrainingService; answers are the proto messages.

    with TrainingClient("localhost:50052") as client:
        job = client.submit(job_spec("dcgan", "mnist5k", model_name="mnist-dcgan", publish=True,
                                     steps=300, width=32))
        for event in client.watch(job.job_id):
            print(event)

``job_spec`` builds a JobSpec from the trainer's option names: each goes to the common
TrainingOptions or to the family's options message, whichever declares it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator

from latentforge.v1 import training_pb2 as pb
from latentforge.v1 import training_pb2_grpc as pb_grpc
from services.rpc.security import client_channel

FAMILY_MESSAGES = {"dcgan": pb.DCGANOptions, "vae": pb.VAEOptions, "ae": pb.AEOptions}
STATES = {name: pb.JobState.Value(f"JOB_STATE_{name}") for name in
          ("QUEUED", "STARTING", "RUNNING", "SUCCEEDED", "FAILED", "CANCELLED")}
TERMINAL = {STATES["SUCCEEDED"], STATES["FAILED"], STATES["CANCELLED"]}


def state_name(state: int) -> str:
    """QUEUED, RUNNING, ... of a JobState value."""
    return pb.JobState.Name(state).removeprefix("JOB_STATE_")


def job_spec(family: str, dataset: str = "mnist5k", *, model_name: str = "", publish: bool = False,
             idempotency_key: str = "", max_retries: int = 0, nproc: int = 1, **options: Any) -> pb.JobSpec:
    """A JobSpec; ``options`` are trainer options by name (steps=300, width=32, lr=1e-3, ...)."""
    common = {k: v for k, v in options.items() if k in pb.TrainingOptions.DESCRIPTOR.fields_by_name}
    rest = {k: v for k, v in options.items() if k not in common}
    spec = pb.JobSpec(family=family, dataset=dataset, model_name=model_name, publish=publish,
                      idempotency_key=idempotency_key, max_retries=max_retries, nproc=nproc)
    if common:
        spec.options.CopyFrom(pb.TrainingOptions(**common))
    message = FAMILY_MESSAGES.get(family)
    if rest:
        if message is None:
            raise ValueError(f"unknown family {family!r}; use one of {', '.join(FAMILY_MESSAGES)}")
        unknown = sorted(set(rest) - set(message.DESCRIPTOR.fields_by_name))
        if unknown:
            raise ValueError(f"{', '.join(unknown)}: not an option of every run or of {family}")
    if message is not None:
        getattr(spec, family).CopyFrom(message(**rest))
    return spec


class TrainingClient:
    """Blocking client; one channel, reused. Errors surface as grpc.RpcError."""

    def __init__(self, target: str, timeout_s: float = 30.0, *, tls: bool = False, tls_ca: Path | None = None,
                 tls_cert: Path | None = None, tls_key: Path | None = None, token: str | None = None,
                 max_message_bytes: int = 64 * 1024 * 1024) -> None:
        """Plaintext by default; TLS when `tls` or a TLS file is given (mTLS with cert + key);
        `token` is sent as ``authorization: Bearer <token>`` on every call."""
        self.target = target
        self.timeout_s = timeout_s
        self._channel = client_channel(target, tls=tls, ca=tls_ca, cert=tls_cert, key=tls_key, token=token, options=[
            ("grpc.max_receive_message_length", max_message_bytes)])
        self.stub = pb_grpc.TrainingServiceStub(self._channel)

    def close(self) -> None:
        self._channel.close()

    def __enter__(self) -> "TrainingClient":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def submit(self, spec: pb.JobSpec) -> pb.Job:
        return self.stub.SubmitJob(spec, timeout=self.timeout_s)

    def get(self, job_id: str) -> pb.Job:
        return self.stub.GetJob(pb.GetJobRequest(job_id=job_id), timeout=self.timeout_s)

    def list(self, state: str | None = None, model_name: str = "", page_size: int = 0,
             page_token: str = "") -> pb.ListJobsResponse:
        """One page of jobs, newest first (``state``: QUEUED, RUNNING, ...)."""
        return self.stub.ListJobs(pb.ListJobsRequest(state=STATES[state] if state else 0, model_name=model_name,
                                                     page_size=page_size, page_token=page_token),
                                  timeout=self.timeout_s)

    def list_all(self, state: str | None = None, model_name: str = "") -> list[pb.Job]:
        """Every job, following the pages."""
        jobs, token = [], ""
        while True:
            page = self.list(state, model_name, 0, token)
            jobs += page.jobs
            token = page.next_page_token
            if not token:
                return jobs

    def cancel(self, job_id: str) -> pb.Job:
        return self.stub.CancelJob(pb.CancelJobRequest(job_id=job_id), timeout=self.timeout_s)

    def resume(self, job_id: str) -> pb.Job:
        return self.stub.ResumeJob(pb.ResumeJobRequest(job_id=job_id), timeout=self.timeout_s)

    def watch(self, job_id: str, from_seq: int = 0, timeout_s: float | None = None) -> Iterator[pb.JobEvent]:
        """The job's events from ``from_seq`` until it has ended (``timeout_s``: for the whole stream)."""
        return self.stub.WatchJob(pb.WatchJobRequest(job_id=job_id, from_seq=from_seq), timeout=timeout_s)

    def wait(self, job_id: str, timeout_s: float | None = None) -> pb.Job:
        """Watch until the job has ended; returns it."""
        for _ in self.watch(job_id, timeout_s=timeout_s):
            pass
        return self.get(job_id)
