"""What a model version can serve follows from the tasks its manifest declares: an autoencoder
(encode + decode, no prior) is served through Encode / Reconstruct / Interpolate and refused by
Generate with FAILED_PRECONDITION naming what it supports; graphs run by role with feeds checked
against their signatures. Hand-built ONNX models, real ONNX Runtime, a real server."""

from __future__ import annotations

from pathlib import Path

import grpc
import numpy as np
import pytest

from services.generation.capabilities import RPC_TASKS, refuse, supported_rpcs
from services.generation.client import Endpoint, GenerationClient
from latentforge.runtime import FeedError
from services.errors import FailedPrecondition, InvalidArgument
from tests.helpers.servers import decode, encode, load_model, start_server, write_autoencoder_model, write_conditional_model

AE, COND = "ae-toy", "cond-toy"
AE_METHODS = ["Interpolate", "GetSample", "Encode", "Reconstruct", "Complete"]


@pytest.fixture(scope="module")
def task_repo(tmp_path_factory) -> Path:
    repo = tmp_path_factory.mktemp("tasks")
    write_autoencoder_model(repo)
    write_conditional_model(repo)
    return repo


@pytest.fixture(scope="module")
def client(task_repo: Path):
    server = start_server(task_repo)
    with GenerationClient(server.target, timeout_s=30) as c:
        yield c
    server.stop()


def test_the_task_table_gives_each_family_its_rpcs():
    assert supported_rpcs(["sample", "decode"]) == ["Generate", "GenerateStream", "Interpolate", "Variations",
                                                    "GetSample"]
    assert supported_rpcs(["sample", "decode", "encode"]) == [r for r in RPC_TASKS
                                                              if "Strokes" not in r and r != "Stylize"]
    assert supported_rpcs(["encode", "decode"]) == AE_METHODS
    assert supported_rpcs(["complete"]) == ["Variations", "GetSample", "Complete"]
    assert supported_rpcs(["draw_strokes"]) == ["GetSample", "GenerateStrokes", "ContinueStrokes"]
    assert supported_rpcs(["encode_strokes", "init_state", "draw_strokes", "sample"]) == [
        "Interpolate", "GetSample", "GenerateStrokes", "ContinueStrokes", "EncodeStrokes"]
    assert supported_rpcs(["encode_style", "stylize"]) == ["GetSample", "Stylize"]
    assert supported_rpcs(["stylize_fixed"]) == ["GetSample", "Stylize"]
    assert supported_rpcs(["animate_frames"]) == ["GetSample"]  # a task with no RPC adds none


def test_list_models_says_what_each_model_supports(client):
    models = {m.name: m for m in client.list_models()}
    assert list(models[AE].supported_methods) == AE_METHODS
    assert "Generate" in models[COND].supported_methods and "Encode" not in models[COND].supported_methods
    assert models[AE].kind == "ae" and models[AE].latent_dim == 4  # MODEL_KIND_AE
    assert models[COND].class_names == tuple(f"class-{k}" for k in range(10)) and models[AE].class_names == ()
    assert models[COND].quality is None  # exported without scores


@pytest.mark.parametrize("method", ["Generate", "GenerateStream"])
def test_generate_on_a_model_without_a_prior_is_failed_precondition(client, method):
    with pytest.raises(grpc.RpcError) as err:
        if method == "Generate":
            client.generate(AE, 2, seed=1)
        else:
            list(client.generate_stream(AE, 2, seed=1))
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    message = err.value.details()
    assert f"model {AE} v1 (kind ae) does not support {method}" in message
    assert "no 'sample' task (no prior to sample latents from)" in message
    assert message.endswith("it supports Interpolate, GetSample, Encode, Reconstruct, Complete")


def _images(n: int) -> list[np.ndarray]:
    rng = np.random.default_rng(7)
    return [rng.random((1, 6, 6), dtype=np.float32) for _ in range(n)]


def test_an_autoencoder_encodes_reconstructs_and_interpolates_between_encoded_images(client):
    encoded = client.encode(AE, _images(2))
    assert [s.latent.shape for s in encoded.samples] == [(4,), (4,)] and encoded.stored
    recon = client.reconstruct(AE, _images(2), fmt="tensor")
    assert [r.tensor.shape for r in recon] == [(1, 6, 6)] * 2
    a, b = (s.sample_id for s in encoded.samples)
    frames = client.interpolate(AE, Endpoint(sample_id=a), Endpoint(sample_id=b), 3, return_latents=True).samples
    assert len(frames) == 3
    np.testing.assert_allclose(frames[0].latent, encoded.samples[0].latent, atol=1e-6)
    # Without a prior, a seed names no latent, and Variations (prior-scaled noise) does not apply.
    with pytest.raises(grpc.RpcError) as err:
        client.interpolate(AE, Endpoint(seed=1), Endpoint(sample_id=b), 3)
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION and "has no prior" in err.value.details()
    with pytest.raises(grpc.RpcError) as err:
        client.variations(a, 2)
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "does not support Variations" in err.value.details()


def test_refusals_name_the_supported_rpcs(task_repo: Path):
    ae, _ = load_model(task_repo, AE)
    assert ae.has_task("encode") and supported_rpcs(ae.manifest.tasks) == AE_METHODS

    def refuse_on(model, rpc):
        refuse(rpc, model.name, model.version, model.manifest.kind, model.manifest.tasks)

    refuse_on(ae, "Encode")
    with pytest.raises(FailedPrecondition, match="does not support Generate: .*; it supports Interpolate, GetSample"):
        refuse_on(ae, "Generate")
    cond, _ = load_model(task_repo, COND)
    assert not cond.has_task("encode")
    # An image sent to a model that cannot read images is a wrong request, not a missing feature.
    with pytest.raises(InvalidArgument, match="no 'encode' task \\(no encoder from images to latents\\)"):
        refuse_on(cond, "Reconstruct")


def test_graphs_run_by_role_with_feeds_checked_against_their_signature(task_repo: Path):
    ae, _ = load_model(task_repo, AE)
    images = np.stack(_images(3))
    mu = ae.run("encoder", {"image": images})["mu"]
    assert mu.shape == (3, 4)
    mu_only, logvar = encode(ae, images)
    assert logvar is None and np.array_equal(mu_only, mu)
    out = ae.run("decoder", {"z": mu.astype(np.float64)})  # cast to float32: same kind
    assert out["image"].shape == (3, 1, 6, 6) and out["image"].dtype == np.float32
    for feeds, message in [
        ({"z": mu, "labels": np.zeros(3, np.int64)}, "unknown input.*labels"),
        ({}, r"input z float32 \[N, 4\] is required"),
        ({"z": np.zeros((3, 5), np.float32)}, r"input z has shape \(3, 5\).*\(axis 1 must be 4\)"),
        ({"z": np.zeros((3, 4), np.int64)}, "input z is int64"),  # ints for floats: refused, not guessed
    ]:
        with pytest.raises(FeedError, match=f"model {AE} v1, graph decoder: {message}"):
            ae.run("decoder", feeds)


def test_an_optional_input_left_out_is_fed_as_zeros(task_repo: Path):
    cond, _ = load_model(task_repo, COND)
    z = np.random.default_rng(2).standard_normal((4, 8)).astype(np.float32)
    left_out = decode(cond, z)
    np.testing.assert_array_equal(left_out, decode(cond, z, np.zeros(4, np.int32)))  # int32 -> int64
    assert not np.array_equal(left_out, decode(cond, z, np.full(4, 3)))
    with pytest.raises(FeedError, match="input labels is float32"):
        decode(cond, z, np.zeros(4, np.float32))


def test_cli_takes_a_label_by_number_or_by_class_name(client, tmp_path: Path, capsys):
    """`--label 3` and `--label class-3` (a name from ListModels) ask for the same class."""
    from latentforge.cli import main

    target = client.target
    assert main(["models", "--target", target]) == 0
    assert "cond-toy v1 classes: 0=class-0, 1=class-1, 2=class-2" in capsys.readouterr().out
    by_number, by_name = tmp_path / "n.png", tmp_path / "c.png"
    common = ["generate", "--target", target, "--model", COND, "--count", "4", "--seed", "5"]
    assert main([*common, "--label", "3", "--out", str(by_number)]) == 0
    assert main([*common, "--label", "class-3", "--out", str(by_name)]) == 0
    assert by_number.read_bytes() == by_name.read_bytes()
    assert main([*common, "--label", "class-0", "--out", str(tmp_path / "0.png")]) == 0
    assert by_number.read_bytes() != (tmp_path / "0.png").read_bytes()
    capsys.readouterr()
    assert main([*common, "--label", "seven", "--out", str(tmp_path / "x.png")]) == 2
    assert "cond-toy v1 has no class 'seven'; its classes: class-0, class-1" in capsys.readouterr().err
    assert main(["interpolate", "--target", target, "--model", COND, "--from-seed", "1", "--to-seed", "2",
                 "--label", "class-9", "--out", str(tmp_path / "s.png")]) == 0
