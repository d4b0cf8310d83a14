"""Unpack and read an uploaded data set with the trainer's own loader, in a process of its own.

``python -m services.training.dataset_check UPLOAD FORMAT FOLDER`` unpacks a zip or tar
(``services.training.archives``) into FOLDER, takes an .npz as it is, or gives one image (PNG or
JPEG, a style image) the ending of its format, then loads it with
``trainer.data.load_data`` (what ``latentforge train --data`` uses, with its defaults), so that
an accepted upload is one a job trains on. It prints one JSON object: ``{"ok": true, "data":
path, "count", "shape", "class_names", "skipped_files", "peak_rss_bytes"}`` or ``{"ok": false,
"error": ..., "limit": bool, "peak_rss_bytes"}``. The service runs it as a child process so
that decoding untrusted images never takes the service down; the messages name the upload,
never the server's folders.

Nothing hostile gets far: the process bounds its own address space first (``--max-memory-bytes``,
RLIMIT_AS), so a file that needs more memory ends as a refusal (MemoryError), never as the
kernel's OOM killer; an archive's declared sizes and the disk's free space are checked before
it is unpacked; an .npz's declared array sizes (its .npy headers) before it is read; an image's
declared pixels before it is decoded (Pillow's decompression-bomb limit, ``--max-pixels``).
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
from pathlib import Path
from typing import Any


def check(upload: Path, kind: str, folder: Path, max_files: int, max_bytes: int,
          keep_free: int = 0) -> dict[str, Any]:
    """Unpack (archives) and load ``upload``; the summary the service stores, or the refusal."""
    from services.training.archives import ArchiveError, data_root, unpack
    from trainer.data import DataError, load_data
    from trainer.data.base import DataTooLarge

    data_path = upload
    try:
        if kind == "npz":
            _check_npz(upload, max_files, max_bytes)
        elif kind == "image":
            data_path = _named_image(upload)
        else:
            folder.mkdir()
            if unpack(upload, kind, folder, max_files, max_bytes, keep_free) == 0:
                return {"ok": False, "error": "the archive holds no files", "limit": False}
            data_path = data_root(folder)
        data = load_data(str(data_path))
    except ArchiveError as exc:
        return {"ok": False, "error": str(exc), "limit": exc.limit}
    except DataError as exc:
        message = str(exc)
        for path in (data_path, folder, upload):  # the upload's own name for the server's folders
            message = message.replace(f"{path}: ", "").replace(str(path), "the upload")
        return {"ok": False, "error": message, "limit": isinstance(exc, DataTooLarge)}
    return {"ok": True, "data": str(data_path), "count": len(data), "shape": list(data.shape),
            "class_names": list(data.class_names), "skipped_files": len(data.skipped)}


def _check_npz(upload: Path, max_files: int, max_bytes: int) -> None:
    """Refuse an .npz whose headers declare more arrays or bytes than the limits, before NumPy
    allocates (and decompresses) any of them."""
    from services.training.archives import ArchiveError
    from trainer.data.npz_headers import declared_members

    members = declared_members(upload)
    if len(members) > max_files:
        raise ArchiveError(f"the .npz holds {len(members)} arrays, more than this server's limit of {max_files} "
                           "files", limit=True)
    total = sum(m.nbytes for m in members)
    if total > max_bytes:
        largest = max(members, key=lambda m: m.nbytes)
        raise ArchiveError(f"the .npz declares {total} bytes of arrays (the largest {largest.describe()}), more "
                           f"than this server's limit of {max_bytes} bytes unpacked", limit=True)


# What an image upload may be: its file's first bytes, and the ending its file is given.
IMAGE_SIGNATURES = {b"\x89PNG\r\n\x1a\n": ".png", b"\xff\xd8\xff": ".jpg"}


def _named_image(upload: Path) -> Path:
    """An image upload renamed with the ending of its format (which the trainer's single-image
    source reads, and decodes only after checking its declared size); ArchiveError when it does
    not start as a PNG or JPEG does."""
    from services.training.archives import ArchiveError

    with open(upload, "rb") as f:
        start = f.read(8)
    ending = next((e for signature, e in IMAGE_SIGNATURES.items() if start.startswith(signature)), None)
    if ending is None:
        raise ArchiveError("an image upload must be a PNG or JPEG file")
    return upload.rename(upload.with_name("image" + ending))


def bound_memory(max_bytes: int) -> None:
    """Limit this process's address space to ``max_bytes``: past it an allocation fails with
    MemoryError instead of the machine running out of memory."""
    resource.setrlimit(resource.RLIMIT_AS, (max_bytes, max_bytes))


def peak_rss_bytes() -> int:
    """This process's peak resident memory so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m services.training.dataset_check")
    p.add_argument("upload", type=Path)
    p.add_argument("format", choices=("zip", "tar", "npz", "image"))
    p.add_argument("folder", type=Path, help="where an archive is unpacked (must not exist)")
    p.add_argument("--max-files", type=int, required=True)
    p.add_argument("--max-bytes", type=int, required=True, help="the most bytes an upload may unpack to")
    p.add_argument("--max-pixels", type=int, default=0, help="the most pixels an image may declare; 0: Pillow's own")
    p.add_argument("--max-memory-bytes", type=int, default=0, help="this process's address space; 0: unbounded")
    p.add_argument("--keep-free", type=int, default=0, help="bytes of the disk an archive must leave free")
    args = p.parse_args(argv)
    if args.max_memory_bytes:
        bound_memory(args.max_memory_bytes)
    if args.max_pixels:
        from PIL import Image

        Image.MAX_IMAGE_PIXELS = args.max_pixels
    try:
        result = check(args.upload, args.format, args.folder, args.max_files, args.max_bytes, args.keep_free)
    except MemoryError:
        result = {"ok": False, "limit": True, "error": f"reading the upload needs more memory than this server "
                                                       f"gives its check ({args.max_memory_bytes} bytes)"}
    result["peak_rss_bytes"] = peak_rss_bytes()
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
