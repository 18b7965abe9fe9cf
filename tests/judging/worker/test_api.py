"""/api/v1/judge-runs/ with tokens: start a baseline run, follow it to the end, cancel, and the
same gates as the runs page (judge watchers read, judge operators start and cancel)."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import Permission, User
from django.test import Client

from judging.models import JudgeRun, RunStatus
from judging.services import start_run
from spavl_web.tokens import create_token
from tests.factories import make_sampled_pairs

pytestmark = pytest.mark.django_db
RUNS = "/api/v1/judge-runs/"


def _with_perm(name: str, codename: str) -> User:
    user = User.objects.create_user(name)
    user.user_permissions.add(Permission.objects.get(codename=codename))
    return User.objects.get(pk=user.pk)


def _api(user: User, *scopes: str) -> Client:
    _, secret = create_token(user=user, name="test", scopes=list(scopes))
    return Client(HTTP_AUTHORIZATION=f"Token {secret}")


def test_an_operator_starts_a_run_and_follows_it_to_the_end(
    django_capture_on_commit_callbacks: Any,
) -> None:
    make_sampled_pairs(count=5)
    operator = _api(_with_perm("operator", "change_judgerun"), "judge")
    with django_capture_on_commit_callbacks(execute=True):
        started = operator.post(
            RUNS, {"backend": "baseline", "pairs": "all", "batch_size": 2}, "application/json"
        )
    assert started.status_code == 201, started.json()
    run = operator.get(f"{RUNS}{started.json()['id']}/").json()
    assert (run["status"], run["total"], run["done"]) == (RunStatus.FINISHED, 5, 5)
    assert [entry["id"] for entry in operator.get(RUNS).json()] == [run["id"]]


def test_a_bad_request_says_what_is_wrong(settings: Any) -> None:
    operator = _api(_with_perm("operator", "change_judgerun"), "judge")
    no_model = operator.post(RUNS, {"backend": "transformers"}, "application/json")
    bad_backend = operator.post(RUNS, {"backend": "gpt"}, "application/json")
    assert no_model.status_code == 400 and "needs a model" in no_model.json()["detail"]
    assert bad_backend.status_code == 400 and "backend" in bad_backend.json()


def test_cancel_ends_a_queued_run_once_then_answers_409() -> None:
    make_sampled_pairs(count=3)
    run = start_run(backend="baseline", pairs="all", batch_size=2)  # no worker: stays queued
    operator = _api(_with_perm("operator", "change_judgerun"), "judge")
    first = operator.post(f"{RUNS}{run.pk}/cancel/")
    again = operator.post(f"{RUNS}{run.pk}/cancel/")
    assert first.status_code == 200 and first.json()["status"] == RunStatus.CANCELLED
    assert again.status_code == 409 and "already ended" in again.json()["detail"]


def test_watchers_read_operators_act_and_scopes_hold() -> None:
    make_sampled_pairs(count=2)
    run = start_run(backend="baseline", pairs="all")
    watcher = _api(_with_perm("watcher", "view_judgerun"), "read")
    reader = _api(_with_perm("reader-op", "change_judgerun"), "read")
    reviewer = _api(User.objects.create_user("rev"), "read")
    assert watcher.get(f"{RUNS}{run.pk}/").status_code == 200
    assert watcher.post(f"{RUNS}{run.pk}/cancel/").status_code == 403  # no judge scope
    assert reader.post(f"{RUNS}{run.pk}/cancel/").status_code == 403  # operator, read token
    assert (
        reviewer.get(RUNS).status_code == 404
        and reviewer.get(f"{RUNS}{run.pk}/").status_code == 404
    )
    assert JudgeRun.objects.get(pk=run.pk).status == RunStatus.QUEUED
