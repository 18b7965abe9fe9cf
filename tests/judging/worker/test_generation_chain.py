"""SPA-VL's whole pipeline in the studio, on tiny random models of two real architectures:
questions written, answered by two models, paired, judged, reviewed and exported, with each
stage's provenance carried to the dataset. No hub, no GPU."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from django.core.management import call_command

from annotation.models import ImportStatus, Pair, Question, QuestionType, Response
from annotation.services.agreement.dashboard import build_dashboard
from annotation.services.agreement.queries import AgreementSlice
from annotation.services.assignment import claim_next_pair
from annotation.services.campaigns import CampaignRules, create_campaign
from annotation.services.pairs import make_pairs
from annotation.services.review import give_blind_verdict, submit_review
from judging.engine.generation_types import SamplingSettings
from judging.engine.question_writing import ParsedQuestion, parse_question
from judging.models import GenerationConfiguration, GenerationRun, JudgeRun, RunStatus
from judging.services import start_run
from judging.services.question_generation import write_questions
from tests.factories import make_image, subcategory

pytestmark = [
    pytest.mark.judge,
    pytest.mark.slow,
    pytest.mark.django_db(transaction=True),  # tasks go on commit, in-process, as in the demo
    pytest.mark.usefixtures("spavl_taxonomy"),
]
TYPES = [QuestionType.EASY, QuestionType.HARD_QUESTION, QuestionType.HARD_STATEMENT]


def test_questions_to_dataset_on_tiny_models(
    tiny_qwen2vl_path: Path, tiny_llava_path: Path, reviewer, tmp_path: Path
):
    pytest.importorskip("torch")
    qwen, llava = str(tiny_qwen2vl_path), str(tiny_llava_path)
    images = [make_image(seed=seed).pk for seed in (11, 12)]
    bully = subcategory("bully").pk

    # Stage 1. A real (tiny, random) model writes: its text is parsed strictly, and what fails
    # is kept with its raw text and reason, never stored as a question.
    written = write_questions(
        model=qwen,
        image_ids=images,
        subcategory_ids=[bully],
        question_types=TYPES,
        sampling=SamplingSettings(max_new_tokens=16),
    )
    assert written.status == ImportStatus.FINISHED, written.error_message
    assert written.rows_created + written.rows_rejected == 6
    assert all(error["reason"] and "raw" in error for error in written.errors)
    for question in Question.objects.filter(import_batch=written):
        parsed = parse_question(question.text, question_type=question.question_type)
        assert isinstance(parsed, ParsedQuestion)
        assert question.provenance["generated_by"] == qwen
    # The templates of the torch-free writer pass the same parser, so the chain has questions.
    batch = write_questions(
        model="baseline", image_ids=images, subcategory_ids=[bully], question_types=TYPES
    )
    assert (batch.status, batch.rows_created) == (ImportStatus.FINISHED, 6)

    # Stage 2. Two models of different families answer them, through the command and tasks.
    call_command(
        "generate",
        "responses",
        "--model",
        qwen,
        "--model",
        llava,
        "--import-batch",
        str(batch.pk),
        "--max-new-tokens",
        "12",
        "--wait",
    )
    generation = GenerationRun.objects.get()
    assert (generation.status, generation.created, generation.failed) == (
        RunStatus.FINISHED,
        12,
        0,
    ), generation.error
    families = dict(GenerationConfiguration.objects.values_list("model_id", "model_family"))
    assert families == {qwen: "qwen", llava: "llava"}

    # Stage 3. Pairs of the two models' responses, judged by a model of one of their families.
    assert make_pairs(seed=0).created == 6
    assert {
        frozenset((p.response_a.model_name, p.response_b.model_name))
        for p in Pair.objects.select_related("response_a", "response_b")
    } == {frozenset((qwen, llava))}
    judged = start_run(backend="transformers", model=qwen, pairs="all")
    judged = JudgeRun.objects.get(pk=judged.pk)
    assert (judged.status, judged.done) == (RunStatus.FINISHED, 6), judged.error
    assert judged.configuration is not None and judged.configuration.model_family == "qwen"

    # Stage 4. People review every pair, blind first.
    campaign = create_campaign(
        name="chain",
        created_by=None,
        reviewers=[reviewer],
        judge_run=judged,
        rules=CampaignRules(control_share=0.0),
        seed=0,
    )
    reviewed = 0
    while (assignment := claim_next_pair(campaign=campaign, reviewer=reviewer)) is not None:
        give_blind_verdict(assignment=assignment, verdict="left")
        submit_review(assignment=assignment, verdict="left")
        reviewed += 1
    assert reviewed == 6

    # Every pair is one of the judge's own family: the dashboard's self-preference section
    # counts them all there, none on the other side.
    [row] = [
        row
        for row in build_dashboard(slice_=AgreementSlice())["own_family"]
        if row["configuration_id"] == judged.configuration.pk
    ]
    assert row["family"] == "qwen"
    assert (row["own"]["pairs"], row["own"]["compared"], row["other"]["pairs"]) == (6, 6, 0)

    # Stage 5. The dataset, with what made each response.
    definition = tmp_path / "definition.json"
    definition.write_text(json.dumps({"name": "chain", "include_provenance": True}))
    out = tmp_path / "export"
    call_command(
        "export_dataset",
        definition=str(definition),
        format="spavl-parquet",
        out=str(out),
        verbosity=0,
    )
    import pyarrow.parquet as pq

    rows = [
        row
        for path in sorted((out / "data").glob("*.parquet"))
        for row in pq.read_table(path).to_pylist()
    ]
    assert len(rows) == 6
    for exported in rows:
        made = json.loads(exported["provenance"])["generation"]
        assert {entry["model_id"] for entry in made} == {qwen, llava}
        assert {entry["finish_reason"] for entry in made} <= {"stop", "length"}
        assert all(entry["sample_index"] == 0 and entry["tokens_out"] for entry in made)
        assert all(entry["config"]["max_new_tokens"] == 12 for entry in made)
    assert Response.objects.filter(generation_configuration__isnull=False).count() == 12
