"""/metrics over HTTP (names, labels, values), grpc.health.v1 and server reflection."""

from __future__ import annotations

import shutil
import urllib.request
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from prometheus_client.parser import text_string_to_metric_families

from latentforge.v1 import generation_pb2 as pb
from latentforge.v1 import generation_pb2_grpc as pb_grpc
from services.generation.client import GenerationClient
from services.rpc.health import LIVENESS
from tests.helpers.processes import NOT_SERVING, SERVING, health_status, wait_until
from tests.helpers.servers import Gate, hold_a_batch_slot, start_server

EXPECTED = {
    "latentforge_requests": "counter",
    "latentforge_request_duration_seconds": "histogram",
    "latentforge_requests_in_flight": "gauge",
    "latentforge_queue_depth": "gauge",
    "latentforge_queue_wait_seconds": "histogram",
    "latentforge_batch_size": "histogram",
    "latentforge_inference_duration_seconds": "histogram",
    "latentforge_samples_generated": "counter",
    "latentforge_cache_hits": "counter",
    "latentforge_cache_misses": "counter",
    "latentforge_cache_errors": "counter",
    "latentforge_models_loaded": "gauge",
    "latentforge_model_info": "gauge",  # an Info metric, exposed as a gauge of value 1
    "latentforge_model_load_failures": "counter",
}
ALLOWED_LABELS = {"method", "code", "model", "version", "graph", "provider", "backend", "operation", "kind", "le", "protocol"}


def _scrape(server) -> dict:
    text = urllib.request.urlopen(server.metrics_url, timeout=10).read().decode()
    return {f.name: f for f in text_string_to_metric_families(text)}


def _value(families, name, sample_name, **labels) -> float:
    for s in families[name].samples:
        if s.name == sample_name and all(s.labels.get(k) == v for k, v in labels.items()):
            return s.value
    return 0.0


def test_metrics_are_scraped_with_the_documented_names_and_bounded_labels(redis_servers):
    server = redis_servers[0]
    with GenerationClient(server.target) as client:
        before = _scrape(server)
        made = client.generate("mnist-dcgan", 5, seed=3)
        client.get_sample(made.samples[0].sample_id)
        try:
            client.get_sample("missing00")
        except grpc.RpcError:
            pass
    families = _scrape(server)
    for name, kind in EXPECTED.items():
        assert name in families, name
        assert families[name].type == kind, name
    ids = {s.sample_id for s in made.samples}
    for family in families.values():
        if family.name.startswith("latentforge_"):
            for sample in family.samples:
                assert set(sample.labels) <= ALLOWED_LABELS, (family.name, sample.labels)
                assert not ids & set(sample.labels.values())
                assert "3" != sample.labels.get("seed")

    def delta(name, sample, **labels):
        return _value(families, name, sample, **labels) - _value(before, name, sample, **labels)

    assert delta("latentforge_requests", "latentforge_requests_total", method="Generate", code="OK") == 1
    assert delta("latentforge_requests", "latentforge_requests_total", method="GetSample", code="NOT_FOUND") == 1
    assert delta("latentforge_request_duration_seconds", "latentforge_request_duration_seconds_count",
                 method="Generate", code="OK") == 1
    assert delta("latentforge_samples_generated", "latentforge_samples_generated_total",
                 model="mnist-dcgan", method="Generate") == 5
    assert delta("latentforge_cache_hits", "latentforge_cache_hits_total", backend="redis") == 1
    assert delta("latentforge_cache_misses", "latentforge_cache_misses_total", backend="redis") == 1
    assert delta("latentforge_inference_duration_seconds", "latentforge_inference_duration_seconds_count",
                 model="mnist-dcgan", provider="CPUExecutionProvider") >= 1
    assert _value(families, "latentforge_models_loaded", "latentforge_models_loaded") == 2
    info = [s.labels for s in families["latentforge_model_info"].samples]
    assert {"model": "mnist-dcgan", "version": "1", "provider": "CPUExecutionProvider", "kind": "gan"} in info


def test_each_server_has_its_own_registry(memory_server, redis_servers):
    assert memory_server.server.registry is not redis_servers[0].server.registry
    assert memory_server.metrics_url != redis_servers[0].metrics_url


def test_health_is_serving_once_models_are_loaded(memory_server):
    with grpc.insecure_channel(memory_server.target) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        for service in ("", "latentforge.v1.GenerationService"):
            response = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=10)
            assert response.status == health_pb2.HealthCheckResponse.SERVING


def test_liveness_serves_without_a_model_and_stops_only_while_draining(model_repo: Path, tmp_path: Path):
    """Liveness and startup probes must not restart a server that waits for its first model:
    "liveness" is SERVING once the server runs; readiness ("" and the service) waits for a
    version; while the server drains every name is NOT_SERVING."""
    repo = tmp_path / "models"
    repo.mkdir()
    server = start_server(repo, reload_interval_s=0.1, workers=1, render_cache=False)
    gate = Gate()
    try:
        with grpc.insecure_channel(server.target) as channel:
            assert health_status(channel, LIVENESS) == SERVING
            assert health_status(channel) == NOT_SERVING
            assert health_status(channel, "latentforge.v1.GenerationService") == NOT_SERVING
            staged = repo / ".staging-mnist-dcgan"  # published as the exporter does: staged, then renamed
            shutil.copytree(model_repo / "mnist-dcgan", staged)
            staged.rename(repo / "mnist-dcgan")
            wait_until(lambda: health_status(channel) == SERVING, 30, "readiness once a version is loaded")
            assert health_status(channel, "latentforge.v1.GenerationService") == SERVING
            assert health_status(channel, LIVENESS) == SERVING
            # Drain with a call in flight (the only batch slot is held): liveness turns NOT_SERVING.
            hold_a_batch_slot(server, gate)
            stub = pb_grpc.GenerationServiceStub(channel)
            in_flight = stub.Generate.future(pb.GenerateRequest(model="mnist-dcgan", count=1), timeout=30)
            wait_until(lambda: server.server.calls.in_flight == 1, 10, "the call in flight")
            stopper = server.begin_stop(20.0)
            wait_until(lambda: health_status(channel, LIVENESS) == NOT_SERVING, 10, "liveness NOT_SERVING")
            assert health_status(channel) == NOT_SERVING
            gate.release.set()
            assert len(in_flight.result(30).samples) == 1
        stopper.join(30)
        assert not stopper.is_alive()
    finally:
        gate.release.set()
        server.stop()


def test_reflection_lists_and_describes_the_service(memory_server):
    with grpc.insecure_channel(memory_server.target) as channel:
        stub = reflection_pb2_grpc.ServerReflectionStub(channel)
        requests = [
            reflection_pb2.ServerReflectionRequest(list_services=""),
            reflection_pb2.ServerReflectionRequest(file_containing_symbol="latentforge.v1.GenerationService"),
        ]
        listed, described = list(stub.ServerReflectionInfo(iter(requests), timeout=10))
        names = {s.name for s in listed.list_services_response.service}
        assert {"latentforge.v1.GenerationService", "grpc.health.v1.Health"} <= names
        files = described.file_descriptor_response.file_descriptor_proto
        assert any(b"latentforge/v1/generation.proto" in f for f in files)
