"""What every model family provides to the training loop and the exporter.

A family owns its networks, optimisers and one training step. The loop knows nothing about
GANs or VAEs: it feeds batches, saves what `state()` returns, and asks for grids. The
exporter asks for `export_graphs()`. A new family (autoencoder, conditional GAN, stroke
RVAE) is a new module registering itself in `trainer.families.FAMILIES`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import torch
from torch import nn

from trainer.config import TrainConfig


@dataclass
class ExportGraph:
    """One network to export: its role in the manifest and how to call it."""

    role: str  # "generator", "decoder" or "encoder"
    module: nn.Module  # eval-mode module whose outputs follow latentforge.manifest
    example_inputs: tuple[torch.Tensor, ...]  # batch >= 2 so the batch axis stays dynamic
    input_names: list[str]
    output_names: list[str]
    make_inputs: Callable[[int, torch.Generator], tuple[torch.Tensor, ...]] = field(repr=False, default=None)  # type: ignore[assignment]
    optional_inputs: tuple[str, ...] = ()  # inputs a caller may leave out (fed as zeros), e.g. labels


class Family:
    """Base class: subclasses set `name`, `kind`, `value_range` and build their networks."""

    name: str = ""
    kind: str = ""  # manifest kind: "gan" or "vae"
    tasks: dict[str, str] = {}  # manifest tasks: task ("sample", "decode", "encode") -> graph role
    value_range: tuple[float, float] = (0.0, 1.0)  # range of the images the graphs produce
    default_latent_dim: int = 100
    default_lr: float = 2e-4
    default_beta1: float = 0.5

    def __init__(self, cfg: TrainConfig, shape: tuple[int, int, int], num_classes: int, device: torch.device) -> None:
        self.cfg = cfg
        self.shape = shape
        self.num_classes = num_classes
        self.device = device
        self.latent_dim = cfg.latent_dim or self.default_latent_dim
        self.lr = cfg.lr or self.default_lr
        self.betas = (self.default_beta1 if cfg.beta1 is None else cfg.beta1, cfg.beta2)
        self.modules: dict[str, nn.Module] = {}
        self.optimizers: dict[str, torch.optim.Optimizer] = {}
        self.train_modules: dict[str, nn.Module] = {}  # the (possibly DDP-wrapped) ones

    # --- set-up -------------------------------------------------------------------------
    def wrap(self, wrapper: Callable[[nn.Module], nn.Module]) -> None:
        """Wrap each trained module (e.g. in DistributedDataParallel)."""
        self.train_modules = {k: wrapper(m) for k, m in self.modules.items()}

    def state(self) -> dict[str, Any]:
        return {
            "modules": {k: m.state_dict() for k, m in self.modules.items()},
            "optimizers": {k: o.state_dict() for k, o in self.optimizers.items()},
        }

    def load_state(self, state: dict[str, Any], with_optimizers: bool = True) -> None:
        for k, m in self.modules.items():
            m.load_state_dict(state["modules"][k])
        if with_optimizers:
            for k, o in self.optimizers.items():
                o.load_state_dict(state["optimizers"][k])

    def clip(self, module: nn.Module) -> float:
        """Clip the module's global grad norm to cfg.grad_clip; returns the norm before."""
        if self.cfg.grad_clip <= 0:
            return 0.0
        return float(torch.nn.utils.clip_grad_norm_(module.parameters(), self.cfg.grad_clip))

    # --- per family ---------------------------------------------------------------------
    def train_step(self, batch: torch.Tensor, step: int) -> dict[str, float]:
        """One optimisation step on a batch of images in [0, 1]; returns scalar metrics."""
        raise NotImplementedError

    @torch.no_grad()
    def sample(self, z: torch.Tensor) -> torch.Tensor:
        """Images in [0, 1] from latents, in eval mode (for grids)."""
        raise NotImplementedError

    @torch.no_grad()
    def extra_grids(self, batch: torch.Tensor) -> dict[str, torch.Tensor]:
        """More grids to save beside the samples (e.g. reconstructions), images in [0, 1]."""
        return {}

    def export_graphs(self) -> list[ExportGraph]:
        raise NotImplementedError

    def latents(self, n: int, generator: torch.Generator) -> torch.Tensor:
        return torch.randn(n, self.latent_dim, generator=generator)

    def _eval(self):
        return _EvalMode(list(self.modules.values()))


class _EvalMode:
    """Context manager: modules in eval mode inside, restored to train mode after."""

    def __init__(self, modules: list[nn.Module]) -> None:
        self.modules = modules

    def __enter__(self) -> None:
        for m in self.modules:
            m.eval()

    def __exit__(self, *exc: object) -> None:
        for m in self.modules:
            m.train()
