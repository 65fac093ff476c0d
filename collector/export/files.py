"""Files the export commands read and write by name: only regular files, and small ones read with a limit."""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import BinaryIO

__all__ = ["KEY_FILE_MAX_BYTES", "not_regular", "open_regular_file", "read_regular_file"]

KEY_FILE_MAX_BYTES = 64 * 1024
"""A PEM key is a few hundred bytes; anything this large is not one."""

_KINDS = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISFIFO, "a named pipe"),
    (stat.S_ISSOCK, "a socket"),
)


def not_regular(mode: int) -> str | None:
    """What a file is when it is not a regular file (``a character device``); ``None`` for a regular file."""
    if stat.S_ISREG(mode):
        return None
    return next((kind for test, kind in _KINDS if test(mode)), "not a regular file")


def open_regular_file(path: Path) -> BinaryIO:
    """The file open for reading; :class:`ValueError` when it is not a regular file, :class:`OSError` when it
    cannot be opened. A pipe is never waited on, a device never read."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0))
    handle = os.fdopen(fd, "rb")
    kind = not_regular(os.fstat(fd).st_mode)
    if kind is not None:
        handle.close()
        raise ValueError(f"is {kind}, not a regular file")
    return handle


def read_regular_file(path: Path, max_bytes: int) -> bytes:
    """The whole file (see :func:`open_regular_file`); :class:`ValueError` when larger than ``max_bytes``."""
    with open_regular_file(path) as handle:
        data = handle.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise ValueError(f"is larger than {max_bytes // 1024} KiB; not a key file")
    return data
