"""Training steps per second of sketch-rnn on a stroke data set, batches as the training loop makes them.

    python -m scripts.sketch_step_rate [--data kanjivg:simple] [--threads 2] [--steps 300]
        [--set pen_loss=all_steps --set length_buckets=0 ...]

Builds the family and the loop's batches (hold-out 0.2, the run's seed) as `latentforge train`
would, warms up for 20 steps, then times `--steps` training steps. `--set NAME=VALUE` overrides a
family option (e.g. the pen loss, the length buckets, the decoder size).
"""

from __future__ import annotations

import argparse
import time

import torch

from trainer.config import TrainConfig
from trainer.data import load_data
from trainer.distributed import init_distributed
from trainer.families import build_family
from trainer.loop import _Batches, hold_out_data


def step_rate(data: str, threads: int, steps: int, options: dict[str, str]) -> float:
    """Training steps per second at the given family options (values parsed by the config)."""
    torch.set_num_threads(threads)
    cfg = TrainConfig.from_dict({"model": "sketch-rnn", "data": data, "out": "out/step-rate", "hold_out": 0.2,
                                 "sketch-rnn": options})
    torch.manual_seed(cfg.seed)
    train, _ = hold_out_data(load_data(cfg.data, cfg.image_size, cfg.channels, cfg.min_image_size), 0.2)
    family = build_family(cfg, train.spec, torch.device("cpu"))
    family.wrap(lambda m: m)
    batches = _Batches(train, cfg, init_distributed("cpu"))
    for s in range(20):
        family.train_step(batches.at(s)[1], s)
    start = time.perf_counter()
    for s in range(20, 20 + steps):
        family.train_step(batches.at(s)[1], s)
    return steps / (time.perf_counter() - start)


def _value(text: str) -> object:
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return {"true": True, "false": False}.get(text.lower(), text)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", default="kanjivg:simple")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--set", action="append", default=[], metavar="NAME=VALUE", help="a family option")
    args = p.parse_args(argv)
    options = {k: _value(v) for k, v in (s.split("=", 1) for s in args.set)}
    rate = step_rate(args.data, args.threads, args.steps, options)
    print(f"{rate:.1f} steps/s ({args.data}, {args.threads} threads, options {options or 'the defaults'})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
