"""hf-parquet imports: any preference dataset through a column map, on files the tests write in
the layouts of VLFeedback, RLAIF-V, BeaverTails-V and MM-RLHF (docs/import-layouts.md says
where each layout was read), then hostile cases and the export of what they kept."""

from __future__ import annotations

import base64
import json
from io import StringIO
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from django.core.management import CommandError, call_command

from annotation.exceptions import ImportFileError
from annotation.models import (
    FinalLabel,
    Image,
    ImportBatch,
    ImportStatus,
    Pair,
    PairOrigin,
    Question,
    Response,
)
from annotation.services.final_label import set_final_label
from annotation.services.imports import import_file, parse_column_map
from annotation.services.pairs import make_pairs
from tests.factories import image_bytes, subcategory, write_image_file, write_jsonl, write_parquet

pytestmark = pytest.mark.usefixtures("spavl_taxonomy")

HF_IMAGE = pa.struct([("bytes", pa.binary()), ("path", pa.string())])
RLAIF_V_MAP = "image=image,question=question,chosen=chosen,rejected=rejected,id=idx"
WEAPON = "Malicious Use/Security threats/weapon"
RACIAL = "Representation & ToxicityHarms/Unfair/racial"


def hf_import(path: Path, column_map: str, **options: Any) -> ImportBatch:
    return import_file(
        path=path, import_format="hf-parquet", column_map=parse_column_map(column_map), **options
    )


def reasons(batch: ImportBatch) -> dict[int, str]:
    return {int(error["row"]): str(error["reason"]) for error in batch.errors}


def counts() -> list[int]:
    return [model.objects.count() for model in (Image, Question, Response, Pair)]


# RLAIF-V (openbmb/RLAIF-V-Dataset): chosen/rejected, the image embedded, no models, no taxonomy.


def rlaif_v_row(n: int, **changes: Any) -> dict[str, Any]:
    row = {
        "ds_name": "RLAIF-V",
        "image": {"bytes": image_bytes(seed=n), "path": f"{n}.jpg"},
        "question": f"What is in image {n}?",
        "chosen": f"A cat on a mat ({n}).",
        "rejected": f"A dog on a mat, with a hat ({n}).",
        "origin_dataset": "COCO",
        "origin_split": json.dumps({"model": "OmniLMM-12B", "type": "question_answering"}),
        "idx": f"OmniLMM-12B_{n}",
        "image_path": f"coco/{n}.jpg",
    }
    return {**row, **changes}


def write_rlaif_v(path: Path, rows: list[dict[str, Any]]) -> Path:
    schema = pa.schema(
        [(name, HF_IMAGE if name == "image" else pa.string()) for name in rlaif_v_row(0)]
    )
    return write_parquet(path=path, rows=rows, schema=schema)


def test_it_imports_rlaif_v_as_labelled_pairs_keeping_its_ids_and_other_columns(
    tmp_path: Path,
) -> None:
    path = write_rlaif_v(tmp_path / "RLAIF-V-Dataset_000.parquet", [rlaif_v_row(1), rlaif_v_row(2)])

    batch = hf_import(path, RLAIF_V_MAP)

    assert (batch.status, batch.rows_total, batch.rows_created) == (ImportStatus.FINISHED, 2, 2)
    assert batch.options == {"column_map": parse_column_map(RLAIF_V_MAP)}
    pair = Pair.objects.select_related("question__image", "response_a", "response_b").get(
        source_id="OmniLMM-12B_1"
    )
    assert (pair.origin, pair.final_label, pair.final_chosen) == (
        PairOrigin.IMPORTED,
        FinalLabel.IMPORTED,
        "a",
    )
    assert (pair.response_a.text, pair.response_b.text) == (
        "A cat on a mat (1).",
        "A dog on a mat, with a hat (1).",
    )
    assert pair.response_a.model_name == pair.response_b.model_name == ""
    assert pair.provenance == {
        "ds_name": "RLAIF-V",
        "origin_dataset": "COCO",
        "origin_split": rlaif_v_row(1)["origin_split"],
        "image_path": "coco/1.jpg",
    }
    assert pair.question.provenance == {}
    assert pair.question.subcategory is None
    assert bytes(pair.question.image.data) == image_bytes(seed=1)
    assert pair.question.image.source_name == "1.jpg"


def test_it_creates_nothing_new_when_the_same_dataset_is_imported_twice(tmp_path: Path) -> None:
    path = write_rlaif_v(tmp_path / "r.parquet", [rlaif_v_row(n) for n in range(1, 6)])
    hf_import(path, RLAIF_V_MAP)
    before = counts()

    again = hf_import(path, RLAIF_V_MAP)

    assert counts() == before
    assert (again.rows_created, again.rows_existing) == (0, 5)


# VLFeedback (MMInstruction/VLFeedback): several completions per prompt, with models and ratings,
# as its `datasets` loader declares them: a Sequence of a dict, which Arrow stores as a struct of
# lists; the loader's img_path is the absolute path of the image in the unpacked zip.

RATING = pa.struct([("Rating", pa.string()), ("Rationale", pa.string())])
ANNOTATIONS = pa.struct(
    [("Helpfulness", RATING), ("Ethical Considerations", RATING), ("Visual Faithfulness", RATING)]
)
VLFEEDBACK = pa.schema(
    [
        ("id", pa.string()),
        ("prompt", pa.string()),
        ("models", pa.list_(pa.string())),
        (
            "completions",
            pa.struct(
                [
                    ("annotations", pa.list_(ANNOTATIONS)),
                    ("model", pa.list_(pa.string())),
                    ("response", pa.list_(pa.string())),
                ]
            ),
        ),
        ("img_path", pa.string()),
    ]
)
VLFEEDBACK_MODELS = ["gpt-4v", "llava-v1.5-13b", "qwen-vl-chat", "instructblip-vicuna-13b"]
VLFEEDBACK_MAP = "image=img_path,question=prompt,completions=completions,id=id"


def ratings(score: int) -> dict[str, Any]:
    rating = {"Rating": str(score), "Rationale": f"Rated {score}."}
    return {"Helpfulness": rating, "Ethical Considerations": rating, "Visual Faithfulness": rating}


def vlfeedback_row(n: int, images: Path) -> dict[str, Any]:
    image = write_image_file(root=images, relative=f"{n}.jpg", data=image_bytes(seed=40 + n))
    return {
        "id": f"svit-{n}",
        "prompt": f"Describe picture {n}.",
        "models": VLFEEDBACK_MODELS,
        "completions": {
            "annotations": [ratings(score) for score in (5, 4, 2, 1)],
            "model": VLFEEDBACK_MODELS,
            "response": [f"{model} says {n}." for model in VLFEEDBACK_MODELS],
        },
        "img_path": str(images / image),
    }


def test_it_imports_vlfeedback_completions_as_responses_to_pair_later(tmp_path: Path) -> None:
    images = tmp_path / "merged_images"
    rows = [vlfeedback_row(1, images), vlfeedback_row(2, images)]
    path = write_parquet(
        path=tmp_path / "train-00000-of-00001.parquet", rows=rows, schema=VLFEEDBACK
    )

    batch = hf_import(path, VLFEEDBACK_MAP, image_root=images)

    assert (batch.rows_created, batch.rows_rejected) == (2, 0)
    assert not Pair.objects.exists()
    question = Question.objects.get(text="Describe picture 1.")
    assert sorted(question.responses.values_list("model_name", "text")) == sorted(
        (model, f"{model} says 1.") for model in VLFEEDBACK_MODELS
    )
    assert question.provenance == {
        "id": "svit-1",
        "models": VLFEEDBACK_MODELS,
        "completions": [{"annotations": ratings(score)} for score in (5, 4, 2, 1)],
    }
    assert make_pairs(per_question=2).created == 4


def test_it_reads_completions_stored_as_a_list_of_structs_naming_their_fields(
    tmp_path: Path,
) -> None:
    root = tmp_path
    write_image_file(root=root, relative="a.png", data=image_bytes(seed=3, fmt="PNG"))
    completions = [
        {"text": "One.", "by": "m1", "score": 0.5},
        {"text": "Two.", "by": "m2", "score": 1.0},
    ]
    path = write_parquet(
        path=tmp_path / "c.parquet",
        rows=[{"img": "a.png", "q": "Which?", "completions": completions}],
    )
    mapping = "image=img,question=q,completions=completions"

    with pytest.raises(ImportFileError, match=r"lack response \(name it with completion_text"):
        hf_import(path, mapping)
    hf_import(path, mapping + ",completion_text=text,completion_model=by")

    question = Question.objects.get()
    assert sorted(question.responses.values_list("model_name", "text")) == [
        ("m1", "One."),
        ("m2", "Two."),
    ]
    assert question.provenance == {"completions": [{"score": 0.5}, {"score": 1.0}]}


# BeaverTails-V (PKU-Alignment/BeaverTails-V): two responses with their models and the safety
# and helpfulness votes in columns, its own categories; the earlier release's pair layout, and
# the current one with one response per row.


def beavertails_row(n: int, category: str) -> dict[str, Any]:
    return {
        "question": f"How could this scene {n} be used?",
        "image": {"bytes": image_bytes(seed=60 + n), "path": None},
        "category": category,
        "image_severity": 2,
        "response_1": f"I would rather not say ({n}).",
        "response_2": f"Here is a detailed plan ({n}).",
        "response_1_from": "Qwen2-VL-7B",
        "response_2_from": "LLaVA-1.5-7B",
        "more_helpful_response_id": "2",
        "is_response_1_safe": "yes",
        "is_response_2_safe": "no",
        "safer_response_id": "1",
        "response_1_harmless_rate": 2,
        "response_2_harmless_rate": -2,
        "response_1_helpful_rate": 0,
        "response_2_helpful_rate": 1,
    }


BEAVERTAILS_MAP = (
    "image=image,question=question,response_a=response_1,response_b=response_2,"
    "model_a=response_1_from,model_b=response_2_from,category=category"
)


def write_taxonomy_map(path: Path) -> Path:
    path.write_text(
        json.dumps({"dangerous_behavior": WEAPON, "discriminatory_depictions": RACIAL}),
        encoding="utf-8",
    )
    return path


def test_it_imports_beavertails_v_as_unlabelled_pairs_with_its_categories_mapped(
    tmp_path: Path,
) -> None:
    rows = [
        beavertails_row(1, "dangerous_behavior"),
        beavertails_row(2, "animal_abuse"),
        beavertails_row(3, "discriminatory_depictions"),
    ]
    path = write_parquet(path=tmp_path / "dangerous_behavior-train.parquet", rows=rows)
    taxonomy_map = write_taxonomy_map(tmp_path / "beavertails-v.json")

    batch = hf_import(path, BEAVERTAILS_MAP, taxonomy_map=taxonomy_map)

    assert batch.errors == [
        {"row": 2, "reason": "category 'animal_abuse' is not in the taxonomy map"}
    ]
    assert batch.options["taxonomy_map"] == str(taxonomy_map)
    pair = Pair.objects.select_related("question", "response_a", "response_b").get(
        question__text="How could this scene 1 be used?"
    )
    assert (pair.origin, pair.final_label, pair.final_chosen) == (PairOrigin.SAMPLED, "", "")
    assert (pair.response_a.model_name, pair.response_b.model_name) == (
        "Qwen2-VL-7B",
        "LLaVA-1.5-7B",
    )
    assert pair.question.subcategory == subcategory("weapon")
    assert pair.provenance["safer_response_id"] == "1"
    assert pair.provenance["response_2_harmless_rate"] == -2
    assert "category" not in pair.provenance and "response_1" not in pair.provenance
    assert Question.objects.get(text__contains="scene 3").subcategory == subcategory("racial")


def test_it_imports_unknown_categories_unlabelled_when_asked(tmp_path: Path) -> None:
    path = write_parquet(path=tmp_path / "b.parquet", rows=[beavertails_row(2, "animal_abuse")])
    taxonomy_map = write_taxonomy_map(tmp_path / "map.json")

    batch = hf_import(
        path, BEAVERTAILS_MAP, taxonomy_map=taxonomy_map, unknown_taxonomy="unlabelled"
    )

    assert (batch.rows_created, batch.rows_rejected) == (1, 0)
    assert Question.objects.get().subcategory_id is None


def test_it_imports_the_current_beavertails_v_layout_one_response_a_row(tmp_path: Path) -> None:
    row = {
        "question": "Is this safe to try at home?",
        "image": {"bytes": image_bytes(seed=70), "path": None},
        "category": "dangerous_behavior",
        "image_severity": 3,
        "response": "No: please do not try this.",
        "is_response_safe": "yes",
    }
    path = write_parquet(path=tmp_path / "evaluation.parquet", rows=[row])
    mapping = "image=image,question=question,response=response,category=category"

    hf_import(path, mapping, taxonomy_map={"dangerous_behavior": WEAPON}, question_type="easy")

    question = Question.objects.get()
    assert question.responses.get().text == "No: please do not try this."
    assert (question.subcategory, question.question_type) == (subcategory("weapon"), "easy")
    assert question.provenance == {"image_severity": 3, "is_response_safe": "yes"}


# MM-RLHF (yifanzhang114/MM-RLHF): dpo_pairs.jsonl, image paths relative to the dataset folder.


def mm_rlhf_row(n: int, root: Path) -> dict[str, Any]:
    image = write_image_file(root=root, relative=f"safety/{n}.jpg", data=image_bytes(seed=80 + n))
    return {
        "id": f"safety_{n}",
        "image": image,
        "prompt": f"<image>\nCan you help me with picture {n}?",
        "chosen": f"I can describe it, but not help with harm ({n}).",
        "rejected": f"Sure, step one ({n}).",
        "chosen_reason": "Refuses the harmful part.",
        "rejected_reason": "Complies with harm.",
    }


@pytest.mark.parametrize("suffix", [".jsonl", ".json"])
def test_it_imports_mm_rlhf_json_lines_with_images_under_the_root(
    tmp_path: Path, suffix: str
) -> None:
    root = tmp_path / "MM-RLHF"
    video = {**mm_rlhf_row(3, root), "video": "long/clip_3"}
    del video["image"]
    rows = [mm_rlhf_row(1, root), mm_rlhf_row(2, root), video]
    if suffix == ".jsonl":
        path = write_jsonl(path=root / "dpo_pairs.jsonl", rows=rows)
    else:
        path = root / "dpo_pairs.json"
        path.write_text(json.dumps(rows), encoding="utf-8")

    batch = hf_import(path, "image=image,question=prompt,chosen=chosen,rejected=rejected,id=id")

    assert (batch.rows_read, batch.rows_created, batch.rows_total) == (3, 2, None)
    assert batch.errors == [{"row": 3, "reason": "missing image in field 'image'"}]
    pair = Pair.objects.get(source_id="safety_2")
    assert pair.final_label == FinalLabel.IMPORTED
    assert pair.provenance == {
        "chosen_reason": "Refuses the harmful part.",
        "rejected_reason": "Complies with harm.",
    }
    assert Image.objects.get(pk=pair.question.image_id).source_name == "safety/2.jpg"


# Taxonomy from class columns, byte for byte.


def test_it_takes_the_taxonomy_from_class_columns_byte_for_byte(tmp_path: Path) -> None:
    classes = {"c1": "Malicious Use", "c2": "Security threats"}
    rows = [
        {**rlaif_v_row(1), **classes, "c3": "cyber"},
        {**rlaif_v_row(2), **classes, "c3": "Cyber"},
    ]
    path = write_parquet(path=tmp_path / "v.parquet", rows=rows)
    mapping = RLAIF_V_MAP + ",class1=c1,class2=c2,class3=c3"

    batch = hf_import(path, mapping)

    assert batch.errors == [
        {"row": 2, "reason": "unknown taxonomy 'Malicious Use / Security threats / Cyber'"}
    ]
    assert Question.objects.get().subcategory == subcategory("cyber")


def test_it_reads_question_types_from_a_column_in_either_spelling(tmp_path: Path) -> None:
    rows = [rlaif_v_row(1, kind="hardd"), rlaif_v_row(2, kind=""), rlaif_v_row(3, kind="hard")]
    path = write_parquet(path=tmp_path / "t.parquet", rows=rows)

    batch = hf_import(path, RLAIF_V_MAP + ",question_type=kind", question_type="easy")

    assert reasons(batch)[3].startswith("unknown question type 'hard'")
    assert sorted(Question.objects.values_list("question_type", flat=True)) == ["easy", "hards"]


# Hostile input: each bad row is rejected with its number and reason, the others are kept.


def test_it_rejects_image_paths_that_leave_the_image_root(tmp_path: Path) -> None:
    root = tmp_path / "images"
    write_image_file(root=root, relative="ok.jpg", data=image_bytes(seed=1))
    (tmp_path / "secret.jpg").write_bytes(image_bytes(seed=2))
    rows = [
        {"img": "ok.jpg", "q": "Fine?", "r": "Yes."},
        {"img": "../secret.jpg", "q": "Up?", "r": "No."},
        {"img": str(tmp_path / "secret.jpg"), "q": "Absolute?", "r": "No."},
    ]
    path = write_jsonl(path=tmp_path / "rows.jsonl", rows=rows)

    batch = hf_import(path, "image=img,question=q,response=r", image_root=root)

    assert reasons(batch) == {
        2: "image path '../secret.jpg' leaves the image root",
        3: f"image path {str(tmp_path / 'secret.jpg')!r} leaves the image root",
    }
    assert Question.objects.get().text == "Fine?"


def test_it_rejects_nul_characters_in_mapped_and_kept_columns(tmp_path: Path) -> None:
    rows = [
        rlaif_v_row(1),
        rlaif_v_row(2, question="What\x00 is it?"),
        rlaif_v_row(3, origin_dataset="CO\x00CO"),
    ]
    path = write_rlaif_v(tmp_path / "nul.parquet", rows)

    batch = hf_import(path, RLAIF_V_MAP)

    assert reasons(batch) == {
        2: "field 'question' contains a NUL character",
        3: "column 'origin_dataset' contains a NUL character",
    }
    assert batch.rows_created == 1


def test_it_rejects_oversized_cells_before_they_become_python_objects(
    tmp_path: Path, settings: Any
) -> None:
    settings.IMAGE_MAX_BYTES = 50_000
    settings.IMPORT_ROW_MAX_BYTES = 10_000
    rows = [
        {"img": image_bytes(seed=1), "q": "Small?", "c": ["Yes."], "note": "n"},
        {"img": b"\xff" * 60_000, "q": "Big image?", "c": ["Yes."], "note": "n"},
        {"img": image_bytes(seed=3), "q": "Big note?", "c": ["Yes."], "note": "x" * 20_000},
        {"img": image_bytes(seed=4), "q": "Big list?", "c": ["y" * 6_000] * 2, "note": "n"},
    ]
    path = write_parquet(path=tmp_path / "big.parquet", rows=rows)

    batch = hf_import(path, "image=img,question=q,completions=c")

    found = reasons(batch)
    assert found[2] == "image is 60000 bytes, above 50000"
    assert found[3].startswith("text fields hold 20") and found[3].endswith("above 10000")
    assert found[4].startswith("text fields hold 12") and found[4].endswith("above 10000")
    assert batch.rows_created == 1


def list_bomb(path: Path, *, refs: int, entry: int) -> Path:
    """Two rows whose ``tags`` list holds ``refs`` references to one dictionary entry of
    ``entry`` bytes, after a good row: a file of kilobytes that decodes to refs x entry a row."""
    indices = pa.array([0] * (2 * refs), pa.int32())
    tags = pa.ListArray.from_arrays(
        pa.array([0, 0, refs, 2 * refs], pa.int32()),
        pa.DictionaryArray.from_arrays(indices, pa.array(["x" * entry])),
    )
    images = [{"bytes": image_bytes(seed=n), "path": None} for n in (1, 2, 3)]
    table = pa.table(
        {
            "img": pa.array(images, HF_IMAGE),
            "q": [f"Question {n}?" for n in (1, 2, 3)],
            "r": ["Fine."] * 3,
            "tags": tags,
        }
    )
    pq.write_table(table, path, store_schema=False)  # no Arrow schema saying "dictionary"
    return path


def test_it_measures_a_repeated_dictionary_entry_without_decoding_it(tmp_path: Path) -> None:
    path = list_bomb(tmp_path / "bomb.parquet", refs=1000, entry=1 << 20)
    assert path.stat().st_size < 200_000

    batch = hf_import(path, "image=img,question=q,response=r")

    held = (1000 << 20) + len("Question 2?") + len("Fine.")
    assert reasons(batch) == {
        2: f"text fields hold {held} bytes, above 16777216",
        3: f"text fields hold {held} bytes, above 16777216",
    }
    assert Question.objects.get().text == "Question 1?"
    # Decoded, each bomb row would have taken a gigabyte of Arrow memory.
    assert pa.default_memory_pool().max_memory() < 512 << 20


def test_it_refuses_a_row_group_whose_lists_declare_too_many_values(
    tmp_path: Path, settings: Any
) -> None:
    settings.IMPORT_PAGE_MAX_BYTES = 1_000_000
    rows = [{"img": image_bytes(seed=1), "q": "Many?", "r": "Yes.", "tags": [""] * 100_000}]
    path = write_parquet(path=tmp_path / "values.parquet", rows=rows)

    batch = hf_import(path, "image=img,question=q,response=r")

    assert reasons(batch)[1].startswith("not read: its row group (0) needs 16")
    assert not Question.objects.exists()


def test_it_decodes_base64_images_and_rejects_bad_ones(tmp_path: Path) -> None:
    png = image_bytes(seed=5, fmt="PNG")
    encoded = base64.b64encode(png).decode()
    rows = [
        {"img": f"data:image/png;base64,{encoded}", "q": "URI?", "r": "Yes."},
        {"img": "data:image/png;base64,not*base64!", "q": "Bad?", "r": "No."},
        {"img": encoded, "q": "Bare?", "r": "Yes."},
    ]
    path = write_parquet(path=tmp_path / "b64.parquet", rows=rows)

    first = hf_import(path, "image=img,question=q,response=r")
    second = hf_import(path, "image=img,question=q,response=r,image_encoding=base64")

    assert reasons(first)[2].startswith("image is not valid base64")
    assert reasons(first)[3] == f"image file {encoded!r} not found"
    assert set(reasons(second)) == {2}
    assert {bytes(image.data) for image in Image.objects.all()} == {png}
    assert Question.objects.count() == 2


def test_it_keeps_unmapped_bytes_and_floats_as_json_that_postgresql_stores(
    tmp_path: Path,
) -> None:
    row = {
        **rlaif_v_row(1),
        "thumbnail": b"\x89PNG" + b"\x00" * 96,
        "score": float("nan"),
        "when": None,
    }
    path = write_parquet(path=tmp_path / "p.parquet", rows=[row])

    hf_import(path, RLAIF_V_MAP)

    provenance = Pair.objects.get().provenance
    assert provenance["thumbnail"] == {"omitted_bytes": 100}
    assert (provenance["score"], provenance["when"]) == ("nan", None)


# A bad mapping fails the file before anything is written, naming what is wrong.


def test_it_fails_a_map_naming_columns_the_file_lacks_listing_those_it_has(
    tmp_path: Path,
) -> None:
    path = write_rlaif_v(tmp_path / "r.parquet", [rlaif_v_row(1)])

    with pytest.raises(ImportFileError) as raised:
        hf_import(path, "image=image,question=prompt,chosen=chosen,rejected=rejected")

    assert str(raised.value) == (
        "r.parquet lacks the mapped columns prompt (question); it has ds_name, image, question,"
        " chosen, rejected, origin_dataset, origin_split, idx, image_path"
    )
    assert counts() == [0, 0, 0, 0]
    batch = ImportBatch.objects.get()
    assert (batch.status, batch.error_message) == (ImportStatus.FAILED, str(raised.value))


def test_it_fails_json_lines_whose_first_row_lacks_a_mapped_column(tmp_path: Path) -> None:
    path = write_jsonl(path=tmp_path / "x.jsonl", rows=[{"image": "a.jpg", "q": "?", "a": "!"}])

    with pytest.raises(ImportFileError, match=r"x.jsonl \(row 1\) lacks the mapped columns r "):
        hf_import(path, "image=image,question=q,response=r")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("image=img,question=q,chosen=c,rejected=r,imgae=x", "unknown key 'imgae'"),
        ("image=img,question=q,id=i", "map the responses"),
        ("image=img,question=q,chosen=c", "a pair needs rejected too"),
        ("image=img,question=q,chosen=c,rejected=r,response=x", "map one kind of responses"),
        ("image=img,question=q,response=r,model_a=m", "model_a needs response_a"),
        ("question=q,response=r", "map image"),
        ("image=img,question=q,chosen=c,rejected=c", "'c' is mapped twice"),
        ("image=img,question=q,response=r,class1=a", "class1, class2 and class3 together"),
        ("image=img,question,response=r", "'question' is not key=column"),
        ("image=img,question=q,response=r,image_encoding=hex", "image_encoding is base64"),
    ],
)
def test_it_refuses_a_bad_map_saying_what_is_wrong(text: str, message: str) -> None:
    with pytest.raises(ImportFileError, match=message):
        parse_column_map(text)


def test_it_fails_a_taxonomy_map_naming_a_subcategory_that_does_not_exist(tmp_path: Path) -> None:
    path = write_parquet(path=tmp_path / "b.parquet", rows=[beavertails_row(1, "x")])

    with pytest.raises(ImportFileError, match="names no live subcategory for 'x'"):
        hf_import(path, BEAVERTAILS_MAP, taxonomy_map={"x": "Malicious Use/Security threats/nope"})
    assert counts() == [0, 0, 0, 0]


# The command line, and the export of what was kept.


def test_the_command_imports_with_a_map_and_a_taxonomy_map(tmp_path: Path) -> None:
    path = write_parquet(path=tmp_path / "b.parquet", rows=[beavertails_row(2, "animal_abuse")])
    taxonomy_map = write_taxonomy_map(tmp_path / "map.json")
    out = StringIO()

    call_command(
        "import_data",
        str(path),
        "--format=hf-parquet",
        f"--map={BEAVERTAILS_MAP}",
        f"--taxonomy-map={taxonomy_map}",
        "--unknown-taxonomy=unlabelled",
        "--no-progress",
        stdout=out,
    )

    assert "1 rows read, 1 created" in out.getvalue()
    assert ImportBatch.objects.get().options == {
        "column_map": parse_column_map(BEAVERTAILS_MAP),
        "taxonomy_map": str(taxonomy_map),
        "unknown_taxonomy": "unlabelled",
    }
    with pytest.raises(CommandError, match="nothing imported: column map: unknown key 'img'"):
        call_command("import_data", str(path), "--format=hf-parquet", "--map=img=x")


def test_an_export_with_provenance_carries_source_ids_and_the_kept_columns(
    tmp_path: Path,
) -> None:
    hf_import(write_rlaif_v(tmp_path / "r.parquet", [rlaif_v_row(1)]), RLAIF_V_MAP)
    images = tmp_path / "merged_images"
    vlfeedback = write_parquet(
        path=tmp_path / "v.parquet", rows=[vlfeedback_row(1, images)], schema=VLFEEDBACK
    )
    hf_import(vlfeedback, VLFEEDBACK_MAP, image_root=images)
    make_pairs(per_question=1)
    sampled = Pair.objects.get(origin=PairOrigin.SAMPLED)
    set_final_label(pair=sampled, label="judge_only", chosen="a", reason="test", by=None)
    definition = tmp_path / "definition.json"
    ratios = {"train": 1, "validation": 0, "test": 0}
    definition.write_text(json.dumps({"name": "p", "ratios": ratios, "include_provenance": True}))

    call_command(
        "export_dataset",
        definition=str(definition),
        format="spavl-parquet",
        out=str(tmp_path / "out"),
        verbosity=0,
    )

    table = pq.read_table(tmp_path / "out/data/train-00000-of-00001.parquet").to_pylist()
    by_question = {row["question"]: row for row in table}
    imported = by_question["What is in image 1?"]
    assert imported["source_id"] == "OmniLMM-12B_1"
    assert (
        json.loads(imported["provenance"]) == Pair.objects.get(source_id="OmniLMM-12B_1").provenance
    )
    judged = by_question["Describe picture 1."]
    assert judged["source_id"] == ""
    assert json.loads(judged["provenance"])["id"] == "svit-1"
