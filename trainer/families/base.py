"""What every model family provides to the training loop and the exporter.

A family owns its options (a dataclass in trainer.families.configs), networks, optimisers
and one training step. The loop knows nothing about GANs or VAEs: it feeds `Batch`es of
whatever the data gives, saves what `state()` returns, and asks for grids. The exporter
asks for `export_graphs()`. A new family (autoencoder, conditional GAN, stroke RVAE) is a
new module registered in `trainer.families.FAMILIES`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import torch
from torch import nn

from trainer.data import Batch, DataError, DataSpec, TrainingData
from trainer.options import FamilyConfig


@dataclass
class ExportGraph:
    """One network to export: its role in the manifest and how to call it."""

    role: str  # "generator", "decoder", "encoder" or "completer"
    module: nn.Module  # eval-mode module whose outputs follow latentforge.manifest
    example_inputs: tuple[torch.Tensor, ...]  # batch >= 2 so the batch axis stays dynamic
    input_names: list[str]
    output_names: list[str]
    make_inputs: Callable[[int, torch.Generator], tuple[torch.Tensor, ...]] = field(repr=False, default=None)  # type: ignore[assignment]
    optional_inputs: tuple[str, ...] = ()  # inputs a caller may leave out (fed as zeros), e.g. labels
    # Dynamic axes beside the batch axis: input name -> {axis: (axis name, smallest size)}, e.g.
    # {"content": {2: ("H", 8), 3: ("W", 8)}} for a graph that takes images of any size; one name
    # on several inputs means one size. ``make_inputs`` should vary those sizes with n, so that
    # parity is measured at more than one.
    dynamic_axes: dict[str, dict[int, tuple[str, int]]] = field(default_factory=dict)


class Family:
    """Base class: subclasses set `name`, `kind`, `value_range`, `needs` and build their networks."""

    name: str = ""
    kind: str = ""  # manifest kind: "gan", "vae", "ae", "completion"
    tasks: dict[str, str] = {}  # manifest tasks: task ("sample", "decode", "encode", "complete") -> graph role
    value_range: tuple[float, float] = (0.0, 1.0)  # range of the images the graphs produce
    needs: tuple[str, ...] = ("images",)  # batch fields the family trains on
    conventions: dict[str, str] = {}  # manifest conventions, e.g. {"mask": MASK_CONVENTION} for completion
    # Images of any size (style models): the manifest's output gets height and width 0.
    any_size: bool = False
    # Whether the quality meter's sample scores (FID and the rest, trainer.evaluation) measure
    # this family during training. Style transfer's do not: its outputs are not samples of the
    # training data's distribution (its own meter scores exported versions).
    meter_scores: bool = True
    # Share of the data a run holds out when its config leaves `hold_out` unset: the quality
    # meter's held-out split (trainer.quality.features.split_indices), so scored images are unseen.
    default_hold_out: float = 0.0

    def __init__(self, config: FamilyConfig, data: DataSpec, device: torch.device) -> None:
        missing = [f for f in self.needs if f not in data.fields]
        if missing:
            raise DataError(f"{self.name} trains on {', '.join(self.needs)}; {data.source} gives "
                            f"{', '.join(data.fields)}")
        self.config = config
        self.data = data  # shapes and classes of the data (data.class_names, data.num_classes)
        self.shape = tuple(data.shape)
        # Classes the networks are conditioned on (0 = unconditional), which is not the data's
        # class count: a family conditions on labels only when its options say so.
        self.num_classes = 0
        self.device = device
        self.latent_dim = int(getattr(config, "latent_dim", 0))
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

    def clip(self, module: nn.Module, max_norm: float) -> float:
        """Clip the module's global grad norm to `max_norm` (0 = off); returns the norm before."""
        if max_norm <= 0:
            return 0.0
        return float(torch.nn.utils.clip_grad_norm_(module.parameters(), max_norm))

    # --- per family ---------------------------------------------------------------------
    def train_step(self, batch: Batch, step: int) -> dict[str, float]:
        """One optimisation step on a batch (images in [0, 1], and whatever else the data
        gives); returns scalar metrics."""
        raise NotImplementedError

    @torch.no_grad()
    def sample(self, z: torch.Tensor) -> torch.Tensor:
        """Images in [0, 1] from latents, in eval mode (for grids)."""
        raise NotImplementedError

    @torch.no_grad()
    def extra_grids(self, batch: Batch) -> dict[str, torch.Tensor]:
        """More grids to save beside the samples (e.g. reconstructions), images in [0, 1]."""
        return {}

    def export_graphs(self) -> list[ExportGraph]:
        raise NotImplementedError

    def latents(self, n: int, generator: torch.Generator) -> torch.Tensor:
        """n latents from the family's prior (the standard normal unless it learns one)."""
        return torch.randn(n, self.latent_dim, generator=generator)

    def prepare_snapshot(self, data: TrainingData, step: int) -> None:
        """Bring what is fitted rather than trained (a learned prior) up to date with the
        networks, before the run is scored and at its end. Nothing by default."""

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
