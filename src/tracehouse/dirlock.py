"""Exclusive ownership of a directory by one process, through an ``flock`` on a lock file.

The lock dies with its process (even on SIGKILL), so a crash never leaves a stale lock.
"""

from __future__ import annotations

import fcntl
import os


class DirectoryBusy(RuntimeError):
    """Another process holds the directory."""


def lock_directory(path: str, lock_name: str, what: str) -> int:
    """Lock ``path`` (created if missing) for this process; return the lock's descriptor."""
    os.makedirs(path, exist_ok=True)
    fd = os.open(os.path.join(path, lock_name), os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "another process"
        os.close(fd)
        raise DirectoryBusy(f"the {what} {path} is in use by {holder}") from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"pid {os.getpid()}\n".encode(), 0)
    return fd
