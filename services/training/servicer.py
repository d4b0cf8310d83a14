"""The TrainingService RPCs: proto messages to typed requests for the job manager, and its
jobs and events back to proto messages. Nothing else happens here.

Every RPC goes through ``services.rpc.calls`` (``@unary`` / ``@stream``): request id, timing,
metrics, one log line, errors turned into statuses.
"""

from __future__ import annotations

from typing import Any, AsyncIterator

import grpc

from latentforge.v1 import training_pb2 as pb
from latentforge.v1 import training_pb2_grpc as pb_grpc
from services.errors import InvalidArgument
from services.rpc.calls import CallTracker, stream, unary
from services.training.datasets import UploadHeader
from services.training.families import (FAMILY_FIELDS, FAMILY_ONEOF, family_options, field_family, list_families,
                                         set_family_options)
from services.training.manager import JobManager
from services.training.spec import JobSpec
from services.training.store import DatasetRecord, Event, Job

_STATES = {name: pb.JobState.Value(f"JOB_STATE_{name}") for name in
           ("QUEUED", "STARTING", "RUNNING", "SUCCEEDED", "FAILED", "CANCELLED")}
_STATE_NAMES = {value: name for name, value in _STATES.items()}
_FORMATS = {"zip": pb.DATASET_FORMAT_ZIP, "tar": pb.DATASET_FORMAT_TAR, "npz": pb.DATASET_FORMAT_NPZ,
            "image": pb.DATASET_FORMAT_IMAGE}
_FORMAT_NAMES = {value: name for name, value in _FORMATS.items()}


class TrainingServicer(pb_grpc.TrainingServiceServicer):
    """Implements latentforge.v1.TrainingService on a job manager."""

    def __init__(self, manager: JobManager, calls: CallTracker) -> None:
        self.manager = manager
        self.calls = calls  # the server's call tracker, which @unary/@stream use
        self._families = list_families()  # fixed for the process: the proto's and the trainer's tables

    @unary
    async def SubmitJob(self, request: pb.JobSpec, context: grpc.aio.ServicerContext) -> pb.Job:
        return job_to_proto(self.manager.submit(spec_from_proto(request)))

    @unary
    async def GetJob(self, request: pb.GetJobRequest, context: grpc.aio.ServicerContext) -> pb.Job:
        return job_to_proto(self.manager.get(request.job_id))

    @unary
    async def ListJobs(self, request: pb.ListJobsRequest, context: grpc.aio.ServicerContext) -> pb.ListJobsResponse:
        if request.state != pb.JOB_STATE_UNSPECIFIED and request.state not in _STATE_NAMES:
            raise InvalidArgument(f"unknown job state {request.state}")
        jobs, token = self.manager.list(_STATE_NAMES.get(request.state), request.model_name or None,
                                        request.page_size, request.page_token)
        return pb.ListJobsResponse(jobs=[job_to_proto(j) for j in jobs], next_page_token=token)

    @unary
    async def CancelJob(self, request: pb.CancelJobRequest, context: grpc.aio.ServicerContext) -> pb.Job:
        return job_to_proto(self.manager.cancel(request.job_id))

    @unary
    async def ResumeJob(self, request: pb.ResumeJobRequest, context: grpc.aio.ServicerContext) -> pb.Job:
        return job_to_proto(self.manager.resume(request.job_id))

    @stream
    async def WatchJob(self, request: pb.WatchJobRequest,
                       context: grpc.aio.ServicerContext) -> AsyncIterator[pb.JobEvent]:
        async for item in self.manager.watch(request.job_id, request.from_seq):
            yield event_to_proto(item)

    @unary
    async def UploadDataset(self, request: AsyncIterator[pb.DatasetChunk],
                            context: grpc.aio.ServicerContext) -> pb.Dataset:
        chunks = request.__aiter__()
        try:
            first = await chunks.__anext__()
        except StopAsyncIteration:
            raise InvalidArgument("the upload sent no chunks; the first one carries the header") from None
        if not first.HasField("header"):
            raise InvalidArgument("the first chunk of an upload must carry the header (name, format, sha256)")
        h = first.header
        header = UploadHeader(name=h.name, format=_FORMAT_NAMES.get(h.format, ""), sha256=h.sha256,
                              size_bytes=h.size_bytes)

        async def data() -> AsyncIterator[bytes]:
            yield first.data
            async for chunk in chunks:
                if chunk.HasField("header"):
                    raise InvalidArgument("only the first chunk of an upload may carry a header")
                yield chunk.data

        return dataset_to_proto(await self.manager.upload_dataset(header, data()))

    @unary
    async def ListDatasets(self, request: pb.ListDatasetsRequest,
                           context: grpc.aio.ServicerContext) -> pb.ListDatasetsResponse:
        records, builtin = self.manager.list_datasets()
        return pb.ListDatasetsResponse(datasets=[dataset_to_proto(r) for r in records], builtin=builtin)

    @unary
    async def ListFamilies(self, request: pb.ListFamiliesRequest,
                           context: grpc.aio.ServicerContext) -> pb.ListFamiliesResponse:
        return self._families

    @unary
    async def DeleteDataset(self, request: pb.DeleteDatasetRequest, context: grpc.aio.ServicerContext) -> pb.Dataset:
        return dataset_to_proto(self.manager.delete_dataset(request.name))


def dataset_to_proto(record: DatasetRecord) -> pb.Dataset:
    return pb.Dataset(name=record.name, dataset_id=record.dataset_id, sha256=record.sha256,
                      format=_FORMATS[record.format], size_bytes=record.size_bytes, count=record.count,
                      shape=list(record.shape), class_names=list(record.class_names),
                      skipped_files=record.skipped_files, created_unix_s=record.created)


def _set_fields(message: Any) -> dict[str, Any]:
    """The fields of an options message that are set, by name."""
    return {f.name: getattr(message, f.name) for f in message.DESCRIPTOR.fields if message.HasField(f.name)}


def spec_from_proto(request: pb.JobSpec) -> JobSpec:
    """A JobSpec message as the typed spec (every option that is set, by its trainer name)."""
    chosen = request.WhichOneof(FAMILY_ONEOF)
    family = request.family or (field_family(chosen) if chosen else "")
    if chosen is not None and request.family and FAMILY_FIELDS.get(request.family) != chosen:
        raise InvalidArgument(f"family is {request.family!r} but the options given are {field_family(chosen)!r}'s; "
                              f"set {request.family} options or leave family_options unset")
    options = family_options(request)
    return JobSpec(
        family=family, dataset=request.dataset,
        options=_set_fields(request.options) if request.HasField("options") else {},
        family_options=_set_fields(options) if options is not None else {},
        model_name=request.model_name, publish=request.publish, idempotency_key=request.idempotency_key,
        max_retries=request.max_retries, nproc=request.nproc or 1)


def spec_to_proto(spec: JobSpec) -> pb.JobSpec:
    message = pb.JobSpec(family=spec.family, dataset=spec.dataset, model_name=spec.model_name, publish=spec.publish,
                         idempotency_key=spec.idempotency_key, max_retries=spec.max_retries, nproc=spec.nproc)
    if spec.options:
        message.options.CopyFrom(pb.TrainingOptions(**spec.options))
    if spec.family in FAMILY_FIELDS:
        set_family_options(message, spec.family, spec.family_options)
    return message


def _published(published: dict[str, Any]) -> pb.PublishedModel:
    return pb.PublishedModel(name=published["name"], version=published["version"],
                             quality=published.get("quality", {}))


def job_to_proto(job: Job) -> pb.Job:
    message = pb.Job(
        job_id=job.job_id, spec=spec_to_proto(job.spec), state=_STATES[job.state], reason=job.reason, step=job.step,
        total_steps=job.total_steps, created_unix_s=job.created, started_unix_s=job.started,
        finished_unix_s=job.finished, last_seq=job.last_seq, cancel_requested=job.cancel_requested,
        attempts=[pb.Attempt(number=a.number, reason=a.reason, from_step=a.from_step, started_unix_s=a.started,
                             finished_unix_s=a.finished, exit_code=a.exit_code, outcome=a.outcome)
                  for a in job.attempts])
    if job.published:
        message.published.CopyFrom(_published(job.published))
    return message


def event_to_proto(item: Event) -> pb.JobEvent:
    message = pb.JobEvent(seq=item.seq, time_unix_s=item.time, job_id=item.job_id)
    d = item.data
    if item.kind == "state":
        message.state.CopyFrom(pb.StateChange(state=_STATES[d["state"]], reason=d.get("reason", ""),
                                              attempt=d.get("attempt", 0)))
    elif item.kind == "progress":
        message.progress.CopyFrom(pb.Progress(**d))
    elif item.kind == "evaluation":
        message.evaluation.CopyFrom(pb.Evaluation(**d))
    elif item.kind == "grid":
        message.grid.CopyFrom(pb.SampleGrid(step=d["step"], name=d["name"], png=item.blob or b""))
    elif item.kind == "log":
        message.log.CopyFrom(pb.LogLine(**d))
    elif item.kind == "checkpoint":
        message.checkpoint.CopyFrom(pb.CheckpointWritten(**d))
    elif item.kind == "published":
        message.published.CopyFrom(_published(d))
    return message
