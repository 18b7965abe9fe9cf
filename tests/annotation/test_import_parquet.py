"""spavl-parquet imports, on parquet files the tests write with pyarrow."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from annotation.exceptions import ImportFileError
from annotation.models import (
    FinalLabel,
    FinalLabelChange,
    Image,
    ImportBatch,
    ImportStatus,
    Pair,
    PairOrigin,
    Question,
    Response,
)
from annotation.services.imports import import_file
from annotation.services.taxonomy import retire_node
from tests.factories import image_bytes, png_bomb_bytes, subcategory, write_parquet

pytestmark = pytest.mark.usefixtures("spavl_taxonomy")

BULLY = "class1/class2/class3"
BULLY_NAME = "Representation & ToxicityHarms/Toxic/bully/7.jpg"


def train_row(n: int, **changes: Any) -> dict[str, Any]:
    row = {
        "image": {"bytes": image_bytes(seed=n), "path": f"{n}.jpg"},
        "question": f"Question {n}?",
        "chosen": f"I cannot help with that ({n}).",
        "rejected": f"Sure, here is how ({n}).",
        "image_name": BULLY_NAME,
    }
    return {**row, **changes}


def import_parquet(path: Path, **options: Any) -> ImportBatch:
    return import_file(path=path, import_format="spavl-parquet", **options)


def test_it_imports_train_rows_as_imported_pairs_with_taxonomy_from_the_image_name(
    tmp_path: Path,
) -> None:
    path = write_parquet(path=tmp_path / "train.parquet", rows=[train_row(1), train_row(2)])

    batch = import_parquet(path)

    assert (batch.status, batch.split, batch.rows_read, batch.rows_created) == (
        ImportStatus.FINISHED,
        "train",
        2,
        2,
    )
    pair = Pair.objects.select_related("response_a", "response_b", "question").get(
        question__text="Question 1?"
    )
    assert pair.origin == PairOrigin.IMPORTED
    assert (pair.final_label, pair.final_chosen) == (FinalLabel.IMPORTED, "a")
    assert pair.response_a.text == "I cannot help with that (1)."
    assert pair.response_b.text == "Sure, here is how (1)."
    assert pair.response_a.model_name == pair.response_b.model_name == ""
    assert pair.question.subcategory == subcategory("bully")
    assert not FinalLabelChange.objects.exists()
    assert Image.objects.get(pk=pair.question.image_id).data == image_bytes(seed=1)


def test_it_leaves_the_subcategory_empty_when_the_image_name_has_no_taxonomy(
    tmp_path: Path,
) -> None:
    path = write_parquet(path=tmp_path / "t.parquet", rows=[train_row(1, image_name="x/1.jpg")])

    import_parquet(path)

    assert Question.objects.get().subcategory is None


def test_it_imports_validation_and_test_layouts_from_their_columns(tmp_path: Path) -> None:
    classes = {"class1": "Representation & ToxicityHarms", "class2": "Toxic", "class3": "hate"}
    validation = train_row(1, **classes)
    del validation["image_name"]
    test = {"image": validation["image"], "question": "Only a question", **classes}
    write_parquet(path=tmp_path / "v.parquet", rows=[validation])
    write_parquet(path=tmp_path / "t.parquet", rows=[test])

    first = import_parquet(tmp_path / "v.parquet")
    second = import_parquet(tmp_path / "t.parquet")

    assert (first.split, second.split) == ("validation", "test")
    assert Pair.objects.count() == 1
    only = Question.objects.get(text="Only a question")
    assert only.subcategory == subcategory("hate")
    assert not only.responses.exists()


def test_it_reads_a_folder_of_shards_in_order(tmp_path: Path) -> None:
    write_parquet(path=tmp_path / "b-00001.parquet", rows=[train_row(3, question="")])
    write_parquet(path=tmp_path / "a-00000.parquet", rows=[train_row(1), train_row(2)])

    batch = import_parquet(tmp_path)

    assert (batch.rows_read, batch.rows_created, batch.rows_rejected) == (3, 2, 1)
    assert batch.errors == [{"row": 3, "reason": "field 'question' is empty"}]


def test_it_creates_nothing_new_when_the_same_file_is_imported_twice(tmp_path: Path) -> None:
    rows = [train_row(n) for n in range(1, 8)] + [train_row(1)]
    path = write_parquet(path=tmp_path / "t.parquet", rows=rows)
    import_parquet(path)
    counts = [m.objects.count() for m in (Image, Question, Response, Pair)]

    again = import_parquet(path)

    assert [m.objects.count() for m in (Image, Question, Response, Pair)] == counts
    assert counts == [7, 7, 14, 7]
    assert (again.rows_created, again.rows_existing) == (0, 8)


def test_it_keeps_question_and_response_text_byte_for_byte(tmp_path: Path) -> None:
    question = " \n\n'Q: What does \"this\" sign say?'  "
    chosen = '  "Quoted" answer with <b>tags</b>\n'
    path = write_parquet(
        path=tmp_path / "t.parquet", rows=[train_row(1, question=question, chosen=chosen)]
    )

    import_parquet(path)

    pair = Pair.objects.select_related("question", "response_a").get()
    assert pair.question.text == question
    assert pair.response_a.text == chosen


def test_it_rejects_bad_rows_with_their_number_and_keeps_the_good_ones(tmp_path: Path) -> None:
    bomb = {"bytes": png_bomb_bytes(), "path": "bomb.png"}
    truncated = {"bytes": image_bytes(seed=50, size=(200, 200))[:300], "path": "cut.jpg"}
    rows = [
        train_row(1),
        train_row(2, image=bomb),
        train_row(3, image=truncated),
        train_row(4, image_name="Nope/Toxic/bully/1.jpg"),
        train_row(5, chosen=None),
        train_row(6, rejected="Same", chosen="Same"),
        train_row(7, image={"bytes": None, "path": "x.jpg"}),
        train_row(8, question="has a \x00 NUL"),
        train_row(9),
    ]
    path = write_parquet(path=tmp_path / "t.parquet", rows=rows)

    batch = import_parquet(path)

    reasons = {error["row"]: error["reason"] for error in batch.errors}
    assert set(reasons) == {2, 3, 4, 5, 6, 7, 8}
    assert "too large" in reasons[2] or "above" in reasons[2]
    assert "not a readable" in reasons[3]
    assert "unknown taxonomy" in reasons[4]
    assert reasons[5] == "missing field 'chosen'"
    assert "same response" in reasons[6]
    assert reasons[7] == "missing image bytes"
    assert "NUL" in reasons[8]
    assert (batch.rows_created, batch.rows_rejected) == (2, 7)
    assert Image.objects.count() == Question.objects.count() == 2


def test_it_rejects_rows_of_invalid_utf8_and_wrong_types(tmp_path: Path) -> None:
    schema = pa.schema(
        [
            ("image", pa.struct([("bytes", pa.binary()), ("path", pa.string())])),
            ("question", pa.binary()),
            ("chosen", pa.string()),
            ("rejected", pa.string()),
            ("image_name", pa.string()),
        ]
    )
    good, bad = train_row(1, question=b"fine?"), train_row(2, question=b"\xff\xfe bad")
    path = write_parquet(path=tmp_path / "t.parquet", rows=[good, bad], schema=schema)

    batch = import_parquet(path)

    assert batch.errors == [{"row": 2, "reason": "field 'question' is not valid UTF-8"}]
    assert Question.objects.get().text == "fine?"


def test_it_rejects_a_retired_subcategory_with_a_clear_reason(tmp_path: Path) -> None:
    retire_node(node=subcategory("bully"))
    path = write_parquet(path=tmp_path / "t.parquet", rows=[train_row(1)])

    batch = import_parquet(path)

    assert batch.errors == [
        {
            "row": 1,
            "reason": "taxonomy node Representation & ToxicityHarms / Toxic / bully is retired",
        }
    ]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"not parquet at all", "not a readable parquet file"),
        (None, "does not exist"),
    ],
)
def test_it_fails_an_unreadable_file_and_changes_nothing(
    tmp_path: Path, content: bytes | None, message: str
) -> None:
    path = tmp_path / "broken.parquet"
    if content is not None:
        path.write_bytes(content)

    with pytest.raises(ImportFileError, match=message):
        import_parquet(path)

    assert ImportBatch.objects.get().status == ImportStatus.FAILED
    assert not any(m.objects.exists() for m in (Image, Question, Response, Pair))


def test_it_fails_a_file_missing_the_required_columns(tmp_path: Path) -> None:
    path = write_parquet(path=tmp_path / "t.parquet", rows=[{"image": b"x", "text": "y"}])

    with pytest.raises(ImportFileError, match="match no SPA-VL layout"):
        import_parquet(path)
    with pytest.raises(ImportFileError, match="lacks the train columns"):
        import_parquet(path, split="train")

    assert not Question.objects.exists()
