"""The container images' real entry points, each in a fresh virtual environment holding only
what its Dockerfile copies and installs (tests/helpers/image_replay.py reads the Dockerfile).

The serving image serves a model exported by the project's exporter and answers its own
HEALTHCHECK; the trainer image's ENTRYPOINT trains a few steps on mnist5k and exports the run
into a model repository, stops cleanly on SIGTERM as PID 1 with a final checkpoint, and resumes
from it when started again. Building the two environments takes about three minutes here, most
of it installing torch (pip's cache keeps reruns from downloading again); each is built once per
module.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import threading
import urllib.request
from pathlib import Path

import grpc
import pytest

from tests.helpers.image_replay import Image, ReplayError, replay
from tests.helpers.processes import free_port, wait_until

pytestmark = [pytest.mark.slow, pytest.mark.deploy, pytest.mark.timeout(1800)]

ROOT = Path(__file__).resolve().parent.parent
DOCKER = ROOT / "deploy" / "docker"
MODEL = "mnist-dcgan"
# Kubernetes' default terminationGracePeriodSeconds: after it, SIGKILL and no checkpoint.
GRACE_S = 30


def _replay(name: str, tmp_path_factory, volumes: dict[str, Path]) -> Image:
    try:
        return replay(DOCKER / name, tmp_path_factory.mktemp(name.split(".")[0] + "-image"), volumes)
    except ReplayError as exc:
        if "python3.11 is not on PATH" in str(exc):
            pytest.skip(str(exc))
        raise


@pytest.fixture(scope="module")
def serving_image(tmp_path_factory, model_repo: Path) -> Image:
    """serve.Dockerfile, with the exported model repository mounted at its /models volume."""
    return _replay("serve.Dockerfile", tmp_path_factory, {"/models": model_repo})


@pytest.fixture(scope="module")
def trainer_image(tmp_path_factory) -> Image:
    """trainer.Dockerfile, with empty /runs and /models volumes."""
    return _replay("trainer.Dockerfile", tmp_path_factory,
                   {"/runs": tmp_path_factory.mktemp("runs"), "/models": tmp_path_factory.mktemp("models")})


class Output:
    """Lines of a child's stream, read by a thread (a full pipe never blocks the child)."""

    def __init__(self, stream) -> None:
        self.lines: list[str] = []
        self._thread = threading.Thread(target=self._read, args=(stream,), daemon=True)
        self._thread.start()

    def _read(self, stream) -> None:
        for line in stream:
            if len(self.lines) < 100_000:
                self.lines.append(line.rstrip("\n"))

    def join(self) -> str:
        self._thread.join(10)
        return "\n".join(self.lines)


# --- the serving image ---

def test_serving_image_serves_an_exported_model_and_passes_its_health_check(serving_image: Image):
    image = serving_image
    port, http_port = free_port(), free_port()
    # The container's own network namespace, replaced by loopback and free ports (docker run -e).
    argv, env, cwd = image.entry(LATENTFORGE_HOST="127.0.0.1", LATENTFORGE_PORT=str(port),
                                 LATENTFORGE_HTTP_HOST="127.0.0.1", LATENTFORGE_HTTP_PORT=str(http_port),
                                 LATENTFORGE_PLAYGROUND="true",
                                 LATENTFORGE_METRICS_HOST="127.0.0.1", LATENTFORGE_METRICS_PORT=str(free_port()))
    probe, probe_env, _ = image.health(LATENTFORGE_PORT=str(port))
    assert image.healthcheck_start_period_s > 0
    proc = subprocess.Popen(argv, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    log = Output(proc.stderr)
    try:
        last = None

        def healthy() -> bool:
            nonlocal last
            assert proc.poll() is None, f"`latentforge serve` exited {proc.returncode}:\n{log.join()}"
            last = subprocess.run(probe, env=probe_env, cwd=cwd, capture_output=True, text=True, timeout=30)
            return last.returncode == 0

        # Docker would call the container unhealthy after its start period.
        wait_until(healthy, image.healthcheck_start_period_s, "the image's HEALTHCHECK to pass")
        assert "SERVING" in last.stdout, last.stdout + last.stderr

        from latentforge.v1 import generation_pb2 as pb
        from latentforge.v1 import generation_pb2_grpc as pb_grpc

        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            reply = pb_grpc.GenerationServiceStub(channel).Generate(
                pb.GenerateRequest(model=MODEL, count=2, seed=7), timeout=60)
        assert len(reply.samples) == 2
        # HTTP/JSON is on in the image (LATENTFORGE_HTTP_PORT): alive and ready, as the HTTP probes ask.
        for path in ("/healthz", "/readyz"):
            with urllib.request.urlopen(f"http://127.0.0.1:{http_port}{path}", timeout=10) as answer:
                assert answer.status == 200, path
        # The playground's files are installed with the package (a wheel install, not the checkout).
        with urllib.request.urlopen(f"http://127.0.0.1:{http_port}/", timeout=10) as page:
            html = page.read().decode()
            assert page.headers["content-type"].startswith("text/html") and "app.js" in html
            assert "default-src 'self'" in page.headers["content-security-policy"]
        with urllib.request.urlopen(f"http://127.0.0.1:{http_port}/app.js", timeout=10) as script:
            assert script.status == 200 and script.read()
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            code = proc.wait(60)
        finally:
            if proc.poll() is None:
                proc.kill()
    text = log.join()
    assert code == 0, text
    # Every line of the log is one JSON object, with the image's HOME (the user's /nonexistent).
    lines = [line for line in text.splitlines() if line.strip()]
    assert lines
    for line in lines:
        try:
            json.loads(line)
        except ValueError:
            pytest.fail(f"a log line of the serving image is not JSON: {line!r}")


# --- the trainer image ---

def _few_steps(cmd: list[str], steps: int) -> list[str]:
    """The image's CMD with fewer steps at a smaller width (the same model, data and run folder)."""
    args = list(cmd)
    args[args.index("--steps") + 1] = str(steps)
    return [*args, "--batch-size", "16", "--width", "16", "--no-progress"]


def _out(args: list[str]) -> str:
    return args[args.index("--out") + 1]


def test_trainer_image_trains_and_exports_into_the_model_repository(trainer_image: Image):
    image = trainer_image
    args = _few_steps(image.cmd, steps=4)
    argv, env, cwd = image.entry(args, EXPORT_NAME=MODEL)
    result = subprocess.run(argv, env=env, cwd=cwd, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-8000:]
    run = image.path(_out(args))
    assert sorted(run.glob("*.pt")) or sorted(run.glob("**/*.pt")), f"no checkpoint in {run}"
    version = image.path(image.env["EXPORT_REPO"]) / MODEL / "1"
    manifest = json.loads((version / "manifest.json").read_text())
    assert manifest["name"] == MODEL and manifest["version"] == 1
    for file in manifest["files"]:
        assert (version / file).is_file(), file


class Pid1:
    """A command as PID 1 of a new PID namespace (util-linux ``unshare``), as a container runs its
    entrypoint: the kernel delivers SIGTERM to it only if it handles the signal."""

    def __init__(self, argv: list[str], env: dict[str, str], cwd: Path) -> None:
        self.proc = subprocess.Popen([shutil.which("unshare") or "unshare", "--pid", "--fork", "--kill-child", "--",
                                      *argv], env=env, cwd=cwd, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True)
        self.output = Output(self.proc.stdout)
        self.pid = 0
        wait_until(self._found, 30, "the entrypoint to start as PID 1")

    def _found(self) -> bool:
        assert self.proc.poll() is None, f"exited {self.proc.returncode}: {self.output.join()}"
        children = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children").read_text().split()
        self.pid = int(children[0]) if children else 0
        return bool(self.pid)

    def stop(self, timeout_s: float) -> int:
        """SIGTERM to PID 1, as `docker stop` and Kubernetes send it; its exit status."""
        os.kill(self.pid, signal.SIGTERM)
        try:
            return self.proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.proc.kill()  # --kill-child takes PID 1 down with it
            self.proc.wait(10)
            pytest.fail(f"still running {timeout_s:g} s after SIGTERM (PID 1 ignores it):\n"
                        f"{self.output.join()[-4000:]}")

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


def _can_unshare() -> bool:
    if shutil.which("unshare") is None:
        return False
    return subprocess.run(["unshare", "--pid", "--fork", "--", "true"], capture_output=True, timeout=30).returncode == 0


def _metrics(run: Path) -> list[dict]:
    path = run / "metrics.jsonl"
    if not path.exists():
        return []
    records = []
    for line in path.read_text().splitlines():
        try:
            records.append(json.loads(line))
        except ValueError:
            break  # a line being written
    return records


def _checkpoint_steps(run: Path) -> list[int]:
    from trainer.checkpoint import list_checkpoints, load_checkpoint

    return [int(load_checkpoint(path)["step"]) for path in list_checkpoints(run)]


@pytest.mark.skipif(not _can_unshare(), reason="no PID namespaces here (util-linux unshare --pid)")
def test_trainer_image_stops_on_sigterm_as_pid_1_with_a_checkpoint_and_resumes(trainer_image: Image):
    image = trainer_image
    # A run far too long to finish, that logs every step and would checkpoint only at its end.
    args = _few_steps(image.cmd, steps=1_000_000) + ["--log-every", "1", "--checkpoint-every", "1000000",
                                                     "--sample-every", "1000000"]
    args[args.index("--out") + 1] = "/runs/stopped"
    run = image.path("/runs/stopped")

    # Nothing after training: the entrypoint hands PID 1 to the trainer itself.
    argv, env, cwd = image.entry(args)
    first = Pid1(argv, env, cwd)
    try:
        wait_until(lambda: _metrics(run), 300, "the first metrics line")
        code = first.stop(GRACE_S)
    finally:
        first.kill()
    assert code == 128 + signal.SIGTERM, first.output.join()[-4000:]  # stopped early, by SIGTERM
    stopped_at = _checkpoint_steps(run)
    assert stopped_at, f"no checkpoint written on SIGTERM:\n{first.output.join()[-4000:]}"
    assert stopped_at[-1] >= _metrics(run)[0]["step"]

    # The same arguments again resume from that checkpoint. With an export to follow, the
    # entrypoint stays PID 1 and passes SIGTERM on; a stopped run is not exported.
    argv, env, cwd = image.entry(args, EXPORT_NAME="never-exported")
    second = Pid1(argv, env, cwd)
    try:
        wait_until(lambda: any(m["step"] > stopped_at[-1] for m in _metrics(run)), 300, "a step after the checkpoint")
        code = second.stop(GRACE_S)
    finally:
        second.kill()
    output = second.output.join()
    assert code == 128 + signal.SIGTERM, output[-4000:]
    steps = [m["step"] for m in _metrics(run)]
    assert steps == sorted(set(steps)), "the second run started over instead of resuming"
    assert _checkpoint_steps(run)[-1] > stopped_at[-1], output[-4000:]
    assert not (image.path(image.env["EXPORT_REPO"]) / "never-exported").exists()


# --- the training service image ---

@pytest.fixture(scope="module")
def training_image(tmp_path_factory) -> Image:
    """training.Dockerfile, with empty /data and /models volumes."""
    return _replay("training.Dockerfile", tmp_path_factory,
                   {"/data": tmp_path_factory.mktemp("data"), "/models": tmp_path_factory.mktemp("models")})


def test_training_image_runs_a_job_and_publishes_it(training_image: Image):
    """The TrainingService as its image runs it: healthy by its own HEALTHCHECK, a submitted
    job trains in a child process of the installed package (no checkout beside it), publishes
    into /models, and the service exits 0 on SIGTERM."""
    from services.training.client import TrainingClient, job_spec, state_name

    image = training_image
    port = free_port()
    argv, env, cwd = image.entry(LATENTFORGE_HOST="127.0.0.1", LATENTFORGE_PORT=str(port),
                                 LATENTFORGE_METRICS_HOST="127.0.0.1", LATENTFORGE_METRICS_PORT=str(free_port()))
    probe, probe_env, _ = image.health(LATENTFORGE_PORT=str(port))
    proc = subprocess.Popen(argv, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    log = Output(proc.stderr)
    try:
        def healthy() -> bool:
            assert proc.poll() is None, f"`latentforge serve-training` exited {proc.returncode}:\n{log.join()}"
            return subprocess.run(probe, env=probe_env, cwd=cwd, capture_output=True, timeout=30).returncode == 0

        wait_until(healthy, image.healthcheck_start_period_s, "the image's HEALTHCHECK to pass")
        with TrainingClient(f"127.0.0.1:{port}", timeout_s=60) as client:
            job = client.submit(job_spec("dcgan", "mnist5k", model_name="image-dcgan", publish=True, steps=4,
                                         width=16, batch_size=16, eval_every=0))
            done = client.wait(job.job_id, timeout_s=900)
        assert state_name(done.state) == "SUCCEEDED", f"{done}\n{log.join()[-4000:]}"
        assert (done.published.name, done.published.version) == ("image-dcgan", 1)
        manifest = json.loads((image.path("/models") / "image-dcgan" / "1" / "manifest.json").read_text())
        assert manifest["name"] == "image-dcgan" and manifest["num_classes"] == 10  # conditional: mnist5k has labels
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            code = proc.wait(60)
        finally:
            if proc.poll() is None:
                proc.kill()
    assert code == 0, log.join()[-4000:]
