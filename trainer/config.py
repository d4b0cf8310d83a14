"""Training configuration: the options every run has, plus the chosen family's own options.

As a dict (run.json, checkpoints, the manifest's `training`, a `--config` file) it is nested:
the common options at the top and the family's under its name,

    {"model": "dcgan", "data": "mnist5k", "steps": 3000, ...,
     "dcgan": {"latent_dim": 100, "width": 64, "gan_loss": "nonsaturating", "lr": 0.0002, ...}}

A config file may also be flat (`{"model": "vae", "beta": 4.0}`): keys that are not common
options go to the chosen family. Layers (checkpoint, file, flags) apply in order, option by
option; a layer that changes the model starts that family from its defaults. An option of
another family is refused by name, so `--beta` with `--model dcgan` is an error, not ignored.

The resolved config is saved in every checkpoint, so `--resume` and the exporter rebuild
exactly the networks that were trained. Checkpoints of format 1 held one flat config with
every family's options (None/0 meaning "the family's default"); `upgrade_v1_config` turns
one into this shape.
"""

from __future__ import annotations

import dataclasses
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from trainer.families import FAMILIES, family_entry
from trainer.options import FamilyConfig, check_options, coerce_numbers, option, options_of


@dataclass
class TrainConfig:
    """Everything a training run needs. Defaults train a small model on a laptop CPU."""

    model: str = option("dcgan", "model family", choices=tuple(FAMILIES), fixed=True)
    data: str = option("mnist5k", "data: a built-in set, a folder of images or a .npz/.npy file", fixed=True)
    out: Path = field(default=Path("runs/run"))  # the run folder; a flag of its own, not an option
    steps: int = option(3000, "total optimisation steps", at_least=1)
    batch_size: int = option(64, "examples per step and process", at_least=2)
    seed: int = option(0, "seed for weights, data order and noise", fixed=True)
    hold_out: float | None = option(None, "share of the data kept out of training: the quality meter's held-out "
                                    "split (the same images for the same data), so the images it scores were "
                                    "never trained on; default: the family's (completion 0.2, others 0)",
                                    at_least=0, fixed=True)
    # Data shaping (folders and arrays): target size and channels; None keeps the data's own.
    image_size: int | None = option(None, "resize/crop images to this square size (folders: 64)", at_least=8,
                                    fixed=True)
    channels: int | None = option(None, "1 = grayscale, 3 = RGB (default: the data's own; needed for mixed "
                                  "folders)", choices=(1, 3), fixed=True)
    min_image_size: int = option(8, "refuse source images smaller than this", at_least=1)
    # Outputs.
    sample_every: int = option(250, "write a sample grid every N steps", at_least=1)
    checkpoint_every: int = option(500, "write a checkpoint every N steps", at_least=1)
    keep_checkpoints: int = option(3, "step checkpoints to keep, 0 = all (checkpoints/best.pt is kept apart)",
                                   at_least=0)
    grid_size: int = option(64, "images per sample grid", at_least=1)
    log_every: int = option(10, "metrics line every N steps", above=0)
    progress: bool = option(True, "progress bar on a terminal, a plain line every --progress-every s otherwise")
    progress_every: float = option(10.0, "seconds between progress lines when the output is not a terminal",
                                   above=0)
    # Quality during training (trainer/quality): scores in metrics.jsonl, checkpoints/best.pt.
    eval_every: int = option(500, "score samples with the quality meter every N steps and at the end, 0 = off",
                             at_least=0)
    eval_samples: int = option(500, "samples per evaluation", at_least=10)
    # When to stop: --steps or --time-budget, whichever comes first.
    time_budget: str | None = option(None, "stop after this much training time, e.g. 90s, 6m, 1h30m; counted "
                                     "across resumes, 0 = no budget")
    # Where and how it runs.
    threads: int = option(0, "torch threads per process, 0 = torch's default", at_least=0)
    device: str = option("auto", "auto (CUDA when present), cpu or cuda", choices=("auto", "cpu", "cuda"))
    device_data_max_bytes: int = option(2 << 30, "data sets up to this size are kept on the GPU", at_least=0)
    # The chosen family's options; None = its defaults.
    family: FamilyConfig | None = field(default=None)

    def __post_init__(self) -> None:
        self.out = Path(self.out)
        coerce_numbers(self)
        if isinstance(self.time_budget, (int, float)) and not isinstance(self.time_budget, bool):
            self.time_budget = f"{self.time_budget:g}"  # a number of seconds, e.g. from a JSON file
        entry = family_entry(self.model) if self.model in FAMILIES else None
        if self.family is None and entry is not None:
            self.family = entry.config()

    def validate(self) -> None:
        """Refuse settings that cannot train, before any work starts."""
        if self.model not in FAMILIES:
            family_entry(self.model)  # raises, naming the known families
        problems = check_options(self)
        if isinstance(self.hold_out, (int, float)) and not isinstance(self.hold_out, bool) and self.hold_out >= 1:
            problems.append(f"hold_out must be < 1, a share of the data (got {self.hold_out})")
        if isinstance(self.time_budget, str) and self.time_budget.strip():
            try:
                parse_duration(self.time_budget)
            except ValueError as exc:
                problems.append(f"time_budget: {exc}")
        entry = family_entry(self.model)
        if not isinstance(self.family, entry.config):
            problems.append(f"{self.model} needs a {entry.config.__name__}, got {type(self.family).__name__}")
        else:
            problems += check_options(self.family) + self.family.problems()
        if problems:
            raise ValueError("bad training config: " + "; ".join(problems))

    @property
    def time_budget_seconds(self) -> float | None:
        """The time budget in seconds, or None when the run has none (unset or 0)."""
        if not self.time_budget or not self.time_budget.strip():
            return None
        seconds = parse_duration(self.time_budget)
        return seconds if seconds > 0 else None

    def to_dict(self) -> dict[str, Any]:
        """The nested form: common options, and the family's under the family's name."""
        data = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "family"}
        data["out"] = str(self.out)
        data[self.model] = self.family.to_dict() if self.family is not None else {}
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "TrainConfig":
        """A config from one dict, nested or flat (see the module docstring)."""
        return cls.from_layers(data)

    @classmethod
    def from_layers(cls, *layers: Mapping[str, Any]) -> "TrainConfig":
        """Apply dicts in order (e.g. checkpoint, config file, flags), each nested or flat."""
        common_names = {f.name for f in dataclasses.fields(cls)} - {"family"}
        model = cls.model
        common: dict[str, Any] = {}
        family: dict[str, Any] = {}
        for layer in layers:
            if layer.get("model", model) != model:
                model = layer["model"]
                family = {}  # another family: its own defaults, then what later layers say
            entry = family_entry(model)
            own = {o.name for o in options_of(entry.config)}
            for key, value in layer.items():
                if key in common_names:
                    common[key] = value
                elif key == model:
                    if not isinstance(value, Mapping):
                        raise ValueError(f"the {model!r} options must be an object, got {type(value).__name__}")
                    family.update(_family_options(model, own, value))
                elif key in FAMILIES:
                    raise ValueError(f"options for {key!r} given, but the model is {model!r}")
                else:
                    family.update(_family_options(model, own, {key: value}))
        common["model"] = model
        return cls(**common, family=family_entry(model).config(**family))

    @classmethod
    def load(cls, path: Path, **overrides: Any) -> "TrainConfig":
        """Read a JSON config file, then apply non-None overrides (from flags)."""
        return cls.from_layers(read_config_file(path), {k: v for k, v in overrides.items() if v is not None})


_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)([hms])")
_UNIT_SECONDS = {"h": 3600.0, "m": 60.0, "s": 1.0}


def parse_duration(text: str) -> float:
    """Seconds in a duration such as "90s", "6m", "1h30m", "1.5h" or "45" (plain seconds)."""
    s = str(text).strip().lower().replace(" ", "")
    try:
        seconds = float(s)
    except ValueError:
        parts = _DURATION_PART.findall(s)
        units = [unit for _, unit in parts]
        if not parts or "".join(n + u for n, u in parts) != s or len(set(units)) != len(units):
            raise ValueError(f"{text!r} is not a duration; write e.g. 90s, 6m, 1h30m or a number of seconds") from None
        seconds = sum(float(n) * _UNIT_SECONDS[u] for n, u in parts)
    if not seconds >= 0 or seconds == float("inf"):
        raise ValueError(f"{text!r} is not a duration; it must be a finite number of seconds >= 0")
    return seconds


def read_config_file(path: Path) -> dict[str, Any]:
    """A JSON config file as a dict, with a clear error when it is not one."""
    try:
        data = json.loads(Path(path).read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path}: a config file holds one JSON object")
    return data


def _family_options(model: str, own: set[str], values: Mapping[str, Any]) -> dict[str, Any]:
    for key in values:
        if key not in own:
            others = [name for name, e in FAMILIES.items() if key in {o.name for o in options_of(e.config)}]
            if others:
                raise ValueError(f"{key!r} is an option of {' and '.join(others)}, not of {model!r}")
            raise ValueError(f"unknown training option {key!r}")
    return dict(values)


def fixed_options(cfg: TrainConfig) -> dict[str, Any]:
    """The options a resumed run must keep (they shape the networks, the data or its order),
    by name: common ones as they are, the family's as "<model>.<option>"."""
    found = {o.name: getattr(cfg, o.name) for o in options_of(TrainConfig) if o.fixed}
    if cfg.family is not None:
        found.update({f"{cfg.model}.{o.name}": getattr(cfg.family, o.name)
                      for o in options_of(type(cfg.family)) if o.fixed})
    return found


# Format-1 checkpoints: sentinels that meant "the family's default".
_V1_DEFAULT_SENTINELS = {"lr": (None, 0, 0.0), "latent_dim": (0,), "beta1": (None,)}
# Format-1 runs trained with the family defaults of their day; where today's differ (or the
# option came later), those are what the run had, so that it resumes and exports unchanged.
_V1_FAMILY_DEFAULTS = {"dcgan": {"lr": 2e-4, "ema_decay": 0.0, "conditional": False},
                       "vae": {"latent_dim": 16, "prior": "normal"}}
# Family options added after format-2 runs were saved without them (format 2 spells out every
# option, so a missing one is younger than the run): the value such a run had, not today's
# default, so that it resumes and exports as it trained (a VAE without a fitted prior, a
# completion model without a z = 0 candidate, a sketch-rnn's pen loss over every padded step
# and batches as drawn).
ADDED_LATER = {"vae": {"prior": "normal"}, "completion": {"first_candidate": "sample"},
               "sketch-rnn": {"pen_loss": "all_steps", "length_buckets": 0}}


def with_options_added_later(config: Mapping[str, Any]) -> dict[str, Any]:
    """A stored nested config with the options its run predates set to what the run had."""
    config = dict(config)
    model = config.get("model", "dcgan")
    if isinstance(config.get(model), Mapping):
        config[model] = {**ADDED_LATER.get(model, {}), **config[model]}
    return config


def upgrade_v1_config(old: Mapping[str, Any]) -> dict[str, Any]:
    """A format-1 flat config (every family's options, `extra`) in today's nested shape."""
    model = old.get("model", "dcgan")
    common_names = {f.name for f in dataclasses.fields(TrainConfig)} - {"family"}
    new: dict[str, Any] = {k: v for k, v in old.items() if k in common_names}
    own = {o.name for o in options_of(family_entry(model).config)}
    new[model] = {
        **_V1_FAMILY_DEFAULTS.get(model, {}),
        **{k: v for k, v in old.items() if k in own and v not in _V1_DEFAULT_SENTINELS.get(k, ())},
    }
    return TrainConfig.from_dict(new).to_dict()  # every option spelled out, as format 2 stores it
