"""The shared import pipeline: batch lifecycle, image validation, chunked writes, the report.

Rows arrive from a reader as :class:`ImportRow` or :class:`BadRow`. They are grouped in chunks;
each chunk's new images are validated first (once per SHA-256 for the run), then the rows are
written in one transaction: on PostgreSQL by multi-row INSERT ... ON CONFLICT statements
(``postgres.py``), elsewhere (SQLite, the embedded demo) through the ORM (``orm.py``). Only when
that transaction fails does the chunk fall back to one savepoint per row, so a bad row is rejected
on its own and no row is ever half-written (its image, question, responses and pair commit
together or not at all).
"""

from __future__ import annotations

import csv
import hashlib
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Protocol

from django.conf import settings
from django.contrib.auth.models import User
from django.db import DatabaseError, connection, reset_queries, transaction
from django.utils import timezone

from annotation.exceptions import ImageRejected, ImportFileError
from annotation.models import Image, ImportBatch, ImportStatus
from annotation.services.images import inspect_image
from annotation.services.imports.files import open_regular
from annotation.services.imports.orm import write_rows_orm
from annotation.services.imports.postgres import write_rows_postgresql
from annotation.services.imports.readahead import ReadStalled, read_ahead
from annotation.services.imports.rows import BadRow, ImportRow, NewImage

CHUNK_SIZE = 2000
# Bytes (new images' and every row's text) a chunk may hold before it is written.
CHUNK_IMAGE_BYTES = 32 << 20
# Bytes the reader thread may hold ahead of the writer; a row counts its text and this much more.
READ_AHEAD_BYTES = 16 << 20
ROW_OVERHEAD_BYTES = 512
BATCH_ERRORS_KEPT = 100
ImageMeta = tuple[str, int, int, int]  # format, width, height, dhash
Progress = Callable[[int], None]


class WriteRows(Protocol):
    """Write good rows in the caller's transaction; return (created flag per row, new image ids)."""

    def __call__(
        self,
        *,
        rows: list[ImportRow],
        images: list[NewImage],
        image_ids: dict[str, int],
        batch: ImportBatch,
    ) -> tuple[list[bool], dict[str, int]]: ...


def file_digest(files: Iterable[Path], progress: Callable[[], None] | None = None) -> str:
    """SHA-256 of the files' bytes in order (one file, or the sorted shards of a folder)."""
    digest = hashlib.sha256()
    for path in files:
        with open_regular(path) as handle:
            while block := handle.read(1 << 20):
                digest.update(block)
                if progress is not None:
                    progress()
    return digest.hexdigest()


class FileDigest:
    """:func:`file_digest` in a daemon thread, so hashing a large file overlaps the import.

    :meth:`result` gives up (returns "") once the hashing has made no progress for ``stall_s``:
    a read hung on a network file system must not hang the import, nor keep the process alive.
    """

    def __init__(self, files: Iterable[Path]) -> None:
        self._value = ""
        self._error: BaseException | None = None
        self._progress_at = time.monotonic()
        self._thread = threading.Thread(
            target=self._run, args=(list(files),), name="import-digest", daemon=True
        )
        self._thread.start()

    def result(self, *, stall_s: float) -> str:
        while self._thread.is_alive():
            self._thread.join(min(stall_s, 1.0))
            if self._thread.is_alive() and time.monotonic() - self._progress_at > stall_s:
                return ""
        if self._error is not None:
            raise self._error
        return self._value

    def _run(self, files: list[Path]) -> None:
        try:
            self._value = file_digest(files, progress=self._advance)
        except BaseException as error:  # raised by result(), in the importing thread
            self._error = error

    def _advance(self) -> None:
        self._progress_at = time.monotonic()


def default_report_path(batch: ImportBatch) -> Path:
    stamp = batch.started_at.strftime("%Y%m%dT%H%M%S")
    return Path(settings.IMPORT_REPORT_DIR) / f"import-{batch.pk}-{stamp}.csv"


def rows_writer() -> WriteRows:
    return write_rows_postgresql if connection.vendor == "postgresql" else write_rows_orm


@dataclass
class _Counts:
    read: int = 0
    created: int = 0
    existing: int = 0
    rejected: int = 0
    errors: list[dict[str, int | str]] = field(default_factory=list)


class ChunkWriter:
    """Writes chunks of rows for one batch; caches image checks and ids across chunks."""

    def __init__(self, *, batch: ImportBatch, report: IO[str]) -> None:
        self.batch = batch
        self.counts = _Counts()
        self._report = csv.writer(report)
        self._report.writerow(["row", "reason"])
        self._write_rows = rows_writer()
        self._image_checks: dict[str, ImageMeta | str] = {}
        self.image_ids: dict[str, int] = {}
        self._chunk: list[ImportRow | BadRow] = []
        self._chunk_images: dict[str, bytes] = {}
        self._chunk_bytes = 0

    def prepare(self, item: ImportRow | BadRow) -> int:
        """Run by the reader thread: drop stored images' bytes, check new images once.

        Returns the bytes the row still holds, roughly. ``image_ids`` only grows, and only with
        images already written, so a row whose bytes are dropped here never needs them again.
        """
        if not isinstance(item, ImportRow):
            return ROW_OVERHEAD_BYTES
        if item.image_sha256 in self.image_ids:
            item.image = b""
        elif item.image_sha256 not in self._image_checks:
            self._image_checks[item.image_sha256] = self._inspect(item.image)
        return len(item.image) + _text_bytes(item)

    def hold(self, item: ImportRow | BadRow) -> bool:
        """Add a row to the chunk; True when the chunk is full and should be written."""
        if isinstance(item, ImportRow):
            sha = item.image_sha256
            if sha not in self.image_ids and sha not in self._chunk_images:
                self._chunk_images[sha] = item.image
                self._chunk_bytes += len(item.image)
            # One copy per new image is kept above; a row needs its SHA-256, not its bytes.
            item.image = b""
            self._chunk_bytes += _text_bytes(item)
        self._chunk.append(item)
        return len(self._chunk) >= CHUNK_SIZE or self._chunk_bytes >= CHUNK_IMAGE_BYTES

    def reject(self, number: int, reason: str) -> None:
        self.counts.rejected += 1
        self._report.writerow([number, reason])
        if len(self.counts.errors) < BATCH_ERRORS_KEPT:
            self.counts.errors.append({"row": number, "reason": reason})

    def write_chunk(self) -> int:
        """Write the rows held so far; return how many."""
        items, chunk_images = self._chunk, self._chunk_images
        self._chunk, self._chunk_images, self._chunk_bytes = [], {}, 0
        self.counts.read += len(items)
        good: list[ImportRow] = []
        for item in self._check_images(items, chunk_images):
            if isinstance(item, BadRow):
                self.reject(item.number, item.reason)
            else:
                good.append(item)
        if good:
            self._write_good(good, self._new_images(good, chunk_images))
        return len(items)

    def _write_good(self, rows: list[ImportRow], images: list[NewImage]) -> None:
        try:
            with transaction.atomic():
                created, image_ids = self._write_rows(
                    rows=rows, images=images, image_ids=self.image_ids, batch=self.batch
                )
        except DatabaseError:
            created, image_ids = self._write_one_by_one(rows, images)
        self._remember(image_ids)
        self.counts.created += sum(created)
        self.counts.existing += len(created) - sum(created)

    def _write_one_by_one(
        self, rows: list[ImportRow], images: list[NewImage]
    ) -> tuple[list[bool], dict[str, int]]:
        by_sha = {image.sha256: image for image in images}
        created: list[bool] = []
        image_ids: dict[str, int] = {}
        for row in rows:
            new = by_sha.get(row.image_sha256)
            try:
                with transaction.atomic():
                    flags, ids = self._write_rows(
                        rows=[row],
                        images=[new] if new and new.sha256 not in self.image_ids else [],
                        image_ids=self.image_ids,
                        batch=self.batch,
                    )
            except DatabaseError as error:
                self.reject(row.number, f"database refused the row: {error}".strip())
                continue
            created += flags
            image_ids.update(ids)
            self.image_ids.update(ids)
        return created, image_ids

    def _remember(self, image_ids: dict[str, int]) -> None:
        self.image_ids.update(image_ids)
        for sha in image_ids:
            # A stored image is never checked again: keep only the failures' reasons.
            self._image_checks.pop(sha, None)

    def _check_images(
        self, items: list[ImportRow | BadRow], chunk_images: dict[str, bytes]
    ) -> Iterator[ImportRow | BadRow]:
        if chunk_images:
            # Stored by an earlier import: no insert, whatever the check said.
            stored = Image.objects.filter(sha256__in=list(chunk_images)).values_list("sha256", "pk")
            self._remember(dict(stored))
        for item in items:
            if isinstance(item, BadRow) or item.image_sha256 in self.image_ids:
                yield item
                continue
            check = self._image_checks.get(item.image_sha256)
            if check is None:
                check = self._inspect(chunk_images[item.image_sha256])
                self._image_checks[item.image_sha256] = check
            yield BadRow(item.number, check) if isinstance(check, str) else item

    def _new_images(self, rows: list[ImportRow], chunk_images: dict[str, bytes]) -> list[NewImage]:
        """The chunk's images not stored yet, named after the first row that shows each."""
        images: dict[str, NewImage] = {}
        for row in rows:
            sha = row.image_sha256
            if sha in self.image_ids or sha in images:
                continue
            image_format, width, height, dhash = self._image_meta(sha)
            images[sha] = NewImage(
                sha256=sha,
                data=chunk_images[sha],
                format=image_format,
                width=width,
                height=height,
                dhash=dhash,
                source_name=row.image_name[:500],
                is_placeholder=row.image_is_placeholder,
            )
        return list(images.values())

    @staticmethod
    def _inspect(data: bytes) -> ImageMeta | str:
        try:
            return inspect_image(data)
        except ImageRejected as error:
            return f"image rejected: {error}"

    def _image_meta(self, sha256: str) -> ImageMeta:
        check = self._image_checks[sha256]
        assert not isinstance(check, str)
        return check


def _text_bytes(row: ImportRow) -> int:
    texts = sum(len(text) for _, text in row.responses)
    return ROW_OVERHEAD_BYTES + len(row.question) + len(row.image_name) + texts


def start_batch(*, file_name: str, import_format: str, split: str, by: User | None) -> ImportBatch:
    return ImportBatch.objects.create(
        file_name=file_name[:500],
        sha256="",
        format=import_format,
        split=split,
        started_by=by if by is not None and by.is_authenticated else None,
    )


def fail_batch(batch: ImportBatch, *, message: str) -> None:
    batch.status = ImportStatus.FAILED
    batch.error_message = message
    batch.finished_at = timezone.now()
    batch.save(update_fields=["status", "error_message", "finished_at"])


def save_counts(batch: ImportBatch, counts: _Counts, *, finished: bool = False) -> None:
    batch.rows_read = counts.read
    batch.rows_created = counts.created
    batch.rows_existing = counts.existing
    batch.rows_rejected = counts.rejected
    batch.errors = counts.errors
    fields = ["rows_read", "rows_created", "rows_existing", "rows_rejected", "errors"]
    if finished:
        batch.status = ImportStatus.FINISHED
        batch.finished_at = timezone.now()
        fields += ["status", "finished_at"]
    batch.save(update_fields=fields)


def run_rows(
    *,
    batch: ImportBatch,
    rows: Iterator[ImportRow | BadRow],
    report_path: Path,
    progress: Progress | None,
) -> ImportBatch:
    """Feed a reader's rows through the writer in chunks; the batch's counts follow along."""
    report_path.parent.mkdir(parents=True, exist_ok=True)
    with report_path.open("w", encoding="utf-8", newline="") as report:
        writer = ChunkWriter(batch=batch, report=report)
        stall_s = settings.IMPORT_READ_TIMEOUT_S
        read = read_ahead(rows, prepare=writer.prepare, max_bytes=READ_AHEAD_BYTES, stall_s=stall_s)
        try:
            for item in read:
                if writer.hold(item):
                    _flush(writer, progress)
        except ReadStalled as error:
            raise ImportFileError(
                f"reading stalled: {error} (SPAVL_IMPORT_READ_TIMEOUT_S); the rows before were kept"
            ) from error
        _flush(writer, progress)
    save_counts(batch, writer.counts, finished=True)
    return batch


def _flush(writer: ChunkWriter, progress: Progress | None) -> None:
    done = writer.write_chunk()
    if not done:
        return
    # With DEBUG on, Django keeps every query's SQL, image bytes included: keep memory flat.
    reset_queries()
    save_counts(writer.batch, writer.counts)
    if progress is not None:
        progress(done)


__all__ = ["FileDigest", "ImportFileError", "file_digest", "run_rows", "start_batch"]
