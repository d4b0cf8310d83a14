"""The GenerationService RPCs: each converts its request (``services.generation.convert``), calls
the generation pipeline, and converts the result back. Nothing else happens here.

Every RPC goes through ``services.rpc.calls`` (``@unary`` / ``@stream``), which sets the request
id, times the call, records metrics, writes one log line, and turns errors into statuses.
"""

from __future__ import annotations

from typing import AsyncIterator

import grpc

from latentforge.v1 import generation_pb2 as pb
from latentforge.v1 import generation_pb2_grpc as pb_grpc
from services.generation import convert
from services.generation.pipeline import GenerationPipeline
from services.generation.session import Sessions
from services.rpc.calls import CallTracker, add_trailer, deadline, stream, unary

SAMPLES_STORED_HEADER = "x-samples-stored"


class GenerationServicer(pb_grpc.GenerationServiceServicer):
    """Implements latentforge.v1.GenerationService on a generation pipeline."""

    def __init__(self, pipeline: GenerationPipeline, calls: CallTracker) -> None:
        self.pipeline = pipeline
        self.calls = calls  # the server's call tracker, which @unary/@stream use
        self.sessions = Sessions(calls, pipeline.config.session_max_in_flight)  # open Session streams

    @unary
    async def ListModels(self, request: pb.ListModelsRequest, context: grpc.aio.ServicerContext) -> pb.ListModelsResponse:
        return convert.list_models_response(self.pipeline.models(request.name), self.pipeline.max_count,
                                            self.pipeline.config.max_stream_count)

    @unary
    async def Generate(self, request: pb.GenerateRequest, context: grpc.aio.ServicerContext) -> pb.GenerateResponse:
        """Generate as a message (the HTTP/JSON surface's); gRPC's is ``generate_serialized``."""
        plan = self.pipeline.plan_generate(convert.generate_request(request))
        made = await self.pipeline.generate(plan, 0, plan.count, deadline(context))
        return convert.generate_response(made, plan.output, request.return_latents)

    @unary(name="Generate")
    async def generate_serialized(self, request: pb.GenerateRequest, context: grpc.aio.ServicerContext) -> bytes:
        """Generate over gRPC: the response is built and serialised on the worker thread that ran
        the request's batch, so the event loop only plans, queues, stores and answers."""
        plan = self.pipeline.plan_generate(convert.generate_request(request))
        with_latents = request.return_latents
        data, stored = await self.pipeline.generate_rendered(
            plan, deadline(context), lambda made: convert.generate_response(made, plan.output, with_latents)
            .SerializeToString())
        return data + convert.SAMPLES_STORED if stored else data

    @stream
    async def GenerateStream(self, request: pb.GenerateRequest,
                             context: grpc.aio.ServicerContext) -> AsyncIterator[pb.Sample]:
        # Flow control: grpc.aio's yield returns once the message was taken by the HTTP/2
        # transport, which takes no more than the client's receive window allows; the next
        # chunk is rendered only after every sample of the last one was taken. So the server is
        # at most one chunk plus that window ahead of what the client has read, and a cancelled
        # call (CancelledError at either await) stops between chunks, its queued batch dropped.
        plan = self.pipeline.plan_stream(convert.generate_request(request))
        all_stored = True
        async for start, made in self.pipeline.generate_stream(plan, deadline(context)):
            all_stored &= made.stored
            for sample in convert.stream_samples(made, plan.output, start, request.return_latents):
                yield sample
        add_trailer(SAMPLES_STORED_HEADER, "true" if all_stored else "false")

    @stream
    async def Session(self, requests: AsyncIterator[pb.SessionRequest],
                      context: grpc.aio.ServicerContext) -> AsyncIterator[pb.SessionResponse]:
        """Many requests on one stream, answered by id as they complete (``services.generation.session``)."""
        pipeline = self.pipeline

        async def generate(request: pb.GenerateRequest, until: float | None) -> pb.SessionResponse:
            plan = pipeline.plan_generate(convert.generate_request(request))
            made = await pipeline.generate(plan, 0, plan.count, until, "Session.Generate")
            response = pb.SessionResponse()
            convert.generate_response(made, plan.output, request.return_latents, into=response.generate)
            return response

        async def variations(request: pb.VariationsRequest, until: float | None) -> pb.SessionResponse:
            typed = convert.variations_request(request)
            made = await pipeline.variations(typed, until)
            response = pb.SessionResponse()
            convert.variations_response(made, typed.output, request.return_latents, into=response.variations)
            return response

        handlers = {"generate": ("Session.Generate", generate), "variations": ("Session.Variations", variations)}
        async for response in self.sessions.serve(requests, context, handlers):
            yield response

    @unary
    async def Interpolate(self, request: pb.InterpolateRequest,
                          context: grpc.aio.ServicerContext) -> pb.InterpolateResponse:
        typed = convert.interpolate_request(request)
        made = await self.pipeline.interpolate(typed, deadline(context))
        return convert.interpolate_response(made, typed.output, request.return_latents)

    @unary
    async def Encode(self, request: pb.EncodeRequest, context: grpc.aio.ServicerContext) -> pb.EncodeResponse:
        made = await self.pipeline.encode(convert.encode_request(request), deadline(context))
        return convert.encode_response(made)

    @unary
    async def Reconstruct(self, request: pb.ReconstructRequest,
                          context: grpc.aio.ServicerContext) -> pb.ReconstructResponse:
        typed = convert.reconstruct_request(request)
        made = await self.pipeline.reconstruct(typed, deadline(context))
        return convert.reconstruct_response(made, typed.output)

    @unary
    async def Variations(self, request: pb.VariationsRequest,
                         context: grpc.aio.ServicerContext) -> pb.VariationsResponse:
        typed = convert.variations_request(request)
        made = await self.pipeline.variations(typed, deadline(context))
        return convert.variations_response(made, typed.output, request.return_latents)

    @unary
    async def Complete(self, request: pb.CompleteRequest, context: grpc.aio.ServicerContext) -> pb.CompleteResponse:
        typed = convert.complete_request(request)
        made = await self.pipeline.complete(typed, deadline(context))
        return convert.complete_response(made, typed.output, request.return_latents)

    @unary
    async def Stylize(self, request: pb.StylizeRequest, context: grpc.aio.ServicerContext) -> pb.StylizeResponse:
        typed = convert.stylize_request(request)
        return convert.stylize_response(await self.pipeline.stylize(typed, deadline(context)), typed.output)

    @stream
    async def GenerateStrokes(self, request: pb.GenerateStrokesRequest,
                              context: grpc.aio.ServicerContext) -> AsyncIterator[pb.StrokeEvent]:
        async for event in self.pipeline.draw_strokes(convert.draw_request(request)):
            yield convert.stroke_event(event, request.return_latents)

    @stream
    async def ContinueStrokes(self, request: pb.ContinueStrokesRequest,
                              context: grpc.aio.ServicerContext) -> AsyncIterator[pb.StrokeEvent]:
        async for event in self.pipeline.continue_strokes(convert.continue_request(request)):
            yield convert.stroke_event(event, request.return_latents)

    @unary
    async def EncodeStrokes(self, request: pb.EncodeStrokesRequest,
                            context: grpc.aio.ServicerContext) -> pb.EncodeStrokesResponse:
        made = await self.pipeline.encode_strokes(convert.encode_strokes_request(request), deadline(context))
        return convert.encode_strokes_response(made)

    @unary
    async def GetSample(self, request: pb.GetSampleRequest, context: grpc.aio.ServicerContext) -> pb.GetSampleResponse:
        return convert.sample_response(await self.pipeline.sample(request.sample_id))

    @unary
    async def SampleImage(self, request: pb.GetSampleRequest, context: grpc.aio.ServicerContext) -> bytes:
        """Not an RPC of the proto: the HTTP surface's ``GET /v1/samples/{id}/image.png``, a stored
        sample's PNG for ``<img src>``, with an RPC's bookkeeping (metrics, access log, drain)."""
        return await self.pipeline.sample_image(request.sample_id, deadline(context))
