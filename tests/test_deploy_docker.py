"""Container images and the compose stack (deploy/docker/), checked without a container engine.

The Dockerfiles are parsed and held to the essentials (pinned bases, a numeric non-root user,
the serving images without torch, a gRPC health check); the health-check script runs against a
real server; the trainer entrypoint's commands are checked in its dry-run mode; the compose
file's wiring (images, mounts, ports, scrape target, data source) is checked against the files
it names.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

from services.generation.config import load_config
from tests.helpers.dockerfile import (
    Instruction,
    env_of,
    exec_form,
    final_stage,
    global_args,
    parse_dockerfile,
    useradd_home,
)

pytestmark = pytest.mark.deploy

ROOT = Path(__file__).resolve().parent.parent
DOCKER = ROOT / "deploy" / "docker"
SERVING = ("serve.Dockerfile", "serve-gpu.Dockerfile")
ALL_IMAGES = (*SERVING, "trainer.Dockerfile", "training.Dockerfile")
# A pinned tag names a full release: at least major.minor.patch (3.11.13, 12.6.3, v2.55.1).
PINNED_TAG = re.compile(r"^v?\d+\.\d+\.\d+")
# The HTTP/JSON port of the servers in every deployment (images, compose, Kubernetes).
HTTP_PORT = 8080


@pytest.fixture(scope="module", params=ALL_IMAGES)
def dockerfile(request) -> tuple[str, list[Instruction]]:
    return request.param, parse_dockerfile(DOCKER / request.param)


def test_base_images_are_pinned_release_tags(dockerfile):
    name, instructions = dockerfile
    args = global_args(instructions)
    stages = []
    for i in instructions:
        if i.keyword != "FROM":
            continue
        image, *alias = i.args.split()
        image = re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)], image)
        if image in stages:
            continue  # FROM an earlier stage
        repo, _, tag = image.partition(":")
        assert tag and PINNED_TAG.match(tag), f"{name}: base image {image} is not pinned to a release"
        if alias:
            stages.append(alias[-1])


def test_images_run_as_a_numeric_non_root_user(dockerfile):
    name, instructions = dockerfile
    users = [i.args for i in final_stage(instructions) if i.keyword == "USER"]
    assert users, f"{name}: no USER in the final stage"
    uid = users[-1].split(":")[0]
    # Numeric, so that Kubernetes' runAsNonRoot can verify it without reading /etc/passwd.
    assert uid.isdigit() and int(uid) != 0, f"{name}: USER {users[-1]}"


def test_copied_sources_exist_and_pass_the_context_filter(dockerfile):
    name, instructions = dockerfile
    ignore = (DOCKER / f"{name}.dockerignore").read_text().splitlines()
    allowed = [line[1:].rstrip("/") for line in ignore if line.startswith("!")]
    for i in instructions:
        if i.keyword != "COPY" or i.args.startswith("--from"):
            continue
        *sources, _dest = i.args.split()
        for src in sources:
            src = src.rstrip("/").removeprefix("./")
            assert (ROOT / src).exists(), f"{name}: COPY {src} does not exist"
            assert any(src == a or src.startswith(a + "/") for a in allowed), (
                f"{name}: COPY {src} is excluded by {name}.dockerignore")


@pytest.mark.parametrize("name", SERVING)
def test_serving_images_install_only_the_serving_extra(name):
    instructions = parse_dockerfile(DOCKER / name)
    installs = [i.args for i in instructions if i.keyword == "RUN" and "pip install" in i.args]
    assert installs, f"{name}: no pip install"
    extras = set()
    for line in installs:
        assert "torch" not in line.replace("pip show torch", ""), f"{name} installs torch: {line}"
        extras |= {e for group in re.findall(r"\.\[([\w,]+)\]", line) for e in group.split(",")}
    assert extras and extras <= {"serve", "gpu"}, f"{name} installs extras {extras}"
    # ... and those extras do not pull torch either.
    optional = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    for extra in extras:
        assert not [d for d in optional[extra] if d.lower().startswith("torch")], extra
    # The build itself refuses an environment that has torch in it.
    assert any("! /opt/venv/bin/pip show torch" in line for line in installs), name


def test_trainer_image_installs_torch_and_the_data_set():
    instructions = parse_dockerfile(DOCKER / "trainer.Dockerfile")
    installs = " ".join(i.args for i in instructions if i.keyword == "RUN" and "pip install" in i.args)
    assert "-c constraints.txt" in installs  # torch pinned by the project's constraints
    assert re.search(r"\.\[train,datasets,strokes\]", installs)
    entry = exec_form(next(i.args for i in final_stage(instructions) if i.keyword == "ENTRYPOINT"))
    copied = {i.args.split()[-1]: i.args.split()[0] for i in instructions if i.keyword == "COPY"}
    assert copied[entry[0] if entry[0].startswith("/") else f"/usr/local/bin/{entry[0]}"] == (
        "deploy/docker/trainer-entrypoint.sh")
    assert os.access(DOCKER / "trainer-entrypoint.sh", os.X_OK)


def test_training_service_image_runs_the_service_with_the_trainer_and_a_health_check():
    from services.training.config import load_training_config

    instructions = parse_dockerfile(DOCKER / "training.Dockerfile")
    installs = " ".join(i.args for i in instructions if i.keyword == "RUN" and "pip install" in i.args)
    assert "-c constraints.txt" in installs
    extras = {e for group in re.findall(r"\.\[([\w,]+)\]", installs) for e in group.split(",")}
    assert {"train", "serve", "datasets"} <= extras  # jobs train and export in this image
    final = final_stage(instructions)
    assert exec_form(next(i.args for i in final if i.keyword == "ENTRYPOINT")) == ["latentforge"]
    assert exec_form(next(i.args for i in final if i.keyword == "CMD")) == ["serve-training"]
    env = env_of(final)
    config = load_training_config(environ={k: v for k, v in env.items() if k.startswith("LATENTFORGE_")})
    exposed = {int(p.split("/")[0]) for i in final if i.keyword == "EXPOSE" for p in i.args.split()}
    # gRPC, HTTP/JSON (on by default in the image) and /metrics.
    assert config.http_port == HTTP_PORT
    assert exposed == {config.port, config.http_port, config.metrics_port}
    assert config.host == "0.0.0.0" and config.metrics_host == "0.0.0.0"
    assert (config.http_host or config.host) == "0.0.0.0"
    volumes = set(exec_form(next(i.args for i in final if i.keyword == "VOLUME")))
    assert volumes == {str(config.data_dir), str(config.models)}
    health = [i.args for i in final if i.keyword == "HEALTHCHECK"]
    assert len(health) == 1
    script = next(part for part in exec_form(health[0].split(" CMD ", 1)[1]) if part.endswith("healthcheck.py"))
    assert ["deploy/docker/healthcheck.py", script] in [i.args.split() for i in final if i.keyword == "COPY"]
    assert env["HOME"].startswith("/tmp")  # writable on a read-only root with /tmp mounted


@pytest.mark.parametrize("name", SERVING)
def test_serving_images_have_a_grpc_health_check_and_expose_the_configured_ports(name):
    instructions = final_stage(parse_dockerfile(DOCKER / name))
    health = [i.args for i in instructions if i.keyword == "HEALTHCHECK"]
    assert len(health) == 1, name
    cmd = exec_form(health[0].split(" CMD ", 1)[1])
    script = next(part for part in cmd if part.endswith("healthcheck.py"))
    copies = [i.args.split() for i in instructions if i.keyword == "COPY" and not i.args.startswith("--from")]
    assert ["deploy/docker/healthcheck.py", script] in copies, f"{name}: {script} is not copied in"

    env = env_of(instructions)
    config = load_config(environ={k: v for k, v in env.items() if k.startswith("LATENTFORGE_")})
    exposed = {int(p.split("/")[0]) for i in instructions if i.keyword == "EXPOSE" for p in i.args.split()}
    # gRPC, HTTP/JSON (docs/http.md; on by default in the image) and /metrics.
    assert config.http_port == HTTP_PORT, name
    assert exposed == {config.port, config.http_port, config.metrics_port}, name
    assert config.host == "0.0.0.0" and config.metrics_host == "0.0.0.0", name
    assert (config.http_host or config.host) == "0.0.0.0", name  # the HTTP host defaults to the gRPC one
    assert str(config.models) in {exec_form(i.args)[0] for i in instructions if i.keyword == "VOLUME"}
    assert exec_form(next(i.args for i in instructions if i.keyword == "ENTRYPOINT")) == ["latentforge"]
    assert exec_form(next(i.args for i in instructions if i.keyword == "CMD")) == ["serve"]


@pytest.mark.parametrize("name", SERVING)
def test_serving_images_keep_every_log_line_json_without_a_writable_home(name, model_repo: Path, tmp_path: Path):
    # The image's user has HOME=/nonexistent, which it cannot create. ONNX Runtime used to print
    # a coloured warning there (it could not store a telemetry id): every line must stay JSON.
    import signal

    from tests.helpers.processes import ServeProcess, wait_until

    final = final_stage(parse_dockerfile(DOCKER / name))
    env = {k: v for k, v in env_of(final).items() if not k.startswith("LATENTFORGE_") and k != "PATH"}
    home = env.get("HOME") or next(h for i in final if i.keyword == "RUN" for h in [useradd_home(i.args)[0]] if h)
    if not Path(home).is_dir():
        # Running as root here, /nonexistent could be created: a home below a file cannot.
        blocker = tmp_path / "not-a-folder"
        blocker.write_text("")
        home = str(blocker / home.lstrip("/"))
    server = ServeProcess(model_repo, env={**env, "HOME": home})
    try:
        wait_until(lambda: len(server.events("model_loaded")) == 2, 60, "both models to load")
        server.proc.send_signal(signal.SIGTERM)
        assert server.wait(30) == 0
    finally:
        server.kill()
    assert not server.not_json, f"{name}: log lines that are not JSON: {server.not_json[:3]}"
    assert server.events("server_stopped")


def test_gpu_image_uses_cuda_and_onnxruntime_gpu():
    instructions = parse_dockerfile(DOCKER / "serve-gpu.Dockerfile")
    assert global_args(instructions)["CUDA_IMAGE"].startswith("nvidia/cuda:")
    assert "-cudnn-runtime-" in global_args(instructions)["CUDA_IMAGE"]
    run = " ".join(i.args for i in instructions if i.keyword == "RUN")
    assert "onnxruntime-gpu==" in run and ".[gpu]" in run
    env = env_of(final_stage(instructions))
    assert load_config(environ={"LATENTFORGE_PROVIDERS": env["LATENTFORGE_PROVIDERS"]}).providers[0] == (
        "CUDAExecutionProvider")


# --- the health-check script against real servers ---

def _probe(target: str | None, *args: str, **env: str) -> subprocess.CompletedProcess:
    """healthcheck.py as the image runs it: ``env`` holds the container's LATENTFORGE_* settings;
    without ``target`` it dials localhost:$LATENTFORGE_PORT."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("LATENTFORGE_")}
    where = ["--target", target] if target else []
    return subprocess.run([sys.executable, str(DOCKER / "healthcheck.py"), *where, "--timeout", "5", *args],
                          cwd=ROOT, capture_output=True, text=True, timeout=30, env={**clean, **env})


def test_healthcheck_passes_on_a_serving_server(memory_server):
    result = _probe(memory_server.target)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SERVING" in result.stdout


def test_healthcheck_fails_while_no_model_is_loaded(tmp_path: Path):
    from tests.helpers.servers import start_server

    server = start_server(tmp_path)  # an empty model repository: NOT_SERVING
    try:
        result = _probe(server.target)
    finally:
        server.stop()
    assert result.returncode == 1 and "NOT_SERVING" in result.stdout, result.stdout + result.stderr


def test_healthcheck_fails_when_nothing_listens():
    from tests.helpers.processes import free_port

    result = _probe(f"127.0.0.1:{free_port()}")
    assert result.returncode == 1 and "UNAVAILABLE" in result.stdout, result.stdout + result.stderr


def test_healthcheck_asks_for_liveness_apart_from_readiness(tmp_path: Path):
    from tests.helpers.servers import start_server

    server = start_server(tmp_path)  # alive, but no model loaded: not ready
    try:
        ready = _probe(server.target)
        alive = _probe(server.target, "--service", "liveness")
    finally:
        server.stop()
    assert ready.returncode == 1 and "NOT_SERVING" in ready.stdout, ready.stdout + ready.stderr
    if "NOT_FOUND" in alive.stdout:
        pytest.skip("this server has no 'liveness' health service yet")
    assert alive.returncode == 0 and "liveness: SERVING" in alive.stdout, alive.stdout + alive.stderr


# A certificate for the name clients use inside the cluster, not for localhost, which the probe dials.
CLUSTER_NAME = "latentforge.latentforge.svc"


@pytest.fixture(scope="module")
def cluster_pki(tmp_path_factory) -> dict[str, Path]:
    from tests.helpers.pki import make_pki

    return make_pki(tmp_path_factory.mktemp("pki"), server_names=(CLUSTER_NAME,))


def _tls_settings(server, pki: dict[str, Path], mutual: bool = False) -> dict[str, str]:
    """The LATENTFORGE_* variables such a server runs with in its container."""
    env = {"LATENTFORGE_PORT": server.target.rsplit(":", 1)[1], "LATENTFORGE_TLS_CERT": str(pki["server"]),
           "LATENTFORGE_TLS_KEY": str(pki["server_key"])}
    if mutual:
        env["LATENTFORGE_TLS_CLIENT_CA"] = str(pki["ca"])
    return env


def test_healthcheck_checks_a_tls_server_with_the_servers_own_settings(model_repo: Path, cluster_pki):
    from tests.helpers.servers import start_server

    server = start_server(model_repo, tls_cert=cluster_pki["server"], tls_key=cluster_pki["server_key"])
    try:
        settings = _tls_settings(server, cluster_pki)
        tls = _probe(None, **settings)
        # Trusting the CA instead of the server's certificate, and naming the server explicitly.
        by_ca = _probe(None, **settings, LATENTFORGE_HEALTHCHECK_CA=str(cluster_pki["ca"]),
                       LATENTFORGE_HEALTHCHECK_SERVER_NAME=CLUSTER_NAME)
        wrong_name = _probe(None, **settings, LATENTFORGE_HEALTHCHECK_SERVER_NAME="elsewhere.example")
        plaintext = _probe(None, LATENTFORGE_PORT=settings["LATENTFORGE_PORT"])
    finally:
        server.stop()
    assert tls.returncode == 0 and "SERVING" in tls.stdout, tls.stdout + tls.stderr
    assert by_ca.returncode == 0, by_ca.stdout + by_ca.stderr
    assert wrong_name.returncode == 1 and "UNAVAILABLE" in wrong_name.stdout, wrong_name.stdout
    assert plaintext.returncode == 1 and "UNAVAILABLE" in plaintext.stdout, plaintext.stdout


def test_healthcheck_checks_a_mutual_tls_server(model_repo: Path, cluster_pki):
    from tests.helpers.servers import start_server

    server = start_server(model_repo, tls_cert=cluster_pki["server"], tls_key=cluster_pki["server_key"],
                          tls_client_ca=cluster_pki["ca"])
    try:
        settings = _tls_settings(server, cluster_pki, mutual=True)
        own_pair = _probe(None, **settings)  # the server's certificate presented as the client's
        client_pair = _probe(None, **settings, LATENTFORGE_HEALTHCHECK_CERT=str(cluster_pki["client"]),
                             LATENTFORGE_HEALTHCHECK_KEY=str(cluster_pki["client_key"]))
        stranger = _probe(None, **settings, LATENTFORGE_HEALTHCHECK_CERT=str(cluster_pki["rogue"]),
                          LATENTFORGE_HEALTHCHECK_KEY=str(cluster_pki["rogue_key"]))
        no_key = _probe(None, **settings, LATENTFORGE_HEALTHCHECK_CERT=str(cluster_pki["client"]))
    finally:
        server.stop()
    assert own_pair.returncode == 0 and "SERVING" in own_pair.stdout, own_pair.stdout + own_pair.stderr
    assert client_pair.returncode == 0, client_pair.stdout + client_pair.stderr
    assert stranger.returncode == 1 and "UNAVAILABLE" in stranger.stdout, stranger.stdout
    assert no_key.returncode == 1 and "LATENTFORGE_HEALTHCHECK_KEY" in no_key.stdout, no_key.stdout


# --- the trainer entrypoint ---

def _entrypoint(args: list[str], **env: str) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items()
             if k not in {"NPROC_PER_NODE", "NNODES", "NODE_RANK", "JOB_COMPLETION_INDEX", "MASTER_ADDR",
                          "MASTER_PORT", "EXPORT_NAME", "EXPORT_REPO"}}
    return subprocess.run(["bash", str(DOCKER / "trainer-entrypoint.sh"), *args],
                          env={**clean, "DRY_RUN": "1", **env}, capture_output=True, text=True, timeout=30)


def test_trainer_entrypoint_runs_one_process_without_torchrun():
    result = _entrypoint(["--model", "vae", "--out", "/runs/v"])
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["latentforge train --resume auto --model vae --out /runs/v"]


def test_trainer_entrypoint_in_an_indexed_job():
    job = dict(NNODES="2", NPROC_PER_NODE="2", MASTER_ADDR="latentforge-train-0.latentforge-train",
               EXPORT_NAME="mnist-dcgan")
    node0 = _entrypoint(["--steps", "10", "--out=/runs/g"], JOB_COMPLETION_INDEX="0", **job)
    node1 = _entrypoint(["--steps", "10", "--out=/runs/g"], JOB_COMPLETION_INDEX="1", **job)
    assert node0.returncode == 0 and node1.returncode == 0, node0.stderr + node1.stderr
    torchrun = ("torchrun --nnodes 2 --nproc-per-node 2 --node-rank {} --master-addr "
                "latentforge-train-0.latentforge-train --master-port 29500 "
                "-m latentforge train --resume auto --steps 10 --out=/runs/g")
    # Node 0 trains and exports; the others only train.
    assert node0.stdout.splitlines() == [torchrun.format(0),
                                         "latentforge export /runs/g --repo /models --name mnist-dcgan"]
    assert node1.stdout.splitlines() == [torchrun.format(1)]


def test_trainer_entrypoint_needs_the_run_folder():
    result = _entrypoint(["--steps", "10"])
    assert result.returncode == 2 and "--out" in result.stderr


def test_trainer_entrypoint_uses_real_torchrun_flags():
    pytest.importorskip("torch")
    help_text = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--help"],
                               capture_output=True, text=True, timeout=60).stdout
    script = (DOCKER / "trainer-entrypoint.sh").read_text()
    call = script[script.index("train=(torchrun"):script.index("-m latentforge train")]
    flags = set(re.findall(r"--[a-z-]+", call))
    assert flags == {"--nnodes", "--nproc-per-node", "--node-rank", "--master-addr", "--master-port"}
    for flag in flags:
        assert flag in help_text, flag


# --- the compose stack ---

@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((DOCKER / "compose.yaml").read_text())


def _host_path(volume: str) -> Path:
    """The host side of a compose bind mount, with ${VAR:-default} taken at its default."""
    volume = re.sub(r"\$\{\w+:-([^}]*)\}", r"\1", volume)
    return (DOCKER / volume.split(":")[0]).resolve()


def test_compose_images_are_pinned_and_the_service_is_built_here(compose):
    services = compose["services"]
    assert set(services) == {"latentforge", "latentforge-training", "redis", "prometheus", "grafana"}
    for name, service in services.items():
        repo, _, tag = service["image"].rpartition(":")
        assert PINNED_TAG.match(tag), f"{name}: {service['image']}"
    build = services["latentforge"]["build"]
    assert (DOCKER / build["context"] / build["dockerfile"]).resolve() == DOCKER / "serve.Dockerfile"
    build = services["latentforge-training"]["build"]
    assert (DOCKER / build["context"] / build["dockerfile"]).resolve() == DOCKER / "training.Dockerfile"


def test_compose_mounts_exist_and_ports_stay_on_localhost(compose):
    services = compose["services"]
    for name, service in services.items():
        for volume in service.get("volumes", []):
            if volume.startswith((".", "$")):
                if "LATENTFORGE_MODELS" in volume:
                    assert _host_path(volume) == ROOT / "models"  # the repository's models/ by default
                else:
                    assert _host_path(volume).exists(), f"{name}: {volume}"
        for port in service.get("ports", []):
            assert port.startswith("127.0.0.1:"), f"{name} publishes {port} beyond localhost"
    published = [p.split(":")[1] for service in services.values() for p in service.get("ports", [])]
    assert len(published) == len(set(published)), f"two services publish the same host port: {published}"
    models = [v for v in services["latentforge"]["volumes"] if v.endswith(":/models:ro")]
    assert models, "the model repository is not mounted read-only at /models"
    # The training service publishes into the same repository, so it mounts it writable.
    training = {v.rsplit(":", 1)[1]: v for v in services["latentforge-training"]["volumes"]}
    assert _host_path(training["/models"]) == _host_path(models[0])  # no ":ro"
    assert training["/data"].split(":")[0] in compose["volumes"]  # the job store outlives the container


def test_compose_wiring_matches_the_service_and_monitoring_files(compose):
    services = compose["services"]
    env = services["latentforge"]["environment"]
    image_env = env_of(final_stage(parse_dockerfile(DOCKER / "serve.Dockerfile")))
    config = load_config(environ={**{k: v for k, v in image_env.items() if k.startswith("LATENTFORGE_")}, **env})
    assert config.redis_url == "redis://redis:6379/0"
    container_ports = {p.split(":")[-1] for p in services["latentforge"]["ports"]}
    assert {f"{config.port}", f"{config.http_port}", f"{config.metrics_port}"} == container_ports
    redis_args = services["redis"]["command"]
    assert "--maxmemory-policy" in redis_args and "--maxmemory" in redis_args

    # Prometheus scrapes the service by its compose name and metrics port, and loads the rules.
    prom_mount = next(v for v in services["prometheus"]["volumes"] if v.startswith("../prometheus"))
    assert prom_mount.split(":")[1] == "/etc/prometheus"
    prom = yaml.safe_load((ROOT / "deploy/prometheus/prometheus.yml").read_text())
    job = next(j for j in prom["scrape_configs"] if j["job_name"] == "latentforge")
    assert job["static_configs"][0]["targets"] == [f"latentforge:{config.metrics_port}"]
    assert prom["rule_files"] == ["rules.yml"]
    # ... and the training service likewise, on the port its image's settings say.
    from services.training.config import load_training_config

    training_env = env_of(final_stage(parse_dockerfile(DOCKER / "training.Dockerfile")))
    training = load_training_config(environ={k: v for k, v in training_env.items() if k.startswith("LATENTFORGE_")})
    job = next(j for j in prom["scrape_configs"] if j["job_name"] == "latentforge-training")
    assert job["static_configs"][0]["targets"] == [f"latentforge-training:{training.metrics_port}"]
    ports = {p.rsplit(":", 1)[1]: p for p in services["latentforge-training"]["ports"]}
    assert {str(training.port), str(training.http_port), str(training.metrics_port)} == set(ports)

    # Grafana: the data source is the prometheus service, the dashboards folder is mounted
    # where the provider looks, and the home dashboard is one of them.
    grafana = services["grafana"]
    datasource = yaml.safe_load((ROOT / "deploy/grafana/provisioning/datasources/prometheus.yaml").read_text())
    assert datasource["datasources"][0]["url"] == "http://prometheus:9090"
    provider = yaml.safe_load((ROOT / "deploy/grafana/provisioning/dashboards/latentforge.yaml").read_text())
    path = provider["providers"][0]["options"]["path"]
    mounts = {v.split(":")[1]: _host_path(v) for v in grafana["volumes"]}
    assert mounts[path] == ROOT / "deploy/grafana/dashboards"
    assert mounts["/etc/grafana/provisioning"] == ROOT / "deploy/grafana/provisioning"
    home = grafana["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert (ROOT / "deploy/grafana/dashboards" / Path(home).relative_to(path)).is_file()


def test_compose_command_in_the_deploy_readme():
    readme = (ROOT / "deploy" / "README.md").read_text()
    assert "docker compose -f deploy/docker/compose.yaml up --build" in readme
