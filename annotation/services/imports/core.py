"""The shared import pipeline: batch lifecycle, image validation, chunked writes, the report.

Rows arrive from a reader as :class:`ImportRow` or :class:`BadRow`. They are grouped in chunks;
each chunk's images are hashed and validated first (cached by SHA-256 for the run), existing keys
are looked up in bulk, and the new rows are written with ``bulk_create`` in one transaction. Only
when that transaction fails does the chunk fall back to one savepoint per row, so a bad row is
rejected on its own and no row is ever half-written (its image, question, responses and pair
commit together or not at all).
"""

from __future__ import annotations

import csv
import hashlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from django.conf import settings
from django.contrib.auth.models import User
from django.db import DatabaseError, reset_queries, transaction
from django.utils import timezone

from annotation.exceptions import ImageRejected, ImportFileError
from annotation.models import (
    FinalLabel,
    Image,
    ImportBatch,
    ImportStatus,
    Pair,
    PairOrigin,
    Question,
    Response,
    Side,
    text_digest,
)
from annotation.services.images import inspect_image
from annotation.services.imports.rows import BadRow, ImportRow

CHUNK_SIZE = 500
IMAGE_INSERT_BATCH = 50
BATCH_ERRORS_KEPT = 100
ImageMeta = tuple[str, int, int, int]  # format, width, height, dhash
Progress = Callable[[int], None]


def file_digest(files: Iterable[Path]) -> str:
    """SHA-256 of the files' bytes in order (one file, or the sorted shards of a folder)."""
    digest = hashlib.sha256()
    for path in files:
        with path.open("rb") as handle:
            while block := handle.read(1 << 20):
                digest.update(block)
    return digest.hexdigest()


def default_report_path(batch: ImportBatch) -> Path:
    stamp = batch.started_at.strftime("%Y%m%dT%H%M%S")
    return Path(settings.VAR_DIR) / "import-reports" / f"import-{batch.pk}-{stamp}.csv"


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
        self._image_checks: dict[str, ImageMeta | str] = {}
        self.image_ids: dict[str, int] = {}

    def reject(self, number: int, reason: str) -> None:
        self.counts.rejected += 1
        self._report.writerow([number, reason])
        if len(self.counts.errors) < BATCH_ERRORS_KEPT:
            self.counts.errors.append({"row": number, "reason": reason})

    def write_chunk(self, items: list[ImportRow | BadRow]) -> None:
        self.counts.read += len(items)
        good: list[ImportRow] = []
        for item in self._check_images(items):
            if isinstance(item, BadRow):
                self.reject(item.number, item.reason)
            else:
                good.append(item)
        try:
            with transaction.atomic():
                created, image_ids = _write_rows(good, writer=self)
        except DatabaseError:
            created, image_ids = self._write_one_by_one(good)
        self.image_ids.update(image_ids)
        self.counts.created += sum(created)
        self.counts.existing += len(created) - sum(created)

    def _write_one_by_one(self, rows: list[ImportRow]) -> tuple[list[bool], dict[str, int]]:
        created: list[bool] = []
        image_ids: dict[str, int] = {}
        for row in rows:
            try:
                with transaction.atomic():
                    flags, ids = _write_rows([row], writer=self)
            except DatabaseError as error:
                self.reject(row.number, f"database refused the row: {error}".strip())
                continue
            created += flags
            image_ids.update(ids)
            self.image_ids.update(ids)
        return created, image_ids

    def _check_images(self, items: list[ImportRow | BadRow]) -> Iterator[ImportRow | BadRow]:
        unknown = {
            item.image_sha256
            for item in items
            if isinstance(item, ImportRow)
            and item.image_sha256 not in self.image_ids
            and item.image_sha256 not in self._image_checks
        }
        if unknown:
            stored = Image.objects.filter(sha256__in=unknown).values_list("sha256", "pk")
            self.image_ids.update(stored)
        for item in items:
            if isinstance(item, BadRow) or item.image_sha256 in self.image_ids:
                yield item
                continue
            check = self._image_checks.get(item.image_sha256)
            if check is None:
                check = self._inspect(item.image)
                self._image_checks[item.image_sha256] = check
            yield BadRow(item.number, check) if isinstance(check, str) else item

    @staticmethod
    def _inspect(data: bytes) -> ImageMeta | str:
        try:
            return inspect_image(data)
        except ImageRejected as error:
            return f"image rejected: {error}"

    def image_meta(self, sha256: str) -> ImageMeta:
        check = self._image_checks[sha256]
        assert not isinstance(check, str)
        return check


def _write_rows(rows: list[ImportRow], *, writer: ChunkWriter) -> tuple[list[bool], dict[str, int]]:
    """Write good rows; return (created flag per row, new image ids). Caller holds a transaction."""
    batch = writer.batch
    new_images = _create_images(rows, writer=writer)
    image_ids = {**writer.image_ids, **new_images}
    question_ids, question_created = _create_questions(rows, image_ids=image_ids, batch=batch)
    row_questions = [
        question_ids[(image_ids[row.image_sha256], row.question_sha256)] for row in rows
    ]
    response_ids, response_created = _create_responses(rows, row_questions, batch=batch)
    pair_created = _create_pairs(rows, row_questions, response_ids, batch=batch)
    created = []
    for index, row in enumerate(rows):
        if row.is_pair:
            created.append(pair_created[index])
        elif row.responses:
            created.append(response_created[index])
        else:
            created.append(question_created[index])
    return created, new_images


def _create_images(rows: list[ImportRow], *, writer: ChunkWriter) -> dict[str, int]:
    pending: dict[str, Image] = {}
    for row in rows:
        if row.image_sha256 in writer.image_ids or row.image_sha256 in pending:
            continue
        image_format, width, height, dhash = writer.image_meta(row.image_sha256)
        pending[row.image_sha256] = Image(
            sha256=row.image_sha256,
            data=row.image,
            format=image_format,
            width=width,
            height=height,
            byte_size=len(row.image),
            dhash=dhash,
            source_name=row.image_name[:500],
            is_placeholder=row.image_is_placeholder,
        )
    # Small insert batches: each image is ~100 KB and a 500-row INSERT would hold 50+ MB.
    Image.objects.bulk_create(pending.values(), batch_size=IMAGE_INSERT_BATCH)
    return {sha: image.pk for sha, image in pending.items()}


def _create_questions(
    rows: list[ImportRow], *, image_ids: dict[str, int], batch: ImportBatch
) -> tuple[dict[tuple[int, str], int], list[bool]]:
    keys = [(image_ids[row.image_sha256], row.question_sha256) for row in rows]
    found = Question.objects.filter(
        image_id__in={k[0] for k in keys}, text_sha256__in={k[1] for k in keys}
    ).values_list("image_id", "text_sha256", "pk")
    ids = {(image_id, sha): pk for image_id, sha, pk in found}
    pending: dict[tuple[int, str], Question] = {}
    created = []
    for key, row in zip(keys, rows, strict=True):
        is_new = key not in ids and key not in pending
        created.append(is_new)
        if is_new:
            pending[key] = Question(
                image_id=key[0],
                text=row.question,
                text_sha256=key[1],
                question_type=row.question_type,
                subcategory_id=row.subcategory_id,
                import_batch=batch,
            )
    Question.objects.bulk_create(pending.values())
    ids.update({key: question.pk for key, question in pending.items()})
    return ids, created


ResponseKey = tuple[int, str, str]


def _create_responses(
    rows: list[ImportRow], row_questions: list[int], *, batch: ImportBatch
) -> tuple[dict[ResponseKey, int], list[bool]]:
    found = Response.objects.filter(question_id__in=set(row_questions)).values_list(
        "question_id", "model_name", "text_sha256", "pk"
    )
    ids = {(q, m, s): pk for q, m, s, pk in found}
    pending: dict[ResponseKey, Response] = {}
    created = []
    for question_id, row in zip(row_questions, rows, strict=True):
        any_new = False
        for model_name, text in row.responses:
            key = (question_id, model_name, text_digest(text))
            if key in ids or key in pending:
                continue
            any_new = True
            pending[key] = Response(
                question_id=question_id,
                model_name=model_name,
                text=text,
                text_sha256=key[2],
                import_batch=batch,
            )
        created.append(any_new)
    Response.objects.bulk_create(pending.values())
    ids.update({key: response.pk for key, response in pending.items()})
    return ids, created


def _create_pairs(
    rows: list[ImportRow],
    row_questions: list[int],
    response_ids: dict[ResponseKey, int],
    *,
    batch: ImportBatch,
) -> list[bool]:
    wanted: list[tuple[int, int, int] | None] = []
    for question_id, row in zip(row_questions, rows, strict=True):
        if not row.is_pair:
            wanted.append(None)
            continue
        chosen, rejected = (
            response_ids[(question_id, model, text_digest(text))] for model, text in row.responses
        )
        wanted.append((question_id, chosen, rejected))
    question_set = {w[0] for w in wanted if w}
    found = Pair.objects.filter(question_id__in=question_set).values_list(
        "response_a_id", "response_b_id"
    )
    existing = {frozenset(pair) for pair in found}
    pending: list[Pair] = []
    created = []
    for want in wanted:
        is_new = want is not None and frozenset(want[1:]) not in existing
        created.append(is_new)
        if want is not None and is_new:
            existing.add(frozenset(want[1:]))
            pending.append(_imported_pair(*want, batch=batch))
    Pair.objects.bulk_create(pending)
    return created


def _imported_pair(question_id: int, chosen: int, rejected: int, *, batch: ImportBatch) -> Pair:
    # Imports set the initial label directly (no FinalLabelChange row): the source decided it.
    return Pair(
        question_id=question_id,
        response_a_id=chosen,
        response_b_id=rejected,
        origin=PairOrigin.IMPORTED,
        import_batch=batch,
        final_label=FinalLabel.IMPORTED,
        final_chosen=Side.A,
        final_label_at=timezone.now(),
    )


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
        chunk: list[ImportRow | BadRow] = []
        for item in rows:
            chunk.append(item)
            if len(chunk) >= CHUNK_SIZE:
                _flush(writer, chunk, progress)
                chunk = []
        if chunk:
            _flush(writer, chunk, progress)
    save_counts(batch, writer.counts, finished=True)
    return batch


def _flush(writer: ChunkWriter, chunk: list[ImportRow | BadRow], progress: Progress | None) -> None:
    writer.write_chunk(chunk)
    # With DEBUG on, Django keeps every query's SQL, image bytes included: keep memory flat.
    reset_queries()
    save_counts(writer.batch, writer.counts)
    if progress is not None:
        progress(len(chunk))


__all__ = ["ImportFileError", "file_digest", "run_rows", "start_batch"]
