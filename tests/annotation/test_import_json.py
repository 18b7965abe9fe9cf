"""rlhf-json, eval-json and responses-jsonl imports, on files the tests write."""

from __future__ import annotations

import os
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command

from annotation.exceptions import ImportFileError
from annotation.models import Image, ImportBatch, ImportStatus, Pair, Question, Response
from annotation.services.imports import import_file
from tests.factories import (
    image_bytes,
    png_bomb_bytes,
    subcategory,
    write_image_file,
    write_json,
    write_jsonl,
)

pytestmark = pytest.mark.usefixtures("spavl_taxonomy")

HATE = ("Representation & ToxicityHarms", "Toxic", "hate")
HATE_DIR = "/".join(HATE)


def classes(keys: tuple[str, str, str] = HATE) -> dict[str, str]:
    return {"class1": keys[0], "class2": keys[1], "class3": keys[2]}


def counts() -> list[int]:
    return [m.objects.count() for m in (Image, Question, Response, Pair)]


def test_it_imports_rlhf_json_pairs_with_taxonomy_from_the_image_path(tmp_path: Path) -> None:
    image = write_image_file(root=tmp_path / "img", relative=f"{HATE_DIR}/1.jpg")
    rows = [{"id": 1, "image": image, "question": " Q: 'Who?'", "chosen": "No.", "rejected": "Yes"}]
    path = write_json(path=tmp_path / "rlhf.json", value=rows)

    batch = import_file(path=path, import_format="rlhf-json", image_root=tmp_path / "img")

    assert batch.rows_created == 1
    pair = Pair.objects.select_related("question", "response_a").get()
    assert pair.question.text == " Q: 'Who?'"
    assert pair.question.subcategory == subcategory("hate")
    assert pair.response_a.text == "No."


def test_it_takes_rlhf_json_question_types_from_spa_vl_rlhf_file_names(tmp_path: Path) -> None:
    image = write_image_file(root=tmp_path, relative=f"{HATE_DIR}/1.jpg")
    for keyword in ("easy", "hardq", "hardd", "other"):
        row = {"id": 1, "image": image, "question": keyword, "chosen": "No.", "rejected": "Yes"}
        path = write_json(path=tmp_path / f"{keyword}_train.json", value=[row])
        import_file(path=path, import_format="rlhf-json")

    assert dict(Question.objects.values_list("text", "question_type")) == {
        "easy": "easy",
        "hardq": "hardq",
        "hardd": "hards",  # SPA-VL-RLHF's spelling in, ours stored
        "other": "unknown",
    }


def test_the_question_type_option_wins_over_the_file_name(tmp_path: Path) -> None:
    image = write_image_file(root=tmp_path, relative=f"{HATE_DIR}/1.jpg")
    rows = [{"image": image, "question": "q", "chosen": "No.", "rejected": "Yes"}]
    path = write_json(path=tmp_path / "easy_test.json", value=rows)

    call_command(
        "import_data", str(path), format="rlhf-json", question_type="hardd", stdout=StringIO()
    )
    with pytest.raises(ImportFileError, match="unknown question type 'hard'"):
        import_file(path=path, import_format="rlhf-json", question_type="hard")

    assert Question.objects.get().question_type == "hards"


def test_it_keeps_rlhf_json_ids_as_source_ids_and_rejects_ids_of_other_kinds(
    tmp_path: Path,
) -> None:
    image = write_image_file(root=tmp_path, relative=f"{HATE_DIR}/1.jpg")
    ids: list[Any] = [233, "abc-7", None, 0, 1.5, True, ["1"], "x" * 201]
    rows = [
        {"id": value, "image": image, "question": f"q{n}", "chosen": "No.", "rejected": "Yes"}
        for n, value in enumerate(ids)
    ]
    rows.append({"image": image, "question": "no id", "chosen": "No.", "rejected": "Yes"})
    path = write_json(path=tmp_path / "easy_train.json", value=rows)

    batch = import_file(path=path, import_format="rlhf-json")

    stored = dict(Pair.objects.values_list("question__text", "source_id"))
    assert stored == {"q0": "233", "q1": "abc-7", "q2": "", "q3": "0", "no id": ""}
    assert {e["row"]: e["reason"] for e in batch.errors} == {
        5: "field 'id' is a float, not an integer or text",
        6: "field 'id' is a bool, not an integer or text",
        7: "field 'id' is a list, not an integer or text",
        8: "field 'id' is longer than 200 characters",
    }


def test_it_refuses_image_paths_that_leave_the_image_root(tmp_path: Path) -> None:
    root = tmp_path / "img"
    write_image_file(root=tmp_path, relative="outside.jpg")
    write_image_file(root=root, relative="inside.jpg")
    (root / "link.jpg").symlink_to(tmp_path / "outside.jpg")
    names = ["../outside.jpg", str(tmp_path / "outside.jpg"), "link.jpg", "inside.jpg"]
    rows = [
        {"id": n, "image": name, "question": f"q{n}", "chosen": "a", "rejected": "b"}
        for n, name in enumerate(names)
    ]
    path = write_json(path=tmp_path / "rlhf.json", value=rows)

    batch = import_file(path=path, import_format="rlhf-json", image_root=root)

    assert [e["row"] for e in batch.errors] == [1, 2, 3]
    assert all("leaves the image root" in e["reason"] for e in batch.errors)
    assert Question.objects.get().text == "q3"


def test_it_imports_eval_json_with_placeholder_images_and_the_model_option(
    tmp_path: Path,
) -> None:
    rows = [
        {**classes(), "question": '\n\n"Why?"', "response": "Because."},
        {**classes(), "question": "Other", "response": "Fine.", "model": "m-2"},
    ]
    path = write_json(path=tmp_path / "eval.json", value=rows)

    batch = import_file(path=path, import_format="eval-json", model_name="m-1")
    again = import_file(path=path, import_format="eval-json", model_name="m-1")

    assert (batch.rows_created, again.rows_created, again.rows_existing) == (2, 0, 2)
    assert sorted(Response.objects.values_list("model_name", flat=True)) == ["m-1", "m-2"]
    assert Question.objects.filter(text='\n\n"Why?"').exists()
    assert all(Image.objects.values_list("is_placeholder", flat=True))


def test_it_rejects_bad_json_rows_one_by_one(tmp_path: Path) -> None:
    rows: list[Any] = [
        {**classes(), "question": "good", "response": "ok"},
        "not an object",
        {**classes(), "response": "no question"},
        {**classes(("Nope", "Toxic", "hate")), "question": "q", "response": "r"},
        {**classes(), "question": 5, "response": "r"},
        {**classes(), "question": "q", "response": "r", "image": "missing.jpg"},
    ]
    path = write_json(path=tmp_path / "eval.json", value=rows)
    # One row carries a byte that is not UTF-8: only that row is rejected.
    raw = path.read_bytes()
    raw = raw[:-1] + b', {"class1": "x", "class2": "y", "class3": "z", "question": "\xff"}]'
    path.write_bytes(raw)

    batch = import_file(path=path, import_format="eval-json")

    reasons = {e["row"]: e["reason"] for e in batch.errors}
    assert reasons[2] == "row is a JSON str, not an object"
    assert reasons[3] == "missing field 'question'"
    assert reasons[4].startswith("unknown taxonomy")
    assert reasons[5] == "field 'question' is a int, not text"
    assert reasons[6] == "image file 'missing.jpg' not found"
    assert "UTF-8" in reasons[7]
    assert batch.rows_created == 1


def test_it_imports_responses_jsonl_grouping_responses_by_image_and_question(
    tmp_path: Path,
) -> None:
    write_image_file(root=tmp_path, relative="a.jpg", data=image_bytes(seed=1))
    base = {"image": "a.jpg", "question": " Q: what?", **classes(), "question_type": "hardq"}
    rows = [{**base, "model": f"m{n}", "response": f"answer {n}"} for n in range(3)]
    path = write_jsonl(path=tmp_path / "r.jsonl", rows=rows)

    batch = import_file(path=path, import_format="responses-jsonl")

    assert batch.rows_created == 3
    question = Question.objects.get()
    assert (question.text, question.question_type) == (" Q: what?", "hardq")
    assert question.responses.count() == 3


def test_it_rejects_bad_jsonl_lines_and_bad_images(tmp_path: Path, settings: Any) -> None:
    settings.IMAGE_MAX_BYTES = 50_000
    write_image_file(root=tmp_path, relative="ok.jpg", data=image_bytes(seed=1))
    write_image_file(root=tmp_path, relative="bomb.png", data=png_bomb_bytes())
    write_image_file(root=tmp_path, relative="big.jpg", data=os.urandom(60_000))
    write_image_file(root=tmp_path, relative="cut.jpg", data=image_bytes(seed=2)[:200])
    bmp = image_bytes(seed=3, fmt="BMP")
    write_image_file(root=tmp_path, relative="pic.bmp", data=bmp)
    base = {"question": "q", **classes(), "model": "m", "response": "r"}
    lines = [
        {**base, "image": "ok.jpg"},
        {**base, "image": "bomb.png"},
        {**base, "image": "big.jpg"},
        {**base, "image": "cut.jpg"},
        {**base, "image": "pic.bmp"},
        {**base, "image": "ok.jpg", "question_type": "weird"},
        [1, 2],
    ]
    path = write_jsonl(path=tmp_path / "r.jsonl", rows=lines)
    with path.open("ab") as handle:
        handle.write(b'{"question": "\xff"}\n{broken json\n')

    batch = import_file(path=path, import_format="responses-jsonl")

    reasons = {e["row"]: e["reason"] for e in batch.errors}
    assert set(reasons) == {2, 3, 4, 5, 6, 7, 8, 9}
    assert "too large" in reasons[2] or "pixels" in reasons[2]
    assert "above 50000" in reasons[3]
    assert "not a readable" in reasons[4]
    assert "not a readable" in reasons[5]
    assert "question_type" in reasons[6]
    assert reasons[7] == "row is a JSON list, not an object"
    assert reasons[8] == "line is not valid UTF-8"
    assert reasons[9].startswith("line is not valid JSON")
    assert counts() == [1, 1, 1, 0]


@pytest.mark.parametrize(
    ("import_format", "content", "message"),
    [
        ("rlhf-json", b"{not json", "not valid JSON"),
        ("rlhf-json", b'{"rows": []}', "expected a list of rows"),
        ("eval-json", b"\x89PNG binary", "not valid JSON"),
        ("responses-jsonl", b"PAR1 binary junk\n", "not JSON lines"),
    ],
)
def test_it_fails_unreadable_json_files_and_changes_nothing(
    tmp_path: Path, import_format: str, content: bytes, message: str
) -> None:
    path = tmp_path / "file"
    path.write_bytes(content)

    with pytest.raises(ImportFileError, match=message):
        import_file(path=path, import_format=import_format)

    batch = ImportBatch.objects.get()
    assert (batch.status, batch.rows_read) == (ImportStatus.FAILED, 0)
    assert message in batch.error_message
    assert counts() == [0, 0, 0, 0]
