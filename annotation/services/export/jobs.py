"""Export jobs: create one, run it (from Celery or the command line), resume it after a crash.

A job writes each shard to a ``.partial`` file, renames it into place, then records it in
``ExportJob.files``. A shard is finished when it is recorded and its file exists; a resumed job
skips finished shards and rewrites the rest. Only recorded files are ever served.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth.models import User
from django.db import transaction
from django.db.models import F, Q, QuerySet
from django.db.models.functions import Coalesce, Now
from django.utils import timezone

from annotation.models import (
    ExportDefinition,
    ExportFormat,
    ExportJob,
    ExportStatus,
)
from annotation.services.export.archive import write_archive_shard
from annotation.services.export.card import render_card, render_manifest
from annotation.services.export.errors import ExportClaimLost, ExportError
from annotation.services.export.files import WrittenFile, atomic_file, remove_partial_files
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
from spavl_web.jobs import enqueue_on_commit, heartbeat, lapsed

EXPORT_TASK = "annotation.tasks.run_export"

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
    spec = spec_from_definition(definition)
    job = create_export_job(
        spec=spec, export_format=export_format, definition=definition, created_by=created_by
    )
    send_export_job(job_id=job.pk)
    return job


def send_export_job(*, job_id: int) -> None:
    """Send the job's task once the transaction commits, noting when (for the recovery sweep)."""
    ExportJob.objects.filter(pk=job_id).update(enqueued_at=Now())
    enqueue_on_commit(EXPORT_TASK, job_id)


def _claim(job_id: int) -> ExportJob | None:
    """Take the job under a new attempt number: queued, failed, or running with a lapsed lease
    (its worker died) and attempts left. One conditional UPDATE, so when a task is delivered
    twice at once exactly one delivery wins; the other gets None and writes nothing."""
    dead = Q(status=ExportStatus.RUNNING, attempts__lt=settings.EXPORT_MAX_ATTEMPTS) & lapsed()
    claimable = Q(status__in=[ExportStatus.QUEUED, ExportStatus.FAILED]) | dead
    claimed = ExportJob.objects.filter(claimable, pk=job_id).update(
        status=ExportStatus.RUNNING,
        attempts=F("attempts") + 1,
        error="",
        heartbeat_at=Now(),
        started_at=Coalesce("started_at", Now()),
    )
    return ExportJob.objects.get(pk=job_id) if claimed else None


def _owned(job: ExportJob) -> QuerySet[ExportJob]:
    """The job's row while this attempt still holds it; writes through it that match nothing
    mean another worker took the job over after our lease lapsed."""
    return ExportJob.objects.filter(pk=job.pk, attempts=job.attempts, status=ExportStatus.RUNNING)


def _update_owned(job: ExportJob, **values: Any) -> None:
    if not _owned(job).update(heartbeat_at=Now(), **values):
        raise ExportClaimLost(f"export {job.pk}: another worker took over attempt {job.attempts}")


def run_export_job(*, job_id: int, on_progress: ProgressCallback | None = None) -> ExportJob:
    """Write every shard not yet finished, then the card and the manifest. Idempotent: a
    finished job, or one another worker is running, is returned as it is; a crashed or
    failed one resumes. Raises ExportClaimLost if another worker takes the job over."""
    job = _claim(job_id)
    if job is None:
        return ExportJob.objects.get(pk=job_id)
    try:
        with heartbeat(lambda: _owned(job).update(heartbeat_at=Now()) > 0):
            _run(job, on_progress or (lambda done, total: None))
    except ExportClaimLost:
        raise  # the job is the other worker's now: leave its row alone
    except Exception as error:
        failed = _owned(job).update(
            status=ExportStatus.FAILED, error=f"{type(error).__name__}: {error}"[:2000]
        )
        if not failed:  # e.g. the new owner removed our half-written file
            raise ExportClaimLost(
                f"export {job.pk}: taken over during attempt {job.attempts}"
            ) from error
        raise
    job.refresh_from_db()
    return job


def _run(job: ExportJob, on_progress: ProgressCallback) -> None:
    spec = spec_from_json(job.definition_snapshot)
    root = Path(job.output_dir)
    root.mkdir(parents=True, exist_ok=True)
    remove_partial_files(root)
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
        two_axis = job.format == ExportFormat.SAFE_RLHF_JSONL
        read = iter_shard_pages(plan, shard.pair_ids, spec=spec, two_axis=two_axis)
        pages = _counting(read, job, done, on_progress)
        written.append(_write_shard(root, shard, pages, spec=spec, plan=plan, job=job))
        if settings.EXPORT_SHARD_DELAY_S:
            time.sleep(settings.EXPORT_SHARD_DELAY_S)
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
            _update_owned(job, done=min(done, job.total))  # also the lease's heartbeat
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
                plan=plan,
                data_root=spec.rlhf_data_root,
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
    _update_owned(
        job,
        files=[w.to_json() for w in files],
        done=plan.total,
        total=plan.total,
        status=ExportStatus.FINISHED,
        finished_at=timezone.now(),
    )


def _record(job: ExportJob, *, files: list[dict], done: int, total: int) -> None:
    """Record finished files and progress in one write (the shard is finished from here on)."""
    _update_owned(job, files=files, done=done, total=total)
    job.files, job.done, job.total = files, done, total
