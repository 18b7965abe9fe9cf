"""Question generation: a model (or the baseline) writes questions per image, subcategory and
type into an ImportBatch; bad generations are reported, never stored; nothing is written twice.

A fake generator stands in for a model where crafted texts are needed (it replaces the model
loader, the one boundary to torch and the hub); the baseline and the real loader run as they are.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from annotation.models import (
    Image,
    ImportBatch,
    ImportFormat,
    ImportStatus,
    Question,
    TaxonomyNode,
    text_digest,
)
from annotation.services.images import store_image
from annotation.services.taxonomy import retire_node
from judging.engine.generation_types import Generation, GenerationItem, SamplingSettings
from judging.engine.question_writing import BASELINE_QUESTION_VERSION, QUESTION_PROMPT_VERSION
from judging.exceptions import JudgeRunError
from judging.services import question_generation
from judging.services.question_generation import write_questions
from tests import factories

pytestmark = pytest.mark.django_db

TYPES = ["easy", "hardq", "hards"]
SAMPLING = SamplingSettings(max_new_tokens=96, temperature=0.7, top_p=0.9, seed=3)


@pytest.fixture(autouse=True)
def report_dir(settings: Any, tmp_path: Path) -> Path:
    settings.IMPORT_REPORT_DIR = tmp_path / "reports"
    return settings.IMPORT_REPORT_DIR


@pytest.fixture
def two_subcategories(spavl_taxonomy: None) -> list[Any]:
    return [factories.subcategory("bully"), factories.subcategory("theft")]


def _images(count: int) -> list[Image]:
    return [factories.make_image(seed=500 + n) for n in range(count)]


def _ids(nodes: list[Any]) -> list[int]:
    return [node.pk for node in nodes]


@dataclass
class FakeGenerator:
    """Answers row n (the item's key) with ``texts[n]``: (text, finish reason)."""

    texts: dict[int, tuple[str, str]]
    model_id: str = "fake/vlm-7b"
    revision: str = "abc123"
    model_type: str = "fake"
    prompt_version: str = "fake-chat-v1"
    calls: list[tuple[list[GenerationItem], SamplingSettings]] = field(default_factory=list)

    def generate(
        self, items: Sequence[GenerationItem], settings: SamplingSettings
    ) -> list[Generation]:
        self.calls.append((list(items), settings))
        return [self._one(item) for item in items]

    def _one(self, item: GenerationItem) -> Generation:
        text, finish = self.texts[item.key]
        return Generation(
            key=item.key,
            sample_index=item.sample_index,
            text=text,
            tokens_in=900,
            tokens_out=len(text.split()),
            finish_reason=finish,  # type: ignore[arg-type]
            seconds=0.25,
        )


def _use_fake(monkeypatch: Any, fake: FakeGenerator) -> list[tuple[str, Any]]:
    loads: list[tuple[str, Any]] = []

    def load_generator(
        model: str, *, revision: str | None = None, dtype: str | None = None
    ) -> FakeGenerator:
        loads.append((model, revision))
        return fake

    monkeypatch.setattr(question_generation, "load_generator", load_generator)
    return loads


def test_the_baseline_writes_each_type_for_each_image_and_subcategory(two_subcategories, reviewer):
    images = _images(2)
    seen: list[tuple[int, int]] = []

    batch = write_questions(
        model="baseline",
        subcategory_ids=_ids(two_subcategories),
        question_types=TYPES,
        by=reviewer,
        progress=lambda done, total: seen.append((done, total)),
    )

    questions = list(Question.objects.filter(import_batch=batch))
    assert batch.status == ImportStatus.FINISHED and batch.finished_at is not None
    assert batch.format == ImportFormat.GENERATED_QUESTIONS
    assert batch.file_name == "baseline" and batch.started_by == reviewer
    assert (batch.rows_total, batch.rows_read, batch.rows_created) == (12, 12, 12)
    assert (batch.rows_existing, batch.rows_rejected, batch.errors) == (0, 0, [])
    assert seen[-1] == (12, 12)
    assert sorted((q.image_id, q.subcategory_id, q.question_type) for q in questions) == sorted(
        (image.pk, node.pk, kind)
        for image in images
        for node in two_subcategories
        for kind in TYPES
    )
    for question in questions:
        assert question.text_sha256 == text_digest(question.text)
        assert question.subcategory is not None and question.subcategory.key in question.text
        assert question.taxonomy_version == 0  # as the importers set it
        assert question.provenance["generated_by"] == "baseline"
        assert question.provenance["prompt_version"] == BASELINE_QUESTION_VERSION
        assert question.provenance["subcategory"] == question.subcategory.path
        assert question.provenance["finish_reason"] == "stop"
    assert batch.options["model"] == "baseline"
    assert batch.options["prompt_version"] == BASELINE_QUESTION_VERSION
    assert batch.options["question_types"] == TYPES
    assert batch.options["sampling"] == SamplingSettings().as_config()
    assert Path(batch.report_path).read_text().splitlines() == [
        "row,reason,detail,image,subcategory,type,raw"
    ]


def test_a_second_run_creates_nothing_and_counts_every_row_as_existing(two_subcategories):
    _images(2)
    only = _ids(two_subcategories)
    first = write_questions(model="baseline", subcategory_ids=only, question_types=TYPES)

    second = write_questions(model="baseline", subcategory_ids=only, question_types=TYPES)

    assert first.rows_created == 12
    assert (second.rows_read, second.rows_created, second.rows_existing) == (12, 0, 12)
    assert second.status == ImportStatus.FINISHED
    assert Question.objects.count() == 12


def test_it_asks_about_every_live_subcategory_by_default(two_subcategories):
    [image] = _images(1)
    retire_node(node=two_subcategories[0])

    batch = write_questions(model="baseline", question_types=["easy"])

    asked = set(Question.objects.filter(import_batch=batch).values_list("subcategory", flat=True))
    live = TaxonomyNode.objects.active().subcategories()
    assert asked == set(live.values_list("pk", flat=True))
    assert batch.rows_created == 52 == live.count()  # SPA-VL's 53, one retired


def test_it_writes_only_the_chosen_images_subcategories_and_types(two_subcategories):
    images = _images(3)
    theft = two_subcategories[1]

    batch = write_questions(
        model="baseline",
        image_ids=[images[2].pk],
        subcategory_ids=[theft.pk],
        question_types=["hards", "hards"],
    )

    [question] = Question.objects.filter(import_batch=batch)
    assert (question.image_id, question.subcategory_id) == (images[2].pk, theft.pk)
    assert question.question_type == "hards" and not question.text.endswith("?")
    assert batch.options["image_ids"] == [images[2].pk]
    assert batch.options["subcategory_ids"] == [theft.pk]


# Rows 1-6 of one image and two subcategories: (bully: easy, hardq, hards), (theft: ...).
LONG = "Describe " + "the very many small details " * 60 + "in the image."
CRAFTED = {
    1: ("Question: What is the boy on the left holding?", "stop"),
    2: ("I'm sorry, but I can't help with creating that.", "stop"),
    3: (LONG, "stop"),
    4: ("What is\x00 in the\tbag?", "stop"),
    5: ("How would someone quietly take the bag without the", "length"),
    6: ('"Explain how the bag in this picture could be left unattended."', "stop"),
}


def test_it_stores_the_good_generations_and_reports_the_bad_ones_with_their_raw_text(
    two_subcategories, monkeypatch
):
    [image] = _images(1)
    fake = FakeGenerator(texts=CRAFTED)
    loads = _use_fake(monkeypatch, fake)

    batch = write_questions(
        model="fake/vlm-7b",
        revision="main",
        subcategory_ids=_ids(two_subcategories),
        question_types=TYPES,
        sampling=SAMPLING,
    )

    assert loads == [("fake/vlm-7b", "main")]
    stored = {q.question_type: q for q in Question.objects.filter(import_batch=batch)}
    assert set(stored) == {"easy", "hards"}
    assert stored["easy"].text == "What is the boy on the left holding?"
    assert stored["easy"].subcategory == two_subcategories[0]
    assert stored["hards"].text == "Explain how the bag in this picture could be left unattended."
    assert stored["hards"].subcategory == two_subcategories[1]
    assert stored["easy"].provenance | {"configuration_sha256": "-"} == {
        "generated_by": "fake/vlm-7b",
        "revision": "abc123",
        "model_type": "fake",
        "prompt_version": QUESTION_PROMPT_VERSION,
        "generator_prompt_version": "fake-chat-v1",
        "sampling": SAMPLING.as_config(),
        "configuration_sha256": "-",
        "subcategory_id": two_subcategories[0].pk,
        "subcategory": two_subcategories[0].path,
        "tokens_in": 900,
        "tokens_out": 9,  # the raw text's, label included
        "finish_reason": "stop",
        "seconds": 0.25,
    }
    assert (batch.rows_read, batch.rows_created, batch.rows_rejected) == (6, 2, 4)
    assert batch.options["resolved_revision"] == "abc123"
    assert batch.options["generated_by"] == "fake/vlm-7b"
    assert batch.options["prompt_version"] == QUESTION_PROMPT_VERSION
    assert batch.options["sampling"] == SAMPLING.as_config()
    bully, theft = (node.path for node in two_subcategories)
    assert [
        (e["row"], e["reason"], e["image"], e["subcategory"], e["type"]) for e in batch.errors
    ] == [
        (2, "refused", image.pk, bully, "hardq"),
        (3, "overlong", image.pk, bully, "hards"),
        (4, "malformed", image.pk, theft, "easy"),
        (5, "truncated", image.pk, theft, "hardq"),
    ]
    raws = [e["raw"] for e in batch.errors]
    assert raws[0] == CRAFTED[2][0]
    assert raws[1] == LONG[:500]
    assert raws[2] == "What is\\x00 in the\tbag?"  # jsonb holds no NUL: escaped, not lost
    assert raws[3] == CRAFTED[5][0]
    with Path(batch.report_path).open(encoding="utf-8", newline="") as handle:
        report = list(csv.DictReader(handle))
    assert [(r["row"], r["reason"], r["type"]) for r in report] == [
        ("2", "refused", "hardq"),
        ("3", "overlong", "hards"),
        ("4", "malformed", "easy"),
        ("5", "truncated", "hardq"),
    ]
    assert report[1]["raw"] == LONG  # the report keeps the whole text
    assert "control" in report[2]["detail"]


def _write_crafted(subcategories: list[Any]) -> ImportBatch:
    return write_questions(
        model="fake/vlm-7b",
        subcategory_ids=_ids(subcategories),
        question_types=TYPES,
        sampling=SAMPLING,
    )


def test_it_shows_the_model_each_image_with_a_prompt_naming_its_subcategory(
    two_subcategories, monkeypatch
):
    [image] = _images(1)
    fake = FakeGenerator(texts=CRAFTED)
    _use_fake(monkeypatch, fake)

    _write_crafted(two_subcategories)

    [(items, settings)] = fake.calls
    assert settings == SAMPLING
    assert [item.key for item in items] == [1, 2, 3, 4, 5, 6]
    assert {item.image for item in items} == {bytes(image.data)}
    assert all("Harm subcategory: bully" in item.prompt for item in items[:3])
    assert all("Harm subcategory: theft" in item.prompt for item in items[3:])
    assert "Write a hard statement" in items[2].prompt


def test_a_second_run_generates_only_the_rows_rejected_before(two_subcategories, monkeypatch):
    _images(1)
    fake = FakeGenerator(texts=CRAFTED)
    _use_fake(monkeypatch, fake)
    _write_crafted(two_subcategories)

    again = _write_crafted(two_subcategories)

    items, _ = fake.calls[-1]
    assert [item.key for item in items] == [2, 3, 4, 5]
    assert (again.rows_created, again.rows_existing, again.rows_rejected) == (0, 2, 4)
    assert Question.objects.count() == 2


def test_a_text_the_image_already_has_is_not_stored_twice(two_subcategories, monkeypatch):
    [image] = _images(1)
    factories.make_question(image=image, text="What is the boy on the left holding?")
    same = ("What is the boy on the left holding?", "stop")
    _use_fake(monkeypatch, FakeGenerator(texts={1: same, 2: ("Why is the boy hiding it?", "stop")}))

    batch = write_questions(
        model="fake/vlm-7b",
        subcategory_ids=[two_subcategories[0].pk],
        question_types=["easy", "hardq"],
    )

    assert (batch.rows_created, batch.rows_existing, batch.rows_rejected) == (1, 1, 0)
    assert Question.objects.filter(image=image).count() == 2


def test_an_image_that_cannot_be_decoded_is_rejected_and_the_others_are_written(
    two_subcategories,
):
    good = factories.make_image(seed=900)
    corrupt = factories.make_corrupt_image()

    batch = write_questions(
        model="baseline", subcategory_ids=[two_subcategories[0].pk], question_types=["easy"]
    )

    assert Question.objects.filter(import_batch=batch).get().image == good
    [error] = batch.errors
    assert (error["reason"], error["image"], error["raw"]) == ("image_rejected", corrupt.pk, "")


def test_a_placeholder_image_gets_no_questions_unless_asked_for(two_subcategories):
    placeholder = store_image(data=factories.image_bytes(seed=901), is_placeholder=True)
    only = [two_subcategories[0].pk]

    by_default = write_questions(model="baseline", subcategory_ids=only, question_types=["easy"])
    asked = write_questions(
        model="baseline", image_ids=[placeholder.pk], subcategory_ids=only, question_types=["easy"]
    )

    assert by_default.rows_total == 0 and by_default.status == ImportStatus.FINISHED
    assert asked.rows_created == 1


def test_a_model_that_cannot_be_loaded_fails_the_batch_with_the_reason(two_subcategories):
    _images(1)

    batch = write_questions(model="no-such-org/no-such-model", question_types=["easy"])

    batch.refresh_from_db()
    assert batch.status == ImportStatus.FAILED and batch.finished_at is not None
    assert batch.error_message.startswith("could not load the model no-such-org/no-such-model: ")
    assert batch.options["model"] == "no-such-org/no-such-model"
    assert not Question.objects.exists()


def test_an_error_while_generating_fails_the_batch_and_keeps_what_was_written(
    two_subcategories, monkeypatch
):
    _images(1)

    class Breaking(FakeGenerator):
        def generate(self, items, settings):
            raise RuntimeError("CUDA out of memory")

    _use_fake(monkeypatch, Breaking(texts={}))

    with pytest.raises(RuntimeError):
        write_questions(model="fake/vlm-7b", question_types=["easy"])

    batch = ImportBatch.objects.get()
    assert batch.status == ImportStatus.FAILED
    assert "CUDA out of memory" in batch.error_message


@pytest.mark.parametrize(
    ("asked", "message"),
    [
        ({"question_types": ["easy", "unknown"]}, "Question types must be"),
        ({"question_types": []}, "Question types must be"),
        ({"model": " "}, "Name the model"),
        ({"model": "baseline:cautious"}, "no styles"),
        ({"image_ids": [999_999]}, "No image with the id 999999"),
    ],
)
def test_it_refuses_a_request_that_cannot_run_and_writes_nothing(two_subcategories, asked, message):
    _images(1)

    with pytest.raises(JudgeRunError, match=message):
        write_questions(**{"model": "baseline", "question_types": ["easy"], **asked})

    assert not ImportBatch.objects.exists()


def test_it_refuses_a_retired_subcategory_and_a_node_of_another_level(two_subcategories):
    bully, theft = two_subcategories
    retire_node(node=bully)

    for node in (bully, theft.parent):
        with pytest.raises(JudgeRunError, match="Not a live subcategory"):
            write_questions(model="baseline", subcategory_ids=[node.pk], question_types=["easy"])

    assert not ImportBatch.objects.exists()
