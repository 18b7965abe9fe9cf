"""The recovery sweep: no started job is left running or queued forever.

Run every ``SWEEP_INTERVAL_S`` by Celery beat (``annotation.tasks.recover_stalled_jobs``) and
by ``manage.py recover_jobs``. Per kind of job:

- export jobs: running with a lapsed lease (worker killed, out of memory) are sent again and
  resume from their last finished shard, or fail with the reason once they used
  ``EXPORT_MAX_ATTEMPTS``; queued ones whose message the broker lost are sent again;
- judge and generation batches: see ``judging.services.recovery``;
- imports: a batch whose importing process stopped heartbeating is marked failed with the
  rows done so far (running the import again is idempotent); a queued one (an API import)
  whose message the broker lost is sent again.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime

from django.conf import settings
from django.core.cache import cache
from django.db.models import Q
from django.db.models.functions import Now
from django.utils import timezone

from annotation.models import ExportJob, ExportStatus, ImportBatch, ImportStatus
from annotation.services.export.jobs import EXPORT_TASK, send_export_job
from annotation.services.imports.jobs import IMPORT_TASK, send_import
from judging.services.recovery import recover_generation_batches, recover_judge_batches
from spavl_web.broker import TaskKey, live_tasks
from spavl_web.jobs import lapsed, sent_before_grace

logger = logging.getLogger(__name__)

LAST_SWEEP_KEY = "spavl:recovery:last-sweep"


@dataclass
class RecoveryReport:
    exports_resent: list[int] = field(default_factory=list)
    exports_failed: list[int] = field(default_factory=list)
    imports_failed: list[int] = field(default_factory=list)
    imports_resent: list[int] = field(default_factory=list)
    batches_resent: list[int] = field(default_factory=list)
    batches_given_up: list[int] = field(default_factory=list)
    generation_batches_resent: list[int] = field(default_factory=list)
    generation_batches_given_up: list[int] = field(default_factory=list)

    def __bool__(self) -> bool:
        return any(vars(self).values())


def recover_stalled_jobs() -> RecoveryReport:
    """Resend dead or lost jobs, fail those out of attempts; note when this sweep ran."""
    live = live_tasks()
    report = RecoveryReport()
    report.exports_failed = _fail_exhausted_exports()
    report.exports_resent = _resend_exports(live=live)
    report.imports_failed = _fail_dead_imports()
    report.imports_resent = _resend_imports(live=live)
    report.batches_resent, report.batches_given_up = recover_judge_batches(live=live)
    report.generation_batches_resent, report.generation_batches_given_up = (
        recover_generation_batches(live=live)
    )
    cache.set(LAST_SWEEP_KEY, timezone.now().isoformat(), timeout=None)
    if report:
        logger.warning("recovery sweep: %s", report)
    return report


def last_sweep_at() -> datetime | None:
    stamp = cache.get(LAST_SWEEP_KEY)
    return datetime.fromisoformat(stamp) if stamp else None


def _fail_exhausted_exports() -> list[int]:
    dead = ExportJob.objects.filter(
        lapsed(), status=ExportStatus.RUNNING, attempts__gte=settings.EXPORT_MAX_ATTEMPTS
    )
    failed = []
    for job in dead:
        reason = (
            f"gave up after {job.attempts} attempts: the worker stopped heartbeating "
            f"(last at {job.heartbeat_at or job.started_at:%Y-%m-%d %H:%M:%S} UTC) "
            f"with {job.done} of {job.total} rows written"
        )
        # Conditional on the same attempt still being dead, so a racing claim wins.
        stopped = ExportJob.objects.filter(lapsed(), pk=job.pk, attempts=job.attempts).update(
            status=ExportStatus.FAILED, error=reason, finished_at=Now()
        )
        if stopped:
            failed.append(job.pk)
    return failed


def _resend_exports(*, live: set[TaskKey] | None) -> list[int]:
    stranded = Q(status=ExportStatus.RUNNING) & lapsed()
    if live is not None:  # in-process tasks (no broker) lose no message, only dead runs
        stranded |= Q(status=ExportStatus.QUEUED)
    candidates = ExportJob.objects.filter(stranded).filter(sent_before_grace(fallback="created_at"))
    resent = []
    for job_id in candidates.values_list("pk", flat=True):
        if live is not None and (EXPORT_TASK, job_id) in live:
            continue
        send_export_job(job_id=job_id)
        resent.append(job_id)
    return resent


def _fail_dead_imports() -> list[int]:
    dead = ImportBatch.objects.filter(
        lapsed(field="heartbeat_at", fallback="started_at"), status=ImportStatus.RUNNING
    )
    failed = []
    for batch in dead:
        last = batch.heartbeat_at or batch.started_at
        message = (
            f"the import process stopped (no heartbeat since {last:%Y-%m-%d %H:%M:%S} UTC) "
            f"after {batch.rows_read} rows ({batch.rows_created} created); run the import "
            "again: rows already imported are recognised and not duplicated"
        )
        if ImportBatch.objects.filter(pk=batch.pk, status=ImportStatus.RUNNING).update(
            status=ImportStatus.FAILED, error_message=message, finished_at=Now()
        ):
            failed.append(batch.pk)
    return failed


def _resend_imports(*, live: set[TaskKey] | None) -> list[int]:
    if live is None:  # in-process tasks (no broker) lose no message
        return []
    lost = ImportBatch.objects.filter(sent_before_grace(fallback="started_at")).filter(
        status=ImportStatus.QUEUED
    )
    resent = []
    for batch_id in lost.values_list("pk", flat=True):
        if (IMPORT_TASK, batch_id) not in live:
            send_import(batch_id=batch_id)
            resent.append(batch_id)
    return resent
