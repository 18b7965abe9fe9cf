"""Personas and shared fixtures. Builders live in tests/factories.py."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import User

from annotation.services.taxonomy import load_taxonomy

# Real Celery workers (broker, start_worker) for the failure-path tests.
pytest_plugins = ["tests.workers"]


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
