"""``latentforge jobs submit | watch | list | get | cancel | resume`` and ``latentforge datasets
upload | list | delete``: a TrainingService's client.

``jobs submit --family`` takes every family of the proto's JobSpec (``services.training.families``).
Its training options are flags built from the proto's option messages (``--steps``, ``--width``,
``--lr``, ...), so they are the trainer's own names, with the trainer's help where the trainer is
installed: one flag per name, the common options to TrainingOptions and the others to the chosen
family's message (families share names such as ``--latent-dim``; a flag the chosen family lacks is
refused, naming the families that have it). ``jobs watch`` prints a line per progress event and
saves the newest sample grid as a PNG. ``datasets upload`` sends a folder (zipped on the fly;
one subfolder per class gives labels), a zip, a tar(.gz) or an .npz.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from services.cli import connect, connection_args

DEFAULT_TARGET = "localhost:50052"


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def family_flags() -> dict[str, list[tuple[str, Any]]]:
    """Every family option by name, with the families whose options message has it: ``(family,
    field descriptor)`` pairs in the proto's order. One flag per name: families share ``--lr``."""
    from services.training.families import FAMILY_MESSAGES, option_fields

    table: dict[str, list[tuple[str, Any]]] = {}
    for family, message in FAMILY_MESSAGES.items():
        for name, field in option_fields(message).items():
            table.setdefault(name, []).append((family, field))
    return table


def _family_help(trainer: dict[str, dict[str, Any]] | None) -> str:
    from services.training.families import FAMILY_MESSAGES

    if trainer is None:
        return "the model family: " + ", ".join(FAMILY_MESSAGES)
    from trainer.data import DATA_KINDS
    from trainer.families import FAMILIES

    def takes(name: str) -> str:
        return " or ".join(DATA_KINDS[kind] for kind in FAMILIES[name].data_kinds)

    return "the model family: " + "; ".join(
        f"{name} ({FAMILIES[name].summary}; trains on {takes(name)})" if name in FAMILIES else name
        for name in FAMILY_MESSAGES)


def _option_help(owners: list[str], name: str, trainer: dict[str, dict[str, Any]] | None) -> str | None:
    """A flag's help: the trainer's description of the option for each owner that declares it."""
    if trainer is None:
        return None
    from trainer.options import option_help

    declared = [(owner, trainer[owner][name]) for owner in owners if name in trainer.get(owner, {})]
    return option_help(declared) if declared else None


def _add_option(group: Any, name: str, field: Any, dest: str, help: str | None) -> None:
    """One flag of an options message field; its value is checked by the server (the trainer's rules)."""
    if field.type == field.TYPE_BOOL:
        group.add_argument(_flag(name), dest=dest, action=argparse.BooleanOptionalAction, default=None, help=help)
        return
    kind = {field.TYPE_INT64: int, field.TYPE_INT32: int, field.TYPE_DOUBLE: float, field.TYPE_FLOAT: float,
            field.TYPE_STRING: str}[field.type]
    group.add_argument(_flag(name), dest=dest, type=kind, default=None, metavar=name.upper(), help=help)


def _add_training_options(s: argparse.ArgumentParser, trainer: dict[str, dict[str, Any]] | None) -> None:
    """The flags of every run's options (``opt_NAME``) and of every family's (``fam_NAME``),
    generated from the proto's option messages, with the trainer's help where it is installed."""
    from services.training.families import COMMON_MESSAGE, FAMILY_MESSAGES, option_fields

    common = s.add_argument_group("options of every run (unset: the trainer's default)")
    for name, field in option_fields(COMMON_MESSAGE).items():
        _add_option(common, name, field, f"opt_{name}", _option_help(["common"], name, trainer))
    group = s.add_argument_group(
        "options of the families (only the chosen --family's may be given; unset: its default)",
        "Each flag is an option of the families named in brackets; `latentforge train --help` describes them too.")
    for name, declared in family_flags().items():
        if name in option_fields(COMMON_MESSAGE):
            raise RuntimeError(f"the family option {name!r} clashes with an option of every run")
        types = {field.type for _, field in declared}
        if len(types) > 1:
            raise RuntimeError(f"the family option {name!r} has different types in different families")
        owners = [family for family, _ in declared]
        where = "every family" if len(owners) == len(FAMILY_MESSAGES) else ", ".join(owners)
        text = _option_help(owners, name, trainer)
        _add_option(group, name, declared[0][1], f"fam_{name}", f"[{where}] {text}" if text else f"[{where}]")


def register(subparsers: Any) -> None:
    """Add ``jobs`` and ``datasets`` and their sub-commands to the ``latentforge`` parser."""
    from services.training.families import FAMILY_MESSAGES

    _register_datasets(subparsers)
    p = subparsers.add_parser("jobs", help="submit, watch and manage training jobs on a TrainingService")
    sub = p.add_subparsers(dest="jobs_command", metavar="ACTION", required=True)

    from services.training.families import trainer_options

    trainer = trainer_options()
    s = sub.add_parser("submit", help="submit a training job")
    _connection_args(s)
    s.add_argument("--family", required=True, choices=list(FAMILY_MESSAGES), help=_family_help(trainer))
    s.add_argument("--dataset", default="mnist5k",
                   help="data set name, of the kind of data the family trains on: a built-in one (mnist5k: "
                        "images; kanjivg, kanjivg:digits, ...: strokes) or an uploaded one (`latentforge datasets "
                        "list`; default mnist5k)")
    s.add_argument("--model-name", default="", help="model name to publish under")
    s.add_argument("--publish", action="store_true", help="export into the model repository when it succeeds")
    s.add_argument("--idempotency-key", default="", help="a retried submit with this key returns the same job")
    s.add_argument("--max-retries", type=int, default=0, help="retries after the process was killed (default 0)")
    s.add_argument("--nproc", type=int, default=1, help="processes (more than 1: torchrun)")
    s.add_argument("--watch", action="store_true", help="then watch it until it ends")
    s.add_argument("--grid", type=Path, default=Path("grid.png"), help="with --watch: where the newest grid goes")
    _add_training_options(s, trainer)
    s.set_defaults(func=_submit)

    w = sub.add_parser("watch", help="follow a job's events; saves the newest sample grid")
    _connection_args(w)
    w.add_argument("job_id")
    w.add_argument("--from-seq", type=int, default=0, help="start at this event (default: the first)")
    w.add_argument("--grid", type=Path, default=Path("grid.png"), help="where the newest grid goes (grid.png)")
    w.add_argument("--logs", action="store_true", help="print the job's log lines too")
    w.set_defaults(func=_watch)

    ls = sub.add_parser("list", help="list jobs, newest first")
    _connection_args(ls)
    ls.add_argument("--state", choices=("QUEUED", "STARTING", "RUNNING", "SUCCEEDED", "FAILED", "CANCELLED"))
    ls.add_argument("--model-name", default="")
    ls.set_defaults(func=_list)

    for action, text in (("get", "show one job as JSON"), ("cancel", "cancel a job"),
                         ("resume", "resume a cancelled or failed job")):
        a = sub.add_parser(action, help=text)
        _connection_args(a)
        a.add_argument("job_id")
        a.set_defaults(func=_one, action=action)


def _register_datasets(subparsers: Any) -> None:
    p = subparsers.add_parser("datasets", help="upload, list and delete data sets on a TrainingService")
    sub = p.add_subparsers(dest="datasets_command", metavar="ACTION", required=True)
    u = sub.add_parser("upload", help="upload a folder of images, a zip, a tar(.gz), an .npz or one PNG/JPEG image")
    _connection_args(u)
    u.add_argument("path", type=Path, metavar="FOLDER|FILE",
                   help="a folder (one subfolder per class gives labels; zipped on the fly) or a .zip, "
                        ".tar, .tar.gz, .tgz or .npz file")
    u.add_argument("--name", required=True, help="the name jobs use for it (lower case, digits, . _ -)")
    u.set_defaults(func=_dataset_upload)
    ls = sub.add_parser("list", help="list the uploaded and built-in data sets")
    _connection_args(ls)
    ls.set_defaults(func=_dataset_list)
    d = sub.add_parser("delete", help="delete an uploaded data set (refused while a job uses it)")
    _connection_args(d)
    d.add_argument("name")
    d.set_defaults(func=_dataset_delete)


def _connection_args(p: argparse.ArgumentParser) -> None:
    connection_args(p, DEFAULT_TARGET, "seconds per call (watch: no limit)")


def _connect(args: argparse.Namespace):
    from services.training.client import TrainingClient

    return connect(args, TrainingClient)


def _rpc_error(exc: Any) -> int:
    print(f"error: {exc.code().name}: {exc.details()}", file=sys.stderr)
    return 1


def _submit(args: argparse.Namespace) -> int:
    import grpc

    from services.training.client import job_spec, state_name

    options = {name[len("opt_"):]: value for name, value in vars(args).items()
               if name.startswith("opt_") and value is not None}
    own = _family_options(args)
    if isinstance(own, str):
        print(f"error: {own}", file=sys.stderr)
        return 2
    try:
        spec = job_spec(args.family, args.dataset, model_name=args.model_name, publish=args.publish,
                        idempotency_key=args.idempotency_key, max_retries=args.max_retries, nproc=args.nproc,
                        **options, **own)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        with _connect(args) as client:
            job = client.submit(spec)
            print(f"job {job.job_id} {state_name(job.state)}")
            if args.watch:
                return _follow(client, job.job_id, 0, args.grid, False)
    except grpc.RpcError as exc:
        return _rpc_error(exc)
    return 0


def _family_options(args: argparse.Namespace) -> dict[str, Any] | str:
    """The family option flags given, by option name; or what is wrong, in one line, when some
    are not options of --family."""
    from services.training.families import FAMILY_MESSAGES, option_fields

    given = {name[len("fam_"):]: value for name, value in vars(args).items()
             if name.startswith("fam_") and value is not None}
    own = option_fields(FAMILY_MESSAGES[args.family])
    foreign = [name for name in given if name not in own]
    if not foreign:
        return given
    owners = family_flags()
    return (f"{', '.join(_flag(n) for n in foreign)}: not {'an option' if len(foreign) == 1 else 'options'} of "
            f"{args.family} (" + "; ".join(f"{_flag(n)}: {', '.join(f for f, _ in owners[n])}" for n in foreign)
            + "); see latentforge jobs submit --help")


def _watch(args: argparse.Namespace) -> int:
    import grpc

    try:
        with _connect(args) as client:
            return _follow(client, args.job_id, args.from_seq, args.grid, args.logs)
    except grpc.RpcError as exc:
        return _rpc_error(exc)


def _follow(client: Any, job_id: str, from_seq: int, grid: Path, logs: bool) -> int:
    """Print events until the job ends; 0 when it SUCCEEDED, 1 otherwise."""
    from services.training.client import state_name

    for e in client.watch(job_id, from_seq):
        kind = e.WhichOneof("event")
        if kind == "progress":
            p = e.progress
            width = 30
            done = int(width * p.step / p.total_steps) if p.total_steps else 0
            losses = " ".join(f"{k} {v:.4g}" for k, v in sorted(p.losses.items()))
            print(f"[{'#' * done}{'.' * (width - done)}] step {p.step}/{p.total_steps} "
                  f"{p.steps_per_second:.1f} steps/s ETA {p.eta_seconds:.0f}s {losses}", flush=True)
        elif kind == "state":
            reason = f": {e.state.reason}" if e.state.reason else ""
            print(f"{state_name(e.state.state)}{reason}", flush=True)
        elif kind == "grid" and e.grid.name == "samples":
            grid.write_bytes(e.grid.png)
            print(f"{grid}: sample grid at step {e.grid.step}", flush=True)
        elif kind == "evaluation":
            print(f"evaluation at step {e.evaluation.step}: " + ", ".join(
                f"{k} {v:.4g}" for k, v in sorted(e.evaluation.scores.items())), flush=True)
        elif kind == "checkpoint":
            print(f"checkpoint {e.checkpoint.name}", flush=True)
        elif kind == "published":
            print(f"published {e.published.name} version {e.published.version}", flush=True)
        elif kind == "log" and logs:
            print(f"  {e.log.text}", flush=True)
    job = client.get(job_id)
    return 0 if state_name(job.state) == "SUCCEEDED" else 1


def _list(args: argparse.Namespace) -> int:
    import grpc

    from services.training.client import state_name

    try:
        with _connect(args) as client:
            jobs = client.list_all(args.state, args.model_name)
    except grpc.RpcError as exc:
        return _rpc_error(exc)
    rows = [("JOB", "STATE", "FAMILY", "STEP", "MODEL", "REASON")] + [
        (j.job_id, state_name(j.state), j.spec.family, f"{j.step}/{j.total_steps}",
         f"{j.published.name} v{j.published.version}" if j.HasField("published") else j.spec.model_name or "-",
         j.reason) for j in jobs]
    widths = [max(len(r[k]) for r in rows) for k in range(len(rows[0]))]
    for r in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(r, widths)).rstrip())
    return 0


def _one(args: argparse.Namespace) -> int:
    import grpc
    from google.protobuf import json_format

    try:
        with _connect(args) as client:
            job = {"get": client.get, "cancel": client.cancel, "resume": client.resume}[args.action](args.job_id)
    except grpc.RpcError as exc:
        return _rpc_error(exc)
    print(json_format.MessageToJson(job, preserving_proto_field_name=True))
    return 0


def _dataset_row(d: Any) -> tuple[str, ...]:
    return (d.name, str(d.count), "x".join(str(n) for n in d.shape), ",".join(d.class_names) or "-",
            f"{d.size_bytes}", d.sha256[:12])


def _dataset_upload(args: argparse.Namespace) -> int:
    import grpc

    if not args.path.exists():
        print(f"error: {args.path} does not exist", file=sys.stderr)
        return 2
    try:
        with _connect(args) as client:
            d = client.upload_dataset(args.path, args.name, timeout_s=None)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except grpc.RpcError as exc:
        return _rpc_error(exc)
    classes = f", classes {', '.join(d.class_names)}" if d.class_names else ""
    skipped = f", {d.skipped_files} unreadable file(s) left out" if d.skipped_files else ""
    print(f"data set {d.name}: {d.count} examples of {'x'.join(str(n) for n in d.shape)}{classes}{skipped}")
    return 0


def _dataset_list(args: argparse.Namespace) -> int:
    import grpc

    try:
        with _connect(args) as client:
            answer = client.list_datasets()
    except grpc.RpcError as exc:
        return _rpc_error(exc)
    rows = [("NAME", "COUNT", "SHAPE", "CLASSES", "BYTES", "SHA256")] + [_dataset_row(d) for d in answer.datasets]
    rows += [(name, "-", "-", "-", "-", "built-in") for name in answer.builtin]
    widths = [max(len(r[k]) for r in rows) for k in range(len(rows[0]))]
    for r in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(r, widths)).rstrip())
    return 0


def _dataset_delete(args: argparse.Namespace) -> int:
    import grpc

    try:
        with _connect(args) as client:
            d = client.delete_dataset(args.name)
    except grpc.RpcError as exc:
        return _rpc_error(exc)
    print(f"deleted data set {d.name}")
    return 0
