"""Unpack and read an uploaded data set with the trainer's own loader, in a process of its own.

``python -m services.training.dataset_check UPLOAD FORMAT FOLDER`` unpacks a zip or tar
(``services.training.archives``) into FOLDER, takes an .npz as it is, or gives one image (PNG or
JPEG, a style image) the ending of its format, then loads it with
``trainer.data.load_data`` (what ``latentforge train --data`` uses, with its defaults), so that
an accepted upload is one a job trains on. It prints one JSON object: ``{"ok": true, "data":
path, "count", "shape", "class_names", "skipped_files"}`` or ``{"ok": false, "error": ...,
"limit": bool}``. The service runs it as a child process so that decoding untrusted images (a
decompression bomb, a huge folder) never takes the service down; the messages name the upload,
never the server's folders.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any


def check(upload: Path, kind: str, folder: Path, max_files: int, max_bytes: int) -> dict[str, Any]:
    """Unpack (archives) and load ``upload``; the summary the service stores, or the refusal."""
    from services.training.archives import ArchiveError, data_root, unpack

    try:
        if kind == "npz":
            data_path = upload
        elif kind == "image":
            data_path = _named_image(upload)
        else:
            folder.mkdir()
            if unpack(upload, kind, folder, max_files, max_bytes) == 0:
                return {"ok": False, "error": "the archive holds no files", "limit": False}
            data_path = data_root(folder)
    except ArchiveError as exc:
        return {"ok": False, "error": str(exc), "limit": exc.limit}
    from trainer.data import DataError, load_data

    try:
        data = load_data(str(data_path))
    except DataError as exc:
        message = str(exc).replace(str(data_path), "the upload").replace(str(folder), "the upload")
        return {"ok": False, "error": message, "limit": False}
    return {"ok": True, "data": str(data_path), "count": len(data), "shape": list(data.shape),
            "class_names": list(data.class_names), "skipped_files": len(data.skipped)}


IMAGE_FORMATS = {"PNG": ".png", "JPEG": ".jpg"}  # what an image upload may be, and its file's ending


def _named_image(upload: Path) -> Path:
    """An image upload renamed with the ending of its format (which the trainer's single-image
    source reads); ArchiveError when it is not a PNG or JPEG."""
    from PIL import Image, UnidentifiedImageError

    from services.training.archives import ArchiveError

    try:
        with Image.open(upload) as img:
            kind = img.format
    except (UnidentifiedImageError, Image.DecompressionBombError, OSError, ValueError):
        kind = None
    if kind not in IMAGE_FORMATS:
        raise ArchiveError(f"an image upload must be a PNG or JPEG file (got {kind or 'no image format'})")
    return upload.rename(upload.with_name("image" + IMAGE_FORMATS[kind]))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m services.training.dataset_check")
    p.add_argument("upload", type=Path)
    p.add_argument("format", choices=("zip", "tar", "npz", "image"))
    p.add_argument("folder", type=Path, help="where an archive is unpacked (must not exist)")
    p.add_argument("--max-files", type=int, required=True)
    p.add_argument("--max-bytes", type=int, required=True)
    args = p.parse_args(argv)
    result = check(args.upload, args.format, args.folder, args.max_files, args.max_bytes)
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
