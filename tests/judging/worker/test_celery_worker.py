"""A real Celery worker against Redis and PostgreSQL, including one killed mid-batch (kill -9),
batches past their soft and hard time limits, and a batch whose message was lost."""

from __future__ import annotations

import pytest

from judging.models import BatchStatus, JudgeBatch, Judgement, JudgeRun, RunStatus
from judging.services import cancel_run, start_run
from judging.tasks import judge_batch as judge_batch_task
from tests.factories import make_sampled_pairs
from tests.workers import kill_worker, wait_for

BATCH_DELAY_S = "2"

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def run_of(run: JudgeRun) -> JudgeRun:
    return JudgeRun.objects.get(pk=run.pk)


def wait_until_ended(run: JudgeRun, *, timeout: float = 60.0) -> None:
    def run_ended() -> bool:
        return not run_of(run).is_active

    wait_for(run_ended, timeout=timeout)


def test_it_judges_a_run_on_a_real_worker(start_worker):
    pairs = make_sampled_pairs(count=7)
    start_worker()

    run = start_run(backend="baseline", pairs="all", batch_size=3)

    wait_until_ended(run)
    run = run_of(run)
    assert (run.status, run.total, run.done, run.failed) == (RunStatus.FINISHED, 7, 7, 0)
    assert sorted(Judgement.objects.values_list("pair_id", flat=True)) == [p.pk for p in pairs]
    assert set(run.batches.values_list("attempts", flat=True)) == {1}


def test_it_loses_and_duplicates_nothing_when_the_worker_is_killed_mid_batch(start_worker):
    pairs = make_sampled_pairs(count=9)
    first = start_worker(SPAVL_JUDGE_BATCH_DELAY_S=BATCH_DELAY_S)
    run = start_run(backend="baseline", pairs="all", batch_size=3)

    def second_batch_running() -> bool:
        return run.batches.filter(index=1, status=BatchStatus.RUNNING).exists()

    wait_for(second_batch_running)
    kill_worker(first)  # SIGKILL to the whole worker: the machine died
    killed = JudgeBatch.objects.get(run=run, index=1)
    assert killed.status == BatchStatus.RUNNING
    assert run_of(run).is_active
    start_worker(beat=True)  # the recovery sweep finds the dead batch within the lease

    wait_until_ended(run, timeout=90)
    run = run_of(run)
    killed.refresh_from_db()
    assert (run.status, run.done, run.failed) == (RunStatus.FINISHED, 9, 0)
    assert Judgement.objects.count() == 9
    assert sorted(Judgement.objects.values_list("pair_id", flat=True)) == [p.pk for p in pairs]
    assert (killed.status, killed.attempts) == (BatchStatus.DONE, 2)


def test_it_finishes_the_batch_in_hand_and_skips_the_rest_when_cancelled(start_worker, staff_admin):
    make_sampled_pairs(count=9)
    start_worker(SPAVL_JUDGE_BATCH_DELAY_S=BATCH_DELAY_S)
    run = start_run(backend="baseline", pairs="all", batch_size=3)

    def first_batch_running() -> bool:
        return run.batches.filter(index=0, status=BatchStatus.RUNNING).exists()

    wait_for(first_batch_running)
    cancel_run(run_id=run.pk, by=staff_admin)

    def no_batch_running() -> bool:
        return not run.batches.filter(status=BatchStatus.RUNNING).exists()

    wait_for(no_batch_running)
    run = run_of(run)
    statuses = list(run.batches.order_by("index").values_list("status", flat=True))
    assert statuses == [BatchStatus.DONE, BatchStatus.CANCELLED, BatchStatus.CANCELLED]
    assert (run.status, run.done) == (RunStatus.CANCELLED, 3)
    assert Judgement.objects.count() == 3


def sent_with_time_limits(monkeypatch: pytest.MonkeyPatch, *, soft: int, hard: int) -> None:
    """The sender stamps time limits into each message (the worker obeys those over its own
    settings), so the test process sends with the worker's limits. Celery caches a task's
    send options on first use: drop the cache, and get the old one back afterwards."""
    monkeypatch.setattr(judge_batch_task, "soft_time_limit", soft)
    monkeypatch.setattr(judge_batch_task, "time_limit", hard)
    monkeypatch.setattr(judge_batch_task, "_exec_options", None)


def test_it_splits_a_batch_past_its_soft_time_limit_and_ends_the_run_when_pairs_never_fit(
    start_worker, monkeypatch
):
    make_sampled_pairs(count=4)
    sent_with_time_limits(monkeypatch, soft=1, hard=8)
    # Every delivery outlives the 1 s soft limit: 4 pairs split to 2 + 2, then to 1 + 1 + 1 + 1,
    # and single pairs are given up after their last attempt. The run must end all the same.
    start_worker(
        SPAVL_JUDGE_BATCH_DELAY_S="1.5",
        SPAVL_TASK_SOFT_TIME_LIMIT="1",
        SPAVL_TASK_TIME_LIMIT="8",
        SPAVL_JUDGE_MAX_ATTEMPTS="3",
    )
    run = start_run(backend="baseline", pairs="all", batch_size=4)

    wait_until_ended(run, timeout=120)
    run = run_of(run)
    assert (run.status, run.done, run.failed) == (RunStatus.FINISHED, 0, 4)
    sizes = sorted(len(ids) for ids in run.batches.values_list("pair_ids", flat=True))
    assert sizes == [1, 1, 1, 1]
    assert set(run.batches.values_list("status", flat=True)) == {BatchStatus.FAILED}
    errors = set(Judgement.objects.values_list("error", flat=True))
    assert errors == {"gave up after 3 attempts: hit the soft time limit"}


def test_it_recovers_a_batch_killed_at_its_hard_time_limit_and_gives_it_up_after_its_attempts(
    start_worker, monkeypatch
):
    pairs = make_sampled_pairs(count=2)
    sent_with_time_limits(monkeypatch, soft=1, hard=2)
    # The sleep holds off the soft limit as a GPU call would; the hard limit kills the child
    # and Celery acknowledges the message, so only the recovery sweep can find the batch.
    start_worker(
        beat=True,
        SPAVL_JUDGE_BATCH_DELAY_S="30",
        SPAVL_TASK_SOFT_TIME_LIMIT="1",
        SPAVL_TASK_TIME_LIMIT="2",
        SPAVL_JUDGE_MAX_ATTEMPTS="2",
    )
    run = start_run(backend="baseline", pairs="all", batch_size=2)

    wait_until_ended(run, timeout=90)
    run = run_of(run)
    [batch] = run.batches.all()
    assert (run.status, run.done, run.failed) == (RunStatus.FINISHED, 0, 2)
    assert (batch.status, batch.attempts) == (BatchStatus.FAILED, 2)
    assert "the worker stopped heartbeating during attempt 2" in batch.error
    assert sorted(Judgement.objects.values_list("pair_id", flat=True)) == [p.pk for p in pairs]


def test_it_sends_again_the_batches_whose_messages_the_broker_lost(start_worker, broker):
    pairs = make_sampled_pairs(count=6)
    run = start_run(backend="baseline", pairs="all", batch_size=2)
    assert broker.llen("judge") == 3
    broker.delete("judge")  # committed, then lost before any worker took it

    start_worker(beat=True)

    wait_until_ended(run, timeout=60)
    run = run_of(run)
    assert (run.status, run.done, run.failed) == (RunStatus.FINISHED, 6, 0)
    assert sorted(Judgement.objects.values_list("pair_id", flat=True)) == [p.pk for p in pairs]
    assert set(run.batches.values_list("attempts", flat=True)) == {1}


def test_it_fails_a_run_whose_model_the_worker_cannot_load_and_retries_nothing(
    start_worker, tmp_path
):
    make_sampled_pairs(count=4)
    start_worker()
    missing = tmp_path / "no-such-model"

    run = start_run(backend="transformers", model=str(missing), pairs="all", batch_size=2)

    wait_until_ended(run, timeout=90)
    run = run_of(run)
    assert run.status == RunStatus.FAILED
    assert f"could not load the judge {missing}" in run.error
    assert set(run.batches.values_list("status", flat=True)) == {BatchStatus.FAILED}
    assert max(run.batches.values_list("attempts", flat=True)) == 1
    assert not Judgement.objects.exists()
