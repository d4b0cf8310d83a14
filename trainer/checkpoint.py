"""Checkpoints: written atomically, read back with a clear error when broken.

A checkpoint holds everything to continue exactly (networks, optimisers, step, every
rank's RNG state) and to export (the resolved config and the data's shape). Files are
written to a temporary name in the same folder, flushed, then renamed, so a crash never
leaves a half-written checkpoint under a real name.

Format 2 stores the config nested (common options, the family's under its name) and the
data's fields and class names. Format-1 checkpoints (one flat config holding every family's
options) are upgraded when loaded, so runs trained before can still be exported and resumed.
"""

from __future__ import annotations

import errno
import os
import re
from pathlib import Path
from typing import Any

import torch

FORMAT = "latentforge-checkpoint"
FORMAT_VERSION = 2
READABLE_VERSIONS = (1, 2)
_NAME = re.compile(r"^step_(\d{8})\.pt$")
BEST_NAME = "best.pt"  # the best-scoring checkpoint of a run (trainer.evaluation); never pruned
REQUIRED_KEYS = ("format", "format_version", "family", "config", "data", "step", "modules")


class CheckpointError(ValueError):
    """A checkpoint is missing, unreadable or not one of ours."""


def checkpoint_dir(run_dir: Path) -> Path:
    return Path(run_dir) / "checkpoints"


def checkpoint_path(run_dir: Path, step: int) -> Path:
    return checkpoint_dir(run_dir) / f"step_{step:08d}.pt"


def best_checkpoint_path(run_dir: Path) -> Path:
    return checkpoint_dir(run_dir) / BEST_NAME


class _WriteErrors:
    """A file's stand-in that keeps the OSError a write raised: torch.save turns it into a
    RuntimeError that no longer says why (a full disk reads "unexpected pos 704 vs 598")."""

    def __init__(self, fh: Any) -> None:
        self.fh = fh
        self.error: OSError | None = None

    def write(self, data: Any) -> int:
        try:
            return self.fh.write(data)
        except OSError as exc:
            self.error = exc
            raise

    def __getattr__(self, name: str) -> Any:
        return getattr(self.fh, name)


def atomic_write_bytes(path: Path, write) -> None:
    """Call write(file) on a temp file beside `path`, fsync, then rename over `path`. A full
    disk raises OSError(ENOSPC) "no space left on the disk" naming `path`; the temp file is removed."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as fh:
            out = _WriteErrors(fh)
            try:
                write(out)
            except Exception:
                if out.error is None:
                    raise
                raise out.error from None  # the cause torch.save hid
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        if exc.errno == errno.ENOSPC:
            raise OSError(errno.ENOSPC, "no space left on the disk", str(path)) from None
        raise
    finally:
        if tmp.exists():
            tmp.unlink()
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def save_checkpoint(run_dir: Path, step: int, payload: dict[str, Any], keep: int = 3) -> Path:
    """Write step_<step>.pt atomically and prune all but the newest `keep`."""
    payload = {"format": FORMAT, "format_version": FORMAT_VERSION, "step": step, **payload}
    path = checkpoint_path(run_dir, step)
    atomic_write_bytes(path, lambda fh: torch.save(payload, fh))
    for old in list_checkpoints(run_dir)[:-keep] if keep > 0 else []:
        old.unlink(missing_ok=True)
    return path


def save_best_checkpoint(run_dir: Path, step: int, payload: dict[str, Any]) -> Path:
    """Write checkpoints/best.pt atomically (over the previous best). Step checkpoints are
    pruned by name (step_*.pt), so best.pt stays whatever `keep` is."""
    payload = {"format": FORMAT, "format_version": FORMAT_VERSION, "step": step, **payload}
    path = best_checkpoint_path(run_dir)
    atomic_write_bytes(path, lambda fh: torch.save(payload, fh))
    return path


def resolve_checkpoint(run_dir: Path, choice: str | Path | None = None) -> Path:
    """The checkpoint file a run folder names: "best" (checkpoints/best.pt), "latest" (the
    newest step_*.pt), a path to a .pt file, or None for best when the run has one, else latest."""
    run_dir = Path(run_dir)
    best = best_checkpoint_path(run_dir)
    if choice in (None, "latest", "best") and not run_dir.exists():
        raise CheckpointError(f"{run_dir} does not exist")
    if choice is None:
        return best if best.is_file() else latest_checkpoint(run_dir)
    if str(choice) == "latest":
        return latest_checkpoint(run_dir)
    if str(choice) == "best":
        if not best.is_file():
            raise CheckpointError(f"{run_dir} has no {best.relative_to(run_dir)} (it is written when a run "
                                  "evaluates, see --eval-every); use --checkpoint latest")
        return best
    path = Path(choice)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist; use latest, best or a .pt file")
    return path


def list_checkpoints(run_dir: Path) -> list[Path]:
    """Complete checkpoints of a run, oldest first."""
    folder = checkpoint_dir(run_dir)
    if not folder.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in folder.iterdir() if (m := _NAME.match(p.name))]
    return [p for _, p in sorted(found)]


def checkpoint_step(path: Path) -> int:
    """The step a checkpoint file was written at, from its name (step_<step>.pt)."""
    match = _NAME.match(Path(path).name)
    if match is None:
        raise CheckpointError(f"{path} is not named step_<8 digits>.pt")
    return int(match.group(1))


def latest_checkpoint(run_dir: Path) -> Path:
    """The newest checkpoint of a run, or a CheckpointError that says what was looked at."""
    found = list_checkpoints(run_dir)
    if not found:
        raise CheckpointError(f"no checkpoints in {checkpoint_dir(run_dir)}; train first or pass a .pt file")
    return found[-1]


def load_checkpoint(path: Path) -> dict[str, Any]:
    """Load and check a checkpoint file (tensors only: no code runs while loading)."""
    path = Path(path)
    if path.is_dir():
        path = latest_checkpoint(path)
    if not path.is_file():
        raise CheckpointError(f"{path} does not exist")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for truncated or foreign files
        raise CheckpointError(
            f"{path} is not a readable checkpoint (truncated or not a torch file?): {type(exc).__name__}: "
            f"{str(exc).strip().splitlines()[0] if str(exc).strip() else ''}"
        ) from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(f"{path} is a torch file but not a latentforge checkpoint")
    version = payload.get("format_version")
    if version not in READABLE_VERSIONS:
        raise CheckpointError(f"{path} has checkpoint format {version}; this version of latentforge reads "
                              f"{', '.join(map(str, READABLE_VERSIONS))}")
    missing = [k for k in REQUIRED_KEYS if k not in payload]
    if missing:
        raise CheckpointError(f"{path} lacks {', '.join(missing)}")
    if version == 1:
        payload = _upgrade_v1(payload, path)
    else:
        from trainer.config import with_options_added_later

        payload["config"] = with_options_added_later(payload["config"])
    payload["path"] = str(path)
    return payload


def _upgrade_v1(payload: dict[str, Any], path: Path) -> dict[str, Any]:
    """A format-1 payload in format 2's shape: nested config, data fields and class names."""
    from trainer.config import upgrade_v1_config

    try:
        config = upgrade_v1_config(payload["config"])
    except ValueError as exc:
        raise CheckpointError(f"{path}: cannot read its format-1 config: {exc}") from None
    data = {"fields": ["images"], "class_names": [], **payload["data"]}
    data["num_classes"] = len(data["class_names"])  # format 1 recorded 0 for every data set
    return {**payload, "format_version": FORMAT_VERSION, "config": config, "data": data, "upgraded_from": 1}
