"""The export page in a real browser: a finished job's files, a running one polling."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import User

from annotation.models import ExportDefinition, ExportJob, ExportStatus
from annotation.services.export import create_export_job, run_export_job, spec_from_definition
from tests.factories import make_labelled_pair

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_a_staff_member_sees_a_finished_export_and_downloads_its_card(
    live_server: Any,
    chromium: Any,
    artifacts: Path,
    spavl_taxonomy: None,
    settings: Any,
    tmp_path: Path,
) -> None:
    settings.EXPORT_ROOT = tmp_path / "exports"
    User.objects.create_superuser("ada", password="ada-password-1")
    for index in range(12):
        make_labelled_pair(subcategory_key=["bully", "harass", "ageism"][index % 3])
    definition = ExportDefinition.objects.create(
        name="people-confirmed",
        description="Pairs a person confirmed or flipped.",
        formats=["spavl-parquet", "rlhf-json"],
        train_ratio=0.5,
        validation_ratio=0.25,
        test_ratio=0.25,
    )
    spec = spec_from_definition(definition)
    finished = create_export_job(spec=spec, export_format="spavl-parquet", definition=definition)
    run_export_job(job_id=finished.pk)
    running = create_export_job(spec=spec, export_format="rlhf-json", definition=definition)
    ExportJob.objects.filter(pk=running.pk).update(status=ExportStatus.RUNNING, done=5, total=12)

    page = chromium.new_page(viewport={"width": 1400, "height": 1000})
    page.goto(f"{live_server.url}/accounts/login/")
    page.fill("#id_username", "ada")
    page.fill("#id_password", "ada-password-1")
    page.keyboard.press("Enter")
    page.wait_for_selector("text=Exports")
    page.click("nav >> text=Exports")
    page.wait_for_selector(f"#job-{finished.pk}")
    assert page.get_attribute("#export-jobs", "hx-trigger") == "every 2s"
    page.screenshot(path=str(artifacts / "exports.png"), full_page=True)

    # The running job finishes; the next poll shows it done and polling stops.
    run_export_job(job_id=running.pk)
    page.wait_for_selector(f"#job-{running.pk} .run-finished", timeout=10_000)
    assert page.get_attribute("#export-jobs", "hx-trigger") is None
    with page.expect_download() as download:
        page.click(f"#export-jobs a[href='/api/v1/exports/{finished.pk}/files/README.md']")
    card = Path(download.value.path()).read_text()
    assert card == (Path(finished.output_dir) / "README.md").read_text()
    page.screenshot(path=str(artifacts / "exports-finished.png"), full_page=True)
