"""Opening the files an import reads: regular files only, so no read can wait on a writer.

A FIFO, a device or a socket under an image root or in a shard folder would make the import
wait forever (a FIFO with no writer blocks the open itself) or read without end (``/dev/zero``).
The path is checked with ``stat`` before it is opened, so a device is never even opened, and
again on the open descriptor, so a file swapped in between cannot slip through; the open does
not block, whatever the path turned out to be.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import BinaryIO

_KINDS = {
    stat.S_IFDIR: "a folder",
    stat.S_IFIFO: "a FIFO (named pipe)",
    stat.S_IFCHR: "a character device",
    stat.S_IFBLK: "a block device",
    stat.S_IFSOCK: "a socket",
}


class NotRegularFile(OSError):
    """The path names something other than a regular file."""


def open_regular(path: Path, *, buffering: int = -1) -> BinaryIO:
    """``path`` opened for binary reading; NotRegularFile (an OSError) if it is no regular file."""
    _refuse_irregular(path, os.stat(path).st_mode)
    flags = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOCTTY", 0) | getattr(os, "O_CLOEXEC", 0)
    descriptor = os.open(path, flags)
    try:
        _refuse_irregular(path, os.fstat(descriptor).st_mode)
        os.set_blocking(descriptor, True)
        return open(descriptor, "rb", buffering=buffering)  # noqa: SIM115 (the caller closes it)
    except BaseException:
        os.close(descriptor)
        raise


def _refuse_irregular(path: Path, mode: int) -> None:
    if not stat.S_ISREG(mode):
        kind = _KINDS.get(stat.S_IFMT(mode), "not a regular file")
        raise NotRegularFile(f"{path.name} is {kind}, not a regular file")
