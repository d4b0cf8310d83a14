"""The benchmark tooling in smoke mode, so it cannot rot: ``latentforge bench`` against a real
server and ``--raw`` on real files, the serving benchmark script end to end, and the GPU check
script's code paths on the CPU (no GPU here)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import onnxruntime
import pytest

from latentforge.cli import main

ROOT = Path(__file__).resolve().parent.parent


def test_load_generator_reports_throughput_latency_errors_and_cpu(memory_server, tmp_path: Path, capsys):
    out = tmp_path / "load.json"
    assert main(["bench", "--target", memory_server.target, "--model", "mnist-dcgan", "--concurrency", "4",
                 "--count", "2", "--duration", "0.5", "--warmup", "0.1", "--format", "raw",
                 "--metrics-url", memory_server.metrics_url, "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "images/s" in printed and "latency ms" in printed
    r = json.loads(out.read_text())
    assert r["requests"] > 0 and r["ok"] == r["requests"] and r["errors"] == {}
    assert r["images"] == 2 * r["ok"] and r["images_per_s"] > 0
    lat = r["latencies_ms"]
    assert 0 < lat["p50"] <= lat["p90"] <= lat["p99"] <= lat["max"]
    assert r["client_cpu_s"] > 0 and 0 < r["client_cpu_share"] <= 1
    assert r["server_cpu_us_per_image"] > 0  # from latentforge_process_cpu_seconds_total
    assert r["spec"]["fmt"] == "raw" and len(r["load_average"]) == 3


def test_load_generator_is_bounded_in_count_and_counts_errors(memory_server, tmp_path: Path):
    out = tmp_path / "errors.json"
    main(["bench", "--target", memory_server.target, "--model", "no-such-model", "--concurrency", "2",
          "--duration", "5", "--warmup", "0", "--max-requests", "7", "--json", str(out)])
    r = json.loads(out.read_text())
    assert r["requests"] <= 7 and r["seconds"] < 5
    assert set(r["errors"]) == {"NOT_FOUND"} and r["ok"] == 0
    assert "NOT_FOUND" in r["latencies_by_code_ms"]


def test_get_sample_load(memory_server, tmp_path: Path):
    out = tmp_path / "get.json"
    assert main(["bench", "--target", memory_server.target, "--model", "mnist-dcgan", "--method", "GetSample",
                 "--duration", "0.3", "--warmup", "0", "--json", str(out)]) == 0
    r = json.loads(out.read_text())
    assert r["ok"] > 0 and r["images"] == 0 and r["latencies_ms"]["p50"] > 0


def test_raw_mode_measures_onnx_runtime_with_the_servers_settings(model_repo: Path, tmp_path: Path):
    out = tmp_path / "raw.json"
    assert main(["bench", "--raw", "--model-path", str(model_repo / "mnist-dcgan" / "1"), "--batch-sizes", "1,4",
                 "--size-duration", "0.1", "--json", str(out)]) == 0
    r = json.loads(out.read_text())
    assert [p["batch_size"] for p in r["points"]] == [1, 4]
    assert r["best"] in r["points"] and all(p["images_per_s"] > 0 and p["cpu_us_per_image"] > 0 for p in r["points"])
    assert r["batch1_single_thread"]["threads"] == 1 and r["threads"] == 2  # the server's default workers
    assert r["provider"] == "CPUExecutionProvider" and r["files"] == {"generator": "generator.onnx"}


def test_serving_benchmark_script_smoke(model_repo: Path, tmp_path: Path):
    from scripts.bench_serving import main as bench_serving

    assert bench_serving(["--smoke", "--no-redis", "--models", str(model_repo), "--model-names", "mnist-dcgan",
                          "--out", str(tmp_path)]) == 0
    page = (tmp_path / "serving.md").read_text()
    assert "## mnist-dcgan" in page and "## Targets" in page and "count=1 c=8" in page
    results = json.loads((tmp_path / "serving.json").read_text())
    r = results["models"]["mnist-dcgan"]
    assert len(r["sweep"]) == 2 and r["raw"]["best"]["images_per_s"] > 0
    small = r["extra"]["small_queue"]
    assert small["max_queue_size"] == 2 and set(small["errors"]) <= {"RESOURCE_EXHAUSTED"}  # refusals: timing
    assert {t["target"] for t in results["targets"]} >= {"c=1, count=1: p50 <= raw batch-1 + 2 ms",
                                                         "GetSample p50 <= 1 ms",
                                                         "repeated Generate (count=1) from render cache >= 5x faster"}
    assert (tmp_path / "serving.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.skipif("CUDAExecutionProvider" in onnxruntime.get_available_providers(),
                    reason="a GPU is present: run scripts/gpu_check.py for real")
def test_gpu_check_runs_its_code_paths_on_the_cpu(model_repo: Path, tmp_path: Path):
    """No GPU here: the script refuses without --allow-cpu, and with it runs load, parity, IO
    binding and the bench on the CPU provider."""
    script = [sys.executable, "-m", "scripts.gpu_check", "--model-path", str(model_repo / "mnist-dcgan" / "1"),
              "--batch-sizes", "1,4", "--duration", "0.1"]
    refused = subprocess.run(script, cwd=ROOT, capture_output=True, text=True)
    assert refused.returncode == 2 and "not available" in refused.stderr
    report = tmp_path / "gpu.json"
    ran = subprocess.run([*script, "--allow-cpu", "--json", str(report)], cwd=ROOT, capture_output=True, text=True)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    r = json.loads(report.read_text())
    assert all(c["ok"] for c in r["checks"].values()) and r["checks"]["provider"]["fell_back_to_cpu"]
    assert {(b["batch_size"], b["io_binding"]) for b in r["bench"]} == {(1, True), (1, False), (4, True), (4, False)}



def test_bench_names_an_unreachable_server():
    from tests.helpers.processes import free_port

    target = f"127.0.0.1:{free_port()}"  # nothing listens there
    result = subprocess.run([sys.executable, "-m", "latentforge", "bench", "--target", target, "--model", "x",
                             "--timeout", "1"], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2, result.stderr
    assert f"no server at {target} within 1 s" in result.stderr, result.stderr
