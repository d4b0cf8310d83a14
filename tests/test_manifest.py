"""The manifest contract: format-1 manifests written by the earlier exporter still read (tasks and
signatures derived from kind and graphs), format-2 manifests round-trip, inconsistent ones are
refused with what is wrong, and a graph's signature checks a call's inputs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from latentforge.manifest import (
    FORMAT_VERSION,
    Manifest,
    ManifestError,
    Quality,
    Signature,
    SignatureError,
    TensorSpec,
)

DATA = Path(__file__).parent / "data"


def _v1(kind: str) -> dict:
    return json.loads((DATA / f"manifest_v1_{kind}.json").read_text())


def test_a_format_1_vae_manifest_derives_its_tasks_and_signatures():
    data = _v1("vae")
    assert data["format_version"] == 1 and "tasks" not in data and "signatures" not in data
    m = Manifest.from_dict(data)
    assert m.format_version == 1 and m.kind == "vae"
    assert m.tasks == {"sample": "decoder", "decode": "decoder", "encode": "encoder"}
    assert m.image_graph == "decoder" and m.graph_for("encode") == "encoder"
    assert m.signatures == {
        "decoder": Signature(inputs=(TensorSpec("z", "float32", ("N", 16)),),
                             outputs=(TensorSpec("image", "float32", ("N", 1, 28, 28)),)),
        "encoder": Signature(inputs=(TensorSpec("image", "float32", ("N", 1, 28, 28)),),
                             outputs=(TensorSpec("mu", "float32", ("N", 16)), TensorSpec("logvar", "float32", ("N", 16)))),
    }
    assert m.classes == () and m.quality is None


def test_a_format_1_gan_manifest_samples_and_decodes_with_its_generator():
    m = Manifest.from_dict(_v1("gan"))
    assert m.tasks == {"sample": "generator", "decode": "generator"} and not m.has_task("encode")
    assert m.signatures["generator"].inputs == (TensorSpec("z", "float32", ("N", 100)),)
    with pytest.raises(ManifestError, match="has no 'encode' task"):
        m.graph_for("encode")


def test_a_conditional_format_1_manifest_takes_optional_labels():
    data = _v1("gan")
    data["num_classes"] = 10
    labels = Manifest.from_dict(data).signatures["generator"].input("labels")
    assert labels == TensorSpec("labels", "int64", ("N",), optional=True)


@pytest.mark.parametrize("change, message", [
    (lambda d: d.update(kind="ae"), "kind 'ae' is not one of"),
    (lambda d: d["graphs"].update(sketch="sketch.onnx") or d["files"].update({"sketch.onnx": d["files"]["decoder.onnx"]}),
     "no graph contract for"),
    (lambda d: d["graphs"].pop("decoder"), "needs a 'decoder' graph"),
])
def test_a_format_1_manifest_outside_its_contract_is_refused(change, message):
    data = _v1("vae")
    change(data)
    with pytest.raises(ManifestError, match=message):
        Manifest.from_dict(data)


@pytest.mark.parametrize("version", [None, 0, 3, "2"])
def test_unknown_format_versions_are_refused(version):
    data = _v1("gan")
    data["format_version"] = version
    with pytest.raises(ManifestError, match=r"unsupported manifest format_version .*this build reads 1, 2"):
        Manifest.from_dict(data)


def _v2(**changes) -> dict:
    """A format-2 manifest of a conditional GAN (the v1 fixture, upgraded)."""
    m = Manifest.from_dict(_v1("gan"))
    data = json.loads(m.to_json())
    data.update(format_version=2, num_classes=3, classes=["cat", "dog", "owl"],
                quality={"meter_version": "mnist5k-classifier-1", "scores": {"fid": 12.5, "split": "test"}})
    data["signatures"]["generator"]["inputs"].append(
        {"name": "labels", "dtype": "int64", "shape": ["N"], "optional": True})
    data.update(changes)
    return data


def test_a_format_2_manifest_round_trips():
    m = Manifest.from_dict(_v2())
    assert m.format_version == FORMAT_VERSION == 2
    assert m.classes == ("cat", "dog", "owl")
    assert m.quality == Quality(meter_version="mnist5k-classifier-1", scores={"fid": 12.5, "split": "test"})
    assert Manifest.from_dict(json.loads(m.to_json())) == m
    written = json.loads(m.to_json())
    assert written["tasks"] == {"decode": "generator", "sample": "generator"}
    assert written["signatures"]["generator"]["outputs"] == [
        {"name": "image", "dtype": "float32", "shape": ["N", 1, 28, 28], "optional": False}]


def test_a_format_2_manifest_may_name_a_new_kind_and_task():
    """What the service does follows the tasks; a kind or task it does not know is no refusal."""
    data = _v2(kind="flipbook")
    data["tasks"]["animate_frames"] = "generator"
    m = Manifest.from_dict(data)
    assert m.kind == "flipbook" and m.has_task("animate_frames")


def _broken(edit):
    data = _v2()
    edit(data)
    return data


@pytest.mark.parametrize("data, message", [
    (_broken(lambda d: d.pop("tasks")), "malformed manifest: KeyError: 'tasks'"),
    (_broken(lambda d: d.update(tasks={})), "declares no tasks"),
    (_broken(lambda d: d["tasks"].update(encode="encoder")), "task 'encode' names graph 'encoder', which is not in graphs"),
    (_broken(lambda d: d.update(signatures={})), "every graph needs exactly one signature"),
    (_broken(lambda d: d.update(latent_dim=64)), r"latent_dim is 64; expected \[N, 64\]"),
    (_broken(lambda d: d["output"].update(channels=3)), r"expected \[N, 3, 28, 28\]"),
    (_broken(lambda d: d["signatures"]["generator"]["outputs"][0].update(name="picture")),
     "task 'decode' needs graph 'generator' to have a float32 output 'image'"),
    (_broken(lambda d: d["signatures"]["generator"]["inputs"].pop()), "needs an int64 'labels' input"),
    (_broken(lambda d: d.update(classes=["cat"])), "classes names 1 classes but num_classes is 3"),
    (_broken(lambda d: d.update(classes=["cat", "cat", "owl"])), "distinct and non-empty"),
    (_broken(lambda d: d["signatures"]["generator"]["inputs"][0].update(dtype="float")), "dtype 'float' is not one of"),
    (_broken(lambda d: d["signatures"]["generator"]["inputs"][0].update(shape=["batch size", 100])),
     "dynamic axis name 'batch size'"),
    (_broken(lambda d: d["signatures"]["generator"]["outputs"][0].update(optional=True)), "only inputs can be optional"),
    (_broken(lambda d: d["quality"]["scores"].update(fid=[1, 2])), "must be a number or a string"),
    (_broken(lambda d: d.update(kind="Stroke VAE")), "must be an identifier"),
])
def test_inconsistent_format_2_manifests_are_refused(data, message):
    with pytest.raises(ManifestError, match=message):
        Manifest.from_dict(data)


SIG = Signature(
    inputs=(TensorSpec("z", "float32", ("N", 4)), TensorSpec("labels", "int64", ("N",), optional=True),
            TensorSpec("strokes", "float32", ("N", "T", 5), optional=True)),
    outputs=(TensorSpec("image", "float32", ("N", 1, 6, 6)),))


def test_a_signature_binds_dynamic_axes_and_resolves_output_shapes():
    axes = SIG.bind({"z": ("float32", (3, 4)), "strokes": ("float32", (3, 17, 5))})
    assert axes == {"N": 3, "T": 17}
    assert SIG.resolve(SIG.outputs[0], axes) == (3, 1, 6, 6)
    assert SIG.resolve(SIG.inputs[2], {"N": 3}) is None  # T is not known without strokes


@pytest.mark.parametrize("feeds, message", [
    ({"z": ("float32", (3, 4)), "label": ("int64", (3,))}, "unknown input.*label; the graph takes z float32 \\[N, 4\\]"),
    ({"labels": ("int64", (3,))}, r"input z float32 \[N, 4\] is required"),
    ({"z": ("float64", (3, 4))}, "input z is float64"),
    ({"z": ("float32", (3, 5))}, "axis 1 must be 4"),
    ({"z": ("float32", (3,))}, r"input z has shape \(3,\)"),
    ({"z": ("float32", (3, 4)), "labels": ("int64", (2,))}, "input labels has N = 2 on axis 0, but another input has N = 3"),
])
def test_a_signature_refuses_feeds_that_do_not_fit(feeds, message):
    with pytest.raises(SignatureError, match=message):
        SIG.bind(feeds)


def _strokes(latent_dim: int = 8, **edit) -> dict:
    """A format-2 stroke-model manifest (T 50, M 3, hidden 32) as the exporter writes it."""
    state = ["N", 32]

    def t(name, shape, dtype="float32", optional=False):
        return {"name": name, "dtype": dtype, "shape": shape, "optional": optional}

    step_in = [t("point", ["N", 5])] + ([t("z", ["N", latent_dim])] if latent_dim else []) + \
        [t("h", state, optional=not latent_dim), t("c", state, optional=not latent_dim)]
    step_out = [t(n, ["N", 3]) for n in ("pi", "mu_x", "mu_y", "sigma_x", "sigma_y", "rho", "pen_logits")] + \
        [t("h_out", state), t("c_out", state)]
    signatures = {"decoder_step": {"inputs": step_in, "outputs": step_out}}
    tasks = {"draw_strokes": "decoder_step"}
    if latent_dim:
        signatures["encoder"] = {"inputs": [t("strokes", ["N", 50, 5]), t("lengths", ["N"], "int64")],
                                 "outputs": [t("mu", ["N", latent_dim]), t("logvar", ["N", latent_dim])]}
        signatures["init_state"] = {"inputs": [t("z", ["N", latent_dim])], "outputs": [t("h", state), t("c", state)]}
        tasks.update(encode_strokes="encoder", init_state="init_state")
    data = _v2(kind="stroke_vae", latent_dim=latent_dim, tasks=tasks, signatures=signatures,
               graphs={role: f"{role}.onnx" for role in signatures},
               files={f"{role}.onnx": {"sha256": "0" * 64, "bytes": 1} for role in signatures},
               strokes={"max_steps": 50, "mixtures": 3, "hidden": 32, "scale": 45.5, "temperature": 0.4})
    data["output"] = {"channels": 1, "height": 64, "width": 64, "value_range": [0.0, 1.0]}
    edit_fn = edit.get("edit")
    if edit_fn:
        edit_fn(data)
    return data


@pytest.mark.parametrize("latent_dim", [8, 0])
def test_a_stroke_manifest_round_trips_with_its_spec(latent_dim):
    m = Manifest.from_dict(_strokes(latent_dim))
    assert m.strokes is not None and m.strokes.max_steps == 50 and m.strokes.start_point == (0, 0, 1, 0, 0)
    assert Manifest.from_dict(json.loads(m.to_json())) == m
    assert "strokes" not in json.loads(Manifest.from_dict(_v2()).to_json())  # image manifests unchanged


@pytest.mark.parametrize("edit, message", [
    (lambda d: d.pop("strokes"), "needs a 'strokes' spec"),
    (lambda d: d["strokes"].update(mixtures=5), "pi float32"),
    (lambda d: d["strokes"].update(max_steps=60), "strokes float32"),
    (lambda d: d["strokes"].update(scale=0), "scale and temperature must be > 0"),
    (lambda d: d["tasks"].pop("init_state"), "needs the init_state task"),
    (lambda d: d["tasks"].pop("draw_strokes"), "needs the draw_strokes task"),
    (lambda d: d["signatures"]["decoder_step"]["outputs"].pop(), "c_out"),
])
def test_inconsistent_stroke_manifests_are_refused(edit, message):
    with pytest.raises(ManifestError, match=message):
        Manifest.from_dict(_strokes(edit=edit))


def test_only_a_model_whose_tasks_take_no_latent_may_have_latent_dim_0():
    with pytest.raises(ManifestError, match="latent_dim must be >= 1"):
        Manifest.from_dict(_v2(latent_dim=0))
    data = _strokes(0)
    data["signatures"]["decoder_step"]["inputs"][1]["optional"] = False
    with pytest.raises(ManifestError, match="must be optional"):
        Manifest.from_dict(data)
