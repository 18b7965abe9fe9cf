"""Import SPA-VL data files: one module per format, a shared core that writes the rows.

Use :func:`import_file`. Every format obeys the same rules: re-importing a file creates nothing
new (the unique constraints on image, question, response and pair are the keys), a bad row is
rejected with its row number and reason while the good rows are kept, and a file that cannot be
read at all fails with one :class:`ImportFileError` before anything but the failed batch record
is written. Imported pairs carry the source's decision as their initial final label
(``imported``, chosen = response A); imports write no FinalLabelChange row for it.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth.models import User
from django.db.models.functions import Now

from annotation.exceptions import ImportFileError
from annotation.models import ImportBatch, ImportFormat, ImportStatus
from annotation.services.imports.column_map import parse_column_map
from annotation.services.imports.core import (
    FileDigest,
    Progress,
    default_report_path,
    fail_batch,
    run_rows,
    start_batch,
)
from annotation.services.imports.eval_json import EvalJsonSource
from annotation.services.imports.hf_parquet import HfParquetSource
from annotation.services.imports.responses_jsonl import ResponsesJsonlSource
from annotation.services.imports.rlhf_json import RlhfJsonSource
from annotation.services.imports.rows import TaxonomyResolver
from annotation.services.imports.spavl_parquet import SpavlParquetSource
from spavl_web.jobs import heartbeat

__all__ = ["ImportFileError", "import_file", "parse_column_map"]
Source = (
    SpavlParquetSource | RlhfJsonSource | EvalJsonSource | ResponsesJsonlSource | HfParquetSource
)


def _open_source(
    *,
    path: Path,
    import_format: str,
    image_root: Path | None,
    split: str,
    model_name: str,
    question_type: str = "",
    column_map: Mapping[str, str] | None = None,
    taxonomy_map: Path | Mapping[str, Any] | None = None,
    unknown_taxonomy: str = "reject",
) -> Source:
    taxonomy = TaxonomyResolver()
    if image_root is not None and not image_root.is_dir():
        raise ImportFileError(f"image root {image_root} is not a folder")
    if import_format == ImportFormat.HF_PARQUET:
        if not column_map:
            raise ImportFileError("hf-parquet needs a column map (--map key=column,...)")
        return HfParquetSource(
            path=path,
            column_map=column_map,
            image_root=image_root,
            taxonomy=taxonomy,
            taxonomy_map=taxonomy_map,
            unknown_taxonomy=unknown_taxonomy,
            question_type=question_type,
        )
    if column_map or taxonomy_map is not None or unknown_taxonomy != "reject":
        raise ImportFileError("a column map and taxonomy options apply to hf-parquet only")
    if import_format == ImportFormat.SPAVL_PARQUET:
        return SpavlParquetSource(path=path, split=split, taxonomy=taxonomy)
    if import_format == ImportFormat.RLHF_JSON:
        return RlhfJsonSource(
            path=path, image_root=image_root, taxonomy=taxonomy, question_type=question_type
        )
    if import_format == ImportFormat.EVAL_JSON:
        return EvalJsonSource(
            path=path, image_root=image_root, model_name=model_name, taxonomy=taxonomy
        )
    if import_format == ImportFormat.RESPONSES_JSONL:
        return ResponsesJsonlSource(path=path, image_root=image_root, taxonomy=taxonomy)
    raise ImportFileError(f"unknown format {import_format!r}: use one of {ImportFormat.values}")


def _asked(**options: Any) -> dict[str, Any]:
    """What an import was asked for, as JSON (the options left at their defaults omitted)."""
    defaults = {"unknown_taxonomy": "reject"}
    return {
        name: _as_json(value)
        for name, value in options.items()
        if value and value != defaults.get(name)
    }


def _as_json(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    return dict(value) if isinstance(value, Mapping) else value


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
    question_type: str = "",
    column_map: Mapping[str, str] | None = None,
    taxonomy_map: Path | Mapping[str, Any] | None = None,
    unknown_taxonomy: str = "reject",
    report_path: Path | None = None,
    progress: Progress | None = None,
    on_start: Progress | None = None,
    by: User | None = None,
    batch: ImportBatch | None = None,
) -> ImportBatch:
    """Import one file (or folder of parquet shards) and return its finished ImportBatch.

    Raises ImportFileError, with the batch recorded as failed, when the file cannot be read at
    all; nothing else is written then. ``on_start`` receives the row count when it is known
    (0 when not), ``progress`` the number of rows of each chunk done. ``question_type``
    (rlhf-json) overrides the type the file name gives; for hf-parquet it is the type of rows
    whose mapped column gives none. ``column_map`` (see ``column_map.parse_column_map``),
    ``taxonomy_map`` (a JSON file or its parsed object) and ``unknown_taxonomy`` ("reject" or
    "unlabelled") are hf-parquet's. ``batch``: a batch made beforehand (a queued API import,
    its options already recorded) to run the import under; a new one records the options.
    """
    if batch is None:
        batch = start_batch(file_name=str(path), import_format=import_format, split=split, by=by)
        batch.options = _asked(
            image_root=image_root,
            split=split,
            model_name=model_name,
            question_type=question_type,
            column_map=column_map,
            taxonomy_map=taxonomy_map,
            unknown_taxonomy=unknown_taxonomy,
        )
        batch.save(update_fields=["options"])
    try:
        source = _open_source(
            path=path,
            import_format=import_format,
            image_root=image_root,
            split=split,
            model_name=model_name,
            question_type=question_type,
            column_map=column_map,
            taxonomy_map=taxonomy_map,
            unknown_taxonomy=unknown_taxonomy,
        )
        batch.split = source.split
        batch.rows_total = source.total
        report = report_path or default_report_path(batch)
        batch.report_path = str(report)
        batch.save(update_fields=["split", "rows_total", "report_path"])
        if on_start is not None:
            on_start(source.total or 0)
        # Hashing a large file takes seconds: another thread does it while the rows are written.
        with heartbeat(lambda: _beat(batch)):
            digest = FileDigest(source.files)
            try:
                return run_rows(
                    batch=batch, rows=source.rows(), report_path=report, progress=progress
                )
            finally:
                batch.sha256 = digest.result(stall_s=settings.IMPORT_READ_TIMEOUT_S)
                batch.save(update_fields=["sha256"])
    except ImportFileError as error:
        fail_batch(batch, message=str(error))
        raise
    except Exception as error:
        fail_batch(batch, message=f"import stopped: {error!r}")
        raise
