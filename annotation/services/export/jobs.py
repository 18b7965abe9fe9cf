"""Export jobs: create one, run it (from Celery or the command line), resume it after a crash.

A job writes each shard to a ``.partial`` file, renames it into place, then records it in
``ExportJob.files``. A shard is finished when it is recorded and its file exists; a resumed job
skips finished shards and rewrites the rest. Only recorded files are ever served.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

from django.conf import settings
from django.contrib.auth.models import User
from django.db import transaction
from django.utils import timezone

from annotation.models import ExportDefinition, ExportFormat, ExportJob, ExportStatus
from annotation.services.export.archive import write_archive_shard
from annotation.services.export.card import render_card, render_manifest
from annotation.services.export.errors import ExportError
from annotation.services.export.files import WrittenFile, atomic_file
from annotation.services.export.parquet import write_parquet_shard
from annotation.services.export.plan import (
    ExportPlan,
    Shard,
    build_export_plan,
    load_plan,
    save_plan,
)
from annotation.services.export.rows import ExportRow, iter_shard_pages
from annotation.services.export.spec import ExportSpec, spec_from_definition, spec_from_json

ProgressCallback = Callable[[int, int], None]
PROGRESS_EVERY_ROWS = 1000
CARD_NAME = "README.md"
MANIFEST_NAME = "manifest.json"


def create_export_job(
    *,
    spec: ExportSpec,
    export_format: str,
    definition: ExportDefinition | None = None,
    created_by: User | None = None,
    output_dir: Path | None = None,
) -> ExportJob:
    """A queued job with a frozen copy of the spec; its files go to ``output_dir`` or to
    ``EXPORT_ROOT/job-<id>``."""
    if export_format not in ExportFormat.values:
        raise ExportError(f"unknown export format {export_format!r}")
    with transaction.atomic():
        job = ExportJob.objects.create(
            definition=definition,
            definition_snapshot=spec.to_json(),
            format=export_format,
            created_by=created_by,
        )
        job.output_dir = str(output_dir or Path(settings.EXPORT_ROOT) / f"job-{job.pk}")
        job.save(update_fields=["output_dir"])
    return job


def start_export_job(
    *, definition: ExportDefinition, export_format: str, created_by: User
) -> ExportJob:
    """Create a job for a saved definition and enqueue it once the transaction commits."""
    from annotation.tasks import run_export

    spec = spec_from_definition(definition)
    job = create_export_job(
        spec=spec, export_format=export_format, definition=definition, created_by=created_by
    )
    run_export.delay_on_commit(job.pk)  # type: ignore[attr-defined]
    return job


def _claim(job_id: int) -> ExportJob | None:
    """Mark the job running (counting the attempt); None when it has already finished."""
    with transaction.atomic():
        job = ExportJob.objects.select_for_update().get(pk=job_id)
        if job.status == ExportStatus.FINISHED:
            return None
        job.status = ExportStatus.RUNNING
        job.attempts += 1
        job.error = ""
        job.started_at = job.started_at or timezone.now()
        job.save(update_fields=["status", "attempts", "error", "started_at"])
    return job


def run_export_job(*, job_id: int, on_progress: ProgressCallback | None = None) -> ExportJob:
    """Write every shard not yet finished, then the card and the manifest. Idempotent: a
    finished job is returned as it is; a crashed or failed one resumes."""
    job = _claim(job_id)
    if job is None:
        return ExportJob.objects.get(pk=job_id)
    try:
        _run(job, on_progress or (lambda done, total: None))
    except Exception as error:
        ExportJob.objects.filter(pk=job.pk).update(
            status=ExportStatus.FAILED, error=f"{type(error).__name__}: {error}"[:2000]
        )
        raise
    job.refresh_from_db()
    return job


def _run(job: ExportJob, on_progress: ProgressCallback) -> None:
    spec = spec_from_json(job.definition_snapshot)
    root = Path(job.output_dir)
    root.mkdir(parents=True, exist_ok=True)
    plan_path = root / f".export-plan-{job.pk}.json"
    plan = load_plan(plan_path)
    if plan is None:
        plan = build_export_plan(spec, export_format=job.format)
        save_plan(plan, plan_path)
    finished = {entry["name"]: entry for entry in job.files if (root / entry["name"]).is_file()}
    done = sum(len(s.pair_ids) for s in plan.shards if s.name in finished)
    _record(job, files=list(finished.values()), done=done, total=plan.total)
    written = [WrittenFile(e["name"], e["size"], e["sha256"]) for e in finished.values()]
    for shard in plan.shards:
        if shard.name in finished:
            continue
        pages = _counting(iter_shard_pages(plan, shard.pair_ids, spec=spec), job, done, on_progress)
        written.append(_write_shard(root, shard, pages, spec=spec, plan=plan, job=job))
        done += len(shard.pair_ids)
        _record(job, files=[w.to_json() for w in written], done=done, total=plan.total)
    _finish(job, root, written, spec=spec, plan=plan)


def _counting(
    pages: Iterator[list[ExportRow]], job: ExportJob, done: int, on_progress: ProgressCallback
) -> Iterator[list[ExportRow]]:
    """Pass pages through, reporting progress and saving it every PROGRESS_EVERY_ROWS rows."""
    saved = done
    for page in pages:
        yield page
        done += len(page)
        on_progress(done, job.total)
        if done - saved >= PROGRESS_EVERY_ROWS:
            ExportJob.objects.filter(pk=job.pk).update(done=min(done, job.total))
            saved = done


def _write_shard(
    root: Path,
    shard: Shard,
    pages: Iterator[list[ExportRow]],
    *,
    spec: ExportSpec,
    plan: ExportPlan,
    job: ExportJob,
) -> WrittenFile:
    with atomic_file(root, shard.name) as (sink, result):
        if job.format == ExportFormat.SPAVL_PARQUET:
            write_parquet_shard(sink, pages, split=shard.split, provenance=spec.include_provenance)
        else:
            write_archive_shard(
                sink,
                pages,
                split=shard.split,
                export_format=job.format,
                provenance=spec.include_provenance,
                scratch=root,
            )
    return result[0]


def _write_text(root: Path, name: str, text: str) -> WrittenFile:
    with atomic_file(root, name) as (sink, result):
        sink.write(text.encode("utf-8"))
    return result[0]


def _finish(
    job: ExportJob, root: Path, written: list[WrittenFile], *, spec: ExportSpec, plan: ExportPlan
) -> None:
    data_files = [w for w in written if w.name not in (CARD_NAME, MANIFEST_NAME)]
    card = _write_text(root, CARD_NAME, render_card(spec=spec, plan=plan, export_format=job.format))
    manifest = _write_text(root, MANIFEST_NAME, render_manifest([*data_files, card]))
    files = sorted([*data_files, card, manifest], key=lambda item: item.name)
    with transaction.atomic():
        job.files = [w.to_json() for w in files]
        job.done = job.total = plan.total
        job.status = ExportStatus.FINISHED
        job.finished_at = timezone.now()
        job.save(update_fields=["files", "done", "total", "status", "finished_at"])


def _record(job: ExportJob, *, files: list[dict], done: int, total: int) -> None:
    """Record finished files and progress in one write (the shard is finished from here on)."""
    job.files, job.done, job.total = files, done, total
    job.save(update_fields=["files", "done", "total"])
