"""The import's write paths: PostgreSQL's multi-row statements with their per-row fallback, rows
spread over several chunks, the reader thread, and the ORM path on the embedded SQLite database."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from django.db import connection

from annotation.exceptions import ImportFileError
from annotation.models import Image, ImportBatch, ImportStatus, Pair, Question, Response
from annotation.services.images import store_image
from annotation.services.imports import import_file
from tests.factories import image_bytes, write_parquet

pytestmark = pytest.mark.usefixtures("spavl_taxonomy")

ROOT = Path(__file__).resolve().parent.parent.parent
BULLY_NAME = "Representation & ToxicityHarms/Toxic/bully/7.jpg"


def train_row(n: int, *, image_seed: int | None = None, **changes: Any) -> dict[str, Any]:
    seed = n if image_seed is None else image_seed
    row = {
        "image": {"bytes": image_bytes(seed=seed), "path": f"{seed}.jpg"},
        "question": f"Question {n}?",
        "chosen": f"I cannot help with that ({n}).",
        "rejected": f"Sure, here is how ({n}).",
        "image_name": BULLY_NAME,
    }
    return {**row, **changes}


def import_parquet(path: Path) -> ImportBatch:
    return import_file(path=path, import_format="spavl-parquet")


def counts() -> list[int]:
    return [m.objects.count() for m in (Image, Question, Response, Pair)]


def refuse_questions_containing(word: str) -> None:
    """A database rule the importer does not know, so only PostgreSQL can refuse the row."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"ALTER TABLE {Question._meta.db_table} ADD CONSTRAINT test_refuse_word"
            f" CHECK (position('{word}' in text) = 0)"
        )


def test_it_rejects_a_row_the_database_refuses_and_keeps_the_rest_of_its_chunk(
    tmp_path: Path,
) -> None:
    refuse_questions_containing("poison")
    rows = [
        train_row(1),
        train_row(2),
        train_row(3, question="A poison question?"),
        train_row(4, image_seed=3),  # the refused row's image, needed again
        train_row(5),
    ]
    path = write_parquet(path=tmp_path / "t.parquet", rows=rows)

    batch = import_parquet(path)
    again = import_parquet(path)

    assert (batch.rows_read, batch.rows_created, batch.rows_rejected) == (5, 4, 1)
    assert batch.errors[0]["row"] == 3
    assert str(batch.errors[0]["reason"]).startswith("database refused the row:")
    assert "test_refuse_word" in str(batch.errors[0]["reason"])
    assert counts() == [4, 4, 8, 4]
    assert not Question.objects.filter(text__contains="poison").exists()
    assert Question.objects.get(text="Question 4?").image.data == image_bytes(seed=3)
    assert (again.rows_created, again.rows_existing, again.rows_rejected) == (0, 4, 1)
    assert counts() == [4, 4, 8, 4]


def test_it_links_rows_to_images_stored_before_the_import(tmp_path: Path) -> None:
    stored = store_image(data=image_bytes(seed=1), source_name="earlier.jpg")
    path = write_parquet(path=tmp_path / "t.parquet", rows=[train_row(1), train_row(2)])

    batch = import_parquet(path)

    assert batch.rows_created == 2
    assert Question.objects.get(text="Question 1?").image_id == stored.pk
    assert Image.objects.get(pk=stored.pk).source_name == "earlier.jpg"
    assert Image.objects.count() == 2


def test_it_keeps_every_row_and_image_right_across_several_chunks(tmp_path: Path) -> None:
    pictures = {seed: image_bytes(seed=seed) for seed in range(5)}
    rows = [
        {
            "image": {"bytes": pictures[n % 5], "path": f"{n}.jpg"},
            "question": f"Question {n}?",
            "chosen": f"No ({n}).",
            "rejected": f"Yes ({n}).",
            "image_name": BULLY_NAME,
        }
        for n in range(4500)
    ]
    rows[2500]["question"] = ""
    path = write_parquet(path=tmp_path / "t.parquet", rows=rows)

    batch = import_parquet(path)
    again = import_parquet(path)

    assert (batch.rows_read, batch.rows_created, batch.rows_rejected) == (4500, 4499, 1)
    assert batch.errors == [{"row": 2501, "reason": "field 'question' is empty"}]
    assert counts() == [5, 4499, 8998, 4499]
    for n in (0, 1999, 2000, 4001, 4499):
        question = Question.objects.select_related("image").get(text=f"Question {n}?")
        assert question.image.data == pictures[n % 5]
        assert question.pairs.get().response_a.text == f"No ({n})."
    assert (again.rows_created, again.rows_existing, again.rows_rejected) == (0, 4499, 1)
    assert counts() == [5, 4499, 8998, 4499]


def test_it_fails_a_file_that_stops_being_readable_and_stops_its_reader(tmp_path: Path) -> None:
    path = write_parquet(path=tmp_path / "t.parquet", rows=[train_row(n) for n in range(1, 10)])
    last_group = pq.ParquetFile(path).metadata.row_group(2).column(0)
    with path.open("r+b") as handle:
        handle.seek(last_group.data_page_offset)
        handle.write(b"\xff" * 64)

    with pytest.raises(ImportFileError, match="stopped being readable"):
        import_parquet(path)

    batch = ImportBatch.objects.get()
    assert batch.status == ImportStatus.FAILED
    assert batch.sha256  # the file's digest is recorded all the same
    assert not [t for t in threading.enumerate() if t.name == "import-reader"]


@pytest.mark.slow
def test_it_imports_through_the_orm_on_the_embedded_sqlite_database(tmp_path: Path) -> None:
    question = " \n'Q: What does \"this\" say?'  "
    rows = [train_row(1, question=question), train_row(2, chosen=None), train_row(3)]
    path = write_parquet(path=tmp_path / "t.parquet", rows=rows)
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL"}}
    env["SPAVL_VAR_DIR"] = str(tmp_path / "var")
    (tmp_path / "var").mkdir()

    def manage(*args: str) -> str:
        done = subprocess.run(
            [sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True
        )
        assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
        return done.stdout

    manage("migrate", "--no-input", "-v0")
    manage("load_taxonomy")
    importing = ("import_data", "--format", "spavl-parquet", "--no-progress", str(path))
    first, second = manage(*importing), manage(*importing)

    assert "3 rows read, 2 created, 0 already present, 1 rejected" in first
    assert "rejected row 2: missing field 'chosen'" in first
    assert "3 rows read, 0 created, 2 already present, 1 rejected" in second
    with sqlite3.connect(tmp_path / "var" / "spavl.sqlite3") as db:
        texts = [row[0] for row in db.execute("SELECT text FROM annotation_question ORDER BY id")]
        pairs = db.execute("SELECT count(*) FROM annotation_pair").fetchone()[0]
    assert texts == [question, "Question 3?"]
    assert pairs == 2
