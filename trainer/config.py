"""Training configuration: one typed dataclass, loaded from a JSON file and overridden by flags.

The resolved config is saved in every checkpoint, so `--resume` and the exporter rebuild
exactly the networks that were trained.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any


@dataclass
class TrainConfig:
    """Everything a training run needs. Defaults train a small model on a laptop CPU."""

    model: str = "dcgan"  # family name: see trainer.families.FAMILIES
    data: str = "mnist5k"  # "mnist5k", a folder of images, or a .npz/.npy file
    out: Path = Path("runs/run")
    steps: int = 3000
    batch_size: int = 64
    seed: int = 0
    # Data shaping (folders and arrays): target size and channels; None keeps the data's own.
    image_size: int | None = None
    channels: int | None = None  # 1 = grayscale, 3 = RGB
    min_image_size: int = 8  # source images smaller than this are refused
    # Optimisation.
    lr: float | None = None  # None = the family's default (GAN 2e-4, VAE 1e-3)
    lr_d: float | None = None  # discriminator lr (GAN); None = lr
    beta1: float | None = None  # Adam beta1; None = the family's default (GAN 0.5, VAE 0.9)
    beta2: float = 0.999
    grad_clip: float = 10.0  # max global grad norm per network; 0 disables
    # Model size.
    latent_dim: int = 0  # 0 = the family's default
    width: int = 64  # base channel width of the networks
    # GAN.
    gan_loss: str = "nonsaturating"
    # VAE.
    beta: float = 1.0  # weight of the KL term in the ELBO
    kl_warmup_steps: int = 500  # KL weight rises linearly from 0 to beta over these steps
    recon: str = "auto"  # "bce", "mse" or "auto" (bce for 1 channel, mse otherwise)
    # Outputs.
    sample_every: int = 250
    checkpoint_every: int = 500
    keep_checkpoints: int = 3
    grid_size: int = 64  # images in each sample grid
    log_every: int = 10
    progress: bool = True
    threads: int = 0  # torch intra-op threads per process; 0 = torch's default
    device: str = "auto"  # "auto" (CUDA when present), "cpu" or "cuda"
    device_data_max_bytes: int = 2 << 30  # data sets up to this size are kept on the GPU
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.out = Path(self.out)

    def validate(self) -> None:
        """Refuse settings that cannot train, before any work starts."""
        problems = []
        if self.steps < 1:
            problems.append(f"steps must be >= 1 (got {self.steps})")
        if self.batch_size < 2:
            problems.append(f"batch_size must be >= 2 (got {self.batch_size})")
        if self.channels not in (None, 1, 3):
            problems.append(f"channels must be 1 or 3 (got {self.channels})")
        if self.image_size is not None and self.image_size < 8:
            problems.append(f"image_size must be >= 8 (got {self.image_size})")
        if self.lr is not None and self.lr <= 0:
            problems.append("lr must be > 0")
        if self.lr_d is not None and self.lr_d <= 0:
            problems.append("lr_d must be > 0")
        for name in ("beta2", "sample_every", "checkpoint_every", "grid_size", "width", "log_every"):
            if getattr(self, name) <= 0:
                problems.append(f"{name} must be > 0")
        if self.recon not in ("auto", "bce", "mse"):
            problems.append(f"recon must be auto, bce or mse (got {self.recon!r})")
        if self.device not in ("auto", "cpu", "cuda"):
            problems.append(f"device must be auto, cpu or cuda (got {self.device!r})")
        if problems:
            raise ValueError("bad training config: " + "; ".join(problems))

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["out"] = str(self.out)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "TrainConfig":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown training config keys: {', '.join(unknown)}")
        return cls(**data)

    @classmethod
    def load(cls, path: Path, **overrides: Any) -> "TrainConfig":
        """Read a JSON config file, then apply non-None overrides (from flags)."""
        data = json.loads(Path(path).read_text())
        data.update({k: v for k, v in overrides.items() if v is not None})
        return cls.from_dict(data)
