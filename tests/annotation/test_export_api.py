"""The export API: who may start, see and download exports; only finished files are served."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import Permission, User
from django.test import Client

from annotation.models import ExportDefinition, ExportJob, ExportStatus
from annotation.services.export import run_export_job
from spavl_web.tokens import create_token
from tests.factories import make_labelled_pair

CREATE = "/api/v1/exports/"


@pytest.fixture
def exporter(db: Any) -> User:
    user = User.objects.create_user("erin", password="erin-password-1")
    user.user_permissions.add(Permission.objects.get(codename="run_export"))
    return user


@pytest.fixture
def other_exporter(db: Any) -> User:
    user = User.objects.create_user("ezra", password="ezra-password-1")
    user.user_permissions.add(Permission.objects.get(codename="run_export"))
    return user


@pytest.fixture
def definition(db: Any, spavl_taxonomy: None, settings: Any, tmp_path: Path) -> ExportDefinition:
    settings.EXPORT_ROOT = tmp_path / "exports"
    for _ in range(3):
        make_labelled_pair()
    return ExportDefinition.objects.create(
        name="all", train_ratio=1, validation_ratio=0, test_ratio=0
    )


def _client(user: User | None) -> Client:
    client = Client()
    if user is not None:
        client.force_login(user)
    return client


def _start(client: Client, capture: Any) -> Any:
    with capture(execute=False) as callbacks:
        response = client.post(CREATE, {"definition": "all"}, content_type="application/json")
    return response, callbacks


def _finished_job(user: User, definition: ExportDefinition, capture: Any) -> ExportJob:
    response, _ = _start(_client(user), capture)
    return run_export_job(job_id=response.json()["id"])  # what the Celery worker does


@pytest.mark.django_db
def test_it_starts_a_job_on_commit_and_reports_its_progress_and_files(
    exporter: User, definition: ExportDefinition, django_capture_on_commit_callbacks: Any
) -> None:
    client = _client(exporter)
    response, callbacks = _start(client, django_capture_on_commit_callbacks)

    assert response.status_code == 201
    job_id = response.json()["id"]
    assert response.json()["status"] == "queued"
    assert len(callbacks) == 1  # the Celery task, sent only once the transaction commits
    run_export_job(job_id=job_id)
    detail = client.get(f"{CREATE}{job_id}/").json()
    assert (detail["status"], detail["done"], detail["total"]) == ("finished", 3, 3)
    assert {f["name"] for f in detail["files"]} >= {
        "README.md",
        "manifest.json",
        "data/train-00000-of-00001.parquet",
    }


@pytest.mark.django_db
def test_it_refuses_anonymous_users_and_reviewers_without_the_permission(
    reviewer: User, definition: ExportDefinition, django_capture_on_commit_callbacks: Any
) -> None:
    anonymous, _ = _start(_client(None), django_capture_on_commit_callbacks)
    as_reviewer, callbacks = _start(_client(reviewer), django_capture_on_commit_callbacks)

    assert anonymous.status_code in (401, 403)
    assert as_reviewer.status_code == 404
    assert callbacks == []
    assert not ExportJob.objects.exists()


@pytest.mark.django_db
def test_it_lets_admins_start_and_see_any_job(
    exporter: User,
    staff_admin: User,
    definition: ExportDefinition,
    django_capture_on_commit_callbacks: Any,
) -> None:
    job = _finished_job(exporter, definition, django_capture_on_commit_callbacks)
    admin = _client(staff_admin)

    assert admin.get(f"{CREATE}{job.pk}/").status_code == 200
    assert admin.get(f"{CREATE}{job.pk}/files/README.md").status_code == 200
    assert _start(admin, django_capture_on_commit_callbacks)[0].status_code == 201


@pytest.mark.django_db
def test_it_hides_another_users_job_even_with_a_valid_token(
    exporter: User,
    other_exporter: User,
    definition: ExportDefinition,
    django_capture_on_commit_callbacks: Any,
) -> None:
    job = _finished_job(exporter, definition, django_capture_on_commit_callbacks)
    _, secret = create_token(user=other_exporter, name="theirs", scopes=["export"])
    client = Client(HTTP_AUTHORIZATION=f"Token {secret}")

    assert client.get(f"{CREATE}{job.pk}/").status_code == 404
    assert client.get(f"{CREATE}{job.pk}/files/README.md").status_code == 404
    started, _ = _start(client, django_capture_on_commit_callbacks)
    assert started.status_code == 201  # the token itself works
    assert ExportJob.objects.get(pk=started.json()["id"]).created_by == other_exporter


@pytest.mark.django_db
def test_it_streams_finished_files_whole_or_by_range(
    exporter: User, definition: ExportDefinition, django_capture_on_commit_callbacks: Any
) -> None:
    job = _finished_job(exporter, definition, django_capture_on_commit_callbacks)
    client = _client(exporter)
    url = f"{CREATE}{job.pk}/files/data/train-00000-of-00001.parquet"
    on_disk = (Path(job.output_dir) / "data/train-00000-of-00001.parquet").read_bytes()

    whole = client.get(url)
    part = client.get(url, HTTP_RANGE="bytes=4-99")
    assert whole.status_code == 200
    assert b"".join(whole.streaming_content) == on_disk  # type: ignore[attr-defined]
    assert part.status_code == 206
    assert part["Content-Range"] == f"bytes 4-99/{len(on_disk)}"
    assert b"".join(part.streaming_content) == on_disk[4:100]  # type: ignore[attr-defined]


@pytest.mark.django_db
def test_it_answers_416_to_a_range_that_starts_past_the_end_of_the_file(
    exporter: User, definition: ExportDefinition, django_capture_on_commit_callbacks: Any
) -> None:
    job = _finished_job(exporter, definition, django_capture_on_commit_callbacks)
    client = _client(exporter)
    url = f"{CREATE}{job.pk}/files/README.md"
    size = (Path(job.output_dir) / "README.md").stat().st_size

    for header in (f"bytes={size}-", f"bytes={size + 10}-{size + 20}", "bytes=-0"):
        refused = client.get(url, HTTP_RANGE=header)
        assert refused.status_code == 416, header
        assert refused["Content-Range"] == f"bytes */{size}"
        assert refused.content == b""
    last_byte = client.get(url, HTTP_RANGE=f"bytes={size - 1}-{size + 100}")
    assert last_byte.status_code == 206
    assert last_byte["Content-Range"] == f"bytes {size - 1}-{size - 1}/{size}"
    backwards = client.get(url, HTTP_RANGE="bytes=9-2")  # invalid: ignored, whole file
    assert backwards.status_code == 200


@pytest.mark.django_db
def test_it_never_serves_a_half_written_or_unrecorded_file_or_a_path_outside_the_job(
    exporter: User, definition: ExportDefinition, django_capture_on_commit_callbacks: Any
) -> None:
    job = _finished_job(exporter, definition, django_capture_on_commit_callbacks)
    root = Path(job.output_dir)
    (root / "data/validation-00000-of-00001.parquet.partial").write_bytes(b"PAR1 half")
    (root / "stray.txt").write_text("not an export file")
    client = _client(exporter)
    base = f"{CREATE}{job.pk}/files/"

    assert client.get(base + "data/validation-00000-of-00001.parquet.partial").status_code == 404
    assert client.get(base + "stray.txt").status_code == 404
    assert client.get(base + "../../etc/passwd").status_code == 404
    assert client.get(base + "%2E%2E/job-1/README.md").status_code == 404
    # A job still running serves nothing that is not recorded as finished yet.
    ExportJob.objects.filter(pk=job.pk).update(status=ExportStatus.RUNNING, files=[])
    assert client.get(base + "README.md").status_code == 404


@pytest.mark.django_db
def test_it_lists_the_export_endpoints_in_the_openapi_schema(staff_admin: User) -> None:
    schema = _client(staff_admin).get("/api/v1/schema/").content.decode()

    assert "/api/v1/exports/{job_id}/files/{name}" in schema
    assert "exports_create" in schema


@pytest.mark.django_db
def test_a_definition_without_formats_needs_a_format_and_says_so(
    exporter: User, definition: ExportDefinition, django_capture_on_commit_callbacks: Any
) -> None:
    ExportDefinition.objects.filter(pk=definition.pk).update(formats=[])
    response, callbacks = _start(_client(exporter), django_capture_on_commit_callbacks)
    assert response.status_code == 400
    assert "names no format" in response.json()["format"][0]
    assert callbacks == [] and not ExportJob.objects.exists()
