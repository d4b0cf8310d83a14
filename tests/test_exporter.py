"""Exporter: ONNX files, parity, manifest, atomic versions, and refusal of broken input."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

from exporter.onnx_export import ExportError
from exporter.repository import export_run
from latentforge.cli import main
from latentforge.manifest import Manifest, Signature, TensorSpec, list_versions, sha256_file, verify_files
from tests.helpers.training import rewrite_as_format_1
from trainer.checkpoint import CheckpointError, latest_checkpoint, load_checkpoint
from trainer.families import restore_family


def test_gan_manifest_describes_the_version(model_repo: Path, dcgan_run: Path):
    vdir = model_repo / "mnist-dcgan" / "1"
    m = Manifest.read(vdir)
    assert (m.kind, m.latent_dim, m.num_classes, m.version) == ("gan", 100, 0, 1)
    assert m.output.shape == (1, 28, 28) and m.output.value_range == (-1.0, 1.0)
    assert m.graphs == {"generator": "generator.onnx"}
    assert m.opset == 18
    assert 0 <= m.parity.max_abs_error <= 1e-4 and m.parity.batch_sizes == (1, 7)
    assert m.files["generator.onnx"].sha256 == sha256_file(vdir / "generator.onnx")
    # The run evaluated at its last step, so it has a best.pt, which is exported by default.
    assert m.source_checkpoint["step"] == 30
    assert Path(m.source_checkpoint["path"]) == (dcgan_run / "checkpoints" / "best.pt").resolve()
    verify_files(vdir, m)
    assert sorted(p.name for p in vdir.iterdir()) == ["generator.onnx", "manifest.json"]


def test_vae_exports_encoder_and_decoder(model_repo: Path):
    m = Manifest.read(model_repo / "mnist-vae" / "1")
    assert m.kind == "vae" and m.latent_dim == 32  # the VAE's default
    assert m.graphs == {"decoder": "decoder.onnx", "encoder": "encoder.onnx", "prior": "prior.onnx"}
    assert m.output.value_range == (0.0, 1.0)
    assert set(m.parity.per_graph) == {"decoder", "encoder", "prior"}
    assert max(m.parity.per_graph.values()) <= 1e-4


def test_manifests_declare_tasks_and_the_signatures_of_the_written_graphs(model_repo: Path, dcgan_run: Path):
    """Format 2: tasks from the family, signatures read back from the ONNX files (batch axis N)."""
    gan = Manifest.read(model_repo / "mnist-dcgan" / "1")
    assert gan.format_version == 2 and gan.tasks == {"sample": "generator", "decode": "generator"}
    assert gan.signatures == {"generator": Signature(inputs=(TensorSpec("z", "float32", ("N", 100)),),
                                                     outputs=(TensorSpec("image", "float32", ("N", 1, 28, 28)),))}
    assert gan.classes == ()
    best = load_checkpoint(dcgan_run / "checkpoints" / "best.pt")["quality"]
    assert gan.quality.meter_version == str(best["meter_version"]) == "1"
    assert gan.quality.scores["source"] == "training" and gan.quality.scores["step"] == 30
    assert gan.quality.scores["fid"] == best["fid"] and gan.quality.scores["n"] == 200
    assert gan.quality.scores["meter"] == "classifier" and gan.quality.scores["data"] == "mnist5k"
    vae = Manifest.read(model_repo / "mnist-vae" / "1")
    assert vae.tasks == {"sample": "decoder", "decode": "decoder", "encode": "encoder", "prior": "prior"}
    latent = ("N", 32)
    assert vae.signatures["encoder"] == Signature(
        inputs=(TensorSpec("image", "float32", ("N", 1, 28, 28)),),
        outputs=(TensorSpec("mu", "float32", latent), TensorSpec("logvar", "float32", latent)))
    assert vae.signatures["decoder"].inputs == (TensorSpec("z", "float32", latent),)
    assert vae.signatures["prior"] == Signature(
        inputs=(TensorSpec("noise", "float32", latent), TensorSpec("u", "float32", ("N",))),
        outputs=(TensorSpec("z", "float32", latent),))
    written = json.loads((model_repo / "mnist-vae" / "1" / "manifest.json").read_text())
    assert written["format_version"] == 2 and written["classes"] == [] and written["quality"] is None


def test_signatures_mark_optional_inputs_that_the_graph_has(tmp_path: Path):
    from exporter.onnx_export import read_signature
    from tests.helpers.servers import write_conditional_model

    path = write_conditional_model(tmp_path, latent_dim=8) / "generator.onnx"
    signature = read_signature(path, optional_inputs=("labels",))
    assert signature.inputs == (TensorSpec("z", "float32", ("N", 8)),
                                TensorSpec("labels", "int64", ("N",), optional=True))
    assert signature.outputs == (TensorSpec("image", "float32", ("N", 1, 6, 6)),)
    with pytest.raises(ExportError, match="optional input.*mask are not inputs of the graph"):
        read_signature(path, optional_inputs=("mask",))


def test_onnx_matches_torch_at_new_batch_sizes(model_repo: Path, dcgan_run: Path):
    """The batch axis is dynamic: sizes never seen at export agree with PyTorch."""
    import onnxruntime as ort

    family = restore_family(load_checkpoint(dcgan_run), torch.device("cpu"))
    gen = family.generator.eval()  # the weight average, which is what exports (EMA is on by default)
    sess = ort.InferenceSession(str(model_repo / "mnist-dcgan" / "1" / "generator.onnx"))
    for n in (3, 64):
        z = torch.randn(n, 100)
        with torch.no_grad():
            want = gen(z).numpy()
        got = sess.run(["image"], {"z": z.numpy()})[0]
        assert got.shape == (n, 1, 28, 28)
        assert np.abs(got - want).max() <= 1e-4


def test_files_run_in_plain_onnxruntime_without_project_code(model_repo: Path):
    """A fresh interpreter that can import only onnxruntime and numpy runs both models."""
    script = textwrap.dedent(
        """
        import json, sys
        repo, root = sys.argv[1], sys.argv[2]
        # Hide the project: its source folder and the editable-install import hook.
        sys.path = [p for p in sys.path if "site-packages" in p or not p.startswith(root)]
        sys.meta_path = [f for f in sys.meta_path if "editable" not in repr(f).lower()]
        import numpy as np, onnxruntime as ort
        g = ort.InferenceSession(repo + "/mnist-dcgan/1/generator.onnx")
        img = g.run(None, {"z": np.random.randn(5, 100).astype(np.float32)})[0]
        assert img.shape == (5, 1, 28, 28) and -1 <= img.min() and img.max() <= 1
        e = ort.InferenceSession(repo + "/mnist-vae/1/encoder.onnx")
        d = ort.InferenceSession(repo + "/mnist-vae/1/decoder.onnx")
        mu, logvar = e.run(["mu", "logvar"], {"image": np.random.rand(3, 1, 28, 28).astype(np.float32)})
        out = d.run(["image"], {"z": mu})[0]
        assert mu.shape == logvar.shape == (3, 32) and out.shape == (3, 1, 28, 28)
        try:
            import latentforge, trainer
        except ImportError:
            print("ok")
        """
    )
    proc = subprocess.run([sys.executable, "-I", "-c", script, str(model_repo), str(Path(__file__).resolve().parents[1])], capture_output=True, text=True,
                          cwd="/")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "ok"


def test_second_export_is_version_2_and_leaves_no_staging(tmp_path: Path, dcgan_run: Path):
    repo = tmp_path / "repo"
    assert export_run(dcgan_run, repo, "digits").name == "1"
    assert export_run(dcgan_run, repo, "digits").name == "2"
    assert list_versions(repo / "digits") == [1, 2]
    assert sorted(p.name for p in (repo / "digits").iterdir()) == ["1", "2"]


def test_failed_parity_publishes_nothing(tmp_path: Path, vae_run: Path):
    repo = tmp_path / "repo"
    with pytest.raises(ExportError, match="not published"):
        export_run(vae_run, repo, "strict", tolerance=0.0)
    assert list((repo / "strict").iterdir()) == []


def test_broken_checkpoint_is_refused_clearly(tmp_path: Path, dcgan_run: Path):
    src = latest_checkpoint(dcgan_run).read_bytes()
    bad = tmp_path / "run" / "checkpoints" / "step_00000030.pt"
    bad.parent.mkdir(parents=True)
    bad.write_bytes(src[: len(src) // 2])
    with pytest.raises(CheckpointError, match="not a readable checkpoint"):
        export_run(tmp_path / "run", tmp_path / "repo", "broken")
    assert not (tmp_path / "repo" / "broken").exists() or not list((tmp_path / "repo" / "broken").iterdir())

    foreign = tmp_path / "foreign.pt"
    torch.save({"weights": torch.zeros(3)}, foreign)
    with pytest.raises(CheckpointError, match="not a latentforge checkpoint"):
        export_run(tmp_path, tmp_path / "repo", "broken", checkpoint=foreign)
    with pytest.raises(CheckpointError, match="does not exist"):
        export_run(tmp_path / "nothing", tmp_path / "repo", "broken")
    (tmp_path / "empty-run").mkdir()
    with pytest.raises(CheckpointError, match="no checkpoints"):
        export_run(tmp_path / "empty-run", tmp_path / "repo", "broken")


def test_bad_model_name_is_refused(tmp_path: Path, dcgan_run: Path):
    with pytest.raises(ExportError, match="model name"):
        export_run(dcgan_run, tmp_path, "../escape")


def test_exported_graph_is_self_contained_and_checked(model_repo: Path):
    model = onnx.load(str(model_repo / "mnist-dcgan" / "1" / "generator.onnx"))
    onnx.checker.check_model(model, full_check=True)
    assert not any(t.data_location == onnx.TensorProto.EXTERNAL for t in model.graph.initializer)
    assert model.graph.input[0].type.tensor_type.shape.dim[0].dim_param  # symbolic batch


def test_cli_export(tmp_path: Path, vae_run: Path, capsys):
    assert main(["export", str(vae_run), "--repo", str(tmp_path), "--name", "cli-vae"]) == 0
    assert "version 1" in capsys.readouterr().out
    data = json.loads((tmp_path / "cli-vae" / "1" / "manifest.json").read_text())
    assert data["kind"] == "vae"
    assert main(["export", str(tmp_path / "none"), "--repo", str(tmp_path), "--name", "x"]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_export_picks_the_checkpoint_asked_for(tmp_path: Path, dcgan_run: Path, vae_run: Path, capsys):
    """best (default when there is one), latest, or a file; quality travels with checkpoints that have it."""
    latest = export_run(dcgan_run, tmp_path, "latest", checkpoint="latest")
    m = Manifest.read(latest)
    assert Path(m.source_checkpoint["path"]) == latest_checkpoint(dcgan_run).resolve()
    assert m.quality is not None and m.quality.scores["step"] == 30  # the last step was evaluated
    earlier = export_run(dcgan_run, tmp_path, "earlier", checkpoint=dcgan_run / "checkpoints" / "step_00000015.pt")
    m = Manifest.read(earlier)
    assert m.source_checkpoint["step"] == 15 and m.quality is None  # step 15 was not evaluated
    with pytest.raises(CheckpointError, match="has no checkpoints/best.pt.*--checkpoint latest"):
        export_run(vae_run, tmp_path, "vae", checkpoint="best")
    assert main(["export", str(dcgan_run), "--repo", str(tmp_path), "--name", "cli", "--checkpoint", "best"]) == 0
    out = capsys.readouterr().out
    assert "(from best.pt, step 30)" in out and "quality (training, 200 samples): FID" in out


def test_export_can_score_the_exported_graph(tmp_path: Path, dcgan_run: Path, capsys):
    """--evaluate N: the staged graph runs in ONNX Runtime, as served, and its scores go in the manifest."""
    assert main(["export", str(dcgan_run), "--repo", str(tmp_path), "--name", "scored", "--evaluate", "300"]) == 0
    assert "quality (export, 300 samples)" in capsys.readouterr().out
    vdir = tmp_path / "scored" / "1"
    q = Manifest.read(vdir).quality
    assert q.scores["source"] == "export" and q.scores["n"] == 300 and q.meter_version == "1"
    assert q.scores["fid"] > q.scores["fid_floor"] > 0 and "precision_floor" in q.scores
    # The rarest and commonest class's shares of the 300 samples (mnist5k is labelled).
    assert 0 <= q.scores["class_share_min"] <= 0.1 <= q.scores["class_share_max"] <= 1
    assert sorted(p.name for p in vdir.iterdir()) == ["generator.onnx", "manifest.json"]
    assert [p.name for p in (tmp_path / "scored").iterdir()] == ["1"]  # no staging left


def test_fp16_and_ort_optimized_variants(tmp_path: Path, vae_run: Path):
    import onnxruntime as ort

    vdir = export_run(vae_run, tmp_path, "variants", variants=("fp16", "ort-cpu"))
    m = Manifest.read(vdir)
    assert m.variants == {
        "fp16": {"decoder": "decoder.fp16.onnx", "encoder": "encoder.fp16.onnx", "prior": "prior.fp16.onnx"},
        "ort-cpu": {"decoder": "decoder.ort-cpu.onnx", "encoder": "encoder.ort-cpu.onnx", "prior": "prior.ort-cpu.onnx"},
    }
    verify_files(vdir, m)  # every variant file is hashed too
    assert 0 < m.parity.per_graph["decoder@fp16"] <= 2e-2
    assert m.parity.per_graph["encoder@ort-cpu"] <= 1e-4
    assert m.parity.max_abs_error <= 1e-4  # the float32 graphs' figure
    assert "onnxruntime" in m.producer
    fp16 = onnx.load(str(vdir / "decoder.fp16.onnx"))
    assert fp16.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT  # float32 in and out
    assert any(t.data_type == onnx.TensorProto.FLOAT16 for t in fp16.graph.initializer)
    out = ort.InferenceSession(str(vdir / "decoder.fp16.onnx")).run(None, {"z": np.zeros((3, m.latent_dim), np.float32)})[0]
    assert out.shape == (3, 1, 28, 28) and out.dtype == np.float32
    with pytest.raises(ExportError, match="unknown variant"):
        export_run(vae_run, tmp_path, "variants", variants=("int3",))


def test_a_run_trained_before_family_configs_still_exports(tmp_path: Path, vae_run: Path):
    """A format-1 checkpoint (one flat config, every family's options) is upgraded on load."""
    import shutil

    run = tmp_path / "old-run"
    shutil.copytree(vae_run / "checkpoints", run / "checkpoints")
    rewrite_as_format_1(latest_checkpoint(run))
    assert torch.load(latest_checkpoint(run), weights_only=True)["format_version"] == 1
    vdir = export_run(run, tmp_path / "repo", "old-vae")
    m = Manifest.read(vdir)
    assert (m.kind, m.latent_dim, m.num_classes) == ("vae", 32, 0)
    assert "prior" not in m.tasks  # a format-1 run had no learned prior: it samples N(0, I) as it did
    config = m.training["config"]
    assert config["vae"]["width"] == 16 and config["vae"]["latent_dim"] == 32 and "extra" not in config
    assert m.parity.max_abs_error <= 1e-4
