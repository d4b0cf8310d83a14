"""Warm-up before readiness: every worker thread has run each version's image graph and encoders
before health says SERVING, and warm-up leaves no trace in the metrics or the cache."""

from __future__ import annotations

from pathlib import Path

from services.generation.pipeline import GenerationPipeline
from services.generation.service import SERVICE_NAME
from services.rpc.health import Health
from tests.helpers.servers import start_server


def test_versions_are_warmed_on_every_worker_before_serving_and_leave_no_trace(model_repo: Path, monkeypatch):
    events: list[tuple] = []
    warm_up, set_ready = GenerationPipeline.warm_up, Health.set_ready

    async def watched_warm_up(self, model, every_worker):
        events.append(("warm", model.name, every_worker))
        await warm_up(self, model, every_worker)

    async def watched_set_ready(self, service, ready):
        events.append(("ready", service, ready))
        await set_ready(self, service, ready)

    monkeypatch.setattr(GenerationPipeline, "warm_up", watched_warm_up)
    monkeypatch.setattr(Health, "set_ready", watched_set_ready)
    server = start_server(model_repo)
    try:
        gen = server.server.generation
        warmed = [e for e in events if e[0] == "warm"]
        assert {name for _, name, _ in warmed} == {m.name for m in gen.repository.all()}
        assert all(every for _, _, every in warmed)  # at start: on every worker thread
        first_ready = events.index(("ready", SERVICE_NAME, True))
        assert all(events.index(e) < first_ready for e in warmed)
        assert len(gen.executor._threads) == gen.config.workers
        for family in server.server.registry.collect():
            if family.name in ("latentforge_batch_size", "latentforge_inference_duration_seconds",
                               "latentforge_samples", "latentforge_queue_wait_seconds"):
                counted = [s for s in family.samples if s.name.endswith(("_count", "_total")) and s.value]
                assert not counted, family.name
        assert len(gen.cache) == 0  # the in-process cache: no sample stored
    finally:
        server.stop()
