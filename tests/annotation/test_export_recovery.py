"""Export jobs end on a real worker whatever happens to it: killed mid-job (kill -9), killed on
every attempt, or with its message lost between commit and delivery."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from annotation.models import ExportJob, ExportStatus
from annotation.services.export import ExportSpec, create_export_job
from annotation.services.export.jobs import send_export_job
from tests.factories import make_image, make_labelled_pair
from tests.workers import kill_worker, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]
PAIRS = 6
# One pair per shard, and each shard takes a second: the kill lands mid-job.
SLOW_SHARDS = {"SPAVL_EXPORT_SHARD_BYTES": "1", "SPAVL_EXPORT_SHARD_DELAY_S": "1"}


@pytest.fixture
def job(spavl_taxonomy: None, tmp_path: Path, settings) -> ExportJob:
    settings.EXPORT_SHARD_BYTES = 1  # the plan is built by the worker, but keep both in step
    pair_ids = [make_labelled_pair(image=make_image(seed=700 + n * 17)).pk for n in range(PAIRS)]
    assert len(pair_ids) == PAIRS
    spec = ExportSpec(name="recovery", ratios={"train": 1.0, "validation": 0.0, "test": 0.0})
    return create_export_job(spec=spec, export_format="spavl-parquet", output_dir=tmp_path / "out")


def job_of(job: ExportJob) -> ExportJob:
    return ExportJob.objects.get(pk=job.pk)


def assert_complete(job: ExportJob) -> None:
    """Every file in the manifest has its sha256, and the shards hold each pair exactly once."""
    root = Path(job.output_dir)
    manifest = json.loads((root / "manifest.json").read_text())
    for entry in manifest["files"]:
        assert hashlib.sha256((root / entry["name"]).read_bytes()).hexdigest() == entry["sha256"]
    shards = sorted(root.glob("data/*.parquet"))
    rows = [row for shard in shards for row in pq.read_table(shard).to_pylist()]
    assert len(rows) == PAIRS
    assert len({(row["question"], row["chosen"], row["rejected"]) for row in rows}) == PAIRS
    assert not list(root.rglob("*.partial"))


def test_it_resumes_an_export_from_its_last_shard_after_the_worker_is_killed(job, start_worker):
    worker = start_worker(queues="default", **SLOW_SHARDS)
    send_export_job(job_id=job.pk)

    def two_shards_written() -> bool:
        return job_of(job).done >= 2

    wait_for(two_shards_written, timeout=60)
    kill_worker(worker)  # kill -9 to the whole worker: out of memory, machine gone
    killed = job_of(job)
    assert killed.status == ExportStatus.RUNNING
    kept = {entry["name"]: entry["sha256"] for entry in killed.files}
    first = Path(killed.output_dir) / sorted(kept)[0]
    written_at = first.stat().st_mtime_ns

    start_worker(queues="default", beat=True, **SLOW_SHARDS)

    def finished() -> bool:
        return job_of(job).status == ExportStatus.FINISHED

    wait_for(finished, timeout=90)
    done = job_of(job)
    assert (done.attempts, done.done, done.total) == (2, PAIRS, PAIRS)
    assert first.stat().st_mtime_ns == written_at  # finished shards are not written again
    assert {e["name"]: e["sha256"] for e in done.files if e["name"] in kept} == kept
    assert_complete(done)


def test_it_fails_an_export_with_the_reason_once_its_worker_died_on_every_attempt(
    job, start_worker
):
    worker = start_worker(queues="default", SPAVL_EXPORT_MAX_ATTEMPTS="1", **SLOW_SHARDS)
    send_export_job(job_id=job.pk)

    def one_shard_written() -> bool:
        return job_of(job).done >= 1

    wait_for(one_shard_written, timeout=60)
    kill_worker(worker)
    start_worker(queues="default", beat=True, SPAVL_EXPORT_MAX_ATTEMPTS="1", **SLOW_SHARDS)

    def failed() -> bool:
        return job_of(job).status == ExportStatus.FAILED

    wait_for(failed, timeout=60)
    ended = job_of(job)
    assert ended.attempts == 1
    assert ended.error.startswith("gave up after 1 attempts: the worker stopped heartbeating")
    assert f"of {PAIRS} rows written" in ended.error


def test_it_sends_an_export_again_when_the_broker_lost_its_message(job, start_worker, broker):
    send_export_job(job_id=job.pk)
    assert broker.llen("default") == 1
    broker.delete("default")  # committed, then lost before any worker took it

    start_worker(queues="default", beat=True)

    def finished() -> bool:
        return job_of(job).status == ExportStatus.FINISHED

    wait_for(finished, timeout=60)
    done = job_of(job)
    assert done.attempts == 1
    assert_complete(done)
