"""Real Celery workers for tests: subprocesses on the test database and REDIS_URL's Redis.

Leases are short (3 s, heartbeat every 1 s) and the recovery sweep runs every second (Celery
beat embedded in the worker, ``-B``, when asked), so the failure paths a deployment meets in
minutes play out in seconds with the same code.
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

from spavl_web.celery import app as celery_app

REPO = Path(__file__).resolve().parents[1]
FAST_RECOVERY = {
    "SPAVL_JOB_LEASE_S": "3",
    "SPAVL_HEARTBEAT_S": "1",
    "SPAVL_SWEEP_INTERVAL_S": "1",
    "SPAVL_QUEUED_GRACE_S": "2",
}


def worker_database_url() -> str:
    database = connection.settings_dict
    url = f"postgres://{database['USER']}:{database['PASSWORD'] or ''}@{database['HOST']}"
    return f"{url}:{database['PORT'] or 5432}/{database['NAME']}"


def worker_env(**extra: str) -> dict[str, str]:
    return {
        **os.environ,
        "DATABASE_URL": worker_database_url(),
        "REDIS_URL": settings.REDIS_URL,
        "SPAVL_TASK_SOFT_TIME_LIMIT": "8",
        "SPAVL_TASK_TIME_LIMIT": "9",
        "SPAVL_VISIBILITY_TIMEOUT_S": "10",
        "SPAVL_UNACKED_RESTORE_INTERVAL_S": "1",
        **FAST_RECOVERY,
        **extra,
    }


@pytest.fixture
def broker() -> Iterator[redis.Redis]:
    if not settings.REDIS_URL:
        pytest.skip("REDIS_URL is not set: no broker for a real worker")
    client = redis.Redis.from_url(settings.REDIS_URL)
    client.flushdb()
    celery_app.conf.task_always_eager = False
    yield client
    celery_app.conf.task_always_eager = settings.CELERY_TASK_ALWAYS_EAGER
    client.flushdb()


@pytest.fixture
def start_worker(broker: redis.Redis, tmp_path: Path) -> Iterator[Callable[..., subprocess.Popen]]:
    """Start `celery worker -c 1 --pool prefork` in its own process group; ``beat=True`` embeds
    Celery beat, which runs the recovery sweep."""
    workers: list[subprocess.Popen] = []

    def start(*, queues: str = "judge,default", beat: bool = False, **env: str) -> subprocess.Popen:
        name = f"test-{uuid.uuid4().hex[:8]}@%h"
        log = (tmp_path / f"worker-{len(workers)}.log").open("w")
        command = [sys.executable, "-m", "celery", "-A", "spavl_web", "worker", "-Q", queues]
        command += ["-c", "1", "--pool", "prefork", "-n", name, "-l", "INFO"]
        command += ["--without-gossip", "--without-mingle", "--without-heartbeat"]
        if beat:
            command += ["-B", "-s", str(tmp_path / f"beat-{len(workers)}")]
        worker = subprocess.Popen(
            command,
            cwd=REPO,
            env=worker_env(**env),
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
