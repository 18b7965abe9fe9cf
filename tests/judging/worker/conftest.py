"""Fixtures for the judge worker tests: Celery runs in-process unless a test asks for a broker."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from spavl_web.celery import app as celery_app


@pytest.fixture(autouse=True)
def celery_in_process() -> Iterator[None]:
    """Tasks run eagerly in the test process (REDIS_URL is set for the real-worker tests)."""
    previous = celery_app.conf.task_always_eager
    celery_app.conf.task_always_eager = True
    yield
    celery_app.conf.task_always_eager = previous
