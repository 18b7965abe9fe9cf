"""A real Celery worker against Redis and PostgreSQL, including one killed mid-batch (kill -9).

The worker is a subprocess on the test database (pytest-django's, read from the connection) and
the Redis database of REDIS_URL. A short visibility timeout makes Redis hand the dead worker's
unacknowledged batch to the next worker within seconds instead of an hour.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis
from django.conf import settings
from django.db import connection

from judging.models import BatchStatus, JudgeBatch, Judgement, JudgeRun, RunStatus
from judging.services import cancel_run, start_run
from spavl_web.celery import app as celery_app
from tests.factories import make_sampled_pairs

REPO = Path(__file__).resolve().parents[3]
BATCH_DELAY_S = 2.0

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def broker() -> Iterator[redis.Redis]:
    if not settings.REDIS_URL:
        pytest.skip("REDIS_URL is not set: no broker for a real worker")
    client = redis.Redis.from_url(settings.REDIS_URL)
    client.flushdb()
    celery_app.conf.task_always_eager = False
    yield client
    client.flushdb()


def worker_env(*, batch_delay_s: float) -> dict[str, str]:
    database = connection.settings_dict
    url = f"postgres://{database['USER']}:{database['PASSWORD'] or ''}@{database['HOST']}"
    return {
        **os.environ,
        "DATABASE_URL": f"{url}:{database['PORT'] or 5432}/{database['NAME']}",
        "REDIS_URL": settings.REDIS_URL,
        "SPAVL_JUDGE_BATCH_DELAY_S": str(batch_delay_s),
        "SPAVL_TASK_SOFT_TIME_LIMIT": "8",
        "SPAVL_TASK_TIME_LIMIT": "9",
        "SPAVL_VISIBILITY_TIMEOUT_S": "10",
        "SPAVL_UNACKED_RESTORE_INTERVAL_S": "1",
    }


@pytest.fixture
def start_worker(broker: redis.Redis, tmp_path: Path) -> Iterator[Callable[..., subprocess.Popen]]:
    """Start `celery worker -Q judge,default -c 1 --pool prefork` in its own process group."""
    workers: list[subprocess.Popen] = []

    def start(*, batch_delay_s: float = 0.0) -> subprocess.Popen:
        name = f"test-{uuid.uuid4().hex[:8]}@%h"
        log = (tmp_path / f"worker-{len(workers)}.log").open("w")
        command = [sys.executable, "-m", "celery", "-A", "spavl_web", "worker", "-Q"]
        command += ["judge,default", "-c", "1", "--pool", "prefork", "-n", name, "-l", "INFO"]
        command += ["--without-gossip", "--without-mingle", "--without-heartbeat"]
        worker = subprocess.Popen(
            command,
            cwd=REPO,
            env=worker_env(batch_delay_s=batch_delay_s),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        workers.append(worker)
        return worker

    yield start
    for worker in workers:
        kill_worker(worker, sig=signal.SIGTERM)
    for log_file in sorted(tmp_path.glob("worker-*.log")):
        print(f"--- {log_file.name}\n{log_file.read_text()[-4000:]}")


def kill_worker(worker: subprocess.Popen, *, sig: signal.Signals = signal.SIGKILL) -> None:
    """Signal the worker's whole process group (main process and pool children)."""
    if worker.poll() is None:
        os.killpg(worker.pid, sig)
        try:
            worker.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(worker.pid, signal.SIGKILL)
            worker.wait()


def wait_for(condition: Callable[[], bool], *, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {condition.__name__}")
        time.sleep(0.2)


def run_of(run: JudgeRun) -> JudgeRun:
    return JudgeRun.objects.get(pk=run.pk)


def test_it_judges_a_run_on_a_real_worker(start_worker):
    pairs = make_sampled_pairs(count=7)
    start_worker()

    run = start_run(backend="baseline", pairs="all", batch_size=3)

    def run_ended() -> bool:
        return not run_of(run).is_active

    wait_for(run_ended)
    run = run_of(run)
    assert (run.status, run.total, run.done, run.failed) == (RunStatus.FINISHED, 7, 7, 0)
    assert sorted(Judgement.objects.values_list("pair_id", flat=True)) == [p.pk for p in pairs]
    assert set(run.batches.values_list("attempts", flat=True)) == {1}


def test_it_loses_and_duplicates_nothing_when_the_worker_is_killed_mid_batch(start_worker):
    pairs = make_sampled_pairs(count=9)
    first = start_worker(batch_delay_s=BATCH_DELAY_S)
    run = start_run(backend="baseline", pairs="all", batch_size=3)

    def second_batch_running() -> bool:
        return run.batches.filter(index=1, status=BatchStatus.RUNNING).exists()

    wait_for(second_batch_running)
    kill_worker(first)  # SIGKILL to the whole worker: the machine died
    killed = JudgeBatch.objects.get(run=run, index=1)
    assert killed.status == BatchStatus.RUNNING
    assert run_of(run).is_active
    start_worker()

    def run_ended() -> bool:
        return not run_of(run).is_active

    wait_for(run_ended, timeout=90)
    run = run_of(run)
    killed.refresh_from_db()
    assert (run.status, run.done, run.failed) == (RunStatus.FINISHED, 9, 0)
    assert Judgement.objects.count() == 9
    assert sorted(Judgement.objects.values_list("pair_id", flat=True)) == [p.pk for p in pairs]
    assert (killed.status, killed.attempts) == (BatchStatus.DONE, 2)


def test_it_finishes_the_batch_in_hand_and_skips_the_rest_when_cancelled(start_worker, staff_admin):
    make_sampled_pairs(count=9)
    start_worker(batch_delay_s=BATCH_DELAY_S)
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
