"""Generation runs: models answer questions on the `generate` queue, with provenance per
response, nothing generated twice, and the judge's recovery (a killed worker, a lost message).

The torch-free baseline generators (``baseline:<style>``) stand in for models here; the
transformers generator is tested in tests/judging/engine and on tiny models in the chain test.
"""

from __future__ import annotations

from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import IntegrityError, transaction
from django.urls import reverse

from annotation.models import Pair, QuestionType, Response
from annotation.services.pairs import make_pairs
from judging.engine.generation_types import SamplingSettings
from judging.exceptions import JudgeRunError
from judging.models import (
    BatchStatus,
    GenerationBatch,
    GenerationConfiguration,
    GenerationRun,
    QuestionSelection,
    RunStatus,
)
from judging.services import ModelRequest, cancel_generation_run, start_generation_run
from tests.factories import make_corrupt_image, make_question, make_response, subcategory
from tests.workers import kill_worker, wait_for

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("spavl_taxonomy")]

CAUTIOUS = ModelRequest("baseline:cautious")
HELPFUL = ModelRequest("baseline:helpful")
SAMPLED = SamplingSettings(max_new_tokens=64, temperature=0.8, top_p=0.95, seed=7)


def run_in_process(capture: Any, **kwargs: Any) -> GenerationRun:
    """Start a run and execute its tasks when the (test) transaction would commit."""
    with capture(execute=True):
        run = start_generation_run(**kwargs)
    run.refresh_from_db()
    return run


def questions(count: int, **kwargs: Any) -> list[int]:
    return [make_question(**kwargs).pk for _ in range(count)]


def test_it_answers_every_question_with_every_model_and_keeps_the_provenance(
    django_capture_on_commit_callbacks, reviewer
):
    ids = questions(5)

    run = run_in_process(
        django_capture_on_commit_callbacks,
        models=[CAUTIOUS, HELPFUL],
        samples=2,
        sampling=SAMPLED,
        batch_size=2,
        by=reviewer,
    )

    assert run.status == RunStatus.FINISHED, run.error
    assert (run.total, run.done, run.failed, run.existing) == (20, 20, 0, 0)
    assert run.created + run.duplicates == 20
    assert run.batches.count() == 6  # 3 batches of at most 2 questions, per model
    assert list(run.batches.values_list("model_index", flat=True)) == [0, 0, 0, 1, 1, 1]
    assert run.started_by == reviewer
    responses = Response.objects.filter(generation_configuration__isnull=False)
    assert responses.count() == run.created
    assert set(responses.values_list("question_id", flat=True)) == set(ids)
    assert set(responses.values_list("model_name", flat=True)) == {
        "baseline:cautious",
        "baseline:helpful",
    }
    response = responses.order_by("pk").first()
    assert response is not None
    assert response.sample_index in (0, 1)
    assert response.tokens_in and response.tokens_in > 0
    assert response.tokens_out and response.tokens_out > 0
    assert response.finish_reason in ("stop", "length")
    assert response.generation_seconds is not None and response.generation_seconds >= 0
    configuration = response.generation_configuration
    assert configuration.config == SAMPLED.as_config()
    assert configuration.config["do_sample"] is True
    assert configuration.prompt_version
    assert GenerationConfiguration.objects.count() == 2  # one per model
    # Duplicates were generated too: their tokens count, their rows are not stored twice.
    assert run.tokens_out >= sum(responses.values_list("tokens_out", flat=True))
    assert run.throughput[0] is not None


def test_running_again_creates_nothing_twice(django_capture_on_commit_callbacks):
    questions(3)
    arguments = {"models": [CAUTIOUS], "samples": 2, "sampling": SAMPLED}
    first = run_in_process(django_capture_on_commit_callbacks, **arguments)
    stored = Response.objects.count()

    again = run_in_process(
        django_capture_on_commit_callbacks, questions=QuestionSelection.ALL, **arguments
    )
    missing = run_in_process(django_capture_on_commit_callbacks, **arguments)

    assert first.created == stored > 0
    assert Response.objects.count() == stored
    assert (again.status, again.total, again.existing, again.created) == (
        RunStatus.FINISHED,
        6,
        6,
        0,
    )
    # "missing" asks only for questions without a response from the model: none are left.
    assert (missing.status, missing.total, missing.created) == (RunStatus.FINISHED, 0, 0)


def test_the_database_refuses_a_second_response_for_the_same_question_configuration_and_sample(
    django_capture_on_commit_callbacks,
):
    questions(1)
    run_in_process(django_capture_on_commit_callbacks, models=[CAUTIOUS])
    response = Response.objects.get()
    with pytest.raises(IntegrityError), transaction.atomic():
        Response.objects.create(
            question=response.question,
            model_name=response.model_name,
            text="a different text",
            text_sha256="0" * 64,
            generation_configuration=response.generation_configuration,
            sample_index=response.sample_index,
        )
    with pytest.raises(IntegrityError), transaction.atomic():
        # A generated response always says which sample it is.
        Response.objects.create(
            question=response.question,
            model_name=response.model_name,
            text="another text",
            text_sha256="1" * 64,
            generation_configuration=response.generation_configuration,
        )


def test_greedy_samples_of_one_question_are_one_response_counted_as_duplicates(
    django_capture_on_commit_callbacks,
):
    questions(2)

    run = run_in_process(
        django_capture_on_commit_callbacks,
        models=[HELPFUL],
        samples=3,
        sampling=SamplingSettings(max_new_tokens=64),
    )

    assert (run.done, run.created, run.duplicates) == (6, 2, 4)
    assert Response.objects.count() == 2


def test_truncated_generations_are_marked_and_counted(django_capture_on_commit_callbacks):
    questions(3)

    run = run_in_process(
        django_capture_on_commit_callbacks,
        models=[HELPFUL],
        sampling=SamplingSettings(max_new_tokens=3),
    )

    responses = Response.objects.all()
    assert set(responses.values_list("finish_reason", flat=True)) == {"length"}
    assert set(responses.values_list("tokens_out", flat=True)) == {3}
    assert (run.truncated, run.share_truncated) == (3, 1.0)


def test_it_narrows_the_questions_by_taxonomy_type_and_import(django_capture_on_commit_callbacks):
    bully = questions(2, question_type=QuestionType.EASY)
    questions(2, question_type=QuestionType.HARD_QUESTION)
    other = make_question(subcategory_key=None, question_type=QuestionType.EASY)

    by_node = run_in_process(
        django_capture_on_commit_callbacks,
        models=[CAUTIOUS],
        taxonomy_node_ids=[subcategory("bully").parent.parent_id],  # the domain
        question_types=[QuestionType.EASY],
    )

    answered = set(Response.objects.values_list("question_id", flat=True))
    assert by_node.total == 2
    assert answered == set(bully)
    assert other.pk not in answered


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"models": []}, "at least one model"),
        ({"models": [ModelRequest("")]}, "at least one model"),
        ({"models": [CAUTIOUS, CAUTIOUS]}, "named twice"),
        ({"samples": 0}, "Samples per question"),
        ({"sampling": SamplingSettings(max_new_tokens=0)}, "Max new tokens"),
        ({"sampling": SamplingSettings(temperature=-1)}, "temperature"),
        ({"sampling": SamplingSettings(top_p=0)}, "Top-p"),
        ({"question_types": ["nope"]}, "Unknown question types"),
        ({"taxonomy_node_ids": [999_999]}, "names no node"),
        ({"import_batch_id": 999_999}, "No import batch"),
        ({"questions": "some"}, "Questions must be"),
    ],
)
def test_it_refuses_a_request_that_cannot_run_and_records_nothing(arguments, message):
    questions(1)
    with pytest.raises(JudgeRunError, match=message):
        start_generation_run(**{"models": [CAUTIOUS], **arguments})
    assert not GenerationRun.objects.exists()


def test_a_model_that_cannot_be_loaded_fails_its_batches_with_the_reason_and_the_others_go_on(
    django_capture_on_commit_callbacks,
):
    questions(3)

    run = run_in_process(
        django_capture_on_commit_callbacks,
        models=[ModelRequest("baseline:no-such-style"), HELPFUL],
        batch_size=1,
    )

    assert run.status == RunStatus.FAILED
    assert "could not load the model baseline:no-such-style" in run.error
    assert (run.failed, run.created) == (3, 3)
    failed = run.batches.filter(model_index=0)
    assert set(failed.values_list("status", flat=True)) == {BatchStatus.FAILED}
    assert set(failed.values_list("attempts", flat=True)) <= {0, 1}  # nothing retried
    assert set(Response.objects.values_list("model_name", flat=True)) == {"baseline:helpful"}


def test_a_question_whose_image_no_decoder_takes_fails_alone_and_the_batch_goes_on(
    django_capture_on_commit_callbacks,
):
    good = questions(2)
    bad = make_question(image=make_corrupt_image())

    run = run_in_process(
        django_capture_on_commit_callbacks, models=[HELPFUL], samples=2, sampling=SAMPLED
    )

    assert (run.status, run.total, run.done, run.failed) == (RunStatus.FINISHED, 6, 4, 2)
    [batch] = run.batches.all()
    assert batch.status == BatchStatus.DONE and batch.attempts == 1
    assert f"question {bad.pk}: unreadable image" in batch.error
    assert set(Response.objects.values_list("question_id", flat=True)) == set(good)


def test_a_cancelled_run_drops_its_pending_batches(reviewer):
    questions(4)
    with transaction.atomic():  # the tasks would be sent on commit: cancel before any runs
        run = start_generation_run(models=[CAUTIOUS], batch_size=1)
        cancelled = cancel_generation_run(run_id=run.pk, by=reviewer)

    assert cancelled.status == RunStatus.CANCELLED
    assert "cancelled by rita" in cancelled.error
    assert set(run.batches.values_list("status", flat=True)) == {BatchStatus.CANCELLED}
    with pytest.raises(JudgeRunError, match="already ended"):
        cancel_generation_run(run_id=run.pk, by=reviewer)


def test_generated_responses_pair_across_models_like_imported_ones(
    django_capture_on_commit_callbacks,
):
    for _ in range(3):  # an imported response beside the generated ones
        make_response(question=make_question(), model_name="imported-model")
    run_in_process(django_capture_on_commit_callbacks, models=[CAUTIOUS, HELPFUL])

    result = make_pairs(seed=0, per_question=3)

    assert result.created == 9  # three models per question: three pairs each
    for pair in Pair.objects.select_related("response_a", "response_b"):
        assert pair.response_a.model_name != pair.response_b.model_name


@pytest.mark.django_db(transaction=True)  # the run's tasks go when it commits, as in the demo
def test_the_command_starts_a_run_follows_it_and_reports(capsys):
    questions(2)
    call_command(
        "generate",
        "responses",
        "--model",
        "baseline:cautious",
        "--model",
        "baseline:helpful@",
        "--samples",
        "2",
        "--temperature",
        "0.7",
        "--seed",
        "3",
        "--max-new-tokens",
        "40",
        "--wait",
    )
    out = capsys.readouterr().out
    run = GenerationRun.objects.get()
    assert run.requested_models == [
        {"model": "baseline:cautious", "revision": ""},
        {"model": "baseline:helpful", "revision": ""},
    ]
    assert run.sampling["seed"] == 3 and run.sampling["max_new_tokens"] == 40
    assert f"Generation run {run.pk}: 8 responses to generate" in out
    assert f"Generation run {run.pk} finished" in out
    assert "make_pairs" in out


def test_the_command_says_why_it_cannot_start():
    with pytest.raises(CommandError, match="Samples per question"):
        call_command("generate", "responses", "--model", "baseline:cautious", "--samples", "0")
    with pytest.raises(CommandError):
        call_command("generate", "responses", "--model", "x", "--question-type", "nope")


def test_the_page_lists_runs_and_starts_one_without_loading_a_model(
    client, staff_admin, django_capture_on_commit_callbacks
):
    questions(2)
    client.force_login(staff_admin)
    form = {
        "models": "baseline:cautious\n\nbaseline:helpful\n",
        "questions": "missing",
        "samples": "1",
        "max_new_tokens": "32",
        "temperature": "0",
        "top_p": "1",
        "seed": "0",
    }
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(reverse("judging:generation_start"), form)
    run = GenerationRun.objects.get()
    assert response.status_code == 302
    assert response["Location"] == reverse("judging:generation_run", args=[run.pk])
    assert run.model_names == ["baseline:cautious", "baseline:helpful"]

    page = client.get(reverse("judging:generation")).content.decode()
    detail = client.get(reverse("judging:generation_run", args=[run.pk])).content.decode()
    assert f"Run {run.pk}</a>" in page
    assert "baseline:cautious, baseline:helpful" in page
    assert "4 / 4" in page  # 2 questions x 2 models, generated in-process
    assert "Created" in detail and "Output tokens/s" in detail
    assert "baseline-" in detail  # the resolved configuration's prompt version is shown


def test_the_page_shows_why_a_run_cannot_start(client, staff_admin):
    client.force_login(staff_admin)
    response = client.post(
        reverse("judging:generation_start"),
        {
            "models": "baseline:cautious\nbaseline:cautious",
            "questions": "missing",
            "samples": "1",
            "max_new_tokens": "32",
            "temperature": "0",
            "top_p": "1",
            "seed": "0",
        },
    )
    assert response.status_code == 400
    assert "named twice" in response.content.decode()
    assert not GenerationRun.objects.exists()


# A real worker on the `generate` queue, killed mid-batch and sent messages that get lost.


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_worker_killed_mid_batch_loses_and_duplicates_nothing(start_worker):
    ids = questions(6)
    first = start_worker(queues="generate", SPAVL_JUDGE_BATCH_DELAY_S="2")
    run = start_generation_run(models=[CAUTIOUS], samples=2, sampling=SAMPLED, batch_size=2)

    def second_batch_running() -> bool:
        return run.batches.filter(index=1, status=BatchStatus.RUNNING).exists()

    wait_for(second_batch_running)
    kill_worker(first)  # SIGKILL to the whole worker: the machine died
    killed = GenerationBatch.objects.get(run=run, index=1)
    assert killed.status == BatchStatus.RUNNING
    start_worker(queues="generate,default", beat=True)  # the sweep finds the dead batch

    def ended() -> bool:
        return not GenerationRun.objects.get(pk=run.pk).is_active

    wait_for(ended, timeout=90)
    run.refresh_from_db()
    killed.refresh_from_db()
    assert (run.status, run.done, run.failed) == (RunStatus.FINISHED, 12, 0), run.error
    assert (killed.status, killed.attempts) == (BatchStatus.DONE, 2)
    keys = list(Response.objects.values_list("question_id", "sample_index"))
    assert len(keys) == len(set(keys)) == run.created
    assert {question for question, _ in keys} == set(ids)


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_batches_whose_messages_the_broker_lost_are_sent_again(start_worker, broker):
    questions(3)
    run = start_generation_run(models=[HELPFUL], batch_size=1)
    broker.delete("generate")  # the messages are gone before any worker took them
    assert broker.llen("generate") == 0
    start_worker(queues="generate,default", beat=True)

    def ended() -> bool:
        return not GenerationRun.objects.get(pk=run.pk).is_active

    wait_for(ended, timeout=60)
    run.refresh_from_db()
    assert (run.status, run.created, run.failed) == (RunStatus.FINISHED, 3, 0)
