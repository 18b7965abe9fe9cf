"""/api/v1/imports/ through HTTP with tokens: an upload streamed to disk and imported by the
job a worker runs, a path under the import root (and nothing outside it), the rejected rows
with their numbers, uploads past the limit refused with nothing left behind, lost messages
sent again, a second delivery running nothing, and a real Celery worker doing it all."""

from __future__ import annotations

import io
import os
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import Permission, User
from django.test import Client
from django.utils import timezone

from annotation.models import ImportBatch, ImportStatus, Pair
from annotation.services.imports.jobs import queue_import, run_import_job
from annotation.services.recovery import _resend_imports
from spavl_web.tokens import create_token
from tests.factories import image_bytes, write_parquet
from tests.workers import wait_for

IMPORTS = "/api/v1/imports/"
CLASSES = {"class1": "Representation & ToxicityHarms", "class2": "Toxic", "class3": "bully"}


def _rows(count: int, *, bad: tuple[int, ...] = ()) -> list[dict[str, Any]]:
    return [
        {
            "image": {"bytes": image_bytes(seed=900 + n), "path": f"{n}.jpg"},
            "question": f"Imported question {n}?",
            "chosen": f"No ({n}).",
            "rejected": f"Yes ({n}).",
            **CLASSES,
            **({"class3": "no such subcategory"} if n in bad else {}),
        }
        for n in range(1, count + 1)
    ]


def _importer() -> User:
    user = User.objects.create_user("ingrid")
    user.user_permissions.add(Permission.objects.get(codename="add_importbatch"))
    return User.objects.get(pk=user.pk)


def _api(user: User, *scopes: str) -> Client:
    _, secret = create_token(user=user, name="test", scopes=list(scopes))
    return Client(HTTP_AUTHORIZATION=f"Token {secret}")


@pytest.fixture
def folders(settings: Any, tmp_path: Path) -> dict[str, Path]:
    paths = {
        "root": tmp_path / "import-root",
        "uploads": tmp_path / "uploads",
        "reports": tmp_path / "reports",
    }
    for path in paths.values():
        path.mkdir()
    settings.IMPORT_ROOT = paths["root"]
    settings.IMPORT_UPLOAD_DIR = paths["uploads"]
    settings.IMPORT_REPORT_DIR = paths["reports"]
    return paths


def _parquet_bytes(tmp_path: Path, rows: list[dict[str, Any]]) -> bytes:
    return write_parquet(path=tmp_path / "upload.parquet", rows=rows).read_bytes()


def _upload(client: Client, data: bytes, name: str = "validation.parquet", **fields: str) -> Any:
    handle = io.BytesIO(data)
    handle.name = name
    return client.post(IMPORTS, {"format": "spavl-parquet", "file": handle, **fields})


@pytest.mark.django_db
def test_an_upload_is_queued_imported_by_the_job_and_its_rejections_listed(
    spavl_taxonomy: None, folders: dict[str, Path], tmp_path: Path
) -> None:
    client = _api(_importer(), "import")
    started = _upload(client, _parquet_bytes(tmp_path, _rows(5, bad=(2, 4))))
    assert started.status_code == 202, started.json()
    queued = started.json()
    assert (queued["status"], queued["file_name"]) == ("queued", "validation.parquet")
    assert "path" not in queued["options"]
    (stored,) = [p for p in folders["uploads"].rglob("*") if p.is_file()]
    assert stored.read_bytes() == _parquet_bytes(tmp_path, _rows(5, bad=(2, 4)))

    run_import_job(batch_id=queued["id"])  # what the worker runs on the task

    done = client.get(f"{IMPORTS}{queued['id']}/").json()
    assert (done["status"], done["rows_total"], done["rows_read"]) == ("finished", 5, 5)
    assert (done["rows_created"], done["rows_rejected"]) == (3, 2)
    assert Pair.objects.count() == 3
    rejected = client.get(f"{IMPORTS}{queued['id']}/rejections/").json()
    assert [r["row"] for r in rejected["results"]] == [2, 4]
    assert "unknown taxonomy" in rejected["results"][0]["reason"]
    assert rejected["complete"] and rejected["next_offset"] is None
    page = client.get(f"{IMPORTS}{queued['id']}/rejections/", {"limit": 1}).json()
    assert [r["row"] for r in page["results"]] == [2] and page["next_offset"] == 1
    assert not any(folders["uploads"].iterdir()), "the upload is removed once imported"
    assert [b["id"] for b in client.get(IMPORTS).json()] == [queued["id"]]


@pytest.mark.django_db
def test_a_second_delivery_runs_nothing(
    spavl_taxonomy: None, folders: dict[str, Path], tmp_path: Path
) -> None:
    write_parquet(path=folders["root"] / "v.parquet", rows=_rows(2))
    batch = queue_import(import_format="spavl-parquet", by=_importer(), path="v.parquet")
    assert run_import_job(batch_id=batch.pk) is not None
    assert run_import_job(batch_id=batch.pk) is None
    assert ImportBatch.objects.get(pk=batch.pk).rows_created == 2


@pytest.mark.django_db
def test_paths_outside_the_import_root_are_refused(
    spavl_taxonomy: None, folders: dict[str, Path], tmp_path: Path
) -> None:
    client = _api(_importer(), "import")
    outside = write_parquet(path=tmp_path / "outside.parquet", rows=_rows(1))
    os.symlink(outside, folders["root"] / "link.parquet")
    (folders["root"] / "sub").mkdir()
    for path in ("../outside.parquet", str(outside), "link.parquet", "missing.parquet", ""):
        answer = client.post(IMPORTS, {"format": "spavl-parquet", "path": path}, "application/json")
        assert answer.status_code == 400, (path, answer.json())
    escape = client.post(
        IMPORTS,
        {"format": "rlhf-json", "path": "sub", "image_root": "../"},
        "application/json",
    )
    assert escape.status_code == 400 and "import root" in escape.json()["detail"]
    assert not ImportBatch.objects.exists()


@pytest.mark.django_db
def test_bad_requests_say_what_is_wrong(
    spavl_taxonomy: None, folders: dict[str, Path], tmp_path: Path
) -> None:
    client = _api(_importer(), "import")
    write_parquet(path=folders["root"] / "v.parquet", rows=_rows(1))
    neither = client.post(IMPORTS, {"format": "spavl-parquet"}, "application/json")
    both = _upload(client, b"PAR1", path="v.parquet")
    bad_format = client.post(IMPORTS, {"format": "csv", "path": "v.parquet"}, "application/json")
    assert neither.status_code == both.status_code == 400
    assert "either a file or a path" in neither.json()["detail"]
    assert bad_format.status_code == 400 and "format" in bad_format.json()
    assert not any(folders["uploads"].iterdir()), "a refused upload leaves nothing behind"


@pytest.mark.django_db
def test_an_upload_past_the_limit_is_refused_with_nothing_kept(
    spavl_taxonomy: None, folders: dict[str, Path], settings: Any
) -> None:
    settings.IMPORT_UPLOAD_MAX_BYTES = 10_000
    answer = _upload(_api(_importer(), "import"), b"x" * 50_000)
    assert answer.status_code == 413 and "SPAVL_IMPORT_UPLOAD_MAX_BYTES" in answer.json()["detail"]
    assert not any(folders["uploads"].iterdir())
    assert not ImportBatch.objects.exists()


@pytest.mark.django_db
def test_scopes_and_owners(spavl_taxonomy: None, folders: dict[str, Path], tmp_path: Path) -> None:
    importer = _importer()
    write_parquet(path=folders["root"] / "v.parquet", rows=_rows(1))
    read_only = _api(importer, "read")
    refused = read_only.post(
        IMPORTS, {"format": "spavl-parquet", "path": "v.parquet"}, "application/json"
    )
    assert refused.status_code == 403
    batch = queue_import(import_format="spavl-parquet", by=importer, path="v.parquet")
    other = User.objects.create_user("other importer")
    other.user_permissions.add(Permission.objects.get(codename="add_importbatch"))
    assert _api(other, "read").get(f"{IMPORTS}{batch.pk}/").status_code == 404
    assert read_only.get(f"{IMPORTS}{batch.pk}/").status_code == 200
    reviewer = User.objects.create_user("rita")
    assert _api(reviewer, "read").get(IMPORTS).status_code == 404


@pytest.mark.django_db
def test_a_queued_import_whose_message_was_lost_is_sent_again(
    spavl_taxonomy: None, folders: dict[str, Path], django_capture_on_commit_callbacks: Any
) -> None:
    write_parquet(path=folders["root"] / "v.parquet", rows=_rows(1))
    batch = queue_import(import_format="spavl-parquet", by=_importer(), path="v.parquet")
    long_ago = timezone.now() - timedelta(hours=1)
    ImportBatch.objects.filter(pk=batch.pk).update(enqueued_at=long_ago)
    with django_capture_on_commit_callbacks() as sent:
        assert _resend_imports(live=set()) == [batch.pk]
    assert len(sent) == 1
    resent_at = ImportBatch.objects.get(pk=batch.pk).enqueued_at
    assert resent_at is not None and resent_at > long_ago
    with django_capture_on_commit_callbacks():
        assert _resend_imports(live={("annotation.tasks.run_import", batch.pk)}) == []


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_real_worker_imports_an_upload(
    spavl_taxonomy: None, folders: dict[str, Path], tmp_path: Path, start_worker: Any
) -> None:
    start_worker(
        queues="default",
        SPAVL_IMPORT_ROOT=str(folders["root"]),
        SPAVL_IMPORT_UPLOAD_DIR=str(folders["uploads"]),
        SPAVL_IMPORT_REPORT_DIR=str(folders["reports"]),
    )
    client = _api(_importer(), "import")
    started = _upload(client, _parquet_bytes(tmp_path, _rows(4, bad=(3,)))).json()

    def finished() -> bool:
        return ImportBatch.objects.get(pk=started["id"]).status == ImportStatus.FINISHED

    wait_for(finished, timeout=60)
    done = client.get(f"{IMPORTS}{started['id']}/").json()
    assert (done["rows_created"], done["rows_rejected"]) == (3, 1)
    assert [
        r["row"] for r in client.get(f"{IMPORTS}{started['id']}/rejections/").json()["results"]
    ] == [3]
    assert not any(folders["uploads"].iterdir())


@pytest.mark.django_db
def test_an_unreadable_upload_fails_its_batch_with_the_reason(
    spavl_taxonomy: None, folders: dict[str, Path]
) -> None:
    client = _api(_importer(), "import")
    started = _upload(client, b"PAR1 this is no parquet file").json()
    run_import_job(batch_id=started["id"])
    failed = client.get(f"{IMPORTS}{started['id']}/").json()
    assert failed["status"] == "failed" and failed["error_message"]
    assert not any(folders["uploads"].iterdir())


@pytest.mark.django_db
def test_any_preference_dataset_comes_in_over_the_api_with_a_column_map(
    spavl_taxonomy: None, folders: dict[str, Path]
) -> None:
    """An RLAIF-V-like JSONL (chosen/rejected, a category of its own, extra columns) uploaded
    with a column map and a taxonomy map: labelled pairs, mapped taxonomy, provenance kept."""
    import base64
    import json

    rows = [
        {
            "idx": f"rlaif-{n}",
            "image": base64.b64encode(image_bytes(seed=950 + n)).decode(),
            "question": f"What is shown {n}?",
            "chosen": "A calm answer.",
            "rejected": f"A harmful answer {n}.",
            "origin_dataset": "made-up-source",
            "topic": "bullying" if n else "weather",
        }
        for n in range(3)
    ]
    data = "\n".join(json.dumps(row) for row in rows).encode()
    client = _api(_importer(), "import")
    handle = io.BytesIO(data)
    handle.name = "rlaif.jsonl"
    started = client.post(
        IMPORTS,
        {
            "format": "hf-parquet",
            "file": handle,
            "map": "id=idx,image=image,question=question,chosen=chosen,rejected=rejected,"
            "category=topic,image_encoding=base64",
            "taxonomy_map": json.dumps(
                {"bullying": "Representation & ToxicityHarms/Toxic/bully", "weather": None}
            ),
        },
    )
    assert started.status_code == 202, started.json()
    run_import_job(batch_id=started.json()["id"])
    done = client.get(f"{IMPORTS}{started.json()['id']}/").json()
    assert (done["status"], done["rows_created"], done["rows_rejected"]) == ("finished", 3, 0)
    pair = Pair.objects.select_related("question__subcategory").get(source_id="rlaif-1")
    assert pair.question.subcategory is not None and pair.question.subcategory.key == "bully"
    assert pair.provenance["origin_dataset"] == "made-up-source"
    assert Pair.objects.get(source_id="rlaif-0").question.subcategory is None
    assert done["options"]["column_map"]["chosen"] == "chosen"


@pytest.mark.django_db
def test_a_bad_column_map_or_taxonomy_map_is_refused_before_anything_is_queued(
    spavl_taxonomy: None, folders: dict[str, Path]
) -> None:
    client = _api(_importer(), "import")
    (folders["root"] / "d.jsonl").write_text("{}\n")
    cases: list[tuple[dict[str, Any], str]] = [
        ({"map": "image=img,question=q,chosen=c"}, "map"),  # half a pair
        ({"map": "wat=x"}, "map"),
        (
            {
                "map": "image=i,question=q,chosen=c,rejected=r",
                "taxonomy_map": {"x": "no/such/node"},
            },
            "taxonomy_map",
        ),
        ({}, "detail"),  # hf-parquet without a map
    ]
    for fields, key in cases:
        answer = client.post(
            IMPORTS, {"format": "hf-parquet", "path": "d.jsonl", **fields}, "application/json"
        )
        assert answer.status_code == 400 and key in answer.json(), (fields, answer.json())
    not_hf = client.post(
        IMPORTS, {"format": "rlhf-json", "path": "d.jsonl", "map": "image=i"}, "application/json"
    )
    assert not_hf.status_code == 400
    assert not ImportBatch.objects.exists()
