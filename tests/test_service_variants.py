"""Which file the loader runs: the ORT-optimised copy on the CPU provider, the fp16 copy when
configured, the plain export otherwise; every file sha256-checked; IO binding gives the same
bits as plain runs (the GPU path's binding code, exercised on CPU); session settings."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from latentforge.runtime import OrtSettings
from services.generation.metrics import Metrics
from services.generation.model_repository import ModelRepository
from tests.helpers.servers import decode, encode


@pytest.fixture(scope="module")
def variant_repo(dcgan_run: Path, tmp_path_factory) -> Path:
    """mnist-dcgan/1 exported with its ort-cpu and fp16 variants."""
    from exporter.repository import export_run

    repo = tmp_path_factory.mktemp("variants")
    export_run(dcgan_run, repo, "mnist-dcgan", variants=("ort-cpu", "fp16"))
    return repo


def _model(repo: Path, **settings):
    repository = ModelRepository(repo, Metrics(), OrtSettings(**settings))
    repository.refresh()
    return repository.resolve("mnist-dcgan"), repository


def test_cpu_loads_the_ort_optimised_variant_and_agrees_with_the_plain_graph(variant_repo):
    optimised, _ = _model(variant_repo)
    plain, _ = _model(variant_repo, prefer_ort_variant=False)
    assert optimised.files == {"generator": "generator.ort-cpu.onnx"} and optimised.variant == "ort-cpu"
    assert plain.files == {"generator": "generator.onnx"} and plain.variant == ""
    z = np.random.default_rng(3).standard_normal((5, optimised.manifest.latent_dim)).astype(np.float32)
    np.testing.assert_allclose(decode(optimised, z), decode(plain, z), atol=1e-4)


def test_fp16_precision_loads_the_fp16_variant_within_its_parity(variant_repo):
    half, _ = _model(variant_repo, precision="fp16")
    full, _ = _model(variant_repo, prefer_ort_variant=False)
    assert half.files == {"generator": "generator.fp16.onnx"} and half.variant == "fp16"
    z = np.random.default_rng(4).standard_normal((4, half.manifest.latent_dim)).astype(np.float32)
    out = decode(half, z)
    assert out.dtype == np.float32  # float32 in and out, float16 inside
    np.testing.assert_allclose(out, decode(full, z), atol=2e-2)


def test_a_variant_from_another_onnxruntime_version_is_not_used(variant_repo, tmp_path: Path):
    repo = tmp_path / "models"
    shutil.copytree(variant_repo, repo)
    manifest_path = repo / "mnist-dcgan" / "1" / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["producer"]["onnxruntime"] = "0.0.1"
    manifest_path.write_text(json.dumps(manifest))
    model, _ = _model(repo)
    assert model.files == {"generator": "generator.onnx"}


def test_a_tampered_variant_file_fails_the_sha256_check(variant_repo, tmp_path: Path):
    repo = tmp_path / "models"
    shutil.copytree(variant_repo, repo)
    with open(repo / "mnist-dcgan" / "1" / "generator.ort-cpu.onnx", "ab") as fh:
        fh.write(b"tampered")
    repository = ModelRepository(repo, Metrics(), OrtSettings(prefer_ort_variant=False))
    repository.refresh()
    assert len(repository) == 0  # the whole version is refused, even though it would not load that file
    assert repository.metrics.registry.get_sample_value(
        "latentforge_model_load_failures_total", {"model": "mnist-dcgan"}) == 1


@pytest.mark.parametrize("variant", [{}, {"prefer_ort_variant": False}, {"precision": "fp16"}])
def test_io_binding_gives_the_same_bits_as_a_plain_run(variant_repo, variant):
    bound, _ = _model(variant_repo, io_binding="on", **variant)
    plain, _ = _model(variant_repo, io_binding="off", **variant)
    assert bound.io_binding and not plain.io_binding
    z = np.random.default_rng(5).standard_normal((7, bound.manifest.latent_dim)).astype(np.float32)
    np.testing.assert_array_equal(decode(bound, z), decode(plain, z))


def test_io_binding_on_the_encoder(model_repo):
    repository = ModelRepository(model_repo, Metrics(), OrtSettings(io_binding="on"))
    repository.refresh()
    vae = repository.resolve("mnist-vae")
    plain = ModelRepository(model_repo, Metrics(), OrtSettings(io_binding="off"))
    plain.refresh()
    images = decode(vae, np.zeros((3, vae.manifest.latent_dim), np.float32))
    for a, b in zip(encode(vae, images), encode(plain.resolve("mnist-vae"), images)):
        np.testing.assert_array_equal(a, b)


def test_session_settings_follow_the_config():
    import os

    from services.generation.config import ServeConfig

    settings = OrtSettings.from_config(ServeConfig(workers=2, intra_op_threads=0), providers=["CPUExecutionProvider"])
    assert settings.intra_op_threads == max(1, (os.cpu_count() or 1) // 2)
    options = settings.session_options()
    assert options.intra_op_num_threads == settings.intra_op_threads and options.inter_op_num_threads == 1
    assert options.get_session_config_entry("session.intra_op.allow_spinning") == "0"
    explicit = OrtSettings.from_config(ServeConfig(intra_op_threads=3, ort_spinning=True, graph_optimization="basic"),
                                       providers=["CPUExecutionProvider"])
    assert explicit.intra_op_threads == 3
    assert explicit.session_options().get_session_config_entry("session.intra_op.allow_spinning") == "1"
    trt = OrtSettings(providers=("TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"),
                      precision="fp16", tensorrt_cache_dir="/tmp/trt")
    listed = trt.provider_list()
    assert listed[0] == ("TensorrtExecutionProvider", {"trt_fp16_enable": True, "trt_engine_cache_enable": True,
                                                       "trt_engine_cache_path": "/tmp/trt"})
    assert listed[1][0] == "CUDAExecutionProvider" and listed[2] == "CPUExecutionProvider"
    assert not trt.cpu_only


def test_cpu_count_follows_the_container_limit(tmp_path: Path):
    """Inside a pod, a CPU limit (cgroup cpu.max) sizes ONNX Runtime's threads, not the node's cores."""
    from latentforge.cpus import available_cpus

    (tmp_path / "cpu.max").write_text("150000 100000\n")  # a 1.5-CPU limit
    assert available_cpus(tmp_path) == 2
    (tmp_path / "cpu.max").write_text("max 100000\n")  # no limit: the CPUs we may run on
    import os

    assert available_cpus(tmp_path) == len(os.sched_getaffinity(0))
