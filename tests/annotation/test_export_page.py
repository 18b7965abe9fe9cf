"""The staff export page: definitions, starting a job, live progress, files, one access gate."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import Permission, User
from django.test import Client
from django.utils import timezone

from annotation.models import EXPORT_LEASE, ExportDefinition, ExportJob, ExportStatus
from annotation.services.export import create_export_job, run_export_job, spec_from_definition
from tests.factories import make_labelled_pair

PAGE = "/exports/"
START = "/exports/start/"


@pytest.fixture
def exporter(db: Any) -> User:
    user = User.objects.create_user("erin", password="erin-password-1")
    user.user_permissions.add(Permission.objects.get(codename="run_export"))
    return user


@pytest.fixture
def definition(db: Any, spavl_taxonomy: None, settings: Any, tmp_path: Path) -> ExportDefinition:
    settings.EXPORT_ROOT = tmp_path / "exports"
    for _ in range(3):
        make_labelled_pair()
    return ExportDefinition.objects.create(
        name="confirmed-only",
        train_ratio=1,
        validation_ratio=0,
        test_ratio=0,
        taxonomy_keys=["bully"],
        formats=["spavl-parquet", "dpo-jsonl"],
    )


def _client(user: User | None) -> Client:
    client = Client()
    if user is not None:
        client.force_login(user)
    return client


def _job(definition: ExportDefinition, *, by: User, run: bool = True) -> ExportJob:
    job = create_export_job(
        spec=spec_from_definition(definition),
        export_format="spavl-parquet",
        definition=definition,
        created_by=by,
    )
    return run_export_job(job_id=job.pk) if run else job


@pytest.mark.django_db
@pytest.mark.parametrize("job_count", [1, 6])
def test_it_shows_definitions_and_jobs_with_files_in_a_fixed_number_of_queries(
    staff_admin: User,
    exporter: User,
    definition: ExportDefinition,
    django_assert_max_num_queries: Any,
    job_count: int,
) -> None:
    finished = [_job(definition, by=exporter) for _ in range(job_count)]
    ExportDefinition.objects.create(name=f"spare-{job_count}", formats=["rlhf-json"])
    client = _client(staff_admin)

    with django_assert_max_num_queries(6):
        response = client.get(PAGE)

    page = response.content.decode()
    assert response.status_code == 200
    assert "confirmed-only" in page and "taxonomy: bully" in page
    assert "train 1.0 · validation 0.0 · test 0.0" in page
    assert 'action="/exports/start/"' in page
    for job in finished:
        parquet = job.finished_file("data/train-00000-of-00001.parquet")
        assert parquet is not None
        assert f'href="/api/v1/exports/{job.pk}/files/data/train-00000-of-00001.parquet"' in page
        assert str(parquet["sha256"]) in page
    assert 'hx-trigger="every 2s"' not in page  # nothing active: no polling


@pytest.mark.django_db
def test_it_serves_the_listed_download_link_to_the_signed_in_user(
    exporter: User, definition: ExportDefinition
) -> None:
    job = _job(definition, by=exporter)
    client = _client(exporter)
    page = client.get(PAGE).content.decode()
    link = re.search(r'href="(/api/v1/exports/\d+/files/README.md)"', page)

    assert link is not None
    download = client.get(link.group(1))
    assert download.status_code == 200
    on_disk = (Path(job.output_dir) / "README.md").read_bytes()
    assert b"".join(download.streaming_content) == on_disk  # type: ignore[attr-defined]


@pytest.mark.django_db
def test_it_answers_404_to_reviewers_and_sends_anonymous_users_to_log_in(
    reviewer: User, definition: ExportDefinition, django_capture_on_commit_callbacks: Any
) -> None:
    as_reviewer = _client(reviewer)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        started = as_reviewer.post(START, {"definition": definition.pk, "format": "dpo-jsonl"})

    assert as_reviewer.get(PAGE).status_code == 404
    assert started.status_code == 404
    assert callbacks == [] and not ExportJob.objects.exists()
    anonymous = Client().get(PAGE)
    assert anonymous.status_code == 302 and "/accounts/login/" in anonymous["Location"]
    assert "Exports</a>" not in as_reviewer.get("/").content.decode()


@pytest.mark.django_db
def test_it_lets_an_exporter_start_a_job_that_is_enqueued_on_commit(
    exporter: User, definition: ExportDefinition, django_capture_on_commit_callbacks: Any
) -> None:
    client = _client(exporter)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = client.post(START, {"definition": definition.pk, "format": "dpo-jsonl"})

    job = ExportJob.objects.get()
    assert response.status_code == 302
    assert response["Location"] == f"/exports/#job-{job.pk}"
    assert (job.format, job.status, job.created_by) == ("dpo-jsonl", "queued", exporter)
    assert job.definition_snapshot["taxonomy_keys"] == ["bully"]
    assert len(callbacks) == 1  # the Celery task, sent once the transaction commits
    page = client.get(PAGE).content.decode()
    assert f"Started export {job.pk}" in page
    assert 'hx-trigger="every 2s"' in page  # a queued job: the table polls


@pytest.mark.django_db
def test_it_shows_an_exporter_only_their_own_jobs_and_staff_all_of_them(
    exporter: User, staff_admin: User, definition: ExportDefinition
) -> None:
    mine = _job(definition, by=exporter, run=False)
    theirs = _job(definition, by=staff_admin, run=False)

    as_exporter = _client(exporter).get(PAGE).content.decode()
    as_staff = _client(staff_admin).get(PAGE).content.decode()
    assert f'id="job-{mine.pk}"' in as_exporter
    assert f'id="job-{theirs.pk}"' not in as_exporter
    assert f'id="job-{mine.pk}"' in as_staff and f'id="job-{theirs.pk}"' in as_staff


@pytest.mark.django_db
def test_it_answers_htmx_polls_with_the_jobs_partial_and_stops_polling_when_done(
    exporter: User, definition: ExportDefinition, django_assert_max_num_queries: Any
) -> None:
    job = _job(definition, by=exporter, run=False)
    client = _client(exporter)

    with django_assert_max_num_queries(5):  # session, user, two permission reads, jobs
        running = client.get(PAGE, HTTP_HX_REQUEST="true").content.decode()
    run_export_job(job_id=job.pk)
    done = client.get(PAGE, HTTP_HX_REQUEST="true").content.decode()

    assert running.lstrip().startswith('<div id="export-jobs"')
    assert "<html" not in running and "Definitions" not in running
    assert 'hx-trigger="every 2s"' in running and "0 / 0 pairs" in running
    assert 'hx-trigger="every 2s"' not in done and "3 / 3 pairs" in done


@pytest.mark.django_db
def test_it_shows_a_failed_jobs_error_escaped(exporter: User, definition: ExportDefinition) -> None:
    job = _job(definition, by=exporter, run=False)
    ExportJob.objects.filter(pk=job.pk).update(
        status=ExportStatus.FAILED, error="OSError: <script>alert(1)</script> disk full"
    )

    page = _client(exporter).get(PAGE).content.decode()
    assert f"Export {job.pk} failed:" in page
    assert "OSError: &lt;script&gt;alert(1)&lt;/script&gt; disk full" in page
    assert "<script>alert(1)" not in page


@pytest.mark.django_db
def test_it_rejects_an_unknown_format_or_definition_with_the_error_on_the_page(
    exporter: User, definition: ExportDefinition, django_capture_on_commit_callbacks: Any
) -> None:
    client = _client(exporter)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        bad_format = client.post(START, {"definition": definition.pk, "format": "csv"})
        bad_definition = client.post(START, {"definition": 999999, "format": "dpo-jsonl"})

    assert bad_format.status_code == 400
    assert "Could not start the export: format:" in bad_format.content.decode()
    assert bad_definition.status_code == 400
    assert "definition:" in bad_definition.content.decode()
    assert callbacks == [] and not ExportJob.objects.exists()


@pytest.mark.django_db
def test_it_marks_a_running_job_whose_worker_went_quiet_past_the_lease(
    exporter: User, definition: ExportDefinition
) -> None:
    quiet = _job(definition, by=exporter, run=False)
    alive = _job(definition, by=exporter, run=False)
    now = timezone.now()
    ExportJob.objects.filter(pk=quiet.pk).update(
        status=ExportStatus.RUNNING, heartbeat_at=now - EXPORT_LEASE - timedelta(minutes=1)
    )
    ExportJob.objects.filter(pk=alive.pk).update(status=ExportStatus.RUNNING, heartbeat_at=now)

    page = _client(exporter).get(PAGE).content.decode()
    assert page.count("no heartbeat since") == 1
    quiet_row = page[page.index(f'id="job-{quiet.pk}"') :]
    assert quiet_row.index("no heartbeat since") < quiet_row.index("</tr>")
