"""Model families by name. Add a family: write a module with a `Family` subclass, list it here."""

from __future__ import annotations

from trainer.families.base import ExportGraph, Family
from trainer.families.gan import DCGAN
from trainer.families.vae import VAE

FAMILIES: dict[str, type[Family]] = {cls.name: cls for cls in (DCGAN, VAE)}


def family_class(name: str) -> type[Family]:
    """Look up a family by name, with a message listing the known ones."""
    try:
        return FAMILIES[name]
    except KeyError:
        raise ValueError(f"unknown model {name!r}; choose from {', '.join(FAMILIES)}") from None


__all__ = ["ExportGraph", "FAMILIES", "Family", "family_class"]
