"""Generated code is current, the serving side never imports torch, settings precedence,
and the CLI commands against a real server."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from latentforge.cli import build_parser, main
from services.generation.config import ConfigError, ServeConfig, load_config
from tools.protogen import GENERATED_SUFFIXES, PROTO_FILES, ROOT, generate


def test_committed_generated_code_matches_the_proto(tmp_path: Path):
    written = generate(tmp_path)
    assert len(written) == len(PROTO_FILES) * len(GENERATED_SUFFIXES)
    for path in written:
        committed = ROOT / path.relative_to(tmp_path)
        assert committed.read_bytes() == path.read_bytes(), (
            f"{committed.relative_to(ROOT)} is stale: run `python -m tools.protogen`")


def test_serving_modules_do_not_import_torch():
    code = ("import sys, services.generation.server, services.cli, services.generation.client, services.generation.batching; "
            "import latentforge.cli; latentforge.cli.build_parser(); "
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False", out.stderr


def test_service_cli_module_imports_nothing_heavy():
    code = ("import sys; import services.cli; "
            "print(sorted(m for m in ('grpc', 'onnxruntime', 'numpy', 'torch', 'redis') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_settings_precedence_cli_over_env_over_file_over_defaults(tmp_path: Path):
    toml = tmp_path / "serve.toml"
    toml.write_text('[serve]\nport = 6000\nmax_count = 8\nredis_url = "redis://file:6379"\nproviders = ["CPUExecutionProvider"]\n')
    env = {"LATENTFORGE_PORT": "7000", "LATENTFORGE_BATCHING": "false", "LATENTFORGE_METRICS_PORT": "none",
           "UNRELATED": "x"}
    config = load_config(toml, environ=env, overrides={"port": 8000, "max_count": None})
    assert config.port == 8000  # CLI
    assert config.batching is False and config.metrics_port is None  # env
    assert config.max_count == 8 and config.redis_url == "redis://file:6379"  # file
    assert config.providers == ("CPUExecutionProvider",)
    assert config.cache_ttl_s == ServeConfig().cache_ttl_s  # default
    js = tmp_path / "serve.json"
    js.write_text(json.dumps({"models": "repo", "workers": 3}))
    from_json = load_config(environ={"LATENTFORGE_CONFIG": str(js)})
    assert from_json.models == Path("repo") and from_json.workers == 3


@pytest.mark.parametrize("env,words", [
    ({"LATENTFORGE_PORT": "abc"}, "port"),
    ({"LATENTFORGE_MAX_COUNT": "0"}, "max_count"),
    ({"LATENTFORGE_BATCHING": "maybe"}, "batching"),
])
def test_bad_settings_say_which(env, words):
    with pytest.raises(ConfigError, match=words):
        load_config(environ=env)


def test_unknown_file_setting_is_refused(tmp_path: Path):
    bad = tmp_path / "c.json"
    bad.write_text('{"prot": 1}')
    with pytest.raises(ConfigError, match="unknown setting 'prot'"):
        load_config(bad, environ={})


def test_serve_flags_come_from_the_settings_table(capsys):
    import argparse
    import dataclasses
    from dataclasses import fields

    from services.rpc.settings import add_flags, flag_overrides

    # Every flag `latentforge serve` has always had, spelled as before, lands in its setting.
    args = build_parser().parse_args([
        "serve", "--models", "repo", "--host", "0.0.0.0", "--port", "7000", "--metrics-port", "none",
        "--metrics-host", "0.0.0.0", "--redis-url", "redis://r:6379/0", "--redis-tls-ca", "ca.pem",
        "--redis-tls-cert", "c.pem", "--redis-tls-key", "k.pem", "--max-count", "8", "--workers", "3",
        "--provider", "A", "--provider", "B", "--no-batching", "--max-batch-size", "16", "--max-queue-delay-ms", "2.5",
        "--max-queue-size", "9", "--intra-op-threads", "1", "--precision", "fp16", "--no-access-log",
        "--tls-cert", "t.pem", "--tls-key", "t.key", "--tls-client-ca", "cca.pem", "--auth-tokens-file", "tokens",
        "--log-level", "DEBUG"])
    config = load_config(environ={"LATENTFORGE_WORKERS": "5", "LATENTFORGE_METRICS_PORT": "9"},
                         overrides=flag_overrides(ServeConfig, args))
    assert config == dataclasses.replace(
        ServeConfig(), models=Path("repo"), host="0.0.0.0", port=7000, metrics_port=None, metrics_host="0.0.0.0",
        redis_url="redis://r:6379/0", redis_tls_ca=Path("ca.pem"), redis_tls_cert=Path("c.pem"),
        redis_tls_key=Path("k.pem"), max_count=8, workers=3, providers=("A", "B"), batching=False,
        max_batch_size=16, max_queue_delay_ms=2.5, max_queue_size=9, intra_op_threads=1, precision="fp16",
        access_log=False, tls_cert=Path("t.pem"), tls_key=Path("t.key"), tls_client_ca=Path("cca.pem"),
        auth_tokens_file=Path("tokens"), log_level="DEBUG")
    # Every setting but the secret tokens has a flag, with help; a bad value is refused by name.
    parser = argparse.ArgumentParser()
    add_flags(parser, ServeConfig)
    flagged = {a.dest: a for a in parser._actions if a.dest != "help"}
    assert set(flagged) == {f.name for f in fields(ServeConfig)} - {"auth_tokens"}
    assert all(a.help for a in flagged.values())
    with pytest.raises(SystemExit):
        parser.parse_args(["--port", "abc"])
    assert "port" in capsys.readouterr().err


def test_cli_models_generate_interpolate(memory_server, tmp_path: Path, capsys):
    target = memory_server.target
    assert main(["models", "--target", target]) == 0
    listing = capsys.readouterr().out
    assert "mnist-dcgan" in listing and "CPUExecutionProvider" in listing
    assert "FID (FLOOR)" in listing.splitlines()[0]
    assert "mnist-dcgan v1 quality: fid " in listing and "[training, 200 samples, step 30, classifier meter v1]" in listing
    assert main(["models", "--target", target, "--json"]) == 0
    listed = {m["name"]: m for m in json.loads(capsys.readouterr().out)}
    assert listed["mnist-dcgan"]["quality"]["details"]["source"] == "training" and listed["mnist-vae"]["quality"] is None
    grid = tmp_path / "grid.png"
    assert main(["generate", "--target", target, "--model", "mnist-dcgan", "--count", "16", "--seed", "7",
                 "--out", str(grid)]) == 0
    assert Image.open(grid).size == (4 * 30 + 2, 4 * 30 + 2)
    strip, gif = tmp_path / "strip.png", tmp_path / "anim.gif"
    assert main(["interpolate", "--target", target, "--model", "mnist-dcgan", "--from-seed", "1", "--to-seed", "2",
                 "--steps", "8", "--slerp", "--out", str(strip), "--gif", str(gif)]) == 0
    assert Image.open(strip).size == (8 * 30 + 2, 30 + 2)
    assert Image.open(gif).n_frames == 8


def test_cli_reports_rpc_errors(memory_server, tmp_path: Path, capsys):
    code = main(["interpolate", "--target", memory_server.target, "--model", "mnist-dcgan", "--from-seed", "1",
                 "--to-seed", "2", "--steps", "1", "--out", str(tmp_path / "x.png")])
    assert code == 1
    assert "INVALID_ARGUMENT: steps must be between 2" in capsys.readouterr().err
    code = main(["generate", "--target", memory_server.target, "--model", "nope", "--out", str(tmp_path / "y.png")])
    assert code == 1
    assert "NOT_FOUND: unknown model 'nope'" in capsys.readouterr().err


def test_serve_command_runs_logs_json_and_stops_on_sigterm(model_repo: Path):
    import signal

    from services.generation.client import GenerationClient

    env = {**__import__("os").environ, "LATENTFORGE_RELOAD_INTERVAL_S": "0"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "latentforge", "serve", "--models", str(model_repo), "--port", "0",
         "--metrics-port", "0", "--host", "127.0.0.1"],
        cwd=ROOT, env=env, stderr=subprocess.PIPE, text=True)
    try:
        events = []
        port = None
        while len([e for e in events if e["event"] == "model_loaded"]) < 2:
            line = proc.stderr.readline()
            assert line, f"serve exited early with {proc.poll()}: {events}"
            events.append(json.loads(line))  # every log line is one JSON object
            if events[-1]["event"] == "server_started":
                port = events[-1]["port"]
        assert port and {e["provider"] for e in events if e["event"] == "model_loaded"} == {"CPUExecutionProvider"}
        with GenerationClient(f"127.0.0.1:{port}") as client:
            client.wait_serving()  # logged "model_loaded" precedes the switch to the new model set
            assert len(client.generate("mnist-dcgan", 2).samples) == 2
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(15) == 0
        rest = [json.loads(line) for line in proc.stderr.read().splitlines() if line.strip()]
        rpc = [e for e in rest if e["event"] == "rpc"]
        assert rpc and rpc[0]["method"] == "Generate" and rpc[0]["code"] == "OK" and rpc[0]["request_id"]
        assert not any("png" in json.dumps(e).lower() for e in rpc)
        assert rest[-1]["event"] == "server_stopped"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)



def test_access_log_off_keeps_error_lines_only(model_repo: Path, caplog):
    import logging

    import grpc

    from services.generation.client import GenerationClient
    from tests.helpers.servers import start_server

    server = start_server(model_repo, access_log=False)
    try:
        with caplog.at_level(logging.INFO, logger="latentforge"):
            with GenerationClient(server.target) as client:
                client.generate("mnist-dcgan", 1)
                with pytest.raises(grpc.RpcError):
                    client.generate("no-such-model", 1)
    finally:
        server.stop()
    rpc = [r for r in caplog.records if r.getMessage() == "rpc"]
    assert [r.fields["code"] for r in rpc] == ["NOT_FOUND"]


@pytest.mark.parametrize("case", ["metrics_port_taken", "tokens_file_missing", "unknown_provider"])
def test_serve_startup_errors_exit_2_with_one_line(model_repo: Path, tmp_path: Path, case: str):
    import os
    import socket

    args = [sys.executable, "-m", "latentforge", "serve", "--models", str(model_repo), "--port", "0",
            "--host", "127.0.0.1"]
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        if case == "metrics_port_taken":
            args += ["--metrics-port", str(taken.getsockname()[1])]
        else:
            args += ["--metrics-port", "0"]
        if case == "tokens_file_missing":
            args += ["--auth-tokens-file", str(tmp_path / "missing-tokens")]
        if case == "unknown_provider":
            args += ["--provider", "NoSuchExecutionProvider"]
        env = {**os.environ, "LATENTFORGE_RELOAD_INTERVAL_S": "0"}
        proc = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("latentforge serve: error:")]
    assert len(errors) == 1 and "\n" not in errors[0], proc.stderr


def test_serve_rejects_an_unknown_log_level():
    with pytest.raises(ConfigError, match="log_level"):
        load_config(environ={}, overrides={"log_level": "LOUD"})


def test_generate_cli_pages_past_the_servers_limit_into_a_new_folder(model_repo: Path, tmp_path: Path, capsys):
    """--count above max_count: pages of the limit, whose samples are those of one big request
    (seed rule), written into a folder the command makes."""
    from services.generation.client import GenerationClient
    from tests.helpers.servers import start_server

    server = start_server(model_repo, max_count=5)
    try:
        out = tmp_path / "new" / "grid.png"
        assert main(["generate", "--target", server.target, "--model", "mnist-dcgan", "--count", "12", "--seed", "40",
                     "--out", str(out)]) == 0, capsys.readouterr().err
        assert "12 samples from mnist-dcgan v1, seed 40" in capsys.readouterr().out
        paged = np.asarray(Image.open(out))
        with GenerationClient(server.target) as client:  # the same samples, drawn 5 at a time by seed
            expected = [s.image.tensor for k in (40, 45, 50)
                        for s in client.generate("mnist-dcgan", min(5, 52 - k), seed=k, fmt="tensor").samples]
        from latentforge.images import grid

        reference = tmp_path / "reference.png"
        grid(expected, (-1.0, 1.0)).save(reference)
        assert np.array_equal(paged, np.asarray(Image.open(reference)))
    finally:
        server.stop()
