"""Leases for background jobs: one clock (the database's), one heartbeat, stated timeouts.

A running export, judge batch or import writes ``heartbeat_at = now()`` (the database's clock,
so workers with skewed clocks agree) every ``JOB_HEARTBEAT_S`` from a thread beside the work,
which keeps beating while the work is busy in one long call and stops when the process dies.
A job quiet for ``JOB_LEASE_S`` is taken to be dead; the recovery sweep resends or fails it.

Services start jobs with ``enqueue_on_commit`` and the task's registered name, so imports run
one way: a ``tasks`` module imports the one service it calls, and no service imports a task.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from functools import partial

from celery import Task
from django.conf import settings
from django.db import connection, transaction
from django.db.models import DateTimeField, ExpressionWrapper, Q
from django.db.models.functions import Now

logger = logging.getLogger(__name__)


def registered_task(name: str) -> Task:  # type: ignore[type-arg]
    """The Celery task registered under ``name``, importing the apps' ``tasks`` modules on
    first use (a web process has not, until it sends one). Unknown names raise ``KeyError``."""
    from spavl_web.celery import app

    if name not in app.tasks:
        app.loader.import_default_modules()  # runs the apps' task autodiscovery
    return app.tasks[name]


def enqueue_on_commit(name: str, *args: object, **kwargs: object) -> None:
    """Send the task registered under ``name`` once the current transaction commits (at once
    outside one); in-process when ``CELERY_TASK_ALWAYS_EAGER``, as in the embedded demo."""
    transaction.on_commit(partial(registered_task(name).delay, *args, **kwargs))


def job_lease() -> timedelta:
    return timedelta(seconds=settings.JOB_LEASE_S)


def seconds_ago(seconds: float) -> ExpressionWrapper:
    """The database's now() minus ``seconds``, for comparisons against stored timestamps."""
    return ExpressionWrapper(Now() - timedelta(seconds=seconds), output_field=DateTimeField())


def lapsed(*, field: str = "heartbeat_at", fallback: str = "started_at") -> Q:
    """Rows whose last sign of life (``field``, or ``fallback`` before the first beat) is
    older than the lease, by the database's clock."""
    before = seconds_ago(settings.JOB_LEASE_S)
    never = Q(**{f"{field}__isnull": True})
    return (
        Q(**{f"{field}__lt": before})
        | (never & Q(**{f"{fallback}__lt": before}))
        | (never & Q(**{f"{fallback}__isnull": True}))
    )


def sent_before_grace(*, fallback: str | None = None) -> Q:
    """Rows whose task was last sent (``enqueued_at``, or ``fallback`` when never recorded)
    more than ``QUEUED_GRACE_S`` ago, by the database's clock; with no fallback, rows never
    recorded as sent count as sent long ago."""
    before = seconds_ago(settings.QUEUED_GRACE_S)
    never = Q(enqueued_at__isnull=True)
    if fallback is not None:
        never &= Q(**{f"{fallback}__lt": before})
    return Q(enqueued_at__lt=before) | never


@contextmanager
def heartbeat(beat: Callable[[], bool], *, every: float | None = None) -> Iterator[None]:
    """Call ``beat`` every ``every`` seconds from a daemon thread while the block runs; it
    returns False once the job is no longer ours, which stops the beating. On SQLite (the
    embedded demo, one process) no thread runs: a second writer would only wait for locks."""
    if connection.vendor == "sqlite":
        yield
        return
    stop = threading.Event()
    interval = every if every is not None else settings.JOB_HEARTBEAT_S
    thread = threading.Thread(
        target=_beat_until, args=(beat, stop, interval), name="job-heartbeat", daemon=True
    )
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=interval + 5)


def _beat_until(beat: Callable[[], bool], stop: threading.Event, interval: float) -> None:
    try:
        while not stop.wait(interval):
            try:
                if not beat():
                    return
            except Exception:  # a missed beat is not fatal; the lease allows a few
                logger.exception("job heartbeat failed")
                connection.close()  # reconnect on the next beat
    finally:
        connection.close()  # this thread's own connection
