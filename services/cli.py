"""``latentforge serve | serve-training | generate | interpolate | complete | stylize | models``: the services'
sub-commands.

Imports nothing heavy at module import time; each command imports what it needs when run.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

DEFAULT_TARGET = "localhost:50051"
TOKEN_ENV = "LATENTFORGE_TOKEN"  # bearer token for the client commands


def register(subparsers: Any) -> None:
    """Add the service's sub-commands to the ``latentforge`` parser."""
    from services.generation.config import ServeConfig
    from services.rpc.settings import add_flags
    from services.training.config import TRAINING_FIELDS, TrainingConfig

    p = subparsers.add_parser("serve", help="serve a model repository over gRPC",
                              description="Serve models/<name>/<version>/ over gRPC. Settings: CLI > "
                                          "LATENTFORGE_* environment > --config file > defaults.")
    p.add_argument("--config", type=Path, help="JSON or TOML settings file")
    add_flags(p, ServeConfig)
    t = p.add_argument_group("training service (with --training)")
    t.add_argument("--training", action="store_true",
                   help="also host the TrainingService on the same port, publishing into --models")
    add_flags(t, TrainingConfig, only=TRAINING_FIELDS)
    p.set_defaults(func=_serve)

    st = subparsers.add_parser("serve-training", help="run training jobs over gRPC (the TrainingService)",
                               description="Train models as jobs submitted over gRPC, publishing into the model "
                                           "repository. Settings: CLI > LATENTFORGE_* environment > --config file "
                                           "([training] table) > defaults.")
    st.add_argument("--config", type=Path, help="JSON or TOML settings file")
    add_flags(st, TrainingConfig)
    st.set_defaults(func=_serve_training)

    g = subparsers.add_parser("generate", help="generate samples from a running server into a PNG grid")
    _client_args(g)
    g.add_argument("--count", type=int, default=16)
    g.add_argument("--seed", type=int, help="base seed (default: the server picks one)")
    g.add_argument("--truncation", type=float, help="truncation psi (>= 0.05)")
    g.add_argument("--label", help="class of a conditional model: its label (7) or its name (seven; "
                   "`latentforge models` lists them)")
    g.add_argument("--out", type=Path, default=Path("grid.png"), help="output PNG (default grid.png)")
    g.set_defaults(func=_generate)

    i = subparsers.add_parser("interpolate", help="frames between two seeds, as a PNG strip and/or GIF")
    _client_args(i)
    i.add_argument("--from-seed", type=int, required=True)
    i.add_argument("--to-seed", type=int, required=True)
    i.add_argument("--steps", type=int, default=8)
    i.add_argument("--slerp", action="store_true", help="spherical instead of linear interpolation")
    i.add_argument("--truncation", type=float)
    i.add_argument("--label", help="class of a conditional model: its label or its name")
    i.add_argument("--out", type=Path, default=Path("strip.png"), help="output PNG strip (default strip.png)")
    i.add_argument("--gif", type=Path, help="also write an animated GIF")
    i.set_defaults(func=_interpolate)

    c = subparsers.add_parser("complete", help="fill the hole of an image: a PNG strip of the input (hole shown) "
                              "and the candidates", description="Fill the hole of an image with a completion "
                              "model, a VAE or an autoencoder on a running server. The mask is a PNG of the image's "
                              "size (white = known, black = hole) or one or more --box rectangles to fill.")
    _client_args(c)
    c.add_argument("--image", type=Path, required=True, help="PNG of the model's image size")
    holes = c.add_mutually_exclusive_group(required=True)
    holes.add_argument("--mask", type=Path, help="mask PNG: white (>= 128) = known pixel, black = hole")
    holes.add_argument("--box", action="append", type=_box, metavar="X,Y,W,H",
                       help="a rectangle to fill (columns X..X+W-1, rows Y..Y+H-1); repeat for more")
    c.add_argument("--count", type=int, default=4, help="candidates (default 4)")
    c.add_argument("--seed", type=int, help="base seed (default: the server picks one)")
    c.add_argument("--iterations", type=int, default=0,
                   help="rounds of the iterative method on a VAE or autoencoder (default: the server's, 8)")
    c.add_argument("--label", help="class of a conditional decoder: its label or its name")
    c.add_argument("--out", type=Path, default=Path("completion.png"),
                   help="output PNG strip (default completion.png)")
    c.set_defaults(func=_complete)

    y = subparsers.add_parser("stylize", help="paint an image in a style on a running server (a PNG)",
                              description="Paint a content image in a style with a style model on a running "
                              "server. The style is a PNG, or the id of a style sent before (printed after each "
                              "call); repeat --style (with --weight) for a weighted mix.")
    connection_args(y)
    y.add_argument("--model", help="style model (default: the server's only model that supports Stylize)")
    y.add_argument("--version", type=int, help="model version (default: newest)")
    content = y.add_mutually_exclusive_group(required=True)
    content.add_argument("--content", type=Path, help="content PNG, any size up to the server's limit")
    content.add_argument("--content-sample", metavar="SAMPLE_ID", help="a stored image sample as the content")
    y.add_argument("--style", action="append", default=[], metavar="PNG|STYLE_ID",
                   help="style image or style id; repeat for a mix (none for a one-style model)")
    y.add_argument("--weight", action="append", type=float, default=[],
                   help="weight of each --style in a mix, in their order (default 1 each)")
    y.add_argument("--alpha", type=float, help="style strength in [0, 1] (default 1: full style)")
    y.add_argument("--preserve-color", action="store_true", help="keep the content's colours")
    y.add_argument("--mask", type=Path, help="mask PNG of the content's size: white (>= 128) = stylise, black = keep")
    y.add_argument("--out", type=Path, default=Path("stylized.png"), help="output PNG (default stylized.png)")
    y.set_defaults(func=_stylize)

    d = subparsers.add_parser("draw", help="draw with a stroke model: SVG (and PNG, animated GIF) of each drawing",
                              description="Draw with a stroke model (sketch-rnn) on a running server; the points "
                              "stream as the pen moves. With --prefix, continue a partial drawing instead.")
    _client_args(d)
    d.add_argument("--seed", type=int, help="base seed (default: the server picks one); drawing i uses seed + i")
    d.add_argument("--count", type=int, default=1, help="drawings (default 1); files get -0, -1... suffixes")
    d.add_argument("--temperature", type=float, help="0.001..2: low = the likeliest strokes (default: the model's)")
    d.add_argument("--max-steps", type=int, default=0, help="most points per drawing (default: the model's)")
    d.add_argument("--prefix", type=Path, help="JSON file of points [[dx, dy, pen], ...] (pen 0 down, 1 lifted) "
                   "to continue")
    d.add_argument("--out", type=Path, default=Path("drawing.svg"), help="output SVG (default drawing.svg)")
    d.add_argument("--png", type=Path, help="also write a PNG")
    d.add_argument("--gif", type=Path, help="also write an animated GIF of the pen drawing it")
    d.set_defaults(func=_draw)

    m = subparsers.add_parser("models", help="list the models a running server has loaded, with their quality")
    connection_args(m)
    m.add_argument("--json", action="store_true", help="print every field as JSON")
    m.set_defaults(func=_models)


def connection_args(p: argparse.ArgumentParser, default_target: str = DEFAULT_TARGET,
                    timeout_help: str = "seconds per call") -> None:
    """The flags every client command shares: address, timeout, TLS/mTLS files, bearer token."""
    p.add_argument("--target", default=default_target, help=f"server address (default {default_target})")
    p.add_argument("--timeout", type=float, default=30.0, help=timeout_help)
    p.add_argument("--tls", action="store_true", help="connect with TLS (system CA roots unless --tls-ca)")
    p.add_argument("--tls-ca", type=Path, help="PEM CA that signed the server's certificate (implies --tls)")
    p.add_argument("--tls-cert", type=Path, help="PEM client certificate for mutual TLS")
    p.add_argument("--tls-key", type=Path, help="PEM key of --tls-cert")
    p.add_argument("--token-file", type=Path,
                   help=f"file holding a bearer token (default: the {TOKEN_ENV} environment variable)")


def _client_args(p: argparse.ArgumentParser) -> None:
    connection_args(p)
    p.add_argument("--model", required=True, help="model name (see `latentforge models`)")
    p.add_argument("--version", type=int, help="model version (default: newest)")


def connect(args: argparse.Namespace, client_class: Any = None):
    """A client (GenerationClient by default) from the connection flags; the token from
    --token-file or the environment."""
    import os

    if client_class is None:
        from services.generation.client import GenerationClient as client_class

    token = args.token_file.read_text().strip() if args.token_file else os.environ.get(TOKEN_ENV) or None
    return client_class(args.target, timeout_s=args.timeout, tls=args.tls, tls_ca=args.tls_ca,
                        tls_cert=args.tls_cert, tls_key=args.tls_key, token=token)


def _serve(args: argparse.Namespace) -> int:
    if args.training:
        _quiet_fork_notices()
    from services.generation.config import ConfigError, ServeConfig, load_config
    from services.rpc.logs import configure_logging
    from services.rpc.security import SecurityConfigError
    from services.rpc.settings import flag_overrides
    from services.generation.server import serve

    try:
        config = load_config(args.config, overrides=flag_overrides(ServeConfig, args))
    except ConfigError as exc:
        print(f"latentforge serve: {exc}", file=sys.stderr)
        return 2
    training = None
    if args.training:
        try:
            training = _training_beside(args, config)
        except ConfigError as exc:
            print(f"latentforge serve: {exc}", file=sys.stderr)
            return 2
    if training is not None and config.processes != 1:
        print("latentforge serve: --training runs in one process; drop --processes, or run "
              "`latentforge serve-training` beside the generation processes", file=sys.stderr)
        return 2
    configure_logging(config.log_level, config.log_json)
    try:
        if config.processes != 1:
            from services.generation.processes import serve_processes

            return serve_processes(config)
        return serve(config, training)
    except (SecurityConfigError, ValueError, OSError) as exc:
        # Unusable TLS/token files, an unknown provider, a port in use: one line, no traceback.
        print(f"latentforge serve: error: {exc}", file=sys.stderr)
        return 2


def _training_beside(args: argparse.Namespace, config: Any) -> Any:
    """The TrainingService's settings in `serve --training`: its own flags, the environment,
    the config file's [training] table if it has one; it publishes into the served --models."""
    import os

    from services.rpc.settings import ENV_PREFIX, read_settings_file
    from services.training.config import TRAINING_FIELDS, load_training_config

    environ = {k: v for k, v in os.environ.items() if k != ENV_PREFIX + "CONFIG"}
    path = args.config or (Path(os.environ[ENV_PREFIX + "CONFIG"]) if os.environ.get(ENV_PREFIX + "CONFIG") else None)
    table = read_settings_file(path).get("training") if path is not None else None
    file_layer = None
    if isinstance(table, dict):
        file_layer = {k: v for k, v in table.items() if k in TRAINING_FIELDS}
    overrides = {**(file_layer or {}), **{k: getattr(args, k) for k in TRAINING_FIELDS if getattr(args, k) is not None},
                 "models": config.models}
    return load_training_config(environ=environ, overrides=overrides)


def _quiet_fork_notices() -> None:
    """A server that starts job processes forks while gRPC threads run, and gRPC then prints
    an info line that is not one of the server's JSON log lines; only its errors are wanted
    (set before grpc is imported; an explicit GRPC_VERBOSITY wins)."""
    import os

    os.environ.setdefault("GRPC_VERBOSITY", "ERROR")


def _serve_training(args: argparse.Namespace) -> int:
    _quiet_fork_notices()
    from services.rpc.logs import configure_logging
    from services.rpc.security import SecurityConfigError
    from services.rpc.settings import ConfigError, flag_overrides
    from services.training.config import TrainingConfig, load_training_config
    from services.training.server import serve_training

    try:
        config = load_training_config(args.config, overrides=flag_overrides(TrainingConfig, args))
    except ConfigError as exc:
        print(f"latentforge serve-training: {exc}", file=sys.stderr)
        return 2
    configure_logging(config.log_level, config.log_json)
    try:
        return serve_training(config)
    except (SecurityConfigError, ValueError, OSError) as exc:
        print(f"latentforge serve-training: error: {exc}", file=sys.stderr)
        return 2


def _rpc_error(exc: Any) -> int:
    from latentforge.cli import one_line

    print(f"error: {one_line(exc)}", file=sys.stderr)
    return 1


def _label(client: Any, args: argparse.Namespace) -> int | None:
    """--label as an index: a number as it is, a class name looked up in ListModels."""
    if args.label is None:
        return None
    text = str(args.label).strip()
    if text.lstrip("-").isdigit():
        return int(text)
    versions = client.list_models(args.model)
    info = next((m for m in versions if (m.version == args.version if args.version else m.latest)), None)
    if info is None:
        version = f" version {args.version}" if args.version else ""
        raise ValueError(f"model {args.model}{version} is not loaded (see `latentforge models`)")
    return info.label_of(text)


def _generate(args: argparse.Namespace) -> int:
    import grpc

    from latentforge.images import grid

    if args.count < 1:
        print(f"error: --count must be at least 1, got {args.count}", file=sys.stderr)
        return 2
    try:
        with connect(args) as client:
            samples, result = _generate_pages(client, args)
            info = _model_info(client, result.model, result.version)
    except grpc.RpcError as exc:
        return _rpc_error(exc)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    args.out.parent.mkdir(parents=True, exist_ok=True)
    grid([s.image.tensor for s in samples], info.value_range).save(args.out)
    print(f"{args.out}: {len(samples)} samples from {result.model} v{result.version}, seed {result.seed}")
    return 0


def _generate_pages(client: Any, args: argparse.Namespace) -> tuple[list, Any]:
    """``--count`` samples, in requests of at most the server's limit: page k asks for the samples
    from index k * limit on, with seed (seed + k * limit) mod 2^64, which are exactly the samples of
    one request of that size (the proto's seed rule), on the version the first page was served by."""
    import secrets

    label = _label(client, args)
    limit = client.max_count() if args.count > 1 else 1
    seed = args.seed if args.seed is not None else (secrets.randbits(64) if args.count > limit else None)
    first = client.generate(args.model, min(args.count, limit), seed=seed, version=args.version,
                            truncation=args.truncation, label=label, fmt="tensor")
    samples = list(first.samples)
    while len(samples) < args.count:
        page = client.generate(args.model, min(args.count - len(samples), limit),
                               seed=(first.seed + len(samples)) % 2**64, version=first.version,
                               truncation=args.truncation, label=label, fmt="tensor")
        samples += page.samples
    return samples, first


def _interpolate(args: argparse.Namespace) -> int:
    import grpc

    from latentforge.images import save_gif, strip
    from services.generation.client import Endpoint

    try:
        with connect(args) as client:
            result = client.interpolate(args.model, Endpoint(seed=args.from_seed), Endpoint(seed=args.to_seed),
                                        args.steps, slerp=args.slerp, version=args.version,
                                        truncation=args.truncation, label=_label(client, args), fmt="tensor")
            info = _model_info(client, result.model, result.version)
    except grpc.RpcError as exc:
        return _rpc_error(exc)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    frames = [s.image.tensor for s in result.samples]
    for path in (args.out, args.gif):
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
    strip(frames, info.value_range).save(args.out)
    print(f"{args.out}: {len(frames)} frames from {result.model} v{result.version}")
    if args.gif:
        save_gif(frames, info.value_range, str(args.gif))
        print(f"{args.gif}: animated")
    return 0


def _box(text: str) -> tuple[int, int, int, int]:
    parts = text.split(",")
    if len(parts) != 4 or not all(p.strip().lstrip("-").isdigit() for p in parts):
        raise argparse.ArgumentTypeError(f"{text!r} is not X,Y,W,H (four integers, e.g. 0,14,28,14)")
    x, y, w, h = (int(p) for p in parts)
    return x, y, w, h


def _complete(args: argparse.Namespace) -> int:
    import grpc
    import numpy as np

    from latentforge.images import decode_png, strip
    from services.errors import InvalidArgument
    from services.generation.completion import mask_array
    from services.generation.requests import HolesInput

    try:
        image = args.image.read_bytes()
        mask = args.mask.read_bytes() if args.mask else list(args.box)
    except OSError as exc:
        print(f"error: cannot read {exc.filename}: {exc.strerror}", file=sys.stderr)
        return 2
    try:
        with connect(args) as client:
            result = client.complete(args.model, image, mask, args.count, seed=args.seed, version=args.version,
                                     iterations=args.iterations, label=_label(client, args), fmt="tensor")
            info = _model_info(client, result.model, result.version)
        c, h, w = info.shape
        shown = decode_png(image, info.shape, info.value_range)
        known = mask_array(HolesInput(mask) if isinstance(mask, list) else mask, h, w)
    except grpc.RpcError as exc:
        return _rpc_error(exc)
    except (ValueError, InvalidArgument) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    lo, hi = info.value_range

    def gray(x: np.ndarray) -> np.ndarray:  # the strip is RGB, so the hole can be shown in red
        return np.repeat(x, 3, axis=0) if c == 1 else x

    hole = np.array([hi, lo, lo], dtype=np.float32)[:, None, None]  # the hole in red
    frames = [known * gray(shown) + (1 - known) * (0.5 * gray(shown) + 0.5 * hole)]
    frames += [gray(s.image.tensor) for s in result.samples]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    strip(frames, info.value_range).save(args.out)
    print(f"{args.out}: the input (hole in red) and {len(result.samples)} candidates from {result.model} "
          f"v{result.version}, seed {result.seed}")
    return 0


def _stylize(args: argparse.Namespace) -> int:
    """``latentforge stylize``: one Stylize call, the result written as a PNG; errors in one line."""
    import re

    import grpc

    if args.weight and len(args.weight) != len(args.style):
        print(f"error: give one --weight per --style ({len(args.style)} styles, {len(args.weight)} weights)",
              file=sys.stderr)
        return 2
    try:
        content = args.content.read_bytes() if args.content else None
        mask = args.mask.read_bytes() if args.mask else None
        styles = [text if re.fullmatch(r"[0-9a-f]{64}", text) else Path(text).read_bytes() for text in args.style]
    except OSError as exc:
        print(f"error: cannot read {exc.filename}: {exc.strerror}", file=sys.stderr)
        return 2
    weights = args.weight or [None] * len(styles)
    try:
        with connect(args) as client:
            model = args.model or _style_model(client)
            made = client.stylize(model, content, list(zip(styles, weights)) or None,
                                  content_sample_id=args.content_sample, alpha=args.alpha,
                                  preserve_color=args.preserve_color, mask=mask, version=args.version)
    except grpc.RpcError as exc:
        return _rpc_error(exc)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    assert made.sample.image is not None and made.sample.image.png is not None
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_bytes(made.sample.image.png)
    width, height = made.sample.pil().size
    style = f", style {made.style_id}" if made.style_id else ""
    print(f"{args.out}: {width}x{height} from {made.model} v{made.version}{style}, sample {made.sample.sample_id}")
    return 0


def _style_model(client: Any) -> str:
    """The one model name the server serves Stylize with (ValueError when none or several)."""
    names = sorted({m.name for m in client.list_models() if "Stylize" in m.supported_methods})
    if len(names) != 1:
        found = ", ".join(names) if names else "none"
        raise ValueError(f"name the style model with --model (models that support Stylize: {found})")
    return names[0]


def _numbered(path: Path | None, index: int, count: int) -> Path | None:
    """``path`` for drawing ``index`` of ``count``: the path itself for one drawing, else stem-index."""
    if path is None or count == 1:
        return path
    return path.with_name(f"{path.stem}-{index}{path.suffix}")


def _draw(args: argparse.Namespace) -> int:
    import json

    import grpc

    from latentforge.strokes import to_gif, to_png
    from services.generation.client import Drawing

    if args.count < 1:
        print(f"error: --count must be at least 1, got {args.count}", file=sys.stderr)
        return 2
    try:
        prefix = json.loads(args.prefix.read_text()) if args.prefix else None
    except OSError as exc:
        print(f"error: cannot read {exc.filename}: {exc.strerror}", file=sys.stderr)
        return 2
    except ValueError as exc:
        print(f"error: {args.prefix} is not JSON points [[dx, dy, pen], ...]: {exc}", file=sys.stderr)
        return 2
    try:
        with connect(args) as client:
            drawings = [d for d in client.draw_stream(
                args.model, args.count, seed=args.seed, temperature=args.temperature, max_steps=args.max_steps,
                svg=True, prefix=prefix, version=args.version) if isinstance(d, Drawing)]
    except grpc.RpcError as exc:
        return _rpc_error(exc)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for d in sorted(drawings, key=lambda d: d.index):
        out = _numbered(args.out, d.index, args.count)
        written = [out]
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(d.svg)
        for path, make in ((_numbered(args.png, d.index, args.count), lambda d=d: to_png(d.points)),
                           (_numbered(args.gif, d.index, args.count), lambda d=d: to_gif(d.points))):
            if path is not None:
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(make())
                written.append(path)
        how = "ended by the model" if d.ended else "stopped at --max-steps"
        print(f"{', '.join(map(str, written))}: {len(d.points)} points ({how}), seed {d.seed}, sample {d.sample_id}")
    return 0


def _models(args: argparse.Namespace) -> int:
    import grpc

    try:
        with connect(args) as client:
            models = client.list_models()
    except grpc.RpcError as exc:
        return _rpc_error(exc)
    if args.json:
        import dataclasses
        import json

        print(json.dumps([dataclasses.asdict(m) for m in models], indent=2))
        return 0
    header = ("NAME", "VERSION", "KIND", "LATENT", "CLASSES", "OUTPUT", "RANGE", "PROVIDER", "METHODS",
              "FID (FLOOR)")
    rows = [header] + [
        (m.name, f"{m.version}{'*' if m.latest else ''}", m.kind, str(m.latent_dim), str(m.num_classes),
         "x".join(map(str, m.shape)), f"[{m.value_range[0]:g},{m.value_range[1]:g}]",
         m.execution_provider, ",".join(m.supported_methods), _fid(m))
        for m in models
    ]
    widths = [max(len(r[k]) for r in rows) for k in range(len(header))]
    for r in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(r, widths)).rstrip())
    for m in models:
        if m.quality is not None:
            print(f"{m.name} v{m.version} quality: {_quality_line(m.quality)}")
        if m.class_names:
            print(f"{m.name} v{m.version} classes: " + ", ".join(f"{k}={c}" for k, c in enumerate(m.class_names)))
    return 0


def _fid(m: Any) -> str:
    q = m.quality
    if q is None or q.fid is None:
        return "-"
    return f"{q.fid:.2f} ({q.fid_floor:.2f})" if q.fid_floor is not None else f"{q.fid:.2f}"


def _quality_line(q: Any) -> str:
    """The headline figures, each beside its real-data floor (a completion model's: per mask
    kind, the best of K read as the original, hole PSNR and diversity), and how they were measured."""
    if q.details.get("task") == "draw_strokes":
        from latentforge.strokes import quality_summary

        how = [q.details.get("source"), f"{q.scores['n']:g} drawings per temperature" if "n" in q.scores else None]
        return quality_summary(q.scores) + " [" + ", ".join(h for h in how if h) + "]"
    if q.details.get("task") == "complete":
        from latentforge.completion import EVAL_MASKS

        k = int(q.scores.get("candidates", 0))
        parts = [f"{kind}: best of {k} read {100 * q.scores[f'{kind}_best_read']:.1f}%, "
                 f"PSNR {q.scores[f'{kind}_psnr']:.2f} dB, diversity {q.scores[f'{kind}_diversity']:.3f}"
                 for kind in EVAL_MASKS if f"{kind}_best_read" in q.scores]
        how = [q.details.get("source"), f"{q.scores['n']:g} held-out images" if "n" in q.scores else None,
               f"{q.details.get('meter')} meter v{q.meter_version}" if q.details.get("meter") else None]
        return "; ".join(parts) + " [" + ", ".join(h for h in how if h) + "]"
    parts = []
    for key in ("fid", "kid", "precision", "recall", "confident"):
        if key in q.scores:
            floor = q.scores.get(f"{key}_floor")
            parts.append(f"{key} {q.scores[key]:.3g}" + (f" (floor {floor:.3g})" if floor is not None else ""))
    if "coverage" in q.scores:
        parts.append(f"coverage {q.scores['coverage']:g} classes")
    if "class_share_min" in q.scores and "class_share_max" in q.scores:
        parts.append(f"class shares {100 * q.scores['class_share_min']:.1f}-{100 * q.scores['class_share_max']:.1f}%")
    how = [q.details.get("source"), f"{q.scores['n']:g} samples" if "n" in q.scores else None,
           f"step {q.scores['step']:g}" if "step" in q.scores else None,
           f"{q.details.get('meter')} meter v{q.meter_version}" if q.details.get("meter") else None]
    return ", ".join(parts) + " [" + ", ".join(h for h in how if h) + "]"


def _model_info(client: Any, name: str, version: int) -> Any:
    """The ListModels entry of the version that answered (for its value range)."""
    return next(m for m in client.list_models(name) if m.version == version)
