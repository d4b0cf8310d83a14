"""``latentforge jobs submit | watch | list | get | cancel | resume`` and ``latentforge datasets
upload | list | delete``: a TrainingService's client.

The training options of ``jobs submit`` are flags built from the proto's option messages
(``--steps``, ``--width``, ``--lr``, ...), so they are the trainer's own names; each goes to the
common options or to the chosen family's. ``jobs watch`` prints a line per progress event and
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


def _option_fields() -> dict[str, Any]:
    """Every option field of the proto's option messages by name (the first declaration)."""
    from latentforge.v1 import training_pb2 as pb

    fields: dict[str, Any] = {}
    for message in (pb.TrainingOptions, pb.DCGANOptions, pb.VAEOptions, pb.AEOptions):
        for f in message.DESCRIPTOR.fields:
            fields.setdefault(f.name, f)
    return fields


def register(subparsers: Any) -> None:
    """Add ``jobs`` and ``datasets`` and their sub-commands to the ``latentforge`` parser."""
    _register_datasets(subparsers)
    p = subparsers.add_parser("jobs", help="submit, watch and manage training jobs on a TrainingService")
    sub = p.add_subparsers(dest="jobs_command", metavar="ACTION", required=True)

    s = sub.add_parser("submit", help="submit a training job")
    _connection_args(s)
    s.add_argument("--family", required=True, help="dcgan, vae or ae")
    s.add_argument("--dataset", default="mnist5k", help="data set name (default mnist5k)")
    s.add_argument("--model-name", default="", help="model name to publish under")
    s.add_argument("--publish", action="store_true", help="export into the model repository when it succeeds")
    s.add_argument("--idempotency-key", default="", help="a retried submit with this key returns the same job")
    s.add_argument("--max-retries", type=int, default=0, help="retries after the process was killed (default 0)")
    s.add_argument("--nproc", type=int, default=1, help="processes (more than 1: torchrun)")
    s.add_argument("--watch", action="store_true", help="then watch it until it ends")
    s.add_argument("--grid", type=Path, default=Path("grid.png"), help="with --watch: where the newest grid goes")
    group = s.add_argument_group("training options (see `latentforge train --help`; unset: the trainer's default)")
    for name, field in _option_fields().items():
        flag = "--" + name.replace("_", "-")
        if field.type == field.TYPE_BOOL:
            group.add_argument(flag, dest=f"opt_{name}", action=argparse.BooleanOptionalAction, default=None)
        else:
            kind = {field.TYPE_INT64: int, field.TYPE_DOUBLE: float}.get(field.type, str)
            group.add_argument(flag, dest=f"opt_{name}", type=kind, default=None, metavar=name.upper())
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
    u = sub.add_parser("upload", help="upload a folder of images, a zip, a tar(.gz) or an .npz")
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
    try:
        spec = job_spec(args.family, args.dataset, model_name=args.model_name, publish=args.publish,
                        idempotency_key=args.idempotency_key, max_retries=args.max_retries, nproc=args.nproc,
                        **options)
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
