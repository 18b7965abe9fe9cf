"""An import process killed mid-file (kill -9) does not stay "running": the recovery sweep marks
it failed with the rows done so far, and running the import again completes it exactly once."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from annotation.demo.files import write_demo_dataset
from annotation.models import ImportBatch, ImportStatus, Pair, Question, Response
from annotation.services.recovery import recover_stalled_jobs
from tests.workers import REPO, wait_for, worker_env

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def import_command(dataset_dir: Path) -> list[str]:
    responses = dataset_dir / "responses.jsonl"
    return [sys.executable, "manage.py", "import_data", "--format", "responses-jsonl"] + [
        str(responses),
        "--image-root",
        str(dataset_dir),
        "--no-progress",
    ]


def test_it_fails_a_killed_import_with_its_rows_and_a_second_run_completes_it(
    spavl_taxonomy: None, tmp_path: Path, settings
) -> None:
    dataset = write_demo_dataset(out=tmp_path / "data", questions=2400, seed=3)
    process = subprocess.Popen(
        import_command(tmp_path / "data"), cwd=REPO, env=worker_env(), stdout=subprocess.DEVNULL
    )

    def first_chunk_written() -> bool:
        return ImportBatch.objects.filter(rows_read__gt=0).exists() or process.poll() is not None

    wait_for(first_chunk_written, timeout=120)
    process.kill()
    process.wait()
    batch = ImportBatch.objects.get()
    assert batch.status == ImportStatus.RUNNING, "the import finished before it could be killed"
    assert 0 < batch.rows_read < dataset.responses

    settings.JOB_LEASE_S = 3
    time.sleep(3.5)
    report = recover_stalled_jobs()

    batch.refresh_from_db()
    assert report.imports_failed == [batch.pk]
    assert batch.status == ImportStatus.FAILED
    assert f"after {batch.rows_read} rows" in batch.error_message
    assert "run the import again" in batch.error_message
    again = subprocess.run(
        import_command(tmp_path / "data"), cwd=REPO, env=worker_env(), capture_output=True
    )
    assert again.returncode == 0, again.stderr[-2000:]
    second = ImportBatch.objects.exclude(pk=batch.pk).get()
    assert second.status == ImportStatus.FINISHED
    assert second.rows_created + second.rows_existing == dataset.responses
    assert second.rows_existing >= batch.rows_created
    assert Question.objects.count() == dataset.questions
    assert Response.objects.count() == dataset.responses
    assert Pair.objects.count() == 0  # responses only: make_pairs forms pairs later
