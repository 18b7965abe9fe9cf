"""Celery tasks of the annotation app: thin wrappers that take ids and call one service."""

from __future__ import annotations

from celery import shared_task

from annotation.services import recovery
from annotation.services.agreement.cache import refresh_dashboard
from annotation.services.agreement.results import SliceFields
from annotation.services.export import run_export_job
from annotation.services.imports.jobs import run_import_job


@shared_task(acks_late=True, reject_on_worker_lost=True)
def run_export(job_id: int) -> None:
    """Run (or resume) an export job; safe to deliver twice: finished shards are skipped."""
    run_export_job(job_id=job_id)


@shared_task(acks_late=True, reject_on_worker_lost=True)
def run_import(batch_id: int) -> None:
    """Run a queued import; a second delivery finds it claimed and does nothing."""
    run_import_job(batch_id=batch_id)


@shared_task
def refresh_agreement_dashboard(*, slice_fields: SliceFields, target: float) -> None:
    """Recompute one agreement dashboard slice in the background (stale while revalidate)."""
    refresh_dashboard(slice_fields=slice_fields, target=target)


@shared_task(ignore_result=True)
def recover_stalled_jobs() -> str:
    """The recovery sweep, every SPAVL_SWEEP_INTERVAL_S from Celery beat."""
    return str(recovery.recover_stalled_jobs())
