"""Writing files atomically while hashing them: readers never see a half-written file."""

from __future__ import annotations

import hashlib
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

PARTIAL_SUFFIX = ".partial"


@dataclass(frozen=True)
class WrittenFile:
    name: str
    size: int
    sha256: str

    def to_json(self) -> dict[str, object]:
        return {"name": self.name, "size": self.size, "sha256": self.sha256}


class HashingSink:
    """A write-only file that hashes what passes through it (pyarrow and tarfile accept it)."""

    def __init__(self, raw: BinaryIO) -> None:
        self._raw = raw
        self._hash = hashlib.sha256()
        self._size = 0
        self.closed = False

    def write(self, data: bytes | bytearray | memoryview) -> int:
        self._hash.update(data)
        self._raw.write(data)
        self._size += len(data)
        return len(data)

    def tell(self) -> int:
        return self._size

    def flush(self) -> None:
        self._raw.flush()

    def writable(self) -> bool:
        return True

    def readable(self) -> bool:
        return False

    def seekable(self) -> bool:
        return False

    def close(self) -> None:
        self.closed = True  # the owner closes the real file after fsync

    @property
    def digest(self) -> str:
        return self._hash.hexdigest()


def remove_partial_files(root: Path) -> None:
    """Delete what earlier attempts left half-written (call only while holding the job)."""
    for path in root.rglob(f"*{PARTIAL_SUFFIX}"):
        path.unlink(missing_ok=True)


@contextmanager
def atomic_file(root: Path, name: str) -> Iterator[tuple[HashingSink, list[WrittenFile]]]:
    """Write ``root/name`` through a ``.partial`` file renamed into place once complete and
    synced; the caller reads the WrittenFile from the list after the block."""
    final = root / name
    final.parent.mkdir(parents=True, exist_ok=True)
    # A name of its own: a worker that lost its lease must not write into the new owner's file.
    temporary = final.with_name(f"{final.name}.{uuid.uuid4().hex[:12]}{PARTIAL_SUFFIX}")
    result: list[WrittenFile] = []
    with open(temporary, "wb") as raw:
        sink = HashingSink(raw)
        try:
            yield sink, result
            raw.flush()
            os.fsync(raw.fileno())
        except BaseException:
            raw.close()
            temporary.unlink(missing_ok=True)
            raise
    os.replace(temporary, final)
    result.append(WrittenFile(name=name, size=sink.tell(), sha256=sink.digest))
