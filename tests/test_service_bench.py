"""The benchmark tooling in smoke mode, so it cannot rot: ``latentforge bench`` against a real
server and ``--raw`` on real files, the serving benchmark script end to end, and the GPU check
script's code paths on the CPU (no GPU here)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
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


def test_load_over_http_json(model_repo: Path, tmp_path: Path):
    """``--protocol http``: the same Generate load to the HTTP/JSON port, errors counted by code."""
    from tests.helpers.servers import start_server

    server = start_server(model_repo, http_port=0)
    try:
        target = f"127.0.0.1:{server.server.http_port}"
        out = tmp_path / "http.json"
        assert main(["bench", "--target", target, "--protocol", "http", "--model", "mnist-dcgan", "--concurrency",
                     "3", "--duration", "0.5", "--warmup", "0.1", "--metrics-url", server.metrics_url,
                     "--json", str(out)]) == 0
        r = json.loads(out.read_text())
        assert r["requests"] > 0 and r["ok"] == r["requests"] and r["spec"]["protocol"] == "http"
        assert r["images"] == r["ok"] and r["response_bytes"] > 100 * r["ok"]  # base64 PNGs in JSON
        missing = tmp_path / "missing.json"
        main(["bench", "--target", target, "--protocol", "http", "--model", "no-such-model", "--duration", "0.3",
              "--warmup", "0", "--max-requests", "5", "--json", str(missing)])
        r = json.loads(missing.read_text())
        assert set(r["errors"]) == {"NOT_FOUND"} and r["ok"] == 0
    finally:
        server.stop()


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

    assert bench_serving(["--smoke", "--no-redis", "--no-stylize", "--models", str(model_repo), "--model-names",
                          "mnist-dcgan", "--out", str(tmp_path)]) == 0
    page = (tmp_path / "serving.md").read_text()
    assert "## mnist-dcgan" in page and "## Targets" in page and "count=1 c=8" in page
    results = json.loads((tmp_path / "serving.json").read_text())
    r = results["models"]["mnist-dcgan"]
    assert len(r["sweep"]) == 2 and r["raw"]["best"]["images_per_s"] > 0
    assert r["extra"]["http_c1"]["ok"] > 0 and r["extra"]["http_c8"]["ok"] > 0  # HTTP/JSON beside gRPC
    assert "count=1 c=8 HTTP/JSON" in page
    small = r["extra"]["small_queue"]
    assert small["max_queue_size"] == 2 and set(small["errors"]) <= {"RESOURCE_EXHAUSTED"}  # refusals: timing
    assert {t["target"] for t in results["targets"]} >= {"c=1, count=1: p50 <= raw batch-1 + 2 ms",
                                                         "GetSample p50 <= 1 ms",
                                                         "repeated Generate (count=1) from render cache >= 5x faster"}
    assert (tmp_path / "serving.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_stylize_benchmark_script_smoke(tmp_path: Path):
    """scripts/bench_stylize.py end to end on a style model it builds (adain, the family's default
    network size, a few steps): every row measured and the 512x512 target line written."""
    ran = subprocess.run([sys.executable, "-m", "scripts.bench_stylize", "--smoke", "--out", str(tmp_path / "out"),
                          "--work", str(tmp_path / "work")], cwd=ROOT, capture_output=True, text=True, timeout=240)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    r = json.loads((tmp_path / "out" / "stylize.json").read_text())
    assert r["model"]["family"] == "adain" and (r["model"]["width"], r["model"]["levels"]) == (16, 3)
    assert [(x["size"], x["protocol"], x["concurrency"], x["style"]) for x in r["rows"]] == [
        (64, "grpc", 1, "id"), (128, "grpc", 1, "id"), (128, "http", 1, "id"), (128, "grpc", 1, "image (new)"),
        (128, "grpc", 2, "id")]
    for row in r["rows"]:
        assert 0 < row["p50_ms"] <= row["p95_ms"] and row["mean_ms"] > 0 and row["images_per_s"] > 0
    assert r["rows"][1]["calls"] == 3 and r["rows"][4]["calls"] == 6 and r["rows"][3]["first_ms"] > 0
    assert r["target"]["met"] is None and len(r["style_id"]) == 64
    page = (tmp_path / "out" / "stylize.md").read_text()
    assert "Target: 512x512 p50 <= 1 s on 2 CPU cores: n/a" in page and "| 128x128 | HTTP/JSON | 1 | by id |" in page


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


# ---- the MLServer peer of the serving benchmark (scripts/peers) ----------------------------------------

def test_v2_infer_request_has_the_open_inference_protocol_wire_format():
    """Field numbers and encodings of V2 ModelInferRequest, checked byte by byte: model_name 1,
    inputs 5 (name 1, datatype 2, shape 3 packed), raw_input_contents 7 (little-endian float32)."""
    import numpy as np

    from scripts.peers import v2

    z = np.array([[1.0, 2.0]], np.float32)
    wire = v2.infer_request("m", {"z": z}).SerializeToString()
    tensor = b"\x0a\x01z" + b"\x12\x04FP32" + b"\x1a\x02\x01\x02"
    assert wire == b"\x0a\x01m" + b"\x2a" + bytes([len(tensor)]) + tensor + b"\x3a\x08" + z.astype("<f4").tobytes()
    with pytest.raises(ValueError, match="no V2 datatype"):
        v2.infer_request("m", {"z": np.zeros(2, np.complex64)})


def test_v2_payload_of_the_bulk_load_parses_back(model_repo: Path):
    import numpy as np

    from scripts.peers import v2
    from scripts.peers.mlserver import infer_payload, resolve_model

    spec = resolve_model(model_repo / "mnist-dcgan" / "1")
    assert Path(spec.file).is_file() and spec.workers == 2 and spec.max_batch_size == 64
    request = v2.ModelInferRequest.FromString(infer_payload(spec.name, spec.latent_dim, 64))
    assert request.model_name == "mnist-dcgan" and [i.name for i in request.inputs] == ["z"]
    assert list(request.inputs[0].shape) == [64, spec.latent_dim] and request.inputs[0].datatype == "FP32"
    z = np.frombuffer(request.raw_input_contents[0], "<f4")
    assert z.size == 64 * spec.latent_dim and np.isfinite(z).all() and 0.5 < z.std() < 1.5
    conditional = v2.ModelInferRequest.FromString(infer_payload("c", 4, 12, num_classes=10))
    assert [(i.name, i.datatype, list(i.shape)) for i in conditional.inputs] == [("z", "FP32", [12, 4]),
                                                                                ("labels", "INT64", [12])]
    assert np.frombuffer(conditional.raw_input_contents[1], "<i8").tolist() == [*range(10), 0, 1]


def test_v2_load_generator_against_a_v2_server_on_onnx_runtime(model_repo: Path):
    """The peer's load generator end to end against a minimal V2 ModelInfer server (real gRPC,
    real ONNX Runtime on the exported file, no MLServer): every answer counted, no errors."""
    import asyncio
    from concurrent import futures

    import grpc
    import numpy as np

    from scripts.peers import v2
    from scripts.peers.mlserver import TreeCpu, resolve_model, run_v2_load

    spec = resolve_model(model_repo / "mnist-dcgan" / "1")
    session = onnxruntime.InferenceSession(spec.file, providers=["CPUExecutionProvider"])

    def infer(request, context):
        tensor = request.inputs[0]
        z = np.frombuffer(request.raw_input_contents[0], "<f4").reshape(tuple(tensor.shape))
        image = session.run(["image"], {"z": z})[0]
        response = v2.ModelInferResponse(model_name=request.model_name)
        response.outputs.add(name="image", datatype="FP32", shape=list(image.shape))
        response.raw_output_contents.append(image.astype("<f4").tobytes())
        return response

    handler = grpc.method_handlers_generic_handler("inference.GRPCInferenceService", {
        "ModelInfer": grpc.unary_unary_rpc_method_handler(
            infer, request_deserializer=v2.ModelInferRequest.FromString,
            response_serializer=v2.ModelInferResponse.SerializeToString)})
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    server.add_generic_rpc_handlers((handler,))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        r = asyncio.run(run_v2_load(f"127.0.0.1:{port}", spec.name, spec.latent_dim, concurrency=2, count=3,
                                    duration_s=0.4, warmup_s=0.05, server_cpu=TreeCpu(os.getpid())))
    finally:
        server.stop(None)
    assert r["ok"] > 0 and r["ok"] == r["requests"] and r["errors"] == {} and r["images"] == 3 * r["ok"]
    pixels = 3 * int(np.prod(session.get_outputs()[0].shape[1:]))
    assert r["response_bytes"] > r["ok"] * 4 * pixels  # each answer carried the (3, 1, 28, 28) float32 tensor
    assert r["spec"]["method"] == "ModelInfer" and r["server_cpu_us_per_image"] > 0


def test_tree_cpu_counts_child_processes():
    """MLServer's inference workers are child processes: their CPU time must be counted."""
    from scripts.peers.mlserver import TreeCpu

    burn = "import time\nt = time.process_time()\nwhile time.process_time() - t < 0.5: pass\ntime.sleep(30)"
    child = subprocess.Popen([sys.executable, "-c", burn])
    try:
        tree, own = TreeCpu(os.getpid()), TreeCpu(child.pid)
        assert child.pid in tree.pids()
        deadline = time.monotonic() + 20
        while (own.read() or 0) < 0.45 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert own.read() >= 0.45 and tree.read() >= own.read()
    finally:
        child.kill()
        child.wait()


@pytest.mark.skipif(not (ROOT / ".venv-peer" / ".installed").is_file(),
                    reason="MLServer's environment .venv-peer is not installed (make bench-peer-setup)")
def test_mlserver_peer_serves_the_exported_file(model_repo: Path):
    import asyncio

    from scripts.peers import mlserver as peer

    spec = peer.resolve_model(model_repo / "mnist-dcgan" / "1")
    with peer.MLServerProcess(spec) as server:
        assert peer.check_answer(server.target, spec, count=3) == (3, 1, 28, 28)
        assert len(server.cpu.pids()) >= 1 + spec.workers  # the server and its inference workers
        r = asyncio.run(peer.run_v2_load(server.target, spec.name, spec.latent_dim, concurrency=4, count=1,
                                         duration_s=0.5, warmup_s=0.2, server_cpu=server.cpu))
    assert r["ok"] > 0 and r["errors"] == {} and r["server_cpu_us_per_image"] > 0
