"""The model repository loader reads format-1 and format-2 manifests and refuses what could escape
the repository or its sha256 check, or what its manifest does not describe:
symbolic links (model folder, version folder, manifest, graph file), manifest file names with
path parts, and ONNX graphs with external tensor data (inside or outside the version folder).
Each refusal is logged and counted, and the good versions beside it keep loading. Crafted
repositories, real ONNX Runtime."""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from latentforge.manifest import FileEntry, Manifest, OutputSpec, Parity, Signature, TensorSpec, sha256_file
from latentforge.runtime import OrtSettings
from services.generation.metrics import Metrics
from services.generation.model_repository import ModelRepository, uses_external_data
from services.generation.capabilities import supported_rpcs
from tests.helpers.servers import decode, encode


def _tiny_graph():
    """z (N, 4) -> image (N, 1, 6, 6) = tanh(z @ w), as an onnx ModelProto."""
    from onnx import TensorProto, helper, numpy_helper

    w = numpy_helper.from_array(np.random.default_rng(0).standard_normal((4, 36)).astype(np.float32), "w")
    shape = numpy_helper.from_array(np.array([-1, 1, 6, 6], np.int64), "shape")
    nodes = [helper.make_node("MatMul", ["z", "w"], ["m"]), helper.make_node("Tanh", ["m"], ["t"]),
             helper.make_node("Reshape", ["t", "shape"], ["image"])]
    graph = helper.make_graph(nodes, "tiny", [helper.make_tensor_value_info("z", TensorProto.FLOAT, ["N", 4])],
                              [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 1, 6, 6])],
                              initializer=[w, shape])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])


def write_version(folder: Path, name: str, version: int, model=None, extra_files: tuple[str, ...] = ()) -> Path:
    """A complete version folder of the tiny generator with a manifest listing its files' sha256."""
    import onnx

    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "generator.onnx"
    if not path.exists():
        onnx.save(model if model is not None else _tiny_graph(), str(path))
    files = {f: FileEntry(sha256=sha256_file(folder / f), bytes=(folder / f).stat().st_size)
             for f in ("generator.onnx", *extra_files)}
    manifest = Manifest(
        name=name, version=version, kind="gan", latent_dim=4, num_classes=0,
        output=OutputSpec(channels=1, height=6, width=6, value_range=(-1.0, 1.0)),
        graphs={"generator": "generator.onnx"}, files=files, opset=18,
        tasks={"sample": "generator", "decode": "generator"},
        signatures={"generator": Signature(inputs=(TensorSpec("z", "float32", ("N", 4)),),
                                           outputs=(TensorSpec("image", "float32", ("N", 1, 6, 6)),))},
        parity=Parity(max_abs_error=0.0, tolerance=1e-4, batch_sizes=(1,)), source_checkpoint={},
        created=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"))
    (folder / "manifest.json").write_text(manifest.to_json())
    return folder


def _refresh(repo: Path, caplog) -> tuple[ModelRepository, Metrics, list[dict]]:
    metrics = Metrics()
    repository = ModelRepository(repo, metrics, OrtSettings())
    with caplog.at_level(logging.INFO, logger="latentforge"):
        repository.refresh()
    failed = [r.fields for r in caplog.records if r.getMessage() == "model_load_failed"]
    caplog.clear()
    return repository, metrics, failed


def _loaded(repository: ModelRepository) -> set[tuple[str, int]]:
    return {(m.name, m.version) for m in repository.all()}


def _failures(metrics: Metrics, name: str) -> float:
    return metrics.registry.get_sample_value("latentforge_model_load_failures_total", {"model": name}) or 0.0


def test_symbolic_links_into_or_out_of_the_repository_are_refused(tmp_path: Path, caplog):
    repo, outside = tmp_path / "models", tmp_path / "outside"
    write_version(repo / "tiny" / "1", "tiny", 1)
    # A version folder that is a link to a complete, valid version elsewhere.
    write_version(outside / "v2", "tiny", 2)
    (repo / "tiny" / "2").symlink_to(outside / "v2", target_is_directory=True)
    # A whole model folder that is a link.
    write_version(outside / "linked" / "1", "linked", 1)
    (repo / "linked").symlink_to(outside / "linked", target_is_directory=True)
    # A real version folder whose manifest is a link.
    write_version(outside / "v3", "tiny", 3)
    v3 = repo / "tiny" / "3"
    v3.mkdir()
    shutil.copy(outside / "v3" / "generator.onnx", v3 / "generator.onnx")
    (v3 / "manifest.json").symlink_to(outside / "v3" / "manifest.json")
    # A real version folder whose graph file is a link (the same bytes: sha256 alone would pass).
    v4 = repo / "tiny" / "4"
    write_version(v4, "tiny", 4)
    shutil.copy(v4 / "generator.onnx", outside / "g4.onnx")
    (v4 / "generator.onnx").unlink()
    (v4 / "generator.onnx").symlink_to(outside / "g4.onnx")

    repository, metrics, failed = _refresh(repo, caplog)
    assert _loaded(repository) == {("tiny", 1)}
    by_version = {(f["model"], f["version"]): f["error"] for f in failed}
    assert "tiny/2 is a symbolic link" in by_version[("tiny", 2)]
    assert "linked is a symbolic link" in by_version[("linked", 1)]
    assert "tiny/3/manifest.json is a symbolic link" in by_version[("tiny", 3)]
    assert "is a link or escapes the version folder" in by_version[("tiny", 4)]
    assert _failures(metrics, "tiny") == 3 and _failures(metrics, "linked") == 1


@pytest.mark.parametrize("fname", ["../generator.onnx", "sub/generator.onnx", "/etc/passwd", ".."])
def test_manifest_file_names_with_path_parts_are_refused(tmp_path: Path, caplog, fname: str):
    repo = tmp_path / "models"
    write_version(repo / "tiny" / "1", "tiny", 1)
    bad = write_version(repo / "tiny" / "2", "tiny", 2)
    data = json.loads((bad / "manifest.json").read_text())
    data["files"][fname] = data["files"].pop("generator.onnx")
    data["graphs"]["generator"] = fname
    (bad / "manifest.json").write_text(json.dumps(data))
    repository, metrics, failed = _refresh(repo, caplog)
    assert _loaded(repository) == {("tiny", 1)}
    assert [f["version"] for f in failed] == [2] and "must be a plain name inside the folder" in failed[0]["error"]
    assert _failures(metrics, "tiny") == 1


def _with_external_data(location: str):
    """The tiny graph with its weight ``w`` stored in an external file at ``location``."""
    from onnx import TensorProto

    model = _tiny_graph()
    w = next(t for t in model.graph.initializer if t.name == "w")
    raw = w.raw_data
    w.ClearField("raw_data")
    w.data_location = TensorProto.EXTERNAL
    w.external_data.add(key="location", value=location)
    w.external_data.add(key="length", value=str(len(raw)))
    return model, raw


def test_graphs_with_external_data_are_refused_inside_or_outside_the_folder(tmp_path: Path, caplog):
    repo = tmp_path / "models"
    write_version(repo / "tiny" / "1", "tiny", 1)
    # Weights in a file inside the version folder, even listed with its sha256.
    inside, raw = _with_external_data("weights.bin")
    (repo / "tiny" / "2").mkdir(parents=True)
    (repo / "tiny" / "2" / "weights.bin").write_bytes(raw)
    write_version(repo / "tiny" / "2", "tiny", 2, model=inside, extra_files=("weights.bin",))
    # Weights outside the version folder, by a relative and by an absolute path.
    (tmp_path / "stolen.bin").write_bytes(raw)
    write_version(repo / "tiny" / "3", "tiny", 3, model=_with_external_data("../../../stolen.bin")[0])
    write_version(repo / "tiny" / "4", "tiny", 4, model=_with_external_data(str(tmp_path / "stolen.bin"))[0])

    repository, metrics, failed = _refresh(repo, caplog)
    assert _loaded(repository) == {("tiny", 1)}
    assert sorted(f["version"] for f in failed) == [2, 3, 4]
    assert all("keeps tensor data in external files" in f["error"] for f in failed)
    assert _failures(metrics, "tiny") == 3
    # What the loader would otherwise rely on: ONNX Runtime itself loads the in-folder case.
    import onnxruntime as ort

    session = ort.InferenceSession(str(repo / "tiny" / "2" / "generator.onnx"), providers=["CPUExecutionProvider"])
    assert session.run(None, {"z": np.zeros((1, 4), np.float32)})[0].shape == (1, 1, 6, 6)


def test_external_data_is_found_in_subgraphs_and_garbage_is_not_onnx():
    from onnx import TensorProto, helper

    model, _ = _with_external_data("w.bin")
    constant = next(t for t in model.graph.initializer if t.name == "w")
    branch = helper.make_graph([helper.make_node("Constant", [], ["o"], value=constant)], "branch", [],
                               [helper.make_tensor_value_info("o", TensorProto.FLOAT, [4, 36])])
    outer = helper.make_graph(
        [helper.make_node("If", ["c"], ["y"], then_branch=branch, else_branch=branch)], "outer",
        [helper.make_tensor_value_info("c", TensorProto.BOOL, [])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [4, 36])])
    assert uses_external_data(helper.make_model(outer).SerializeToString())
    assert not uses_external_data(_tiny_graph().SerializeToString())
    with pytest.raises(ValueError):
        uses_external_data(b"\xff\xff\xff")
    with pytest.raises(ValueError):
        uses_external_data(_tiny_graph().SerializeToString()[:-7])  # truncated


def test_a_refused_version_is_tried_again_when_its_folder_comes_back(tmp_path: Path, caplog):
    repo = tmp_path / "models"
    write_version(repo / "tiny" / "1", "tiny", 1)
    bad = write_version(repo / "tiny" / "2", "tiny", 2)
    with open(bad / "generator.onnx", "ab") as fh:
        fh.write(b"tampered")
    repository, metrics, failed = _refresh(repo, caplog)
    assert _loaded(repository) == {("tiny", 1)} and "fails its sha256 check" in failed[0]["error"]
    repository.refresh()  # the same refused folder is not retried
    assert _failures(metrics, "tiny") == 1
    shutil.rmtree(bad)
    repository.refresh()
    staged = write_version(repo / "tiny" / ".staging", "tiny", 2)
    os.rename(staged, repo / "tiny" / "2")  # re-exported, complete
    repository.refresh()
    assert _loaded(repository) == {("tiny", 1), ("tiny", 2)}
    assert _failures(metrics, "tiny") == 1


def _as_format_1(version_dir: Path) -> None:
    """Rewrite a version's manifest as the format-1 exporter wrote it (no tasks, signatures,
    classes or quality)."""
    path = version_dir / "manifest.json"
    data = json.loads(path.read_text())
    for key in ("tasks", "signatures", "classes", "quality"):
        data.pop(key)
    data["format_version"] = 1
    path.write_text(json.dumps(data))


def test_a_format_1_version_serves_as_before(tmp_path: Path, caplog):
    """An exported VAE of the format-1 era (no learned prior: the committed format-2 export in
    tests/data/format2), its manifest rewritten as format 1: same tasks, same RPCs, same outputs."""
    repo = tmp_path / "models"
    vae = Path(__file__).parent / "data" / "format2" / "old-vae" / "1"
    shutil.copytree(vae, repo / "old-vae" / "1")
    shutil.copytree(vae, repo / "new-vae" / "1")
    for name in ("old-vae", "new-vae"):
        path = repo / name / "1" / "manifest.json"
        path.write_text(path.read_text().replace('"old-vae"', f'"{name}"'))
    _as_format_1(repo / "old-vae" / "1")
    repository, _, failed = _refresh(repo, caplog)
    assert failed == []
    old, new = repository.resolve("old-vae"), repository.resolve("new-vae")
    assert (old.manifest.format_version, new.manifest.format_version) == (1, 2)
    assert old.manifest.tasks == new.manifest.tasks == {"sample": "decoder", "decode": "decoder", "encode": "encoder"}
    assert old.manifest.signatures == new.manifest.signatures
    assert supported_rpcs(old.manifest.tasks) == supported_rpcs(new.manifest.tasks) and old.has_task("encode")
    z = np.random.default_rng(0).standard_normal((3, old.manifest.latent_dim)).astype(np.float32)
    images = decode(old, z)
    np.testing.assert_array_equal(images, decode(new, z))
    for a, b in zip(encode(old, images), encode(new, images)):
        np.testing.assert_array_equal(a, b)


def test_unknown_format_versions_are_refused_and_the_rest_loads(tmp_path: Path, caplog):
    repo = tmp_path / "models"
    write_version(repo / "tiny" / "1", "tiny", 1)
    newer = write_version(repo / "tiny" / "2", "tiny", 2)
    data = json.loads((newer / "manifest.json").read_text())
    data["format_version"] = 3
    (newer / "manifest.json").write_text(json.dumps(data))
    repository, metrics, failed = _refresh(repo, caplog)
    assert _loaded(repository) == {("tiny", 1)}
    assert "unsupported manifest format_version 3; this build reads 1, 2" in failed[0]["error"]
    assert _failures(metrics, "tiny") == 1


def _untasked(edit):
    """An edit of the generator's signature under a task with no contract (so the manifest stays
    self-consistent and only the graph file can disagree)."""
    def apply(data: dict) -> None:
        data["tasks"] = {"draw": "generator"}
        edit(data["signatures"]["generator"])
    return apply


@pytest.mark.parametrize("edit, message", [
    (lambda d: d["signatures"]["generator"]["inputs"].append(
        {"name": "labels", "dtype": "int64", "shape": ["N"], "optional": True}),
     "generator.onnx has no input 'labels', which the manifest's signature of 'generator' declares"),
    (_untasked(lambda sig: sig.update(inputs=[])), "generator.onnx takes input(s) z that the manifest's signature of 'generator' does not declare"),
    (_untasked(lambda sig: sig["outputs"][0].update(dtype="float16")),
     "output image is float32 ['N', 1, 6, 6], but the manifest's signature of 'generator' says image float16"),
    (lambda d: d["signatures"]["generator"]["outputs"].append(
        {"name": "mu", "dtype": "float32", "shape": ["N", 4], "optional": False}),
     "generator.onnx has no output 'mu'"),
])
def test_a_graph_that_disagrees_with_its_signature_is_refused(tmp_path: Path, caplog, edit, message):
    repo = tmp_path / "models"
    write_version(repo / "tiny" / "1", "tiny", 1)
    bad = write_version(repo / "tiny" / "2", "tiny", 2)
    data = json.loads((bad / "manifest.json").read_text())
    edit(data)
    (bad / "manifest.json").write_text(json.dumps(data))
    repository, metrics, failed = _refresh(repo, caplog)
    assert _loaded(repository) == {("tiny", 1)}
    assert message in failed[0]["error"]
