"""Model families by name: the one place a family is registered.

Add a family: its options as a dataclass in `configs.py`, a `Family` subclass in its own
module (networks in trainer/networks/, losses in trainer/losses.py), one `FamilyEntry`
below (which also states the kinds of data it takes, so a job on the wrong kind is refused
before it is queued: `data_problem`), and its options message in JobSpec's `family_options` (proto/latentforge/v1/
training.proto, the field named as the family with "-" written "_"). The CLI then has its
flags, the loop trains it, the exporter exports it, and the TrainingService, its Python client
and `latentforge jobs submit` take it (services/training/families.py reads the proto's table;
tests/test_training_spec.py checks that it agrees with this registry).

This module imports no torch: the command line reads the registry to build its flags, and
a family's module (which needs torch) is imported only when the family is built.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from trainer.data.base import DATA_KINDS, KIND_FIELDS
from trainer.families.configs import (AdaINConfig, AEConfig, CompletionConfig, DCGANConfig, SketchRNNConfig, StyleConfig,
                                      VAEConfig)
from trainer.options import FamilyConfig

if TYPE_CHECKING:
    import torch

    from trainer.config import TrainConfig
    from trainer.data import DataSpec
    from trainer.families.base import Family


@dataclass(frozen=True)
class FamilyEntry:
    """A registered family: its name, options and where its implementation lives."""

    name: str  # lower-case words joined by "-"
    config: type[FamilyConfig]
    implementation: str  # "module:Class" of the Family subclass, imported on first use
    summary: str
    # The kinds of data it takes (keys of trainer.data.base.DATA_KINDS): "images" (a set of
    # images), "image" (one image, read as crops of it), "strokes".
    data_kinds: tuple[str, ...] = ("images",)

    @property
    def data(self) -> str:
        """The batch field its data fills: "images" or "strokes" (the first of the class's `needs`)."""
        return KIND_FIELDS[self.data_kinds[0]]

    def load(self) -> type["Family"]:
        module, _, cls_name = self.implementation.partition(":")
        cls = getattr(importlib.import_module(module), cls_name)
        if cls.name != self.name:
            raise RuntimeError(f"{self.implementation} is named {cls.name!r}, registered as {self.name!r}")
        if any(KIND_FIELDS[kind] != cls.needs[0] for kind in self.data_kinds):
            raise RuntimeError(f"{self.implementation} trains on {cls.needs[0]}, registered for "
                               f"{', '.join(self.data_kinds)}")
        return cls


FAMILIES: dict[str, FamilyEntry] = {
    e.name: e
    for e in (
        FamilyEntry("dcgan", DCGANConfig, "trainer.families.gan:DCGAN", "DCGAN generator and discriminator"),
        FamilyEntry("vae", VAEConfig, "trainer.families.vae:VAE", "convolutional variational autoencoder"),
        FamilyEntry("ae", AEConfig, "trainer.families.ae:AE", "convolutional autoencoder, optionally denoising"),
        FamilyEntry("completion", CompletionConfig, "trainer.families.completion:Completion",
                    "image completion: U-Net (masked image, mask, z) -> image, with a discriminator"),
        FamilyEntry("sketch-rnn", SketchRNNConfig, "trainer.families.sketch_rnn:SketchRNN",
                    "sketch-rnn: recurrent VAE over pen strokes (stroke-5), drawing with a mixture-density LSTM",
                    data_kinds=("strokes",)),
        FamilyEntry("adain", AdaINConfig, "trainer.families.adain:AdaIN",
                    "arbitrary style transfer: adaptive instance normalisation in a seeded random encoder's "
                    "features, a trained decoder (style encoder + stylizer, any style, any image size)"),
        FamilyEntry("style", StyleConfig, "trainer.families.style:OneStyle",
                    "one-style transfer: a fast feed-forward transformer network trained for one style image "
                    "(image -> stylised image, any size)", data_kinds=("image", "images")),
    )
}


def family_entry(name: str) -> FamilyEntry:
    """Look up a family by name, with a message listing the known ones."""
    try:
        return FAMILIES[name]
    except KeyError:
        raise ValueError(f"unknown model {name!r}; choose from {', '.join(FAMILIES)}") from None


def data_problem(family: str, kind: str, data_name: str) -> str | None:
    """Why ``family`` cannot train on data of ``kind`` (named ``data_name`` in the message), or None."""
    kinds = family_entry(family).data_kinds
    if kind in kinds:
        return None
    takes = " or ".join(DATA_KINDS[k] for k in kinds)
    return (f"{family} trains on {takes}; data set {data_name!r} holds {DATA_KINDS[kind]}: choose a data set of "
            f"that kind, or a family that takes {DATA_KINDS[kind]}")


def family_class(name: str) -> type["Family"]:
    """The Family subclass registered under `name` (imports its module, and so torch)."""
    return family_entry(name).load()


def build_family(cfg: "TrainConfig", data: "DataSpec", device: "torch.device") -> "Family":
    """Construct a run's family deterministically from the config's seed, for its data."""
    import torch

    torch.manual_seed(cfg.seed)
    return family_class(cfg.model)(cfg.family, data, device)


def restore_family(payload: dict[str, Any], device: "torch.device | None" = None) -> "Family":
    """A family with a checkpoint's weights (no optimiser state), e.g. for export."""
    import torch

    from trainer.config import TrainConfig
    from trainer.data import DataSpec

    family = build_family(TrainConfig.from_dict(payload["config"]), DataSpec.from_dict(payload["data"]),
                          device or torch.device("cpu"))
    family.load_state(payload, with_optimizers=False)
    return family


__all__ = ["FAMILIES", "FamilyEntry", "build_family", "data_problem", "family_class", "family_entry",
           "restore_family"]
