"""`latentforge train`: flags built from the typed options of TrainConfig and every family.

Each option declared with `trainer.options.option()` (common ones in trainer/config.py, a
family's in trainer/families/configs.py) becomes a flag (`batch_size` -> `--batch-size`),
with its help text, choices and default; a new family's options get flags by being
registered. An option of another family than --model is refused by name.

Options apply in layers: the checkpoint's config (when resuming), then a `--config` JSON
file (nested or flat, see trainer/config.py), then the flags given on the command line; only
flags actually given override, so `--resume --steps 5000` continues a run without repeating
its other settings.

`--resume` continues the run in --out and fails when it holds no checkpoints; `--resume auto`
continues when it holds checkpoints and starts fresh otherwise (the same command line works
for a first attempt and a retry, e.g. a restarted pod with its run folder on a volume).

Exit status: 0 when the run reached --steps or spent its --time-budget (both finish a run;
see trainer/loop.py for how they count across resumes), 2 for bad settings or data, and 128 +
the signal number (143 for SIGTERM, 130 for SIGINT) when a signal stopped it early: the run
then holds a checkpoint at the step it stopped after and continues exactly with `--resume`.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Any

from latentforge.cli import missing_extra, one_line
from trainer.config import TrainConfig
from trainer.data.sources import describe_sources
from trainer.families import FAMILIES
from trainer.options import OptionInfo, option_help, options_of


def option_flags() -> dict[str, tuple[str, list[tuple[str, OptionInfo]]]]:
    """Every option by name: the help group it is listed in, and which config declares it
    ("common" or a family name) with its description there."""
    table: dict[str, tuple[str, list[tuple[str, OptionInfo]]]] = {}
    for info in options_of(TrainConfig):
        table[info.name] = ("options of every run", [("common", info)])
    owners: dict[str, list[tuple[str, OptionInfo]]] = {}
    for family, entry in FAMILIES.items():
        for info in options_of(entry.config):
            if info.name in table:
                raise RuntimeError(f"{family} option {info.name!r} clashes with a common option")
            owners.setdefault(info.name, []).append((family, info))
    for name, declared in owners.items():
        names = [family for family, _ in declared]
        group = "options of every model" if len(names) == len(FAMILIES) else f"{' and '.join(names)} options"
        table[name] = (group, declared)
    return table


def register(sub: argparse._SubParsersAction) -> None:
    """Add the `train` sub-command."""
    p = sub.add_parser(
        "train",
        help="train a model family (runs under torchrun too)",
        description="Train a model family on a data set. Under torchrun, every process runs this command. "
        "The run ends at --steps or when --time-budget is spent, whichever comes first. "
        "Exit status: 0 done (steps reached or budget spent), 2 bad settings or data, 128+signal when "
        "SIGTERM/SIGINT stopped it after writing a checkpoint.",
    )
    p.add_argument("--out", type=Path, required=True, help="run folder (checkpoints, grids, metrics)")
    p.add_argument("--config", type=Path, help="JSON file of training options (nested or flat); flags override it")
    p.add_argument("--style-image", type=Path, metavar="PATH",
                   help="the style family's data: one style image file (PNG or JPEG), read as random crops "
                   "at --image-size; instead of --data")
    p.add_argument("--resume", nargs="?", const="yes", choices=("yes", "auto"), default=None,
                   help="continue from the newest checkpoint in --out (fails without one); "
                   "'--resume auto' continues when --out holds checkpoints and starts fresh otherwise")
    groups: dict[str, Any] = {}
    for name, (group, declared) in option_flags().items():
        if group not in groups:
            groups[group] = p.add_argument_group(group)
        info = declared[0][1]
        flag = "--" + name.replace("_", "-")
        kwargs: dict[str, Any] = {"dest": name, "default": None, "help": option_help(declared)}
        if name == "data":
            kwargs["help"] = f"training data, one of: {describe_sources()} (default {info.default})"
        # Values are checked by TrainConfig.validate (not argparse choices), so that a bad
        # value is reported like any other bad setting: a message and exit status 2.
        if info.type is bool:
            kwargs["action"] = argparse.BooleanOptionalAction
        else:
            kwargs["type"] = info.type
        groups[group].add_argument(flag, **kwargs)
    p.set_defaults(func=run)


STYLE_IMAGE_MODEL = "style"  # the family whose data --style-image gives


def style_image_problem(args: argparse.Namespace, overrides: dict[str, Any]) -> str | None:
    """Why --style-image cannot be used as given (with another model, beside --data, not an image
    file), or None."""
    if args.style_image is None:
        return None
    model = overrides.get("model")
    if model is None and args.config:  # the model may come from the config file
        try:
            from trainer.config import read_config_file

            model = read_config_file(args.config).get("model")
        except (OSError, ValueError):
            model = None
    if model != STYLE_IMAGE_MODEL:
        return (f"--style-image is the data of --model {STYLE_IMAGE_MODEL} (one style image); with --model "
                f"{model or TrainConfig.model} pass --data instead")
    if "data" in overrides:
        return "--style-image and --data both name the training data; pass one of them"
    from trainer.data.folder import IMAGE_SUFFIXES

    path = Path(args.style_image)
    if path.suffix.lower() not in IMAGE_SUFFIXES or not path.is_file():
        return f"--style-image {path}: not an image file (PNG, JPEG, ...)"
    return None


def run(args: argparse.Namespace) -> int:
    """Build the config, train, and report where the outputs are."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        from trainer.checkpoint import CheckpointError, latest_checkpoint, list_checkpoints, load_checkpoint
        from trainer.config import read_config_file
        from trainer.data import DataError
        from trainer.loop import train
        from trainer.stopping import stop_on_signals
    except ModuleNotFoundError as exc:
        return missing_extra("train", "train", exc)
    overrides: dict[str, Any] = {name: getattr(args, name) for name in option_flags()}
    overrides = {k: v for k, v in overrides.items() if v is not None}
    overrides["out"] = args.out
    problem = style_image_problem(args, overrides)
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    if args.style_image is not None:
        overrides["data"] = str(args.style_image)
    resume = {None: False, "yes": True, "auto": "auto"}[args.resume]
    try:
        layers: list[dict[str, Any]] = []
        if resume is True or (resume == "auto" and list_checkpoints(args.out)):
            layers.append(load_checkpoint(latest_checkpoint(args.out))["config"])
        if args.config:
            layers.append(read_config_file(args.config))
        cfg = TrainConfig.from_layers(*layers, overrides)
        with stop_on_signals() as stop:
            result = train(cfg, resume=resume, stop=stop)
    except (DataError, CheckpointError, ValueError, OSError) as exc:
        print(f"error: {one_line(exc)}", file=sys.stderr)
        return 2
    if not result.finished:
        if result.checkpoint is not None:
            print(f"stopped {cfg.model} at step {result.step} of {cfg.steps} ({result.stopped}): "
                  f"checkpoint {result.checkpoint}; continue with --resume")
        return stop.exit_status
    if result.checkpoint is not None:
        why = f" (time budget {cfg.time_budget} spent)" if result.stopped is not None else ""
        print(f"trained {cfg.model} to step {result.step}{why}: checkpoint {result.checkpoint}")
        if result.best_checkpoint is not None and result.best is not None:
            best = result.best
            print(f"best: {result.best_checkpoint} (step {best.get('step')}, FID {best.get('fid', float('nan')):.3f}, "
                  f"real-data floor {best.get('fid_floor', float('nan')):.3f})")
        if result.samples is not None:
            print(f"samples: {result.samples}")
        print(f"metrics: {result.metrics}")
    return 0
