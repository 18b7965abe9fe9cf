"""Import SPA-VL data files: one module per format, a shared core that writes the rows.

Use :func:`import_file`. Every format obeys the same rules: re-importing a file creates nothing
new (the unique constraints on image, question, response and pair are the keys), a bad row is
rejected with its row number and reason while the good rows are kept, and a file that cannot be
read at all fails with one :class:`ImportFileError` before anything but the failed batch record
is written. Imported pairs carry the source's decision as their initial final label
(``imported``, chosen = response A); imports write no FinalLabelChange row for it.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from django.contrib.auth.models import User
from django.db.models.functions import Now

from annotation.exceptions import ImportFileError
from annotation.models import ImportBatch, ImportFormat, ImportStatus
from annotation.services.imports.core import (
    Progress,
    default_report_path,
    fail_batch,
    file_digest,
    run_rows,
    start_batch,
)
from annotation.services.imports.eval_json import EvalJsonSource
from annotation.services.imports.responses_jsonl import ResponsesJsonlSource
from annotation.services.imports.rlhf_json import RlhfJsonSource
from annotation.services.imports.rows import TaxonomyResolver
from annotation.services.imports.spavl_parquet import SpavlParquetSource
from spavl_web.jobs import heartbeat

__all__ = ["ImportFileError", "import_file"]


def _open_source(
    *,
    path: Path,
    import_format: str,
    image_root: Path | None,
    split: str,
    model_name: str,
) -> SpavlParquetSource | RlhfJsonSource | EvalJsonSource | ResponsesJsonlSource:
    taxonomy = TaxonomyResolver()
    if image_root is not None and not image_root.is_dir():
        raise ImportFileError(f"image root {image_root} is not a folder")
    if import_format == ImportFormat.SPAVL_PARQUET:
        return SpavlParquetSource(path=path, split=split, taxonomy=taxonomy)
    if not path.is_file():
        raise ImportFileError(f"{path} does not exist or is not a file")
    if import_format == ImportFormat.RLHF_JSON:
        return RlhfJsonSource(path=path, image_root=image_root, taxonomy=taxonomy)
    if import_format == ImportFormat.EVAL_JSON:
        return EvalJsonSource(
            path=path, image_root=image_root, model_name=model_name, taxonomy=taxonomy
        )
    if import_format == ImportFormat.RESPONSES_JSONL:
        return ResponsesJsonlSource(path=path, image_root=image_root, taxonomy=taxonomy)
    raise ImportFileError(f"unknown format {import_format!r}: use one of {ImportFormat.values}")


def _beat(batch: ImportBatch) -> bool:
    running = ImportBatch.objects.filter(pk=batch.pk, status=ImportStatus.RUNNING)
    return running.update(heartbeat_at=Now()) > 0


def import_file(
    *,
    path: Path,
    import_format: str,
    image_root: Path | None = None,
    split: str = "",
    model_name: str = "",
    report_path: Path | None = None,
    progress: Progress | None = None,
    on_start: Progress | None = None,
    by: User | None = None,
) -> ImportBatch:
    """Import one file (or folder of parquet shards) and return its finished ImportBatch.

    Raises ImportFileError, with the batch recorded as failed, when the file cannot be read at
    all; nothing else is written then. ``on_start`` receives the row count when it is known
    (0 when not), ``progress`` the number of rows of each chunk done.
    """
    batch = start_batch(file_name=str(path), import_format=import_format, split=split, by=by)
    try:
        source = _open_source(
            path=path,
            import_format=import_format,
            image_root=image_root,
            split=split,
            model_name=model_name,
        )
        batch.split = source.split
        report = report_path or default_report_path(batch)
        batch.report_path = str(report)
        batch.save(update_fields=["split", "report_path"])
        if on_start is not None:
            on_start(source.total or 0)
        # Hashing a large file takes seconds: another thread does it while the rows are written.
        with (
            heartbeat(lambda: _beat(batch)),
            ThreadPoolExecutor(max_workers=1, thread_name_prefix="import-digest") as pool,
        ):
            digest = pool.submit(file_digest, source.files)
            try:
                return run_rows(
                    batch=batch, rows=source.rows(), report_path=report, progress=progress
                )
            finally:
                batch.sha256 = digest.result()
                batch.save(update_fields=["sha256"])
    except ImportFileError as error:
        fail_batch(batch, message=str(error))
        raise
    except Exception as error:
        fail_batch(batch, message=f"import stopped: {error!r}")
        raise
