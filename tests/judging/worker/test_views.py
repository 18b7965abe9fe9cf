"""The judge runs pages over HTTP: access, htmx partials, start and cancel, query counts."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import Permission, User
from django.test import Client
from django.urls import reverse

from judging.models import JudgeRun, RunStatus
from judging.services import judge_batch, start_run
from tests.factories import make_sampled_pairs

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff_client(client: Client, staff_admin: User) -> Client:
    client.force_login(staff_admin)
    return client


@pytest.fixture
def queued_run() -> JudgeRun:
    make_sampled_pairs(count=3)
    return start_run(backend="baseline", pairs="all", batch_size=2)  # tasks never run here


def test_it_sends_anonymous_visitors_to_the_login_page(client):
    response = client.get(reverse("judging:runs"))

    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


def test_it_answers_404_to_reviewers_on_every_page(client, reviewer, queued_run):
    client.force_login(reviewer)

    assert client.get(reverse("judging:runs")).status_code == 404
    assert client.get(reverse("judging:run", args=[queued_run.pk])).status_code == 404
    assert client.post(reverse("judging:start"), {"backend": "baseline"}).status_code == 404
    assert client.post(reverse("judging:cancel", args=[queued_run.pk])).status_code == 404
    assert JudgeRun.objects.get(pk=queued_run.pk).status == RunStatus.QUEUED


def test_staff_status_alone_shows_no_judge_run(client, queued_run):
    """is_staff means "may log into the admin", nothing more."""
    client.force_login(User.objects.create_user("sam", password="sam-password-1", is_staff=True))
    assert client.get(reverse("judging:runs")).status_code == 404


def test_it_lets_a_judge_watcher_look_but_not_start_or_cancel(client, queued_run):
    watcher = User.objects.create_user("wanda", password="wanda-password-1", is_staff=True)
    watcher.user_permissions.add(Permission.objects.get(codename="view_judgerun"))
    client.force_login(watcher)

    page = client.get(reverse("judging:runs"))

    assert page.status_code == 200
    assert b"Start a run" not in page.content
    assert client.post(reverse("judging:cancel", args=[queued_run.pk])).status_code == 404
    assert client.post(reverse("judging:start"), {"backend": "baseline"}).status_code == 404


def test_it_lists_runs_with_progress_and_polls_while_one_is_active(staff_client, queued_run):
    response = staff_client.get(reverse("judging:runs"))

    html = response.content.decode()
    assert response.status_code == 200
    assert f'href="{reverse("judging:run", args=[queued_run.pk])}"' in html
    assert 'hx-trigger="every 2s"' in html
    assert "0 / 3" in html
    assert "baseline (no model)" in html
    assert "Judge runs</a>" in html  # the nav link


def test_it_renders_only_the_table_for_htmx_polls(staff_client, queued_run):
    response = staff_client.get(reverse("judging:runs"), HTTP_HX_REQUEST="true")

    html = response.content.decode()
    assert response.status_code == 200
    assert html.lstrip().startswith('<div id="runs-table"')
    assert "<html" not in html and "Start a run" not in html


def test_it_stops_polling_when_no_run_is_active(staff_client, django_capture_on_commit_callbacks):
    make_sampled_pairs(count=2)
    with django_capture_on_commit_callbacks(execute=True):
        start_run(backend="baseline", pairs="all")

    html = staff_client.get(reverse("judging:runs")).content.decode()

    assert "hx-trigger" not in html
    assert "2 / 2" in html


@pytest.mark.parametrize("count", [1, 12])
def test_it_lists_runs_in_a_constant_number_of_queries(
    count, staff_client, django_assert_max_num_queries
):
    make_sampled_pairs(count=1)
    for _ in range(count):
        start_run(backend="baseline", pairs="all")

    with django_assert_max_num_queries(6):
        response = staff_client.get(reverse("judging:runs"))

    assert response.content.decode().count("<progress") == count


def test_it_shows_a_runs_numbers_and_polls_its_summary(staff_client, queued_run):
    url = reverse("judging:run", args=[queued_run.pk])

    page = staff_client.get(url)
    partial = staff_client.get(url, HTTP_HX_REQUEST="true")

    assert page.status_code == partial.status_code == 200
    assert b"Cancel run" in page.content
    assert b'hx-trigger="every 2s"' in page.content
    assert partial.content.decode().lstrip().startswith('<div id="run-summary"')
    assert b"pending" in partial.content


def test_it_shows_a_run_page_in_a_constant_number_of_queries(
    staff_client, queued_run, django_assert_max_num_queries
):
    with django_assert_max_num_queries(6):
        staff_client.get(reverse("judging:run", args=[queued_run.pk]))


def test_it_answers_404_for_a_missing_run(staff_client):
    assert staff_client.get(reverse("judging:run", args=[999_999])).status_code == 404


def test_it_starts_a_run_from_the_form(
    staff_client, staff_admin, django_capture_on_commit_callbacks
):
    make_sampled_pairs(count=3)

    with django_capture_on_commit_callbacks(execute=True):
        response = staff_client.post(
            reverse("judging:start"), {"backend": "baseline", "pairs": "all", "batch_size": "2"}
        )

    run = JudgeRun.objects.get()
    assert response.status_code == 302
    assert response["Location"] == reverse("judging:run", args=[run.pk])
    assert (run.status, run.done, run.started_by) == (RunStatus.FINISHED, 3, staff_admin)


def test_it_starts_a_transformers_run_without_loading_the_model_in_the_request(
    staff_client, monkeypatch
):
    def load_judge(**spec: Any) -> None:
        raise AssertionError(f"the web process loaded a judge: {spec}")

    monkeypatch.setattr("judging.services.runs.load_judge", load_judge)
    make_sampled_pairs(count=3)

    response = staff_client.post(
        reverse("judging:start"),
        {"backend": "transformers", "model": "org/some-vlm", "pairs": "unjudged"},
    )

    run = JudgeRun.objects.get()
    assert response.status_code == 302
    assert (run.status, run.total, run.configuration) == (RunStatus.QUEUED, 3, None)
    assert (run.backend, run.model, run.revision, run.dtype) == (
        "transformers",
        "org/some-vlm",
        "",
        "",
    )
    assert run.batches.count() == 1
    page = staff_client.get(reverse("judging:runs")).content.decode()
    assert "org/some-vlm" in page


def test_it_shows_why_a_run_failed_on_the_runs_page(staff_client, tmp_path):
    make_sampled_pairs(count=2)
    run = start_run(backend="transformers", model=str(tmp_path / "no-such-model"), pairs="all")
    [batch] = run.batches.all()
    judge_batch(batch_id=batch.pk)  # the worker's part: the model cannot be loaded

    html = staff_client.get(reverse("judging:runs")).content.decode()

    assert JudgeRun.objects.get(pk=run.pk).status == RunStatus.FAILED
    assert "could not load the judge" in html
    assert "no-such-model" in html
    assert 'hx-trigger="every 2s"' not in html


def test_it_shows_the_reason_when_a_run_cannot_start(staff_client):
    response = staff_client.post(
        reverse("judging:start"), {"backend": "transformers", "pairs": "all"}
    )

    assert response.status_code == 400
    assert b"needs a model" in response.content
    assert not JudgeRun.objects.exists()


def test_it_cancels_a_run_from_its_page(staff_client, queued_run):
    response = staff_client.post(reverse("judging:cancel", args=[queued_run.pk]), follow=True)

    assert response.status_code == 200
    assert b"Cancelled judge run" in response.content
    assert JudgeRun.objects.get(pk=queued_run.pk).status == RunStatus.CANCELLED
    assert b"Cancel run" not in response.content
