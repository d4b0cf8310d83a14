"""The TrainingService on a real server: real tiny training jobs on mnist5k, published by the
exporter and served by the GenerationService; watchers, idempotency, limits, errors, auth."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import grpc
import pytest

from latentforge.v1 import training_pb2 as pb
from latentforge.v1 import training_pb2_grpc as pb_grpc
from services.training.client import TrainingClient, state_name
from tests.helpers.processes import wait_until
from tests.helpers.servers import ServerThread, loopback_config
from tests.helpers.training import start_training_server, tiny_job, training_config

TOKEN = "s3cret-token-for-tests-0123456789"


def _kinds(events) -> list[str]:
    return [e.WhichOneof("event") for e in events]


def _states(events) -> list[str]:
    return [state_name(e.state.state) for e in events if e.WhichOneof("event") == "state"]


def test_submit_watch_publish_and_generate_in_one_process(tmp_path: Path):
    """`serve --training`: a job trains, publishes, and the same server generates from it;
    two watchers from the start, a late one from a seq, and one whose client goes away."""
    from services.generation.client import GenerationClient
    from services.generation.server import GenerationServer

    models = tmp_path / "models"
    models.mkdir()
    serve = loopback_config(models=models)  # no periodic scan: a published version is loaded at once
    training = training_config(tmp_path / "data", models)
    server = ServerThread(lambda: GenerationServer(serve, training)).start()
    manager = server.server.training.manager
    try:
        with TrainingClient(server.target) as client:
            job = client.submit(tiny_job("dcgan", model_name="tiny-dcgan", publish=True))
            assert state_name(job.state) in ("QUEUED", "STARTING")
            seen: dict[str, list] = {"a": [], "b": []}

            def follow(name: str) -> None:
                seen[name] = list(client.watch(job.job_id, timeout_s=300))

            watchers = [threading.Thread(target=follow, args=(n,)) for n in seen]
            for t in watchers:
                t.start()
            # A watcher whose client disappears after its first event leaves nothing behind.
            with TrainingClient(server.target) as gone:
                call = gone.watch(job.job_id)
                next(call)
                wait_until(lambda: manager.watcher_count >= 3, 30, "three watchers")
                call.cancel()
            for t in watchers:
                t.join(300)
            a, b = seen["a"], seen["b"]
            assert a and [e.seq for e in a] == list(range(1, len(a) + 1))  # no gaps, from the first
            assert [e.SerializeToString() for e in a] == [e.SerializeToString() for e in b]
            assert _states(a) == ["QUEUED", "STARTING", "RUNNING", "SUCCEEDED"]
            kinds = _kinds(a)
            assert {"progress", "grid", "checkpoint", "published"} <= set(kinds)
            assert kinds.index("published") < len(kinds) - 1  # published, then SUCCEEDED
            progress = [e.progress for e in a if e.WhichOneof("event") == "progress"]
            assert progress[-1].step == 30 and progress[-1].total_steps == 30
            assert "loss_d" in progress[-1].losses and progress[-1].steps_per_second > 0
            # Each grid is its own event; a poll may find the sample grid and the class grid of a
            # step in either order.
            grids = [e.grid for e in a if e.WhichOneof("event") == "grid"]
            assert {(g.step, g.name) for g in grids} >= {(15, "samples"), (15, "classes"), (30, "samples")}
            assert all(g.png.startswith(b"\x89PNG") for g in grids)
            late = list(client.watch(job.job_id, from_seq=5, timeout_s=60))
            assert [e.SerializeToString() for e in late] == [e.SerializeToString() for e in a[4:]]
            wait_until(lambda: manager.watcher_count == 0, 10, "the watchers to be gone")

            done = client.get(job.job_id)
            assert state_name(done.state) == "SUCCEEDED" and done.step == 30
            assert (done.published.name, done.published.version) == ("tiny-dcgan", 1)
            assert [(a.number, a.exit_code, a.outcome) for a in done.attempts] == [(1, 0, "succeeded")]
            assert done.last_seq == a[-1].seq
        assert (models / "tiny-dcgan" / "1" / "manifest.json").is_file()
        with GenerationClient(server.target) as gen:
            assert [m.version for m in gen.list_models("tiny-dcgan")] == [1]
            result = gen.generate("tiny-dcgan", 4, seed=3, version=1)
            assert (result.model, result.version, len(result.samples)) == ("tiny-dcgan", 1, 4)
        import urllib.request

        text = urllib.request.urlopen(server.metrics_url, timeout=10).read().decode()
        assert 'latentforge_training_jobs{state="succeeded"} 1.0' in text
        assert "latentforge_training_queue_length 0.0" in text
        assert 'latentforge_training_job_duration_seconds_count{state="succeeded"} 1.0' in text
        assert "latentforge_training_watchers 0.0" in text
        assert 'latentforge_training_steps_per_second{family="dcgan"} 0.0' in text  # none runs now
    finally:
        server.stop()


def test_idempotency_queue_limit_cancel_and_bad_specs(tmp_path: Path):
    server = start_training_server(tmp_path / "data", tmp_path / "models", max_queued_jobs=1)
    try:
        with TrainingClient(server.target) as client:
            long = dict(steps=100_000, checkpoint_every=100_000, sample_every=100_000)
            first = client.submit(tiny_job(idempotency_key="k-1", model_name="m-a", **long))
            again = client.submit(tiny_job(idempotency_key="k-1", model_name="m-a", **long))
            assert again.job_id == first.job_id  # a retried submit: the same job
            with pytest.raises(grpc.RpcError) as err:
                client.submit(tiny_job(idempotency_key="k-1", steps=7))
            assert err.value.code() == grpc.StatusCode.ALREADY_EXISTS and "different spec" in err.value.details()
            queued = client.submit(tiny_job(**long))
            assert state_name(queued.state) == "QUEUED"
            with pytest.raises(grpc.RpcError) as err:
                client.submit(tiny_job(**long))
            assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED and "queue is full" in err.value.details()

            cancelled = client.cancel(queued.job_id)
            assert state_name(cancelled.state) == "CANCELLED" and cancelled.reason == "cancelled before it started"
            with pytest.raises(grpc.RpcError) as err:
                client.cancel(queued.job_id)
            assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION and "CANCELLED" in err.value.details()
            client.cancel(first.job_id)
            ended = client.wait(first.job_id, timeout_s=120)
            assert state_name(ended.state) == "CANCELLED"

            listed = client.list_all()
            assert [j.job_id for j in listed] == [queued.job_id, first.job_id]  # newest first
            page = client.list(page_size=1)
            assert len(page.jobs) == 1 and page.next_page_token
            assert client.list(page_size=1, page_token=page.next_page_token).jobs[0].job_id == first.job_id
            assert [j.job_id for j in client.list_all(state="CANCELLED")] == [queued.job_id, first.job_id]
            assert client.list_all(state="RUNNING") == []
            assert [j.job_id for j in client.list_all(model_name="m-a")] == [first.job_id]

            bad = [
                (pb.JobSpec(family="gan", dataset="mnist5k"), grpc.StatusCode.INVALID_ARGUMENT, "unknown family 'gan'"),
                (tiny_job(steps=-5), grpc.StatusCode.INVALID_ARGUMENT, "steps must be >= 1"),
                (tiny_job(dataset="cifar-nope"), grpc.StatusCode.NOT_FOUND, "unknown data set 'cifar-nope'"),
                (tiny_job(publish=True), grpc.StatusCode.INVALID_ARGUMENT, "publish needs a model_name"),
                (tiny_job(model_name="Bad Name"), grpc.StatusCode.INVALID_ARGUMENT, "model_name"),
                (tiny_job(nproc=99), grpc.StatusCode.INVALID_ARGUMENT, "nproc must be"),
                (tiny_job(steps=10**9), grpc.StatusCode.INVALID_ARGUMENT, "above this server's limit"),
                (pb.JobSpec(family="dcgan", dataset="mnist5k", vae=pb.VAEOptions(beta=2.0)),
                 grpc.StatusCode.INVALID_ARGUMENT, "options given are 'vae'"),
            ]
            for spec, code, words in bad:
                with pytest.raises(grpc.RpcError) as err:
                    client.submit(spec)
                assert err.value.code() == code and words in err.value.details(), (words, err.value.details())
            for call in (client.get, client.cancel, client.resume):
                with pytest.raises(grpc.RpcError) as err:
                    call("no-such-job")
                assert err.value.code() == grpc.StatusCode.NOT_FOUND
            with pytest.raises(grpc.RpcError) as err:
                list(client.watch("no-such-job"))
            assert err.value.code() == grpc.StatusCode.NOT_FOUND
            with pytest.raises(grpc.RpcError) as err:
                client.list(page_token="garbage")
            assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    finally:
        server.stop()


def test_auth_applies_to_every_method(tmp_path: Path):
    server = start_training_server(tmp_path / "data", tmp_path / "models", auth_tokens=(TOKEN,))
    try:
        calls = {
            "SubmitJob": pb.JobSpec(family="dcgan", dataset="mnist5k"),
            "GetJob": pb.GetJobRequest(job_id="x"),
            "ListJobs": pb.ListJobsRequest(),
            "CancelJob": pb.CancelJobRequest(job_id="x"),
            "ResumeJob": pb.ResumeJobRequest(job_id="x"),
            "WatchJob": pb.WatchJobRequest(job_id="x"),
            "UploadDataset": [pb.DatasetChunk(header=pb.DatasetHeader(name="x"), data=b"x")],
            "ListDatasets": pb.ListDatasetsRequest(),
            "DeleteDataset": pb.DeleteDatasetRequest(name="x"),
            "ListFamilies": pb.ListFamiliesRequest(),
        }
        assert set(calls) == set(pb.DESCRIPTOR.services_by_name["TrainingService"].methods_by_name)
        with grpc.insecure_channel(server.target) as channel:
            stub = pb_grpc.TrainingServiceStub(channel)
            for method, request in calls.items():
                for metadata, code in ((None, grpc.StatusCode.UNAUTHENTICATED),
                                       ([("authorization", "Bearer wrong-token-0123456789")],
                                        grpc.StatusCode.PERMISSION_DENIED)):
                    with pytest.raises(grpc.RpcError) as err:
                        answer = getattr(stub, method)(iter(request) if isinstance(request, list) else request,
                                                       timeout=10, metadata=metadata)
                        if method == "WatchJob":
                            list(answer)
                    assert err.value.code() == code, method
        with TrainingClient(server.target, token=TOKEN) as client:
            assert list(client.list().jobs) == []
            with pytest.raises(grpc.RpcError) as err:
                client.get("x")
            assert err.value.code() == grpc.StatusCode.NOT_FOUND  # past the token check
            with pytest.raises(grpc.RpcError) as err:
                client.stub.UploadDataset(iter([pb.DatasetChunk(data=b"x")]), timeout=10)
            assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT  # a client stream carries the token too
            assert list(client.list_datasets().datasets) == []
    finally:
        server.stop()


def _wait_for_step(client: TrainingClient, job_id: str, step: int, timeout_s: float = 300) -> None:
    deadline = time.monotonic() + timeout_s
    for e in client.watch(job_id, timeout_s=timeout_s):
        if e.WhichOneof("event") == "progress" and e.progress.step >= step:
            return
        assert time.monotonic() < deadline
    raise AssertionError(f"job {job_id} ended before step {step}")


@pytest.mark.slow
def test_cancel_mid_run_then_resume_to_the_end(tmp_path: Path):
    server = start_training_server(tmp_path / "data", tmp_path / "models")
    try:
        with TrainingClient(server.target) as client:
            job = client.submit(tiny_job("vae", steps=400, checkpoint_every=10, log_every=2))
            _wait_for_step(client, job.job_id, 4)
            client.cancel(job.job_id)
            cancelled = client.wait(job.job_id, timeout_s=120)
            assert state_name(cancelled.state) == "CANCELLED" and cancelled.reason == "cancelled"
            assert 4 <= cancelled.step < 400
            assert cancelled.attempts[0].exit_code == 143 and cancelled.attempts[0].outcome == "cancelled"
            with pytest.raises(grpc.RpcError) as err:
                client.cancel(job.job_id)
            assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
            # The trainer wrote a checkpoint at the step it stopped after: the resume starts there.
            resumed = client.resume(job.job_id)
            assert state_name(resumed.state) == "QUEUED"
            events = list(client.watch(job.job_id, from_seq=cancelled.last_seq + 1, timeout_s=600))
            assert _states(events) == ["QUEUED", "STARTING", "RUNNING", "SUCCEEDED"]
            done = client.get(job.job_id)
            assert state_name(done.state) == "SUCCEEDED" and done.step == 400
            assert [a.reason for a in done.attempts] == ["submitted", "resumed"]
            assert done.attempts[1].from_step == cancelled.step
            with pytest.raises(grpc.RpcError) as err:
                client.resume(job.job_id)
            assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    finally:
        server.stop()


@pytest.mark.slow
def test_a_job_survives_a_sigkill_of_the_service_with_the_same_final_weights(tmp_path: Path):
    """SIGKILL the service mid-job, start it again: the job continues from its last checkpoint,
    keeps its history, and ends with the weights of an uninterrupted run, bit for bit."""
    import subprocess
    import sys

    import torch

    from tests.helpers.processes import ROOT, TrainingServeProcess

    data, models = tmp_path / "data", tmp_path / "models"
    first = TrainingServeProcess(data, models)
    try:
        with TrainingClient(first.target) as client:
            job = client.submit(tiny_job("dcgan", steps=60, checkpoint_every=10, log_every=2))
            _wait_for_step(client, job.job_id, 14)
    finally:
        first.kill()  # SIGKILL: no drain, no checkpoint on the way out
    run = data / "jobs" / job.job_id / "run"
    # The job's process died with the service (nothing else writes to its run folder).
    wait_until(lambda: not any(str(run) in p.read_bytes().decode("utf-8", "replace")
                               for p in Path("/proc").glob("[0-9]*/cmdline") if _readable(p)), 30,
               "the job's process to die with the service")
    second = TrainingServeProcess(data, models)
    try:
        with TrainingClient(second.target) as client:
            listed = client.list_all()
            assert [j.job_id for j in listed] == [job.job_id]  # still listed after the restart
            done = client.wait(job.job_id, timeout_s=600)
            assert state_name(done.state) == "SUCCEEDED" and done.step == 60
            assert [a.reason for a in done.attempts] == ["submitted", "service restarted"]
            assert done.attempts[0].outcome == "the service stopped"
            assert done.attempts[1].from_step >= 10
            history = list(client.watch(job.job_id, timeout_s=60))
            assert [e.seq for e in history] == list(range(1, len(history) + 1))
            assert _states(history) == ["QUEUED", "STARTING", "RUNNING", "QUEUED", "STARTING", "RUNNING",
                                        "SUCCEEDED"]
    finally:
        second.kill(15)
    # The same options, uninterrupted, through the same command the job runs.
    reference = tmp_path / "reference"
    subprocess.run([sys.executable, "-m", "latentforge", "train", "--config", str(run.parent / "train.json"),
                    "--out", str(reference)], cwd=ROOT, check=True, capture_output=True, timeout=600)
    name = "checkpoints/step_00000060.pt"
    resumed = torch.load(run / name, map_location="cpu", weights_only=True)
    straight = torch.load(reference / name, map_location="cpu", weights_only=True)
    compared = 0
    for module, state in straight["modules"].items():
        for tensor_name, tensor in state.items():
            assert torch.equal(resumed["modules"][module][tensor_name], tensor), f"{module}.{tensor_name} differs"
            compared += 1
    assert compared > 10


def _readable(path: Path) -> bool:
    try:
        path.read_bytes()
        return True
    except OSError:
        return False


@pytest.mark.slow
def test_a_killed_job_is_retried_from_its_checkpoint(tmp_path: Path):
    """A job whose process is killed (as the OOM killer does) is retried within max_retries;
    once they are spent, the next kill fails it with the reason."""
    import os
    import signal

    server = start_training_server(tmp_path / "data", tmp_path / "models")
    manager = server.server.training.manager
    try:
        with TrainingClient(server.target) as client:
            job = client.submit(tiny_job("ae", steps=400, checkpoint_every=5, log_every=2, max_retries=1))
            def training(attempt: int) -> bool:
                now = client.get(job.job_id)
                return (len(now.attempts) == attempt and state_name(now.state) == "RUNNING"
                        and now.step >= now.attempts[-1].from_step + 6)

            for attempt in (1, 2):
                wait_until(lambda n=attempt: training(n), 300, f"attempt {attempt} to train")
                os.kill(manager.running[job.job_id].proc.pid, signal.SIGKILL)
            failed = client.wait(job.job_id, timeout_s=120)
            assert state_name(failed.state) == "FAILED" and "killed by SIGKILL" in failed.reason
            assert [a.reason for a in failed.attempts] == [
                "submitted", "retry 1 of 1 after: killed by SIGKILL (out of memory, or killed from outside)"]
            assert [a.exit_code for a in failed.attempts] == [137, 137]
            assert failed.attempts[1].from_step >= 5
            states = _states(client.watch(job.job_id, timeout_s=60))
            assert states == ["QUEUED", "STARTING", "RUNNING", "QUEUED", "STARTING", "RUNNING", "FAILED"]
    finally:
        server.stop()


@pytest.mark.slow
def test_a_job_with_two_processes_runs_under_torchrun(tmp_path: Path):
    server = start_training_server(tmp_path / "data", tmp_path / "models")
    try:
        with TrainingClient(server.target) as client:
            job = client.submit(tiny_job("dcgan", steps=6, batch_size=16, checkpoint_every=3, sample_every=3,
                                         log_every=1, nproc=2))
            done = client.wait(job.job_id, timeout_s=300)
            assert state_name(done.state) == "SUCCEEDED", done.reason
            run = tmp_path / "data" / "jobs" / job.job_id / "run"
            import json

            assert json.loads((run / "run.json").read_text())["world_size"] == 2
    finally:
        server.stop()


@pytest.mark.slow
def test_a_job_whose_export_is_refused_fails_with_the_exporters_reason(tmp_path: Path):
    models = tmp_path / "models"
    models.write_text("not a folder")  # the exporter cannot write a version here
    server = start_training_server(tmp_path / "data", models)
    try:
        with TrainingClient(server.target) as client:
            job = client.submit(tiny_job("dcgan", steps=10, model_name="refused", publish=True))
            failed = client.wait(job.job_id, timeout_s=300)
            assert state_name(failed.state) == "FAILED" and failed.step == 10
            assert failed.reason.startswith("publishing failed: ") and "models" in failed.reason
            assert not failed.HasField("published"), failed.reason
    finally:
        server.stop()


@pytest.mark.slow
def test_a_drained_service_leaves_its_job_to_continue_after_the_restart(tmp_path: Path):
    """SIGTERM to the service: the running job checkpoints the step it is at and stays RUNNING
    in the store; the restarted service continues it from exactly that step."""
    from tests.helpers.processes import TrainingServeProcess

    data, models = tmp_path / "data", tmp_path / "models"
    first = TrainingServeProcess(data, models)
    try:
        with TrainingClient(first.target) as client:
            job = client.submit(tiny_job("ae", steps=400, checkpoint_every=1000, log_every=2))
            _wait_for_step(client, job.job_id, 4)
        first.proc.terminate()
        assert first.proc.wait(60) == 0
    finally:
        first.kill()
    second = TrainingServeProcess(data, models)
    try:
        with TrainingClient(second.target) as client:
            wait_until(lambda: len(client.get(job.job_id).attempts) == 2, 60, "the job to start again")
            now = client.get(job.job_id)
            stopped, again = now.attempts
            assert (stopped.exit_code, stopped.outcome) == (143, "the service stopped")
            assert again.reason == "service restarted" and again.from_step >= 4  # its SIGTERM checkpoint
            client.cancel(job.job_id)
            assert state_name(client.wait(job.job_id, timeout_s=120).state) == "CANCELLED"
    finally:
        second.kill(15)
