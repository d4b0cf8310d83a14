"""A full disk under the data folder, as the training service answers it: a limit the client may
retry once space is freed (RESOURCE_EXHAUSTED), never an internal error."""

from __future__ import annotations

import errno
from contextlib import contextmanager
from typing import Iterator

from services.errors import ResourceExhausted

DISK_FULL = "the data folder's disk is full (no space left)"


@contextmanager
def disk_full_is_a_limit(what: str) -> Iterator[None]:
    """Inside, a write that finds the disk full raises ResourceExhausted saying it cannot take ``what``."""
    try:
        yield
    except OSError as exc:
        if exc.errno != errno.ENOSPC:
            raise
        raise ResourceExhausted(f"{DISK_FULL}; the server cannot take {what} now: free some space or delete old "
                                "data sets, then retry") from None
