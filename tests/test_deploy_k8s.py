"""Kubernetes manifests (deploy/k8s/): rendered by `kubectl kustomize`, validated offline.

Every rendered object of every overlay and of the training Job is validated in strict mode
against the Kubernetes OpenAPI schemas that kubernetes-validate ships, for the oldest and the
newest Kubernetes release we support. The two Prometheus Operator objects (ServiceMonitor,
PrometheusRule) are custom resources that those schemas do not describe: they are checked
explicitly here instead (the ServiceMonitor against the Service it scrapes, the PrometheusRule
against deploy/prometheus/rules.yml and promtool). Then the wiring: probes on ports the
container exposes, ports that agree with the server's settings, selectors that select, the HPA
on the Deployment that exists, the drain time, the GPU overlay, the Redis cache and the Job.
"""

from __future__ import annotations

import inspect
import shutil
import subprocess
from pathlib import Path
from typing import Any, Iterator
from urllib.parse import urlparse

import pytest
import yaml

from latentforge import __version__
from services.generation.config import load_config
from services.generation.server import GenerationServer

ROOT = Path(__file__).resolve().parent.parent
K8S = ROOT / "deploy" / "k8s"
TARGETS = ("overlays/cpu", "overlays/gpu", "training")
# Oldest and newest Kubernetes minor releases the manifests are validated against.
KUBERNETES_VERSIONS = ("1.29", "1.37")
# Custom resources: no schema in kubernetes-validate; each has its own test below.
CUSTOM_KINDS = {("monitoring.coreos.com/v1", "ServiceMonitor"), ("monitoring.coreos.com/v1", "PrometheusRule")}
SERVER_USER = 10001  # USER of deploy/docker/*.Dockerfile
# The servers' HTTP/JSON port (docs/http.md), named "http" on containers and Services.
HTTP_PORT = 8080
# The option that switches the servers' probes from grpc to GET /healthz and /readyz.
HTTP_PROBES = K8S / "components" / "http-probes"

pytestmark = [pytest.mark.deploy,
              pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed")]

Objects = list[dict[str, Any]]


def render(target: str) -> Objects:
    """`kubectl kustomize deploy/k8s/<target>`, as a list of objects."""
    out = subprocess.run(["kubectl", "kustomize", str(K8S / target)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, f"kustomize {target}: {out.stderr}"
    return [doc for doc in yaml.safe_load_all(out.stdout) if doc]


@pytest.fixture(scope="module")
def rendered() -> dict[str, Objects]:
    return {target: render(target) for target in TARGETS}


def one(objects: Objects, kind: str, name: str | None = None) -> dict[str, Any]:
    found = [o for o in objects if o["kind"] == kind and (name is None or o["metadata"]["name"] == name)]
    assert len(found) == 1, f"expected one {kind} {name or ''}, found {len(found)}"
    return found[0]


def pod_templates(objects: Objects) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    """(workload, pod template) of every Deployment, StatefulSet and Job."""
    for o in objects:
        if o["kind"] in ("Deployment", "StatefulSet", "Job"):
            yield o, o["spec"]["template"]


def selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def server_config(objects: Objects):
    """The ServeConfig the server's ConfigMap produces (exactly as `latentforge serve` reads it)."""
    deployment = one(objects, "Deployment", "latentforge")
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    name = container["envFrom"][0]["configMapRef"]["name"]
    return load_config(environ=one(objects, "ConfigMap", name)["data"])


# --- schema validation ---

@pytest.mark.parametrize("target", TARGETS)
def test_every_object_validates_strictly_against_the_kubernetes_schema(rendered, target):
    from kubernetes_validate import utils

    errors, checked = [], 0
    for obj in rendered[target]:
        if (obj["apiVersion"], obj["kind"]) in CUSTOM_KINDS:
            continue
        what = f"{obj['kind']}/{obj['metadata']['name']}"
        for version in KUBERNETES_VERSIONS:
            try:
                utils.validate(obj, version, strict=True)
            except utils.ValidationError as exc:
                errors.append(f"{what} is invalid for Kubernetes {version} at {getattr(exc, 'json_path', '?')}: "
                              f"{getattr(exc, 'message', str(exc)[:500])}")
            except utils.SchemaNotFoundError:
                errors.append(f"no schema for {obj['apiVersion']} {obj['kind']}: if it is a custom resource, "
                              "add it to CUSTOM_KINDS and give it a test of its own")
        checked += 1
    assert not errors, f"{target}:\n" + "\n".join(errors)
    assert checked >= 2


def test_only_the_prometheus_operator_objects_are_custom_resources(rendered):
    for target in ("overlays/cpu", "overlays/gpu"):
        custom = {(o["apiVersion"], o["kind"]) for o in rendered[target] if "." in o["apiVersion"].split("/")[0]
                  and not o["apiVersion"].split("/")[0].endswith(".k8s.io")}
        assert custom == CUSTOM_KINDS, target


def test_service_monitor_scrapes_the_metrics_port_of_the_server_service(rendered):
    objects = rendered["overlays/cpu"]
    monitor = one(objects, "ServiceMonitor", "latentforge")
    assert set(monitor["spec"]) <= {"selector", "endpoints", "namespaceSelector", "jobLabel"}
    matched = [s for s in objects if s["kind"] == "Service"
               and selects(monitor["spec"]["selector"]["matchLabels"], s["metadata"].get("labels", {}))]
    assert [s["metadata"]["name"] for s in matched] == ["latentforge"]
    ports = {p["name"]: p for p in matched[0]["spec"]["ports"]}
    for endpoint in monitor["spec"]["endpoints"]:
        assert set(endpoint) <= {"port", "path", "interval", "scrapeTimeout", "scheme"}
        assert endpoint["port"] in ports and endpoint.get("path", "/metrics") == "/metrics"
        assert ports[endpoint["port"]]["port"] == server_config(objects).metrics_port
    # The job label is the Service name: the one the alert rules and the dashboard expect.
    assert matched[0]["metadata"]["name"] == "latentforge" and "jobLabel" not in monitor["spec"]


def test_prometheus_rule_carries_the_rules_file(rendered, tmp_path: Path):
    rule = one(rendered["overlays/cpu"], "PrometheusRule", "latentforge")
    rules_file = yaml.safe_load((ROOT / "deploy/prometheus/rules.yml").read_text())
    assert rule["spec"] == rules_file, "deploy/k8s/base/prometheusrule.yaml differs from deploy/prometheus/rules.yml"
    if shutil.which("promtool") is None:
        pytest.skip("promtool is not installed (Debian package prometheus)")
    path = tmp_path / "rendered-rules.yml"
    path.write_text(yaml.safe_dump(rule["spec"]))
    out = subprocess.run(["promtool", "check", "rules", str(path)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr


# --- ports, probes and selectors ---

@pytest.mark.parametrize("target", TARGETS)
def test_probes_point_at_ports_the_container_exposes(rendered, target):
    probes = 0
    for workload, template in pod_templates(rendered[target]):
        for container in template["spec"]["containers"]:
            ports = {p["containerPort"] for p in container.get("ports", [])}
            names = {p["name"]: p["containerPort"] for p in container.get("ports", []) if "name" in p}
            for kind in ("startupProbe", "readinessProbe", "livenessProbe"):
                probe = container.get(kind)
                if not probe:
                    continue
                probes += 1
                for handler in ("grpc", "tcpSocket", "httpGet"):
                    if handler in probe:
                        port = probe[handler]["port"]
                        port = names.get(port, port)
                        assert port in ports, f"{workload['metadata']['name']} {kind} probes port {port}"
    assert probes or target == "training"


# grpc.health.v1 service names: SERVING while the process runs / while a model is loaded.
LIVENESS, READINESS = "liveness", ""


def test_server_probes_ask_liveness_and_readiness_apart(rendered):
    # Startup and liveness ask whether the process is alive, so a server waiting for its first
    # model (or whose versions were all deleted) is not restarted; readiness asks whether a
    # model is loaded, so such a server gets no traffic.
    for target in ("overlays/cpu", "overlays/gpu"):
        objects = rendered[target]
        container = one(objects, "Deployment", "latentforge")["spec"]["template"]["spec"]["containers"][0]
        port = server_config(objects).port
        assert container["startupProbe"]["grpc"] == {"port": port, "service": LIVENESS}, target
        assert container["livenessProbe"]["grpc"] == {"port": port, "service": LIVENESS}, target
        assert container["readinessProbe"]["grpc"].get("service", READINESS) == READINESS, target
        assert container["readinessProbe"]["grpc"]["port"] == port, target
        # A liveness failure restarts the pod: it must not fire sooner than readiness turns it away.
        live, ready = container["livenessProbe"], container["readinessProbe"]
        assert live["periodSeconds"] * live["failureThreshold"] >= ready["periodSeconds"] * ready["failureThreshold"]


def test_probe_services_are_what_the_server_answers_before_a_model_loads(rendered, tmp_path: Path):
    import grpc

    from tests.helpers.processes import NOT_SERVING, SERVING, health_status
    from tests.helpers.servers import start_server

    container = one(rendered["overlays/cpu"], "Deployment", "latentforge")["spec"]["template"]["spec"]["containers"][0]
    live = container["livenessProbe"]["grpc"].get("service", "")
    ready = container["readinessProbe"]["grpc"].get("service", "")
    server = start_server(tmp_path)  # an empty model repository: alive, not ready
    try:
        with grpc.insecure_channel(server.target) as channel:
            assert health_status(channel, ready) == NOT_SERVING
            try:
                alive = health_status(channel, live)
            except grpc.RpcError as exc:
                if exc.code() != grpc.StatusCode.NOT_FOUND:
                    raise
                pytest.skip(f"this server has no {live!r} health service yet")
            assert alive == SERVING
    finally:
        server.stop()


# The HTTP probe option (deploy/k8s/components/http-probes): per probe, the path asked and the
# grpc.health.v1 service name of the default probe that asks the same question.
HTTP_PROBE_PATHS = {"startupProbe": ("/healthz", LIVENESS), "livenessProbe": ("/healthz", LIVENESS),
                    "readinessProbe": ("/readyz", READINESS)}
PROBES = tuple(HTTP_PROBE_PATHS)


def render_with_component(target: str, component: Path, tmp_path: Path) -> Objects:
    """deploy/k8s/<target> with ``component`` added under ``components:``, as an overlay would."""
    import os

    (tmp_path / "kustomization.yaml").write_text(yaml.safe_dump({  # kustomize wants relative paths
        "apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization",
        "resources": [os.path.relpath(K8S / target, tmp_path)],
        "components": [os.path.relpath(component, tmp_path)]}))
    return render(str(tmp_path))


@pytest.mark.parametrize("target", ("overlays/cpu", "overlays/gpu"))
def test_http_probe_option_asks_healthz_and_readyz_on_the_http_port(rendered, target, tmp_path: Path):
    from kubernetes_validate import utils

    objects = render_with_component(target, HTTP_PROBES, tmp_path)
    default = rendered[target]
    for name, settings in (("latentforge", server_config), ("latentforge-training", training_config)):
        deployment = one(objects, "Deployment", name)
        for version in KUBERNETES_VERSIONS:
            utils.validate(deployment, version, strict=True)
        container = deployment["spec"]["template"]["spec"]["containers"][0]
        before = one(default, "Deployment", name)["spec"]["template"]["spec"]["containers"][0]
        ports = {p["name"]: p["containerPort"] for p in container["ports"]}
        assert ports["http"] == settings(objects).http_port == HTTP_PORT, name
        for kind, (path, service) in HTTP_PROBE_PATHS.items():
            probe = container[kind]
            assert probe["httpGet"] == {"path": path, "port": "http"}, (name, kind, probe)
            assert not {"grpc", "exec", "tcpSocket"} & set(probe), (name, kind, probe)  # one handler
            # The same question as the default grpc probe, with its period, timeout and thresholds.
            assert before[kind]["grpc"].get("service", READINESS) == service, (name, kind)
            assert {k: v for k, v in probe.items() if k != "httpGet"} == (
                {k: v for k, v in before[kind].items() if k != "grpc"}), (name, kind)
    # Nothing but the servers' probes changes.
    def without_probes(objs: Objects) -> Objects:
        out = yaml.safe_load(yaml.safe_dump(objs))
        for o in out:
            if o["kind"] == "Deployment":
                for container in o["spec"]["template"]["spec"]["containers"]:
                    for kind in PROBES:
                        container.pop(kind, None)
        return out

    assert without_probes(objects) == without_probes(default)
    # The option is off by default (test_server_probes_ask_liveness_and_readiness_apart checks the
    # grpc probes), and the README says how to switch it on.
    assert "components/http-probes" in (ROOT / "deploy" / "README.md").read_text()


def test_container_ports_and_mounts_agree_with_the_server_settings(rendered):
    for target in ("overlays/cpu", "overlays/gpu"):
        objects = rendered[target]
        config = server_config(objects)
        pod = one(objects, "Deployment", "latentforge")["spec"]["template"]["spec"]
        container = pod["containers"][0]
        ports = {p["name"]: p["containerPort"] for p in container["ports"]}
        assert config.http_port == HTTP_PORT
        assert ports == {"grpc": config.port, "http": config.http_port, "metrics": config.metrics_port}
        assert config.host == "0.0.0.0" and config.metrics_host == "0.0.0.0"
        assert (config.http_host or config.host) == "0.0.0.0"  # the HTTP host defaults to the gRPC one
        # The Service carries gRPC and HTTP (and /metrics) to the same named container ports.
        service = {p["name"]: p for p in one(objects, "Service", "latentforge")["spec"]["ports"]}
        assert {name: (p["port"], p["targetPort"]) for name, p in service.items()} == {
            "grpc": (config.port, "grpc"), "http": (config.http_port, "http"),
            "metrics": (config.metrics_port, "metrics")}
        mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
        assert mounts[str(config.models)].get("readOnly") is True
        # The Redis URL names the Redis Service and its port.
        redis = urlparse(config.redis_url)
        service = one(objects, "Service", redis.hostname)
        assert redis.port in {p["port"] for p in service["spec"]["ports"]}
        assert selects(service["spec"]["selector"], one(objects, "StatefulSet")["spec"]["template"]["metadata"]["labels"])


@pytest.mark.parametrize("target", TARGETS)
def test_services_select_pods_and_target_their_ports(rendered, target):
    objects = rendered[target]
    for service in (o for o in objects if o["kind"] == "Service"):
        selector = service["spec"]["selector"]
        pods = []
        for workload, template in pod_templates(objects):
            labels = dict(template["metadata"].get("labels", {}))
            if workload["kind"] == "Job":  # set on the pods by the Job controller
                labels["batch.kubernetes.io/job-name"] = workload["metadata"]["name"]
            if selects(selector, labels):
                pods.append(template)
        assert pods, f"Service {service['metadata']['name']} selects no pods"
        exposed = {(p.get("name"), p["containerPort"]) for t in pods for c in t["spec"]["containers"]
                   for p in c.get("ports", [])}
        for port in service["spec"]["ports"]:
            target_port = port.get("targetPort", port["port"])
            assert any(target_port in pair for pair in exposed), (service["metadata"]["name"], target_port)


def test_hpa_targets_the_deployment_that_exists(rendered):
    for target in ("overlays/cpu", "overlays/gpu"):
        objects = rendered[target]
        hpa = one(objects, "HorizontalPodAutoscaler")
        ref = hpa["spec"]["scaleTargetRef"]
        deployment = one(objects, ref["kind"], ref["name"])
        assert ref["apiVersion"] == deployment["apiVersion"]
        assert "replicas" not in deployment["spec"], "the HPA owns the replica count"
        assert 1 <= hpa["spec"]["minReplicas"] <= hpa["spec"]["maxReplicas"]
        # CPU utilisation is measured against requests: every container must request CPU.
        for container in deployment["spec"]["template"]["spec"]["containers"]:
            assert container["resources"]["requests"]["cpu"]


def test_pdb_and_network_policies_select_their_pods(rendered):
    objects = rendered["overlays/cpu"]
    server = one(objects, "Deployment", "latentforge")["spec"]["template"]["metadata"]["labels"]
    cache = one(objects, "StatefulSet", "latentforge-redis")["spec"]["template"]["metadata"]["labels"]
    assert selects(one(objects, "PodDisruptionBudget")["spec"]["selector"]["matchLabels"], server)
    server_policy = one(objects, "NetworkPolicy", "latentforge-server")["spec"]
    cache_policy = one(objects, "NetworkPolicy", "latentforge-redis")["spec"]
    assert selects(server_policy["podSelector"]["matchLabels"], server)
    assert selects(cache_policy["podSelector"]["matchLabels"], cache)
    # Servers may reach Redis; Redis admits the servers.
    assert any(selects(to["podSelector"]["matchLabels"], cache)
               for rule in server_policy["egress"] for to in rule.get("to", []) if "namespaceSelector" not in to)
    assert any(selects(peer["podSelector"]["matchLabels"], server)
               for rule in cache_policy["ingress"] for peer in rule["from"])
    # gRPC is open to clients; named ports exist on the server container.
    ports = {p["name"] for p in one(objects, "Deployment", "latentforge")["spec"]["template"]["spec"]["containers"][0]["ports"]}
    named = {p["port"] for rule in server_policy["ingress"] for p in rule["ports"] if isinstance(p["port"], str)}
    assert named <= ports and "grpc" in named
    # HTTP is admitted by the very rule that admits gRPC: from the same sources.
    for policy in (server_policy, one(objects, "NetworkPolicy", "latentforge-training")["spec"]):
        rules = [rule for rule in policy["ingress"] if any(p["port"] == "grpc" for p in rule["ports"])]
        assert len(rules) == 1 and {"port": "http", "protocol": "TCP"} in rules[0]["ports"], rules


# --- pods ---

@pytest.mark.parametrize("target", TARGETS)
def test_pods_run_as_non_root_on_a_read_only_root_filesystem(rendered, target):
    for workload, template in pod_templates(rendered[target]):
        pod = template["spec"]
        name = workload["metadata"]["name"]
        assert pod["securityContext"]["runAsNonRoot"] is True, name
        assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault", name
        assert pod.get("automountServiceAccountToken") is False, name
        if workload["kind"] != "StatefulSet":  # Redis runs as its image's own user
            assert pod["securityContext"]["runAsUser"] == SERVER_USER, name
        for container in pod["containers"]:
            ctx = container["securityContext"]
            assert ctx["readOnlyRootFilesystem"] is True, name
            assert ctx["allowPrivilegeEscalation"] is False, name
            assert ctx["capabilities"]["drop"] == ["ALL"], name
            assert container["resources"]["limits"]["memory"], name
            # A read-only root needs somewhere to write temporary files.
            assert container["image"].startswith("redis:") or "/tmp" in {
                m["mountPath"] for m in container["volumeMounts"]}, name


def test_service_links_cannot_break_the_server_settings(rendered):
    # Kubernetes would put LATENTFORGE_PORT=tcp://<ip>:50051 into the pods for the Service named
    # latentforge: the very variable the server reads its port from.
    from services.generation.config import ConfigError

    with pytest.raises(ConfigError, match="port"):
        load_config(environ={"LATENTFORGE_PORT": "tcp://10.0.0.1:50051"})
    for target in ("overlays/cpu", "overlays/gpu"):
        pod = one(rendered[target], "Deployment", "latentforge")["spec"]["template"]["spec"]
        assert pod["enableServiceLinks"] is False, target


def test_termination_grace_covers_the_server_drain(rendered):
    # `latentforge serve` drains for drain_grace_s of the config it runs with (GenerationServer.stop
    # with no grace given), so the grace period is checked against what the ConfigMap produces.
    assert inspect.signature(GenerationServer.stop).parameters["grace_s"].default is None
    for target in ("overlays/cpu", "overlays/gpu"):
        drain_s = server_config(rendered[target]).drain_grace_s
        pod = one(rendered[target], "Deployment", "latentforge")["spec"]["template"]["spec"]
        pre_stop = pod["containers"][0]["lifecycle"]["preStop"]["exec"]["command"]
        assert pre_stop[0] == "sleep"
        sleep_s = float(pre_stop[1])
        grace = pod["terminationGracePeriodSeconds"]
        # preStop, then SIGTERM and the server's drain, then a few seconds to close the batcher,
        # cache and workers; not so long that a stuck pod holds a rollout up.
        assert sleep_s + drain_s + 3 <= grace <= sleep_s + drain_s + 15, (sleep_s, drain_s, grace)


def test_images_are_tagged_with_the_project_version(rendered):
    images = {c["image"] for target in TARGETS for _, t in pod_templates(rendered[target])
              for c in t["spec"]["containers"]}
    assert images == {f"latentforge-serve:{__version__}", f"latentforge-serve-gpu:{__version__}",
                      f"latentforge-trainer:{__version__}", f"latentforge-training:{__version__}", "redis:7.4.2-alpine"}


def test_gpu_overlay_asks_for_a_gpu_and_cuda_and_the_cpu_overlay_does_not(rendered):
    gpu, cpu = rendered["overlays/gpu"], rendered["overlays/cpu"]
    pod = one(gpu, "Deployment", "latentforge")["spec"]["template"]["spec"]
    limits = pod["containers"][0]["resources"]["limits"]
    assert int(limits["nvidia.com/gpu"]) == 1
    assert pod["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in pod["tolerations"]
    assert pod["containers"][0]["image"].startswith("latentforge-serve-gpu:")
    assert server_config(gpu).providers[0] == "CUDAExecutionProvider"

    cpu_pod = one(cpu, "Deployment", "latentforge")["spec"]["template"]["spec"]
    assert "nvidia.com/gpu" not in cpu_pod["containers"][0]["resources"]["limits"]
    assert "nodeSelector" not in cpu_pod and "tolerations" not in cpu_pod
    assert server_config(cpu).providers == ("CPUExecutionProvider",)


def test_redis_is_a_bounded_cache_without_persistence(rendered):
    redis = one(rendered["overlays/cpu"], "StatefulSet", "latentforge-redis")
    assert "volumeClaimTemplates" not in redis["spec"]
    assert all("persistentVolumeClaim" not in v for v in redis["spec"]["template"]["spec"]["volumes"])
    container = redis["spec"]["template"]["spec"]["containers"][0]
    args = container["args"]
    option = {args[i]: args[i + 1] for i in range(0, len(args) - 1) if args[i].startswith("--")}
    assert option["--save"] == "" and option["--appendonly"] == "no"
    assert option["--maxmemory-policy"] in {"allkeys-lru", "allkeys-lfu", "volatile-lru", "volatile-lfu"}
    maxmemory_mib = int(option["--maxmemory"].removesuffix("mb"))
    limit_mib = int(container["resources"]["limits"]["memory"].removesuffix("Mi"))
    assert maxmemory_mib < limit_mib
    assert redis["spec"]["serviceName"] in {s["metadata"]["name"] for s in rendered["overlays/cpu"]
                                            if s["kind"] == "Service" and s["spec"].get("clusterIP") == "None"}


# --- the training service ---

def training_config(objects: Objects):
    """The TrainingConfig the training service's ConfigMap produces (as `latentforge serve-training`
    reads it)."""
    from services.training.config import load_training_config

    container = one(objects, "Deployment", "latentforge-training")["spec"]["template"]["spec"]["containers"][0]
    name = container["envFrom"][0]["configMapRef"]["name"]
    return load_training_config(environ=one(objects, "ConfigMap", name)["data"])


@pytest.mark.parametrize("target", ("overlays/cpu", "overlays/gpu"))
def test_training_service_shares_the_model_repository_and_keeps_its_store(rendered, target):
    objects = rendered[target]
    config = training_config(objects)
    deployment = one(objects, "Deployment", "latentforge-training")
    # One process owns the SQLite store and the run folders: one replica, never two at once.
    assert deployment["spec"]["replicas"] == 1 and deployment["spec"]["strategy"]["type"] == "Recreate"
    assert not [h for h in objects if h["kind"] == "HorizontalPodAutoscaler"
                and h["spec"]["scaleTargetRef"]["name"] == "latentforge-training"]
    pod = deployment["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert container["args"] == ["serve-training"]
    assert config.http_port == HTTP_PORT
    assert {p["name"]: p["containerPort"] for p in container["ports"]} == {
        "grpc": config.port, "http": config.http_port, "metrics": config.metrics_port}
    assert config.host == "0.0.0.0" and config.metrics_host == "0.0.0.0"
    assert (config.http_host or config.host) == "0.0.0.0"
    assert container["startupProbe"]["grpc"] == {"port": config.port, "service": LIVENESS}
    assert container["readinessProbe"]["grpc"]["port"] == config.port
    # It publishes into the PVC the servers read (writable here), and keeps its store on its own.
    mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    models = volumes[mounts[str(config.models)]["name"]]["persistentVolumeClaim"]
    assert not mounts[str(config.models)].get("readOnly") and not models.get("readOnly")
    server_pod = one(objects, "Deployment", "latentforge")["spec"]["template"]["spec"]
    assert models["claimName"] in {v["persistentVolumeClaim"]["claimName"] for v in server_pod["volumes"]
                                   if "persistentVolumeClaim" in v}
    data = volumes[mounts[str(config.data_dir)]["name"]]["persistentVolumeClaim"]["claimName"]
    assert data != models["claimName"] and one(objects, "PersistentVolumeClaim", data)
    assert pod["securityContext"]["fsGroup"] == SERVER_USER
    assert pod["enableServiceLinks"] is False  # LATENTFORGE_PORT would come from the "latentforge" Service
    # Running jobs get their checkpoint time after the drain, before SIGKILL.
    assert pod["terminationGracePeriodSeconds"] >= config.drain_grace_s + config.stop_grace_s + 5
    service = one(objects, "Service", "latentforge-training")
    assert selects(service["spec"]["selector"], deployment["spec"]["template"]["metadata"]["labels"])
    assert {p["name"]: p["port"] for p in service["spec"]["ports"]} == {
        "grpc": config.port, "http": config.http_port, "metrics": config.metrics_port}
    monitor = one(objects, "ServiceMonitor", "latentforge-training")
    matched = [o["metadata"]["name"] for o in objects if o["kind"] == "Service"
               and selects(monitor["spec"]["selector"]["matchLabels"], o["metadata"].get("labels", {}))]
    assert matched == ["latentforge-training"] and monitor["spec"]["endpoints"][0]["port"] == "metrics"
    policy = one(objects, "NetworkPolicy", "latentforge-training")["spec"]
    assert selects(policy["podSelector"]["matchLabels"], deployment["spec"]["template"]["metadata"]["labels"])
    limits = container["resources"]["limits"]
    if target == "overlays/gpu":
        assert int(limits["nvidia.com/gpu"]) == 1
        assert pod["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
    else:
        assert "nvidia.com/gpu" not in limits and "nodeSelector" not in pod


# --- the training Job ---

def test_training_job_runs_torchrun_across_indexed_pods_and_exports_to_the_repository(rendered):
    objects = rendered["training"]
    job = one(objects, "Job", "latentforge-train")
    spec, pod = job["spec"], job["spec"]["template"]["spec"]
    env = {e["name"]: e for e in pod["containers"][0]["env"]}
    value = {k: e.get("value") for k, e in env.items()}
    assert spec["completionMode"] == "Indexed"
    assert spec["completions"] == spec["parallelism"] == int(value["NNODES"]) >= 2
    assert env["NODE_RANK"]["valueFrom"]["fieldRef"]["fieldPath"] == (
        "metadata.annotations['batch.kubernetes.io/job-completion-index']")
    # Node 0 is reachable as <job>-0.<subdomain> through a headless Service.
    assert value["MASTER_ADDR"] == f"{job['metadata']['name']}-0.{pod['subdomain']}"
    service = one(objects, "Service", pod["subdomain"])
    assert service["spec"]["clusterIP"] == "None" and service["spec"]["publishNotReadyAddresses"] is True
    assert int(value["MASTER_PORT"]) in {p["containerPort"] for p in pod["containers"][0]["ports"]}
    assert pod["restartPolicy"] == "Never"
    # It exports into the same PVC the servers read, where it is mounted writable.
    mounts = {m["mountPath"]: m["name"] for m in pod["containers"][0]["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    claim = volumes[mounts[value["EXPORT_REPO"]]]["persistentVolumeClaim"]
    assert not claim.get("readOnly")
    base = rendered["overlays/cpu"]
    pvc = one(base, "PersistentVolumeClaim", claim["claimName"])
    assert "ReadWriteMany" in pvc["spec"]["accessModes"]
    assert job["metadata"]["namespace"] == pvc["metadata"]["namespace"]
    server_pod = one(base, "Deployment", "latentforge")["spec"]["template"]["spec"]
    assert claim["claimName"] in {v["persistentVolumeClaim"]["claimName"] for v in server_pod["volumes"]
                                  if "persistentVolumeClaim" in v}
    # The run folder is given to `latentforge train` and is writable.
    args = pod["containers"][0]["args"]
    out = args[args.index("--out") + 1]
    assert any(out.startswith(path + "/") for path in mounts)


def test_training_job_runs_the_image_entrypoint_that_resumes_and_checkpoints_on_sigterm(rendered):
    from tests.helpers.dockerfile import exec_form, final_stage, parse_dockerfile

    pod = one(rendered["training"], "Job", "latentforge-train")["spec"]["template"]["spec"]
    container = pod["containers"][0]
    # No command override: the image's ENTRYPOINT (trainer-entrypoint.sh) runs, which passes
    # --resume auto (a retried pod continues a run folder that holds checkpoints) and lets the
    # trainer receive SIGTERM.
    assert "command" not in container
    assert "--resume" not in container["args"]
    image = final_stage(parse_dockerfile(ROOT / "deploy" / "docker" / "trainer.Dockerfile"))
    entry = exec_form(next(i.args for i in image if i.keyword == "ENTRYPOINT"))
    assert entry == ["latentforge-train"]
    script = (ROOT / "deploy" / "docker" / "trainer-entrypoint.sh").read_text()
    assert "latentforge train --resume auto" in script
    # Time for the step in flight and a checkpoint, beyond Kubernetes' default 30 s.
    assert pod["terminationGracePeriodSeconds"] >= 30


def _readme_tls_patch() -> dict[str, Any]:
    """The Deployment patch for TLS probes shown in deploy/README.md."""
    readme = (ROOT / "deploy" / "README.md").read_text()
    blocks = [yaml.safe_load(b) for b in readme.split("```yaml\n")[1:] for b in [b.split("```", 1)[0]]]
    patches = [b for b in blocks if isinstance(b, dict) and b.get("kind") == "Deployment"]
    assert len(patches) == 1, "deploy/README.md shows one Deployment patch for TLS probes"
    return patches[0]


def test_tls_probe_patch_in_the_readme_renders_valid_exec_probes(tmp_path: Path):
    import os

    from kubernetes_validate import utils

    from tests.helpers.dockerfile import final_stage, parse_dockerfile

    (tmp_path / "tls-probes.yaml").write_text(yaml.safe_dump(_readme_tls_patch()))
    base = os.path.relpath(K8S / "overlays" / "cpu", tmp_path)  # kustomize wants a relative path
    (tmp_path / "kustomization.yaml").write_text(yaml.safe_dump({
        "apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization",
        "resources": [base], "patches": [{"path": "tls-probes.yaml"}]}))
    out = subprocess.run(["kubectl", "kustomize", str(tmp_path)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    objects = [doc for doc in yaml.safe_load_all(out.stdout) if doc]
    deployment = one(objects, "Deployment", "latentforge")
    for version in KUBERNETES_VERSIONS:
        utils.validate(deployment, version, strict=True)
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    env = {e["name"]: e["value"] for e in container["env"]}
    mounts = {m["mountPath"] for m in container["volumeMounts"]}
    assert any(env["LATENTFORGE_TLS_CERT"].startswith(m + "/") for m in mounts)
    # The probe runs the script where the serving image copies it, asking liveness or readiness.
    image = final_stage(parse_dockerfile(ROOT / "deploy" / "docker" / "serve.Dockerfile"))
    copied = {i.args.split()[-1] for i in image if i.keyword == "COPY" and "healthcheck.py" in i.args}
    expected = {"startupProbe": ["--service", LIVENESS], "livenessProbe": ["--service", LIVENESS],
                "readinessProbe": []}
    for kind, service in expected.items():
        probe = container[kind]
        assert "grpc" not in probe, kind
        command = probe["exec"]["command"]
        assert command[0] == "python" and command[1] in copied, (kind, command)
        assert command[2:] == service, (kind, command)
