"""Training options: the nested config shape, layers, validation, flags built from the
family dataclasses, and format-1 configs. No training here, except one short CLI run."""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

import pytest

from latentforge.cli import main
from tests.helpers.training import V1_CONFIG_DEFAULTS
from trainer import cli as trainer_cli
from trainer import families
from trainer.config import TrainConfig, fixed_options, parse_duration, upgrade_v1_config
from trainer.families import FAMILIES, FamilyEntry
from trainer.families.configs import GAN_LOSSES, DCGANConfig, VAEConfig
from trainer.options import FamilyConfig, option


def test_config_dict_is_nested_by_family_and_round_trips(tmp_path: Path):
    cfg = TrainConfig.from_dict({"model": "vae", "out": tmp_path, "steps": 7, "beta": 4.0})
    assert isinstance(cfg.family, VAEConfig) and cfg.family.beta == 4.0 and cfg.family.latent_dim == 32
    data = cfg.to_dict()
    assert data["vae"] == dataclasses.asdict(cfg.family) and "beta" not in data and "dcgan" not in data
    assert data["steps"] == 7 and data["out"] == str(tmp_path)
    assert TrainConfig.from_dict(json.loads(json.dumps(data))) == cfg
    assert TrainConfig(model="dcgan").family == DCGANConfig()  # defaults of the chosen family


def test_flat_and_nested_forms_agree():
    flat = TrainConfig.from_dict({"model": "dcgan", "gan_loss": "hinge", "lr": 1e-4, "steps": 5})
    nested = TrainConfig.from_dict({"model": "dcgan", "steps": 5, "dcgan": {"gan_loss": "hinge", "lr": 1e-4}})
    assert flat == nested and flat.family.gan_loss == "hinge"


def test_options_of_another_family_and_unknown_keys_are_refused_by_name():
    with pytest.raises(ValueError, match="'beta' is an option of vae, not of 'dcgan'"):
        TrainConfig.from_dict({"model": "dcgan", "beta": 2.0})
    with pytest.raises(ValueError, match="options for 'vae' given, but the model is 'dcgan'"):
        TrainConfig.from_dict({"model": "dcgan", "vae": {"beta": 2.0}})
    with pytest.raises(ValueError, match="unknown training option 'extra'"):
        TrainConfig.from_dict({"model": "dcgan", "extra": {}})
    with pytest.raises(ValueError, match="unknown model 'nope'"):
        TrainConfig.from_dict({"model": "nope"})


def test_layers_apply_in_order_and_a_new_model_starts_from_its_defaults():
    checkpoint = TrainConfig.from_dict({"model": "dcgan", "width": 32, "steps": 100}).to_dict()
    cfg = TrainConfig.from_layers(checkpoint, {"lr": 1e-3}, {"steps": 200})
    assert (cfg.family.width, cfg.family.lr, cfg.steps) == (32, 1e-3, 200)
    cfg = TrainConfig.from_layers(checkpoint, {"model": "vae"})
    assert cfg.family == VAEConfig() and cfg.steps == 100


def test_validation_names_each_bad_option():
    cfg = TrainConfig.from_dict({"model": "dcgan", "steps": 0, "lr": -1.0, "gan_loss": "wasserstein",
                                 "beta1": 1.5, "channels": 2})
    with pytest.raises(ValueError) as err:
        cfg.validate()
    message = str(err.value)
    for expected in ("steps must be >= 1", "lr must be > 0", "gan_loss must be nonsaturating or hinge",
                     "beta1 must be < 1", "channels must be 1 or 3"):
        assert expected in message
    with pytest.raises(ValueError, match="kl_warmup_steps must be an integer"):
        TrainConfig.from_dict({"model": "vae", "kl_warmup_steps": "many"}).validate()
    TrainConfig.from_dict({"model": "vae", "lr": 1}).validate()  # an int where a float is due is fine


@pytest.mark.parametrize("text, seconds", [("90s", 90), ("6m", 360), ("1h", 3600), ("1h30m", 5400), ("1.5h", 5400),
                                           ("2m30s", 150), ("45", 45), ("0", 0)])
def test_durations_read(text: str, seconds: float):
    assert parse_duration(text) == seconds


def test_time_budget_is_a_duration_and_0_means_none():
    assert TrainConfig.from_dict({"time_budget": "6m"}).time_budget_seconds == 360
    assert TrainConfig.from_dict({"time_budget": 90}).time_budget == "90"  # a number in a JSON file: seconds
    assert TrainConfig.from_dict({"time_budget": "0"}).time_budget_seconds is None
    assert TrainConfig().time_budget_seconds is None
    for bad in ("6 minutes", "1m1m", "-5", "m"):
        with pytest.raises(ValueError, match=r"time_budget: .* is not a duration"):
            TrainConfig.from_dict({"time_budget": bad}).validate()
    with pytest.raises(ValueError, match="eval_samples must be >= 10"):
        TrainConfig.from_dict({"eval_samples": 5}).validate()
    with pytest.raises(ValueError, match="eval_every must be >= 0"):
        TrainConfig.from_dict({"eval_every": -1}).validate()


def test_gan_losses_offered_are_the_ones_implemented():
    from trainer.losses import GAN_LOSSES as implemented

    assert set(GAN_LOSSES) == set(implemented)


def test_fixed_options_are_what_a_resume_must_keep():
    fixed = fixed_options(TrainConfig.from_dict({"model": "vae", "width": 32}))
    assert {"model", "data", "seed", "image_size", "channels", "hold_out", "vae.width", "vae.latent_dim",
            "vae.recon", "vae.conditional", "vae.prior", "vae.prior_components"} == set(fixed)
    assert fixed["vae.width"] == 32


def _train_parser() -> argparse.ArgumentParser:
    sub = argparse.ArgumentParser().add_subparsers()
    trainer_cli.register(sub)
    return sub.choices["train"]


def _train_help() -> str:
    return _train_parser().format_help()


def _flag_help(dest: str) -> str:
    return next(a.help for a in _train_parser()._actions if a.dest == dest)


def test_every_option_of_every_family_has_a_flag():
    text = _train_help()
    for entry in FAMILIES.values():
        for f in dataclasses.fields(entry.config):
            assert "--" + f.name.replace("_", "-") in text, (entry.name, f.name)
    assert _flag_help("latent_dim").endswith("(default: dcgan 100, vae 32, ae 16, completion 16, sketch-rnn 64)")  # one flag, each family's default
    assert "mnist5k" in _flag_help("data") and ".npz/.npy" in _flag_help("data")  # the registered sources


def test_a_newly_registered_family_gets_its_flags(monkeypatch):
    @dataclasses.dataclass
    class SketchConfig(FamilyConfig):
        max_strokes: int = option(250, "longest stroke sequence kept", at_least=1)

    entry = FamilyEntry("sketch", SketchConfig, "trainer.families.sketch:Sketch", "test family")
    monkeypatch.setitem(families.FAMILIES, "sketch", entry)
    assert "--max-strokes" in _train_help()
    cfg = TrainConfig.from_dict({"model": "sketch", "max_strokes": 100})
    assert cfg.family == SketchConfig(max_strokes=100) and cfg.to_dict()["sketch"] == {"max_strokes": 100}


def test_cli_refuses_an_option_of_another_family(tmp_path: Path, capsys):
    assert main(["train", "--out", str(tmp_path / "r"), "--model", "dcgan", "--beta", "2"]) == 2
    assert "'beta' is an option of vae, not of 'dcgan'" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("form", ["nested", "flat"])
def test_cli_reads_a_config_file_and_records_the_nested_form(tmp_path: Path, form: str):
    options = {"width": 16, "latent_dim": 8}
    common = {"model": "vae", "steps": 2, "batch_size": 16, "checkpoint_every": 2, "progress": False}
    body = {**common, "vae": options} if form == "nested" else {**common, **options}
    (tmp_path / "c.json").write_text(json.dumps(body))
    out = tmp_path / "run"
    assert main(["train", "--out", str(out), "--config", str(tmp_path / "c.json"), "--beta", "2"]) == 0
    info = json.loads((out / "run.json").read_text())
    assert info["config"]["vae"] == {**dataclasses.asdict(VAEConfig()), **options, "beta": 2.0}
    assert info["latent_dim"] == 8 and info["data"]["class_names"] == [str(d) for d in range(10)]


def test_format_1_config_upgrade():
    old = {**V1_CONFIG_DEFAULTS, "model": "vae", "width": 32, "beta": 4.0, "gan_loss": "hinge"}
    new = upgrade_v1_config(old)
    # None/0 became the defaults of format 1's day (latent 16, no learned prior), not today's.
    assert new["vae"] == dataclasses.asdict(VAEConfig(width=32, beta=4.0, latent_dim=16, prior="normal"))
    assert "gan_loss" not in new and "extra" not in new and "dcgan" not in new
    dcgan = upgrade_v1_config({**V1_CONFIG_DEFAULTS, "lr": 1e-3, "latent_dim": 64})["dcgan"]
    assert (dcgan["lr"], dcgan["latent_dim"], dcgan["beta1"], dcgan["lr_d"]) == (1e-3, 64, 0.5, None)
    # Options format 1 did not have are off, as they were: no EMA, unconditional; lr None was 2e-4.
    dcgan = upgrade_v1_config(dict(V1_CONFIG_DEFAULTS))["dcgan"]
    assert (dcgan["lr"], dcgan["ema_decay"], dcgan["conditional"]) == (2e-4, 0.0, False)
