"""Imports as background jobs, for the API: a file streamed up or one under ``IMPORT_ROOT``,
queued as an ImportBatch and run by a Celery worker through :func:`import_file`.

The batch exists from the request on (status ``queued``), so a client follows it from the
first second: status, counts, ``rows_total`` where the format says it up front, and the rejected
rows with their numbers and reasons from the report. The worker claims a batch with one
conditional UPDATE (a message delivered twice runs once); one whose worker dies stops
heartbeating and the recovery sweep fails it; one whose message is lost is sent again.
"""

from __future__ import annotations

import csv
import shutil
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from django.conf import settings
from django.contrib.auth.models import User
from django.db.models.functions import Now

from annotation.exceptions import ImportFileError
from annotation.models import ImportBatch, ImportFormat, ImportStatus
from annotation.services.imports import import_file
from spavl_web.jobs import enqueue_on_commit

IMPORT_TASK = "annotation.tasks.run_import"
# import_file's own options, as the API passes them through; paths are kept relative.
OPTION_NAMES = (
    "split",
    "model_name",
    "question_type",
    "image_root",
    "column_map",
    "taxonomy_map",
    "unknown_taxonomy",
)

__all__ = [
    "IMPORT_TASK",
    "Rejection",
    "queue_import",
    "rejections",
    "run_import_job",
    "send_import",
    "under_import_root",
]


def under_import_root(relative: str, *, folder: bool = False) -> Path:
    """A path under ``IMPORT_ROOT`` that exists, or ImportFileError: absolute paths, ``..``
    and symbolic links out of the root are refused, so nothing outside it is ever read."""
    root = Path(settings.IMPORT_ROOT).resolve()
    pure = PurePosixPath(relative)
    if not relative or pure.is_absolute() or Path(relative).is_absolute() or ".." in pure.parts:
        raise ImportFileError(f"{relative!r} is not a path inside the import root")
    target = (root / relative).resolve()
    if not target.is_relative_to(root):
        raise ImportFileError(f"{relative!r} leads out of the import root")
    if not target.exists():
        raise ImportFileError(f"{relative!r} does not exist in the import root")
    if folder and not target.is_dir():
        raise ImportFileError(f"{relative!r} is not a folder")
    return target


def queue_import(
    *,
    import_format: str,
    by: User,
    path: str = "",
    upload: Path | None = None,
    file_name: str = "",
    options: dict[str, Any] | None = None,
) -> ImportBatch:
    """Check what can be checked now (the format, the paths), record the batch as queued and
    send its task once the transaction commits. ``path`` is under the import root; ``upload``
    a file already streamed into ``IMPORT_UPLOAD_DIR`` (removed once the import ends)."""
    if import_format not in ImportFormat.values:
        raise ImportFileError(f"unknown format {import_format!r}: use one of {ImportFormat.values}")
    options = dict(options or {})
    unknown = sorted(set(options) - set(OPTION_NAMES))
    if unknown:
        raise ImportFileError(f"unknown import options {', '.join(unknown)}")
    mapped = [
        name for name in ("column_map", "taxonomy_map", "unknown_taxonomy") if name in options
    ]
    if import_format == ImportFormat.HF_PARQUET and "column_map" not in options:
        raise ImportFileError("hf-parquet needs a column map (map: key=column,...)")
    if import_format != ImportFormat.HF_PARQUET and mapped:
        raise ImportFileError(f"{', '.join(mapped)} apply to hf-parquet only")
    if options.get("image_root"):
        under_import_root(options["image_root"], folder=True)
    if upload is not None:
        source, shown = upload, file_name or upload.name
    else:
        source, shown = under_import_root(path), path
    batch = ImportBatch.objects.create(
        file_name=shown[:500],
        sha256="",
        format=import_format,
        split=options.get("split", ""),
        status=ImportStatus.QUEUED,
        options={**options, "path": str(source), "uploaded": upload is not None},
        started_by=by,
    )
    send_import(batch_id=batch.pk)
    return batch


def send_import(*, batch_id: int) -> None:
    """Send the batch's task once the transaction commits, noting when (for the sweep)."""
    ImportBatch.objects.filter(pk=batch_id).update(enqueued_at=Now())
    enqueue_on_commit(IMPORT_TASK, batch_id)


def run_import_job(*, batch_id: int) -> ImportBatch | None:
    """Run a queued batch; None when it is not queued any more (delivered twice, or ended)."""
    claimed = ImportBatch.objects.filter(pk=batch_id, status=ImportStatus.QUEUED).update(
        status=ImportStatus.RUNNING, heartbeat_at=Now()
    )
    if not claimed:
        return None
    batch = ImportBatch.objects.select_related("started_by").get(pk=batch_id)
    stored = dict(batch.options)
    source = Path(stored.pop("path"))
    uploaded = stored.pop("uploaded", False)
    try:
        image_root = stored.pop("image_root", "")
        return import_file(
            path=source,
            import_format=batch.format,
            image_root=under_import_root(image_root, folder=True) if image_root else None,
            by=batch.started_by,
            batch=batch,
            **stored,
        )
    except ImportFileError:
        batch.refresh_from_db()
        return batch  # recorded on the batch: failed, with the reason
    finally:
        if uploaded:
            shutil.rmtree(source.parent, ignore_errors=True)


@dataclass(frozen=True)
class Rejection:
    row: int
    reason: str


def rejections(batch: ImportBatch, *, offset: int, limit: int) -> tuple[list[Rejection], bool]:
    """The batch's rejected rows from ``offset`` on, at most ``limit``, from its report (every
    row), or from the first ones kept on the batch when the report cannot be read here.
    Returns them and whether the list is complete."""
    report = Path(batch.report_path) if batch.report_path else None
    if report is None or not report.is_file():
        kept = [Rejection(int(e["row"]), str(e["reason"])) for e in batch.errors]
        return kept[offset : offset + limit], batch.rows_rejected <= len(kept)
    found: list[Rejection] = []
    with report.open(encoding="utf-8", newline="") as handle:
        rows = csv.reader(handle)
        next(rows, None)  # the header
        for index, row in enumerate(rows):
            if index >= offset + limit:
                break
            if index >= offset and len(row) == 2:
                found.append(Rejection(int(row[0]), row[1]))
    return found, True
