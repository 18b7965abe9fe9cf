"""Read rows in a background thread while the caller writes the previous ones.

Reading a parquet row group, hashing each row's image and decoding new images with Pillow mostly
run outside the GIL, as does waiting on PostgreSQL: on two cores the reader and the writer
overlap. What the reader holds ahead is bounded in bytes, so memory stays flat in the file size.
A reader that yields nothing for ``stall_s`` (a read hung on a network file system) ends the
import with :class:`ReadStalled`; its thread, stuck in the read, is left behind as a daemon.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

Item = TypeVar("Item")


class ReadStalled(TimeoutError):
    """The reader produced nothing for the allowed time."""


class _Buffer(Generic[Item]):
    def __init__(self, *, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.items: deque[tuple[Item, int]] = deque()
        self.held = 0
        self.finished = False
        self.closed = False
        self.error: BaseException | None = None
        self.changed = threading.Condition()


def read_ahead(
    rows: Iterator[Item],
    *,
    prepare: Callable[[Item], int],
    max_bytes: int,
    stall_s: float | None = None,
) -> Iterator[Item]:
    """Yield ``rows`` in order, read by a thread up to ``max_bytes`` ahead.

    ``prepare`` runs in the reader thread on each item and returns the bytes the item holds. An
    exception raised by ``rows`` or ``prepare`` is raised here, after the items read before it.
    The thread must not touch the database: Django connections belong to their thread.
    """
    buffer: _Buffer[Item] = _Buffer(max_bytes=max_bytes)
    reader = threading.Thread(
        target=_read, args=(rows, prepare, buffer), name="import-reader", daemon=True
    )
    reader.start()
    stalled = False
    try:
        yield from _drain(buffer, stall_s)
    except ReadStalled:
        stalled = True
        raise
    finally:
        with buffer.changed:
            buffer.closed = True
            buffer.changed.notify_all()
        if not stalled:
            reader.join()


def _read(rows: Iterator[Item], prepare: Callable[[Item], int], buffer: _Buffer[Item]) -> None:
    try:
        for item in rows:
            size = prepare(item)
            with buffer.changed:
                # One item always fits, however large, so the reader never stalls for good.
                while buffer.items and buffer.held + size > buffer.max_bytes and not buffer.closed:
                    buffer.changed.wait()
                if buffer.closed:
                    return
                buffer.items.append((item, size))
                buffer.held += size
                buffer.changed.notify_all()
    except BaseException as error:  # handed to the consuming thread, which raises it
        buffer.error = error
    finally:
        with buffer.changed:
            buffer.finished = True
            buffer.changed.notify_all()


def _drain(buffer: _Buffer[Item], stall_s: float | None) -> Iterator[Item]:
    while True:
        with buffer.changed:
            deadline = None if stall_s is None else time.monotonic() + stall_s
            while not buffer.items and not buffer.finished:
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    raise ReadStalled(f"nothing was read for {stall_s:g} s")
                buffer.changed.wait(left)
            if not buffer.items:
                if buffer.error is not None:
                    raise buffer.error
                return
            item, size = buffer.items.popleft()
            buffer.held -= size
            buffer.changed.notify_all()
        yield item
