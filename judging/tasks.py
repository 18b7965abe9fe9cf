"""Thin Celery tasks: take ids, call a service. Routed to the `judge` and `generate` queues in
settings."""

from __future__ import annotations

from celery import shared_task

from judging import services
from judging.exceptions import BatchWillRetry


@shared_task(
    acks_late=True,
    reject_on_worker_lost=True,
    autoretry_for=(BatchWillRetry,),
    # Attempts are counted in the database; Celery's own retry count is only a backstop.
    max_retries=None,
    retry_backoff=5,
    retry_backoff_max=120,
)
def judge_batch(batch_id: int) -> str:
    batch = services.judge_batch(batch_id=batch_id)
    return f"batch {batch.pk}: {batch.status}"


@shared_task(
    acks_late=True,
    reject_on_worker_lost=True,
    autoretry_for=(BatchWillRetry,),
    max_retries=None,
    retry_backoff=5,
    retry_backoff_max=120,
)
def generate_batch(batch_id: int) -> str:
    batch = services.run_generation_batch(batch_id=batch_id)
    return f"generation batch {batch.pk}: {batch.status}"
