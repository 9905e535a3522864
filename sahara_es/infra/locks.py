"""Locks between the service's processes on one machine: ``flock`` on a file."""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def file_lock(path: Path, mode: int = fcntl.LOCK_EX, *,
              folder_mode: int = 0o755) -> Iterator[None]:
    """Hold ``flock(mode)`` on ``path`` (made 0600, its folder ``folder_mode``) for the block.

    The lock goes with the open file: a process that dies holding it releases it."""
    path.parent.mkdir(mode=folder_mode, parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    with os.fdopen(fd, "r+") as lock:
        fcntl.flock(lock, mode)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
