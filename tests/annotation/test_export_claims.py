"""Two deliveries of one export task (acks_late + Redis redelivery) never run it at once: the
runner claims the job with one conditional UPDATE and a heartbeat lease."""

from __future__ import annotations

import threading
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.utils import timezone

from annotation.models import EXPORT_LEASE, ExportJob, ExportStatus
from annotation.services.export import (
    ExportClaimLost,
    ExportSpec,
    create_export_job,
    run_export_job,
)
from tests.factories import make_image, make_labelled_pair

ALL_TRAIN = {"train": 1.0, "validation": 0.0, "test": 0.0}


def _queued_job(tmp_path: Path, *, pairs: int = 3) -> ExportJob:
    for index in range(pairs):
        make_labelled_pair(image=make_image(seed=500 + index * 31))
    spec = ExportSpec(name="claims", ratios=ALL_TRAIN)
    return create_export_job(spec=spec, export_format="spavl-parquet", output_dir=tmp_path / "out")


@pytest.mark.django_db(transaction=True)
def test_it_lets_only_one_of_two_simultaneous_deliveries_run_the_job(
    spavl_taxonomy: None, tmp_path: Path
) -> None:
    job = _queued_job(tmp_path)
    release = threading.Event()
    results: list[ExportJob] = []
    errors: list[BaseException] = []

    def hold(done: int, total: int) -> None:
        release.wait(20)

    def deliver() -> None:
        try:
            results.append(run_export_job(job_id=job.pk, on_progress=hold))
        except BaseException as error:  # surfaced in the main thread below
            errors.append(error)
        finally:
            connection.close()

    workers = [threading.Thread(target=deliver) for _ in range(2)]
    for worker in workers:
        worker.start()
    deadline = time.monotonic() + 20
    while not results and not errors and time.monotonic() < deadline:
        time.sleep(0.05)
    # One delivery returned at once while the other is still inside the job, writing.
    assert errors == []
    assert [(r.status, r.attempts, r.files) for r in results] == [(ExportStatus.RUNNING, 1, [])]
    release.set()
    for worker in workers:
        worker.join(20)

    assert errors == []
    job.refresh_from_db()
    assert (job.status, job.attempts, job.done) == (ExportStatus.FINISHED, 1, 3)
    assert len(results) == 2


@pytest.mark.django_db
def test_it_stops_a_worker_whose_lapsed_lease_another_worker_took_over(
    spavl_taxonomy: None, tmp_path: Path, settings: Any
) -> None:
    settings.EXPORT_SHARD_BYTES = 1  # one pair per shard: the job records after every pair
    job = _queued_job(tmp_path)
    taken_over: list[ExportJob] = []

    def stall_then_lose_the_lease(done: int, total: int) -> None:
        if taken_over:
            return
        # The first worker stalls past its lease; Redis redelivers; the second worker runs it.
        stale = timezone.now() - EXPORT_LEASE - timedelta(seconds=1)
        ExportJob.objects.filter(pk=job.pk).update(heartbeat_at=stale)
        taken_over.append(run_export_job(job_id=job.pk))

    with pytest.raises(ExportClaimLost):
        run_export_job(job_id=job.pk, on_progress=stall_then_lose_the_lease)

    job.refresh_from_db()
    assert taken_over[0].status == ExportStatus.FINISHED
    assert (job.status, job.attempts, job.error) == (ExportStatus.FINISHED, 2, "")
    assert job.files == taken_over[0].files  # the stalled worker recorded nothing


@pytest.mark.django_db
def test_it_resumes_a_job_whose_worker_went_quiet_for_longer_than_the_lease(
    spavl_taxonomy: None, tmp_path: Path
) -> None:
    job = _queued_job(tmp_path)
    quiet = timezone.now() - EXPORT_LEASE + timedelta(minutes=1)
    ExportJob.objects.filter(pk=job.pk).update(status=ExportStatus.RUNNING, heartbeat_at=quiet)

    assert run_export_job(job_id=job.pk).attempts == 0  # still within the lease: left alone
    ExportJob.objects.filter(pk=job.pk).update(heartbeat_at=quiet - timedelta(minutes=2))
    resumed = run_export_job(job_id=job.pk)

    assert (resumed.status, resumed.attempts, resumed.done) == (ExportStatus.FINISHED, 1, 3)


@pytest.mark.django_db
def test_it_refuses_to_resume_from_the_command_line_while_another_worker_holds_the_job(
    spavl_taxonomy: None, tmp_path: Path
) -> None:
    job = _queued_job(tmp_path)
    ExportJob.objects.filter(pk=job.pk).update(
        status=ExportStatus.RUNNING, heartbeat_at=timezone.now(), attempts=1
    )

    with pytest.raises(CommandError, match="in another worker"):
        call_command("export_dataset", out=job.output_dir, resume=True, verbosity=0)
    job.refresh_from_db()
    assert (job.status, job.attempts, job.files) == (ExportStatus.RUNNING, 1, [])
    assert not Path(job.output_dir).exists()
