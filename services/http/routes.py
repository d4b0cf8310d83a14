"""The HTTP routes of each service: which servicer method answers which method and path.

A route names the servicer method (the gRPC call) and its request message; the request is the
JSON body (POST) or the query string (GET, DELETE), plus the path's parameters, all read with
the proto3 JSON mapping into that one message type. Adding a unary call or a server stream to a
service is one row here. Two routes take what JSON cannot carry well: the data-set upload (the
archive's bytes as the body) and a sample's image (PNG bytes for ``<img src>``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from latentforge.v1 import generation_pb2 as gen
from latentforge.v1 import training_pb2 as train

GENERATION = gen.DESCRIPTOR.services_by_name["GenerationService"].full_name
TRAINING = train.DESCRIPTOR.services_by_name["TrainingService"].full_name


@dataclass(frozen=True)
class Route:
    """``verb path`` answered by servicer method ``rpc`` on a ``request`` message.

    ``kind``: "unary", "stream" (Server-Sent Events), "upload" (the body is a data set's bytes)
    or "sample_image" (a stored sample drawn as PNG). ``event_id``: a field of each streamed
    message sent as the SSE ``id``; ``resume_from``: the request field a reconnecting client's
    ``Last-Event-ID`` sets (to that id + 1), so that it resumes after the last event it saw.
    """

    verb: str
    path: str
    rpc: str
    request: Any
    kind: str = "unary"
    event_id: str | None = None
    resume_from: str | None = None


ROUTES: dict[str, tuple[Route, ...]] = {
    GENERATION: (
        Route("GET", "/v1/models", "ListModels", gen.ListModelsRequest),
        Route("POST", "/v1/generate", "Generate", gen.GenerateRequest),
        Route("POST", "/v1/generate/stream", "GenerateStream", gen.GenerateRequest, "stream"),
        Route("POST", "/v1/interpolate", "Interpolate", gen.InterpolateRequest),
        Route("POST", "/v1/encode", "Encode", gen.EncodeRequest),
        Route("POST", "/v1/reconstruct", "Reconstruct", gen.ReconstructRequest),
        Route("POST", "/v1/variations", "Variations", gen.VariationsRequest),
        Route("POST", "/v1/complete", "Complete", gen.CompleteRequest),
        Route("POST", "/v1/stylize", "Stylize", gen.StylizeRequest),
        Route("POST", "/v1/strokes/generate", "GenerateStrokes", gen.GenerateStrokesRequest, "stream"),
        Route("POST", "/v1/strokes/continue", "ContinueStrokes", gen.ContinueStrokesRequest, "stream"),
        Route("POST", "/v1/strokes/encode", "EncodeStrokes", gen.EncodeStrokesRequest),
        Route("GET", "/v1/samples/{sample_id}/image.png", "SampleImage", gen.GetSampleRequest, "sample_image"),
        Route("GET", "/v1/samples/{sample_id}", "GetSample", gen.GetSampleRequest),
    ),
    TRAINING: (
        Route("POST", "/v1/jobs", "SubmitJob", train.JobSpec),
        Route("GET", "/v1/jobs", "ListJobs", train.ListJobsRequest),
        Route("GET", "/v1/jobs/{job_id}", "GetJob", train.GetJobRequest),
        Route("POST", "/v1/jobs/{job_id}/cancel", "CancelJob", train.CancelJobRequest),
        Route("POST", "/v1/jobs/{job_id}/resume", "ResumeJob", train.ResumeJobRequest),
        Route("GET", "/v1/jobs/{job_id}/events", "WatchJob", train.WatchJobRequest, "stream", event_id="seq",
              resume_from="from_seq"),
        Route("GET", "/v1/datasets", "ListDatasets", train.ListDatasetsRequest),
        Route("PUT", "/v1/datasets/{name}", "UploadDataset", train.DatasetHeader, "upload"),
        Route("DELETE", "/v1/datasets/{name}", "DeleteDataset", train.DeleteDatasetRequest),
        Route("GET", "/v1/families", "ListFamilies", train.ListFamiliesRequest),
    ),
}
