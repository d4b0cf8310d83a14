"""Dashboard, alert rules and Prometheus config (deploy/grafana/, deploy/prometheus/).

- promtool checks the rules and the config, and runs the rules' unit tests;
- every metric the dashboard, the rules and the rule tests name exists in a real scrape of a
  running server (after calls that exercise every series), with the labels they filter and
  group by; recording-rule names must be defined by the rules file;
- end to end, a real Prometheus (started here on loopback) scrapes a running server, evaluates
  the rules, and answers PromQL over its HTTP API with the request count this test produced;
  every dashboard query is evaluated there too.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
import urllib.parse
import urllib.request
from collections import defaultdict
from pathlib import Path
from typing import Any, Iterator

import grpc
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from services.generation.client import Endpoint, GenerationClient
from tests.helpers.processes import free_port
from tests.helpers.servers import broken_copy, start_server

pytestmark = pytest.mark.deploy

ROOT = Path(__file__).resolve().parent.parent
PROMETHEUS_DIR = ROOT / "deploy" / "prometheus"
RULES = PROMETHEUS_DIR / "rules.yml"
RULE_TESTS = PROMETHEUS_DIR / "rules_test.yml"
DASHBOARD = ROOT / "deploy" / "grafana" / "dashboards" / "latentforge.json"

# Series that Prometheus itself makes, which rules may use but no scrape contains.
PROMETHEUS_SERIES = {"up": {"job", "instance"}}
# Labels Prometheus attaches to every scraped series.
TARGET_LABELS = {"job", "instance"}
# Values for the dashboard's template variables when its queries are evaluated.
GRAFANA_VARIABLES = {"$__rate_interval": "1m", "$__interval": "15s", "$__range": "1h"}
PROMQL_KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or",
                   "unless", "offset", "inf", "nan"}


# --- PromQL, just enough of it to find the metric and label names an expression uses ---

def grafana_to_promql(expr: str) -> str:
    """A dashboard query as plain PromQL: Grafana's interval variables get fixed values."""
    for name, value in GRAFANA_VARIABLES.items():
        expr = expr.replace(name, value)
    return expr


def selectors(expr: str) -> list[tuple[str, set[str]]]:
    """(metric name, label names in its matchers) of every vector selector in `expr`."""
    expr = grafana_to_promql(expr)
    out = []
    without_strings = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    # Matcher blocks, keyed by the name just before them.
    for m in re.finditer(r"([a-zA-Z_:][\w:]*)?\s*\{([^}]*)\}", without_strings):
        labels = set(re.findall(r"([a-zA-Z_]\w*)\s*(?:=~|!~|!=|=)", m.group(2)))
        if m.group(1) and m.group(1) not in PROMQL_KEYWORDS:
            out.append((m.group(1), labels))
    # Bare names: drop strings, matcher blocks, ranges and label lists, then take identifiers
    # that are not functions (followed by "(") or keywords.
    bare = re.sub(r"\{[^}]*\}", " ", without_strings)
    bare = re.sub(r"\[[^\]]*\]", " ", bare)
    bare = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", bare)
    for m in re.finditer(r"(?<![\w.:])([a-zA-Z_:][\w:]*)(?![\w:])(\s*\()?", bare):
        name, is_call = m.group(1), m.group(2)
        if not is_call and name.lower() not in PROMQL_KEYWORDS and not any(n == name for n, _ in out):
            out.append((name, set()))
    return out


def grouping_labels(expr: str) -> set[str]:
    """Label names in by (...) / without (...) clauses."""
    return {label.strip() for group in re.findall(r"\b(?:by|without)\s*\(([^)]*)\)", expr)
            for label in group.split(",") if label.strip()}


def recording_rules() -> dict[str, str]:
    """Recording rule name -> expression, from deploy/prometheus/rules.yml."""
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return {r["record"]: r["expr"] for g in groups for r in g["rules"] if "record" in r}


def recorded_labels(name: str) -> set[str]:
    """The labels a level:metric:operation rule keeps are its level: job_method -> {job, method}."""
    return set(name.split(":")[0].split("_"))


def dashboard_queries() -> list[tuple[str, str]]:
    """(where, expression) of every panel target and query variable of the dashboard."""
    board = json.loads(DASHBOARD.read_text())
    out = []
    for panel in board["panels"]:
        for target in panel.get("targets", []):
            out.append((f"panel {panel['title']!r} {target['refId']}", target["expr"]))
    for var in board["templating"]["list"]:
        if var["type"] == "query":
            m = re.fullmatch(r"label_values\((.*),\s*(\w+)\)", var["query"]["query"])
            assert m, f"variable {var['name']}: expected label_values(selector, label)"
            out.append((f"variable {var['name']} (label {m.group(2)})", m.group(1)))
    return out


def rule_queries() -> list[tuple[str, str]]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return [(f"rule {r.get('record') or r.get('alert')}", r["expr"]) for g in groups for r in g["rules"]]


def rule_test_series() -> list[tuple[str, str]]:
    tests = yaml.safe_load(RULE_TESTS.read_text())["tests"]
    return [(f"rules_test input {s['series']}", s["series"]) for t in tests for s in t.get("input_series", [])]


# --- a scrape of real servers, after calls that touch every series ---

def scrape(url: str) -> dict[str, set[str]]:
    """Sample name -> label names seen, from one /metrics scrape."""
    text = urllib.request.urlopen(url, timeout=10).read().decode()
    seen: dict[str, set[str]] = defaultdict(set)
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            seen[sample.name] |= set(sample.labels)
    return seen


@pytest.fixture(scope="module")
def scraped(model_repo: Path, tmp_path_factory) -> dict[str, set[str]]:
    """Sample names and their labels, scraped from two servers that served real calls, and from
    a training server.

    One has the in-process cache (hits, misses); the other points at a Redis that is not there
    (cache errors) and has a broken model version (load failures). The training server answered
    a refused upload and a listing.
    """
    from services.training.client import TrainingClient
    from tests.helpers.training import start_training_server

    dead_redis = f"redis://127.0.0.1:{free_port()}/0"
    broken = broken_copy(model_repo, tmp_path_factory.mktemp("repo") / "models")
    training_dir = tmp_path_factory.mktemp("training")
    servers = [start_server(model_repo), start_server(broken, redis_url=dead_redis),
               start_training_server(training_dir / "data", training_dir / "models")]
    try:
        with TrainingClient(servers[2].target) as training:
            training.list_datasets()
            (training_dir / "a.zip").write_bytes(b"not a zip")
            with pytest.raises(grpc.RpcError):
                training.upload_dataset(training_dir / "a.zip", "a")
        for server in servers[:2]:
            with GenerationClient(server.target, timeout_s=30) as client:
                client.list_models()
                made = client.generate("mnist-dcgan", 3, seed=1)
                client.interpolate("mnist-dcgan", Endpoint(seed=1), Endpoint(seed=2), 4)
                client.generate("mnist-vae", 2, seed=2)
                for sample_id in (made.samples[0].sample_id, "missing00"):
                    try:
                        client.get_sample(sample_id)
                    except grpc.RpcError:
                        pass
        seen: dict[str, set[str]] = defaultdict(set)
        for server in servers:
            for name, labels in scrape(server.metrics_url).items():
                seen[name] |= labels | TARGET_LABELS
        return dict(seen)
    finally:
        for server in servers:
            server.stop()


def test_the_scrape_exercised_every_family(scraped):
    for name in ("latentforge_cache_hits_total", "latentforge_cache_misses_total", "latentforge_cache_errors_total",
                 "latentforge_model_load_failures_total", "latentforge_queue_wait_seconds_bucket",
                 "latentforge_batch_size_bucket", "latentforge_model_info", "latentforge_training_jobs",
                 "latentforge_training_job_duration_seconds_bucket", "latentforge_training_jobs_ended_total",
                 "latentforge_training_dataset_uploads_total"):
        assert name in scraped, name


@pytest.mark.parametrize("source", ["dashboard", "rules", "rule tests"])
def test_every_metric_used_exists_in_a_real_scrape(scraped, source):
    queries = {"dashboard": dashboard_queries, "rules": rule_queries, "rule tests": rule_test_series}[source]()
    recorded = recording_rules()
    known = {**scraped, **PROMETHEUS_SERIES, **{name: recorded_labels(name) for name in recorded}}
    problems = []
    for where, expr in queries:
        used = selectors(expr)
        assert used, f"{where}: no metric found in {expr!r}"
        for name, labels in used:
            if name not in known:
                hint = " (a histogram is queried as _bucket/_sum/_count, a counter as _total)"
                problems.append(f"{where}: {name} is not in the scrape nor a recording rule{hint}")
            elif labels - known[name]:
                problems.append(f"{where}: {name} has no label(s) {sorted(labels - known[name])}")
        # Grouping labels must exist on some metric of the expression (plus le for histograms).
        available = set().union(*(known.get(name, set()) for name, _ in used))
        missing = grouping_labels(expr) - available
        if missing:
            problems.append(f"{where}: groups by {sorted(missing)}, which none of its metrics has")
    assert not problems, "\n".join(problems)


def test_recording_rules_are_used_and_named_for_what_they_keep():
    recorded = recording_rules()
    dashboard = " ".join(expr for _, expr in dashboard_queries())
    alerts = " ".join(expr for where, expr in rule_queries() if where.startswith("rule Latentforge"))
    for name, expr in recorded.items():
        assert re.fullmatch(r"[a-z_]+:latentforge_[a-z_]+:[a-z0-9_]+", name), name
        assert name in dashboard or name in alerts or any(name in e for e in recorded.values()), f"{name} is unused"
        # The level part names exactly the labels the rule aggregates by.
        kept = grouping_labels(expr.split("/")[0]) - {"le"}
        assert kept == recorded_labels(name), (name, kept)
    assert sum(name in dashboard for name in recorded) >= 2, "the dashboard should use the recording rules"


# --- promtool ---

def _promtool(*args: str) -> subprocess.CompletedProcess:
    if shutil.which("promtool") is None:
        pytest.skip("promtool is not installed (Debian package prometheus)")
    return subprocess.run(["promtool", *args], cwd=PROMETHEUS_DIR, capture_output=True, text=True, timeout=60)


def test_promtool_checks_the_rules():
    out = _promtool("check", "rules", RULES.name)
    assert out.returncode == 0, out.stdout + out.stderr


def test_promtool_runs_the_rule_unit_tests():
    out = _promtool("test", "rules", RULE_TESTS.name)
    assert out.returncode == 0, out.stdout + out.stderr


def test_promtool_checks_the_compose_prometheus_config():
    out = _promtool("check", "config", "prometheus.yml")
    assert out.returncode == 0, out.stdout + out.stderr


def test_alerts_cover_what_the_service_needs():
    groups = yaml.safe_load(RULES.read_text())["groups"]
    alerts = {r["alert"]: r for g in groups for r in g["rules"] if "alert" in r}
    assert {"LatentforgeHighErrorRatio", "LatentforgeHighLatencyP99", "LatentforgeQueueSaturated",
            "LatentforgeCacheErrorBurst", "LatentforgeNoModelLoaded", "LatentforgeTrainingJobsFailing"} <= set(alerts)
    for name, rule in alerts.items():
        assert rule["labels"]["severity"] in {"warning", "critical"}, name
        assert rule["annotations"]["summary"] and rule["annotations"]["description"], name
    tested = {a["alertname"] for t in yaml.safe_load(RULE_TESTS.read_text())["tests"]
              for a in t.get("alert_rule_test", [])}
    assert tested == set(alerts), f"alerts without a unit test: {set(alerts) - tested}"


# --- the dashboard ---

def test_dashboard_is_well_formed():
    board = json.loads(DASHBOARD.read_text())
    ids = [p["id"] for p in board["panels"]]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    variables = {v["name"] for v in board["templating"]["list"]}
    assert {"datasource", "job"} <= variables
    for panel in board["panels"]:
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24, panel["title"]
        if panel["type"] == "row":
            continue
        assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
        refs = [t["refId"] for t in panel["targets"]]
        assert refs and len(refs) == len(set(refs)), panel["title"]
        for target in panel["targets"]:
            assert 'job=~"$job"' in target["expr"], f"{panel['title']}: not filtered by $job"
            used = set(re.findall(r"\$(\w+)", target["expr"])) - {"__rate_interval", "__interval", "__range"}
            assert used <= variables, (panel["title"], used)


def test_dashboard_shows_what_operators_need():
    text = " ".join(expr for _, expr in dashboard_queries())
    for metric in ("latentforge_requests", "latentforge_request_duration_seconds", "latentforge_queue_depth",
                   "latentforge_queue_wait_seconds_bucket", "latentforge_batch_size_bucket",
                   "latentforge_inference_duration_seconds_bucket", "latentforge_cache_hits",
                   "latentforge_cache_errors_total", "latentforge_models_loaded", "latentforge_model_info"):
        assert metric in text, metric
    assert "p50" in text and "p99" in text and "provider" in text
    # The training row: every metric the TrainingService exports.
    from prometheus_client import CollectorRegistry

    from services.training.metrics import TrainingMetrics

    registry = CollectorRegistry()
    TrainingMetrics(registry)
    exported = {family.name for family in registry.collect()}
    assert len(exported) >= 8
    for name in exported:
        assert name in text, f"the dashboard shows nothing of {name}"


# --- end to end: a real Prometheus scrapes a real server ---

class PrometheusProcess:
    """/usr/bin/prometheus on a loopback port with a config and storage of its own."""

    def __init__(self, workdir: Path, metrics_port: int) -> None:
        self.port = free_port()
        self.workdir = workdir
        config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(RULES)],
            "scrape_configs": [{"job_name": "latentforge",
                                "static_configs": [{"targets": [f"127.0.0.1:{metrics_port}"]}]}],
        }
        (workdir / "prometheus.yml").write_text(yaml.safe_dump(config))
        self.log = open(workdir / "prometheus.log", "w")
        self.proc = subprocess.Popen(
            ["prometheus", f"--config.file={workdir / 'prometheus.yml'}", f"--storage.tsdb.path={workdir / 'data'}",
             f"--web.listen-address=127.0.0.1:{self.port}", "--log.level=warn"],
            stdout=self.log, stderr=subprocess.STDOUT)

    def get(self, path: str, **params: str) -> Any:
        url = f"http://127.0.0.1:{self.port}{path}"
        if params:
            url += "?" + urllib.parse.urlencode(params)
        with urllib.request.urlopen(url, timeout=5) as reply:
            return json.loads(reply.read())

    def query(self, promql: str) -> list[dict[str, Any]]:
        reply = self.get("/api/v1/query", query=promql)
        assert reply["status"] == "success", reply
        return reply["data"]["result"]

    def wait_until(self, what: str, check, timeout_s: float = 30.0) -> Any:
        deadline = time.monotonic() + timeout_s
        last: Any = None
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, (self.workdir / "prometheus.log").read_text()
            try:
                last = check()
                if last:
                    return last
            except OSError as exc:  # not listening yet
                last = exc
            time.sleep(0.25)
        pytest.fail(f"timed out waiting for {what}; last: {last}")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
        self.log.close()


@pytest.fixture()
def prometheus_and_server(model_repo: Path, tmp_path: Path) -> Iterator[tuple[PrometheusProcess, Any]]:
    if shutil.which("prometheus") is None:
        pytest.skip("prometheus is not installed (Debian package prometheus)")
    server = start_server(model_repo)
    prom = PrometheusProcess(tmp_path, server.server.metrics_port)
    try:
        yield prom, server
    finally:
        prom.stop()
        server.stop()


def test_prometheus_scrapes_the_service_and_answers_promql(prometheus_and_server):
    prom, server = prometheus_and_server
    prom.wait_until("Prometheus to be ready", lambda: urllib.request.urlopen(
        f"http://127.0.0.1:{prom.port}/-/ready", timeout=2).status == 200)

    def count(code: str, method: str) -> float | None:
        result = prom.query(f'sum(latentforge_requests_total{{job="latentforge",method="{method}",code="{code}"}})')
        return float(result[0]["value"][1]) if result else None

    # Calls in two rounds with a scrape between them, so that rates see the counters grow.
    with GenerationClient(server.target, timeout_s=30) as client:
        for round_calls in (3, 4):
            for seed in range(round_calls):
                client.generate("mnist-dcgan", 2, seed=seed)
            with pytest.raises(grpc.RpcError):
                client.get_sample("missing00")
            if round_calls == 3:
                prom.wait_until("the first round in Prometheus", lambda: count("OK", "Generate") == 3)
    prom.wait_until("all 7 Generate calls in Prometheus", lambda: count("OK", "Generate") == 7)
    assert count("NOT_FOUND", "GetSample") == 2

    targets = prom.get("/api/v1/targets")["data"]["activeTargets"]
    assert [t["health"] for t in targets] == ["up"]

    # The recording rules evaluate over the scraped series...
    rate = prom.wait_until("the request-rate recording rule", lambda: prom.query(
        'job_method_code:latentforge_requests:rate5m{job="latentforge",method="Generate",code="OK"}'))
    assert float(rate[0]["value"][1]) > 0
    errors = prom.wait_until("the error-ratio recording rule", lambda: prom.query(
        'job_method:latentforge_requests_errors:ratio_rate5m{method="GetSample"}'))
    assert float(errors[0]["value"][1]) == 0  # NOT_FOUND is the caller's mistake, not a server error

    # ... every rule is healthy, and a server with models loaded raises no alert.
    groups = prom.get("/api/v1/rules")["data"]["groups"]
    rules = [r for g in groups for r in g["rules"]]
    assert len(rules) == len(rule_queries())
    assert all(r["health"] == "ok" for r in rules), [(r["name"], r.get("lastError")) for r in rules]
    assert all(r["state"] == "inactive" for r in rules if r["type"] == "alerting")

    # Every dashboard query is valid PromQL; the headline ones have data.
    for where, expr in dashboard_queries():
        promql = grafana_to_promql(expr).replace("$job", ".+").replace("$model", ".+")
        prom.query(promql)
    assert prom.query('sum(rate(latentforge_samples_generated_total{job=~".+"}[1m]))')
    loaded = prom.query('count by (model, version, kind, provider) (latentforge_model_info{job=~".+"})')
    assert {(r["metric"]["model"], r["metric"]["version"]) for r in loaded} == {("mnist-dcgan", "1"), ("mnist-vae", "1")}
