"""Hostile uploads against a real ``latentforge serve-training``: what each is answered, and the
peak memory of the process that checks it.

    python -m scripts.hostile_uploads [--out docs/benchmarks/hostile_uploads.md] [--work DIR]
    python -m scripts.hostile_uploads --flags "--max-dataset-unpacked-bytes 100000000" --out /tmp/before.md

Builds each hostile file (an .npz of 400 MB of zeros, an .npz whose header declares 100 GB,
zips of twelve 8000x8000 and twelve 7000x7000 PNGs, a zip bomb, pickled object arrays, 3,000 long
names, an .npz that fits the size limit but not the check's memory), streaming, so building them
takes little memory; starts ``serve-training`` as a child process with ``--flags`` (default
DEFAULT_FLAGS: a 100 MB unpacked limit, a 512 MiB check memory) and uploads each. The
peak resident memory of the check process (``services.training.dataset_check``) is read from
/proc while it runs (its VmHWM), so the figure is the kernel's, and comparable across versions
of the service; so is the most its staging folder held on disk. Writes a Markdown table with the
machine and the command.

The builders are shared with tests/test_training_hostile_uploads.py.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import shlex
import struct
import subprocess
import sys
import tempfile
import threading
import time
import zipfile
import zlib
from pathlib import Path
from typing import Callable

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
MiB = 1 << 20
CHECK_MODULE = "services.training.dataset_check"
DEFAULT_FLAGS = "--max-dataset-unpacked-bytes 100000000 --max-check-memory-bytes 536870912"


# ---- the hostile files -------------------------------------------------------------------------

def _npy_header(shape: tuple[int, ...], dtype: str) -> bytes:
    """The bytes of a version 1.0 .npy header (magic included) of an array of ``shape``."""
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": np.dtype(dtype).str, "fortran_order": False,
                                               "shape": shape})
    return buf.getvalue()


def npz_of_zeros(path: Path, shape: tuple[int, ...], dtype: str = "uint8", name: str = "images") -> Path:
    """An .npz of one array of zeros, deflated; written in blocks, so a 400 MB array costs no
    memory to build (and about 1/1000 of its size on disk)."""
    nbytes = int(np.prod(shape)) * np.dtype(dtype).itemsize
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf, zf.open(f"{name}.npy", "w", force_zip64=True) as out:
        out.write(_npy_header(shape, dtype))
        block = bytes(MiB)
        for start in range(0, nbytes, MiB):
            out.write(block[:min(MiB, nbytes - start)])
    return path


def npz_declaring(path: Path, shape: tuple[int, ...], dtype: str = "uint8") -> Path:
    """An .npz whose `images` header declares ``shape`` but holds a few bytes of data: NumPy would
    allocate the declared array before finding the data short."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("images.npy", _npy_header(shape, dtype) + bytes(64))
    return path


def solid_png(width: int, height: int, colour: tuple[int, int, int] = (40, 90, 200)) -> bytes:
    """A PNG of one colour, compressed row by row (an 8000x8000 one takes ~190 KB and no memory to make)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    row = b"\x00" + bytes(colour) * width
    packer = zlib.compressobj(6)
    idat = b"".join(packer.compress(row) for _ in range(height)) + packer.flush()
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8-bit RGB
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def zip_of_pngs(path: Path, count: int, side: int) -> Path:
    """A zip of ``count`` copies of a one-colour ``side`` x ``side`` PNG."""
    png = solid_png(side, side)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as zf:
        for i in range(count):
            zf.writestr(f"big/{i:02d}.png", png)
    return path


def zip_bomb(path: Path, entries: int, entry_bytes: int) -> Path:
    """A zip of ``entries`` files of zeros, ``entry_bytes`` each, deflated (about 1/1000 of that)."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for i in range(entries):
            with zf.open(f"bomb/{i:03d}.png", "w", force_zip64=True) as out:
                block = bytes(MiB)
                for start in range(0, entry_bytes, MiB):
                    out.write(block[:min(MiB, entry_bytes - start)])
    return path


def object_npz(path: Path) -> Path:
    """An .npz whose `images` are a pickled object array (unpickling would run what it names)."""
    images = np.empty(4, dtype=object)
    for i in range(4):
        images[i] = np.zeros((8, 8), np.uint8)
    np.savez(path, images=images)
    return path


def names_npz(path: Path, count: int = 3000, length: int = 200) -> Path:
    """A zip of ``count`` empty members with long names, uploaded as an .npz."""
    with zipfile.ZipFile(path, "w") as zf:
        for i in range(count):
            zf.writestr(f"{'n' * length}_{i:04d}.npy", b"")
    return path


# ---- measuring ---------------------------------------------------------------------------------

class CheckPeak:
    """The peak resident memory (VmHWM) of every check process that runs while it watches, read
    from /proc every ``interval_s`` (a process is read until it ends; VmHWM only grows)."""

    def __init__(self, interval_s: float = 0.01) -> None:
        self.interval_s = interval_s
        self.peaks: dict[int, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def __enter__(self) -> "CheckPeak":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)

    @property
    def peak_bytes(self) -> int:
        """The largest peak of any check process seen (0: none seen)."""
        return max(self.peaks.values(), default=0)

    def _watch(self) -> None:
        needle = CHECK_MODULE.encode()
        while not self._stop.is_set():
            for entry in Path("/proc").glob("[0-9]*"):
                try:
                    if needle not in (entry / "cmdline").read_bytes():
                        continue
                    status = (entry / "status").read_text()
                except OSError:
                    continue
                for line in status.splitlines():
                    if line.startswith("VmHWM:"):
                        pid = int(entry.name)
                        self.peaks[pid] = max(self.peaks.get(pid, 0), int(line.split()[1]) * 1024)
            self._stop.wait(self.interval_s)


class DiskPeak:
    """The most bytes of files under ``folder`` while it watches (an upload's staging folder: the
    upload and what is unpacked from it)."""

    def __init__(self, folder: Path, interval_s: float = 0.01) -> None:
        self.folder = folder
        self.interval_s = interval_s
        self.peak_bytes = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def __enter__(self) -> "DiskPeak":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)

    def _watch(self) -> None:
        while not self._stop.is_set():
            total = 0
            for root, _, names in os.walk(self.folder):
                for name in names:
                    try:
                        total += os.stat(os.path.join(root, name)).st_blocks * 512
                    except OSError:
                        pass
            self.peak_bytes = max(self.peak_bytes, total)
            self._stop.wait(self.interval_s)


# ---- the run -----------------------------------------------------------------------------------

# (name, what it is, file name, builder)
CASES: list[tuple[str, str, str, Callable[[Path], Path]]] = [
    ("npz-zeros", "400 MB of zeros in an .npz", "zeros.npz",
     lambda p: npz_of_zeros(p, (400, 1000, 1000))),
    ("npz-header-lies", "an .npz whose header declares 100 GB, with 64 bytes of data", "lies.npz",
     lambda p: npz_declaring(p, (100_000, 1000, 1000))),
    ("zip-12x8000px", "twelve 8000x8000 PNGs in a zip", "big.zip",
     lambda p: zip_of_pngs(p, 12, 8000)),
    ("zip-12x7000px", "twelve 7000x7000 PNGs in a zip (each under the pixel limit)", "large.zip",
     lambda p: zip_of_pngs(p, 12, 7000)),
    ("zip-bomb", "a zip of 20 x 50 MB of zeros (1 GB, declared)", "bomb.zip", lambda p: zip_bomb(p, 20, 50 * MiB)),
    ("npz-objects", "an .npz of pickled object arrays", "objects.npz", object_npz),
    ("npz-3000-names", "3,000 members with 200-character names, as an .npz", "names.npz", names_npz),
    ("npz-needs-memory", "an .npz of 95 MB of uint8 zeros: under the size limit, read as float32 it needs "
     "about 500 MB", "fits.npz", lambda p: npz_of_zeros(p, (95, 1000, 1000))),
]


def serve_training(data_dir: Path, models: Path, flags: list[str]) -> tuple[subprocess.Popen, str, list[dict]]:
    """``latentforge serve-training`` as a child process; (process, target, its JSON log lines)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "latentforge", "serve-training", "--data-dir", str(data_dir), "--models", str(models),
         "--host", "127.0.0.1", "--port", "0", "--metrics-port", "0", "--min-free-disk-bytes", "0", *flags],
        cwd=ROOT, stderr=subprocess.PIPE, text=True)
    lines: list[dict] = []
    started = threading.Event()

    def read() -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            if isinstance(entry, dict):
                lines.append(entry)
                if entry.get("event") == "server_started":
                    started.set()
        started.set()

    threading.Thread(target=read, daemon=True).start()
    if not started.wait(60) or proc.poll() is not None:
        proc.kill()
        raise SystemExit(f"serve-training did not start with {shlex.join(flags)} (exit {proc.poll()})")
    port = next(e["port"] for e in lines if e.get("event") == "server_started")
    return proc, f"127.0.0.1:{port}", lines


def run(work: Path, flags: list[str]) -> list[dict]:
    """Build, upload and measure every case; one row each."""
    import grpc

    from services.training.client import TrainingClient

    files = work / "files"
    files.mkdir(parents=True, exist_ok=True)
    proc, target, lines = serve_training(work / "data", work / "models", flags)
    rows = []
    try:
        with TrainingClient(target, timeout_s=600) as client:
            for name, what, file_name, build in CASES:
                path = files / file_name
                if not path.exists():
                    build(path)
                began = time.monotonic()
                with CheckPeak() as peak, DiskPeak(work / "data" / "datasets" / ".uploads") as disk:
                    try:
                        client.upload_dataset(path, name, timeout_s=600)
                        code, message = "OK", "accepted"
                    except grpc.RpcError as exc:
                        code, message = exc.code().name, exc.details() or ""
                seconds = time.monotonic() - began
                reported = [e.get("peak_rss_bytes") for e in lines if e.get("event") == "dataset_checked"]
                rows.append({"case": name, "what": what, "file_bytes": path.stat().st_size, "code": code,
                             "message": message, "peak_rss_bytes": peak.peak_bytes, "seconds": round(seconds, 2),
                             "peak_disk_bytes": disk.peak_bytes,
                             "reported_peak_rss_bytes": reported[-1] if reported else None})
                lines.clear()
                print(f"{name:18} {code:20} peak {peak.peak_bytes / MiB:7.1f} MiB  disk {disk.peak_bytes / MiB:7.1f} MiB  "
                      f"{seconds:6.2f} s  {message[:80]}", flush=True)
    finally:
        proc.terminate()
        proc.wait(30)
    return rows


def machine() -> str:
    cpu = "unknown CPU"
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    kib = next((int(line.split()[1]) for line in open("/proc/meminfo") if line.startswith("MemTotal")), 0)
    return f"{cpu}, {os.cpu_count()} cores, {kib / 2**20:.1f} GiB memory, {platform.platform()}, Python " \
           f"{platform.python_version()}"


def report(rows: list[dict], flags: list[str], command: str) -> str:
    out = ["# Hostile uploads: answers and the check process's peak memory", "",
           f"Command: `{command}`  ", f"Server flags: `{shlex.join(flags)}` (everything else at its default)  ",
           f"Machine: {machine()}  ", f"Measured: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}", "",
           "Peak memory: the check process's VmHWM read from /proc every 10 ms while it ran. Disk: the most "
           "bytes of files in the upload's staging folder (`datasets/.uploads`: the upload itself, then what is "
           "unpacked) meanwhile, read every 10 ms.", "",
           "| case | file | answer | check's peak RSS | disk | time | message |", "|---|---:|---|---:|---:|---:|---|"]
    for r in rows:
        message = r["message"].replace("|", "\\|")
        message = message if len(message) <= 160 else message[:157] + "..."
        size = r["file_bytes"]
        file_size = f"{size / MiB:.1f} MiB" if size >= MiB else f"{size / 1024:.0f} KiB" if size >= 1024 else f"{size} B"
        out.append(f"| {r['case']}: {r['what']} | {file_size} | {r['code']} | {r['peak_rss_bytes'] / MiB:.0f} MiB "
                   f"| {r['peak_disk_bytes'] / MiB:.1f} MiB | {r['seconds']:.1f} s | {message} |")
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m scripts.hostile_uploads", description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, help="write the Markdown table here (and a .json beside it)")
    p.add_argument("--work", type=Path, help="where the files and the server's data go (default: a temporary folder)")
    p.add_argument("--flags", default=DEFAULT_FLAGS, help=f"serve-training flags (default: {DEFAULT_FLAGS})")
    args = p.parse_args(argv)
    flags = shlex.split(args.flags)
    with tempfile.TemporaryDirectory(prefix="hostile-") as tmp:
        rows = run(args.work or Path(tmp), flags)
    command = "python -m scripts.hostile_uploads " + shlex.join(argv if argv is not None else sys.argv[1:])
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(report(rows, flags, command.strip()))
        args.out.with_suffix(".json").write_text(json.dumps({"flags": flags, "rows": rows}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
