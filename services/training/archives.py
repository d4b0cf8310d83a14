"""Unpacking an uploaded archive (zip, tar, tar.gz) into one folder, safely.

An archive comes from a client, so nothing in it is trusted: an entry whose name is absolute
or climbs out with ``..``, a link (symbolic or hard), a device or a FIFO refuses the whole
archive, as do more files than ``max_files``, more bytes than ``max_bytes`` once unpacked, or
more bytes than the disk has free. The sizes are the ones the archive declares, checked before
anything is written, and writing stops at them (a zip bomb never reaches the disk; a zip that
lies in its headers fails zipfile's own check); a disk that fills up all the same is a limit
too. Only regular files are written, only under ``dest``, never over one another. Files of the
archiving machine's own (``__MACOSX/``, dot-files) are left out.
"""

from __future__ import annotations

import errno
import shutil
import stat
import tarfile
import zipfile
from contextlib import closing
from pathlib import Path, PurePosixPath
from typing import BinaryIO, Callable, Iterator

COPY_CHUNK = 1 << 20
# (name, is a folder, declared size, open it): the entries of an archive, in order.
Entries = Iterator[tuple[str, bool, int, Callable[[], BinaryIO]]]


class ArchiveError(ValueError):
    """The archive cannot be unpacked; the message says why (``limit``: a size or count limit)."""

    def __init__(self, message: str, limit: bool = False) -> None:
        super().__init__(message)
        self.limit = limit


def safe_parts(name: str) -> tuple[str, ...]:
    """The path parts of an entry name; ArchiveError for an absolute or climbing name."""
    unified = name.replace("\\", "/")
    if unified.startswith("/") or (len(unified) > 1 and unified[1] == ":"):
        raise ArchiveError(f"entry {name!r} has an absolute path; archive paths must be relative")
    parts = tuple(p for p in PurePosixPath(unified).parts if p not in ("", "."))
    if ".." in parts:
        raise ArchiveError(f"entry {name!r} climbs out of the archive with '..'; archive paths must stay inside")
    return parts


def _ignored(parts: tuple[str, ...]) -> bool:
    """Files the archiving machine adds of its own (macOS resource forks, dot-files)."""
    return not parts or parts[0] == "__MACOSX" or any(p.startswith(".") for p in parts)


def unpack(archive: Path, kind: str, dest: Path, max_files: int, max_bytes: int, keep_free: int = 0) -> int:
    """Unpack ``archive`` (``kind``: "zip" or "tar", gzip or not) into the existing empty folder
    ``dest``; returns the files written. ArchiveError on anything unsafe, unreadable or too big.

    Nothing is written before the whole archive is known to fit: a first pass checks every
    entry and sums the sizes the archive declares against ``max_files``, ``max_bytes`` and the
    free space of ``dest``'s disk beyond ``keep_free`` bytes; the second writes, stopping at the
    declared sizes (a zip that lies about them is refused by zipfile's own check)."""
    dest = dest.resolve()
    opener = _zip_entries if kind == "zip" else _tar_entries
    room = shutil.disk_usage(dest).free - keep_free
    try:
        with closing(opener(archive)) as entries:
            _check_sizes(entries, max_files, max_bytes, room, keep_free)
        with closing(opener(archive)) as entries:
            return _write(entries, dest)
    except FileExistsError as exc:
        raise ArchiveError(f"the archive holds {Path(exc.filename).name!r} twice") from None
    except OSError as exc:
        if exc.errno == errno.ENOSPC:
            raise ArchiveError("the data folder's disk is full (no space left); the server cannot take the "
                               "archive now", limit=True) from None
        raise ArchiveError(f"the archive is corrupt or unreadable ({type(exc).__name__}: {exc})") from None
    except (zipfile.BadZipFile, tarfile.TarError, EOFError, NotImplementedError, RuntimeError) as exc:
        raise ArchiveError(f"the archive is corrupt or unreadable ({type(exc).__name__}: {exc})") from None


def _kept(entries: Entries) -> Iterator[tuple[str, tuple[str, ...], int, Callable[[], BinaryIO]]]:
    """The entries to write: (name, path parts, declared size, open it); unsafe names refused."""
    for name, is_dir, size, opener in entries:
        parts = safe_parts(name)
        if not (is_dir or _ignored(parts)):
            yield name, parts, size, opener


def _check_sizes(entries: Entries, max_files: int, max_bytes: int, room: int, keep_free: int) -> None:
    """The first pass: every entry checked, the declared sizes summed against the limits and the
    disk's free space (``room``: bytes free beyond ``keep_free``)."""
    files = total = 0
    for _, _, size, _ in _kept(entries):
        files += 1
        total += size
        if files > max_files:
            raise ArchiveError(f"the archive holds more than {max_files} files, this server's limit", limit=True)
        if total > max_bytes:
            raise ArchiveError(f"the archive unpacks to more than {max_bytes} bytes, this server's limit", limit=True)
        if total > room:
            raise ArchiveError(f"not enough disk space: the archive unpacks to more than {max(room, 0)} bytes, what "
                               f"the data folder's disk has free beyond the {keep_free} bytes it keeps free",
                               limit=True)


def _write(entries: Entries, dest: Path) -> int:
    """The second pass: each file written under ``dest``, never past its declared size."""
    written = 0
    for name, parts, size, opener in _kept(entries):
        target = dest.joinpath(*parts)
        if dest not in target.parents:  # belt and braces: safe_parts already refused this
            raise ArchiveError(f"entry {name!r} lies outside the archive")
        target.parent.mkdir(parents=True, exist_ok=True)
        left = size
        with opener() as source, open(target, "xb") as out:
            while block := source.read(min(COPY_CHUNK, left + 1)):
                left -= len(block)
                if left < 0:
                    raise ArchiveError(f"entry {name!r} holds more than the {size} bytes the archive declares")
                out.write(block)
        written += 1
    return written


def _zip_entries(archive: Path) -> "Entries":
    try:
        zf = zipfile.ZipFile(archive)
    except (zipfile.BadZipFile, OSError) as exc:
        raise ArchiveError(f"not a readable zip archive ({exc})") from None
    with zf:
        for info in zf.infolist():
            mode = info.external_attr >> 16
            if stat.S_ISLNK(mode):
                raise ArchiveError(f"entry {info.filename!r} is a symbolic link; archives may hold only files "
                                   "and folders")
            if stat.S_IFMT(mode) and not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):  # 0: permissions only
                raise ArchiveError(f"entry {info.filename!r} is not a regular file")
            yield info.filename, info.is_dir(), info.file_size, lambda info=info: zf.open(info)


def _tar_entries(archive: Path) -> "Entries":
    try:
        tf = tarfile.open(archive, mode="r:*")
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise ArchiveError(f"not a readable tar archive ({exc})") from None
    with tf:
        for member in tf:  # streams: members are read as they come
            if member.issym() or member.islnk():
                raise ArchiveError(f"entry {member.name!r} is a link; archives may hold only files and folders")
            if not (member.isfile() or member.isdir()):
                raise ArchiveError(f"entry {member.name!r} is not a regular file")
            yield member.name, member.isdir(), member.size, lambda member=member: _tar_file(tf, member)


def _tar_file(tf: tarfile.TarFile, member: tarfile.TarInfo) -> BinaryIO:
    source = tf.extractfile(member)
    if source is None:
        raise ArchiveError(f"entry {member.name!r} cannot be read")
    return source


def data_root(folder: Path) -> Path:
    """The folder the data lies in: ``folder``, or the single folder at its top, repeatedly (an
    archive of ``myset/cats/*.png, myset/dogs/*.png`` holds the classes of ``myset``)."""
    while True:
        children = list(folder.iterdir())
        if len(children) != 1 or not children[0].is_dir():
            return folder
        folder = children[0]


def remove(path: Path) -> None:
    """Remove a file or folder if it is there."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)
