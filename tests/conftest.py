"""Personas and shared fixtures. Builders live in tests/factories.py."""

from __future__ import annotations

from typing import Any
from uuid import uuid4

import pytest
from django.contrib.auth.models import User

from annotation.services.taxonomy import load_taxonomy

# Real Celery workers (broker, start_worker) for the failure-path tests.
pytest_plugins = ["tests.workers"]


@pytest.fixture(autouse=True)
def own_cache_namespace(settings: Any) -> None:
    """Each test caches under its own key prefix. Cached values are keyed by data and taxonomy
    versions, and those repeat from test to test because each test's writes roll back: two
    tests that write as many rows would otherwise read each other's dashboards."""
    caches = {alias: dict(config) for alias, config in settings.CACHES.items()}
    caches["default"]["KEY_PREFIX"] = f"test-{uuid4().hex[:12]}"
    settings.CACHES = caches


@pytest.fixture
def spavl_taxonomy(db: Any) -> None:
    load_taxonomy()


@pytest.fixture
def reviewer(db: Any) -> User:
    return User.objects.create_user("rita", password="rita-password-1")


@pytest.fixture
def other_reviewer(db: Any) -> User:
    return User.objects.create_user("otto", password="otto-password-1")


@pytest.fixture
def staff_admin(db: Any) -> User:
    return User.objects.create_superuser("ada", password="ada-password-1")


@pytest.fixture
def adjudicator(db: Any) -> User:
    from django.contrib.auth.models import Group

    user = User.objects.create_user("adele", password="adele-password-1")
    user.groups.add(Group.objects.get_or_create(name="adjudicator")[0])
    return user
