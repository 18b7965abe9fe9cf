"""The judge part of the recovery sweep (``annotation.services.recovery`` runs it).

A running batch whose worker stopped heartbeating (killed, out of memory, past the hard time
limit) is sent again or, after ``JUDGE_MAX_ATTEMPTS``, given up with its pairs recorded failed.
A pending batch of an active run whose message the broker lost is sent again. Generation
batches (``judging.services.generation``) are recovered the same way.
"""

from __future__ import annotations

from judging.models import BatchStatus, GenerationBatch, JudgeBatch, RunStatus
from judging.services.generation import (
    GENERATE_TASK,
    release_dead_generation_batch,
    resend_lost_generation_batches,
)
from judging.services.runs import BATCH_TASK, release_dead_batch, resend_lost_batches
from spavl_web.broker import TaskKey
from spavl_web.jobs import lapsed, sent_before_grace

_ACTIVE_RUN = [RunStatus.QUEUED, RunStatus.RUNNING]


def recover_judge_batches(*, live: set[TaskKey] | None) -> tuple[list[int], list[int]]:
    """Returns (ids sent again, ids given up)."""
    resent: list[int] = []
    given_up: list[int] = []
    dead = JudgeBatch.objects.filter(lapsed(), status=BatchStatus.RUNNING)
    for batch_id in dead.values_list("pk", flat=True):
        batch = release_dead_batch(batch_id=batch_id)
        (given_up if batch.status == BatchStatus.FAILED else resent).append(batch_id)
    if live is not None:
        resent += _resend_lost(live=live)
    return resent, given_up


def _resend_lost(*, live: set[TaskKey]) -> list[int]:
    waiting = JudgeBatch.objects.filter(
        sent_before_grace(),
        status=BatchStatus.PENDING,
        run__status__in=_ACTIVE_RUN,
    )
    lost = [pk for pk in waiting.values_list("pk", flat=True) if (BATCH_TASK, pk) not in live]
    if lost:
        resend_lost_batches(batch_ids=lost)
    return lost


def recover_generation_batches(*, live: set[TaskKey] | None) -> tuple[list[int], list[int]]:
    """As `recover_judge_batches`, for generation batches: (ids sent again, ids given up)."""
    resent: list[int] = []
    given_up: list[int] = []
    dead = GenerationBatch.objects.filter(lapsed(), status=BatchStatus.RUNNING)
    for batch_id in dead.values_list("pk", flat=True):
        batch = release_dead_generation_batch(batch_id=batch_id)
        (given_up if batch.status == BatchStatus.FAILED else resent).append(batch_id)
    if live is not None:
        waiting = GenerationBatch.objects.filter(
            sent_before_grace(), status=BatchStatus.PENDING, run__status__in=_ACTIVE_RUN
        )
        lost = [
            pk for pk in waiting.values_list("pk", flat=True) if (GENERATE_TASK, pk) not in live
        ]
        if lost:
            resend_lost_generation_batches(batch_ids=lost)
        resent += lost
    return resent, given_up
