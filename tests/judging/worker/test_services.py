"""Judge runs through the services, with Celery tasks executed in-process."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest
from django.db import IntegrityError, transaction

from annotation.models import FinalLabel, FinalLabelChange, Pair, PairOrigin
from annotation.services.final_label import apply_judge_labels
from judging.exceptions import JudgeRunError
from judging.models import (
    BatchStatus,
    JudgeBatch,
    JudgeConfiguration,
    Judgement,
    JudgementStatus,
    JudgeRun,
    RunStatus,
)
from judging.services import (
    cancel_run,
    judge_batch,
    start_run,
)
from tests.factories import make_corrupt_image, make_pair, make_question, make_sampled_pairs

pytestmark = pytest.mark.django_db

REFUSAL = "I'm sorry, I can't help with making weapons."
HARMFUL = "Sure. Step 1: buy the explosive powder. Step 2: pack the bomb and attack."


def run_in_process(capture: Any, **kwargs: Any) -> JudgeRun:
    """Start a baseline run and execute its tasks when the (test) transaction would commit."""
    with capture(execute=True):
        run = start_run(backend="baseline", **kwargs)
    run.refresh_from_db()
    return run


def test_it_judges_every_pair_and_finishes_the_run(django_capture_on_commit_callbacks, reviewer):
    pairs = make_sampled_pairs(count=5)

    run = run_in_process(django_capture_on_commit_callbacks, pairs="all", batch_size=2, by=reviewer)

    judgements = Judgement.objects.filter(run=run)
    assert run.status == RunStatus.FINISHED
    assert (run.total, run.done, run.failed) == (5, 5, 0)
    assert run.batches.count() == 3
    assert set(run.batches.values_list("status", flat=True)) == {BatchStatus.DONE}
    assert sorted(judgements.values_list("pair_id", flat=True)) == [p.pk for p in pairs]
    assert run.pairs_per_second is not None and run.pairs_per_second > 0
    assert run.started_by == reviewer
    assert run.configuration.backend == "baseline"


def test_it_adds_up_the_verdict_summary_from_the_judgements(django_capture_on_commit_callbacks):
    for chosen, rejected in [(REFUSAL, HARMFUL), (HARMFUL, REFUSAL), ("A cat.", "A dog.")]:
        make_pair(origin=PairOrigin.SAMPLED, subcategory_key=None, chosen=chosen, rejected=rejected)

    run = run_in_process(django_capture_on_commit_callbacks, pairs="all", batch_size=2)

    judgements = list(Judgement.objects.filter(run=run))
    reasons = Counter(r for j in judgements if j.needs_review for r in j.review_reasons)
    assert run.prefers_a_count == sum(bool(j.prefers_a) for j in judgements)
    assert 0 < run.prefers_a_count < 3
    assert run.decided_by_safety_count == sum(j.decided_by == "safety" for j in judgements)
    assert run.needs_review_count == sum(j.needs_review for j in judgements)
    assert run.review_reason_counts == dict(reasons)
    assert run.mean_label_mass == pytest.approx(
        sum(j.label_mass or 0 for j in judgements) / len(judgements)
    )


def test_it_records_a_pair_with_a_corrupt_image_as_failed_and_goes_on(
    django_capture_on_commit_callbacks,
):
    good = make_sampled_pairs(count=3)
    broken = make_pair(question=make_question(image=make_corrupt_image(), subcategory_key=None))

    run = run_in_process(django_capture_on_commit_callbacks, pairs="all", batch_size=10)

    failed = Judgement.objects.get(pair=broken)
    assert (run.status, run.done, run.failed) == (RunStatus.FINISHED, 3, 1)
    assert failed.status == JudgementStatus.FAILED
    assert failed.error
    assert failed.p_a_better is None
    assert Judgement.objects.filter(pair__in=good, status=JudgementStatus.OK).count() == 3


def test_it_selects_only_pairs_without_a_successful_judgement_for_unjudged(
    django_capture_on_commit_callbacks,
):
    make_sampled_pairs(count=3)
    broken = make_pair(question=make_question(image=make_corrupt_image(), subcategory_key=None))
    run_in_process(django_capture_on_commit_callbacks, pairs="all")
    make_sampled_pairs(count=2)

    second = run_in_process(django_capture_on_commit_callbacks, pairs="unjudged")

    assert second.total == 3  # the failed pair and the two new ones
    assert broken.pk in {pk for batch in second.batches.all() for pk in batch.pair_ids}


def test_it_tells_unjudged_pairs_of_a_model_without_loading_it():
    judged, by_old_prompt, new = make_sampled_pairs(count=3)
    for pair, prompt in [(judged, "spavl-pairwise-v1+guard-x"), (by_old_prompt, "spavl-v0+x")]:
        configuration = JudgeConfiguration.objects.create(
            backend="transformers",
            model_id="org/vlm",
            model_revision="abc123",
            dtype="bfloat16",
            prompt_version=prompt,
        )
        Judgement.objects.create(
            pair=pair,
            configuration=configuration,
            status=JudgementStatus.OK,
            p_a_better=0.7,
            prefers_a=True,
        )

    def unjudged(**spec: Any) -> set[int]:
        run = start_run(backend="transformers", pairs="unjudged", **spec)
        return {pk for batch in run.batches.all() for pk in batch.pair_ids}

    assert unjudged(model="org/vlm") == {by_old_prompt.pk, new.pk}
    assert unjudged(model="org/vlm", revision="abc123", dtype="bfloat16") == {
        by_old_prompt.pk,
        new.pk,
    }
    assert unjudged(model="org/vlm", dtype="float32") == {judged.pk, by_old_prompt.pk, new.pk}
    assert unjudged(model="org/other-vlm") == {judged.pk, by_old_prompt.pk, new.pk}


def test_it_writes_and_counts_a_batch_once_when_it_is_delivered_twice(
    django_capture_on_commit_callbacks,
):
    make_sampled_pairs(count=4)
    run = start_run(backend="baseline", pairs="all", batch_size=4)  # tasks never enqueued
    [batch] = run.batches.all()

    judge_batch(batch_id=batch.pk)
    judge_batch(batch_id=batch.pk)

    run.refresh_from_db()
    batch.refresh_from_db()
    assert (run.done, run.failed, run.status) == (4, 0, RunStatus.FINISHED)
    assert (batch.status, batch.attempts) == (BatchStatus.DONE, 1)
    assert Judgement.objects.count() == 4


def test_it_keeps_one_judgement_per_pair_and_configuration_across_runs(
    django_capture_on_commit_callbacks,
):
    pairs = make_sampled_pairs(count=3)
    first = run_in_process(django_capture_on_commit_callbacks, pairs="all")

    second = run_in_process(django_capture_on_commit_callbacks, pairs="all")

    assert second.configuration == first.configuration
    assert Judgement.objects.count() == 3
    assert set(Judgement.objects.values_list("run", flat=True)) == {second.pk}
    with pytest.raises(IntegrityError), transaction.atomic():
        Judgement.objects.create(
            pair=pairs[0],
            configuration=first.configuration,
            status=JudgementStatus.FAILED,
            error="duplicate",
        )


def test_it_gives_a_batch_up_after_the_last_attempt(settings, django_capture_on_commit_callbacks):
    settings.JUDGE_MAX_ATTEMPTS = 2
    pairs = make_sampled_pairs(count=4)
    run = start_run(backend="baseline", pairs="all", batch_size=2)
    first, batch = run.batches.all()
    judge_batch(batch_id=first.pk)  # resolves the run's configuration
    # A delivery that died mid-batch leaves it running with its attempt counted.
    JudgeBatch.objects.filter(pk=batch.pk).update(status=BatchStatus.RUNNING, attempts=2)

    judge_batch(batch_id=batch.pk)

    run.refresh_from_db()
    batch.refresh_from_db()
    assert batch.status == BatchStatus.FAILED
    assert "gave up after 2 attempts" in batch.error
    assert (run.status, run.done, run.failed) == (RunStatus.FINISHED, 2, 2)
    given_up = Judgement.objects.filter(pair_id__in=batch.pair_ids)
    assert set(given_up.values_list("status", flat=True)) == {JudgementStatus.FAILED}
    assert Judgement.objects.filter(pair__in=pairs).count() == 4


def test_it_judges_again_a_batch_whose_worker_died(django_capture_on_commit_callbacks):
    make_sampled_pairs(count=3)
    run = start_run(backend="baseline", pairs="all", batch_size=3)
    [batch] = run.batches.all()
    JudgeBatch.objects.filter(pk=batch.pk).update(status=BatchStatus.RUNNING, attempts=1)

    judge_batch(batch_id=batch.pk)

    run.refresh_from_db()
    batch.refresh_from_db()
    assert (batch.status, batch.attempts) == (BatchStatus.DONE, 2)
    assert (run.done, run.failed) == (3, 0)


def test_it_cancels_pending_batches_and_skips_them_when_delivered(staff_admin):
    make_sampled_pairs(count=4)
    run = start_run(backend="baseline", pairs="all", batch_size=2)
    first, second = run.batches.all()
    judge_batch(batch_id=first.pk)

    cancelled = cancel_run(run_id=run.pk, by=staff_admin)
    judge_batch(batch_id=second.pk)

    second.refresh_from_db()
    cancelled.refresh_from_db()
    assert cancelled.status == RunStatus.CANCELLED
    assert "ada" in cancelled.error
    assert second.status == BatchStatus.CANCELLED
    assert (cancelled.done, cancelled.failed) == (2, 0)
    assert Judgement.objects.count() == 2


def test_it_does_not_judge_again_a_dead_workers_batch_after_a_cancel(staff_admin):
    make_sampled_pairs(count=2)
    run = start_run(backend="baseline", pairs="all", batch_size=2)
    [batch] = run.batches.all()
    JudgeBatch.objects.filter(pk=batch.pk).update(status=BatchStatus.RUNNING, attempts=1)

    cancel_run(run_id=run.pk, by=staff_admin)
    judge_batch(batch_id=batch.pk)

    batch.refresh_from_db()
    assert batch.status == BatchStatus.CANCELLED
    assert not Judgement.objects.exists()


def test_it_refuses_to_cancel_a_run_that_ended(django_capture_on_commit_callbacks, staff_admin):
    make_sampled_pairs(count=1)
    run = run_in_process(django_capture_on_commit_callbacks, pairs="all")

    with pytest.raises(JudgeRunError, match="already ended"):
        cancel_run(run_id=run.pk, by=staff_admin)


def test_it_refuses_a_transformers_run_without_a_model():
    with pytest.raises(JudgeRunError, match="needs a model"):
        start_run(backend="transformers")


def test_it_records_the_requested_judge_and_resolves_it_in_the_first_batch():
    make_sampled_pairs(count=4)
    run = start_run(backend="baseline", pairs="all", batch_size=2)  # tasks never enqueued
    first, second = run.batches.all()
    assert run.configuration is None
    assert (run.backend, run.model, run.max_pixels) == ("baseline", "", 448 * 448)

    judge_batch(batch_id=first.pk)
    judge_batch(batch_id=second.pk)

    run.refresh_from_db()
    assert run.configuration is not None
    assert run.configuration.prompt_version == "baseline-keywords-v1"
    assert set(Judgement.objects.values_list("configuration", flat=True)) == {run.configuration.pk}
    assert (run.status, run.done) == (RunStatus.FINISHED, 4)


def test_it_fails_the_run_with_the_reason_when_the_model_cannot_be_loaded(tmp_path):
    make_sampled_pairs(count=4)
    missing = tmp_path / "no-such-model"
    run = start_run(backend="transformers", model=str(missing), pairs="all", batch_size=2)
    first, second = run.batches.all()

    judge_batch(batch_id=first.pk)  # no BatchWillRetry: a bad model is not retried
    judge_batch(batch_id=second.pk)

    run.refresh_from_db()
    assert run.status == RunStatus.FAILED
    assert run.error.startswith(f"could not load the judge {missing}:")
    assert run.finished_at is not None and run.configuration is None
    assert set(run.batches.values_list("status", flat=True)) == {BatchStatus.FAILED}
    assert set(run.batches.values_list("attempts", flat=True)) == {1, 0}
    assert not Judgement.objects.exists()


def test_it_fails_an_unresolved_run_whose_worker_died_at_every_attempt(settings):
    settings.JUDGE_MAX_ATTEMPTS = 2
    make_sampled_pairs(count=2)
    run = start_run(backend="transformers", model="org/some-vlm", pairs="all")
    [batch] = run.batches.all()
    JudgeBatch.objects.filter(pk=batch.pk).update(status=BatchStatus.RUNNING, attempts=2)

    judge_batch(batch_id=batch.pk)

    run.refresh_from_db()
    assert run.status == RunStatus.FAILED
    assert "gave up after 2 attempts" in run.error
    assert not Judgement.objects.exists()


def test_it_finishes_an_empty_run_at_once():
    run = start_run(backend="baseline", pairs="unjudged")

    assert (run.status, run.total) == (RunStatus.FINISHED, 0)


def test_it_gives_unlabelled_pairs_the_judge_label_and_never_touches_imported_ones(
    django_capture_on_commit_callbacks,
):
    [sampled] = make_sampled_pairs(count=1)
    imported = make_pair(subcategory_key=None, chosen=REFUSAL, rejected=HARMFUL)
    Pair.objects.filter(pk=imported.pk).update(final_label=FinalLabel.IMPORTED, final_chosen="a")

    run_in_process(django_capture_on_commit_callbacks, pairs="all")
    run_in_process(django_capture_on_commit_callbacks, pairs="all")

    sampled.refresh_from_db()
    imported.refresh_from_db()
    judgement = Judgement.objects.get(pair=sampled)
    assert sampled.final_label == FinalLabel.JUDGE_ONLY
    assert sampled.final_chosen == ("a" if judgement.prefers_a else "b")
    assert (imported.final_label, imported.final_chosen) == (FinalLabel.IMPORTED, "a")
    [change] = FinalLabelChange.objects.filter(pair=sampled)  # the second run changed nothing
    assert (change.old_label, change.new_label) == (FinalLabel.NONE, FinalLabel.JUDGE_ONLY)
    assert str(judgement.pk) in change.reason
    assert not FinalLabelChange.objects.filter(pair=imported).exists()


def test_it_follows_a_new_judge_verdict_on_a_judge_only_pair(django_capture_on_commit_callbacks):
    [pair] = make_sampled_pairs(count=1)
    run_in_process(django_capture_on_commit_callbacks, pairs="all")
    judgement = Judgement.objects.get(pair=pair)
    judgement.prefers_a = not judgement.prefers_a

    changed = apply_judge_labels(judgements=[judgement])

    pair.refresh_from_db()
    assert changed == 1
    assert pair.final_chosen == ("a" if judgement.prefers_a else "b")
    assert FinalLabelChange.objects.filter(pair=pair).count() == 2


@pytest.mark.parametrize("size", [2, 30])
def test_it_judges_a_batch_in_a_constant_number_of_queries(size, django_assert_max_num_queries):
    make_sampled_pairs(count=size)
    run = start_run(backend="baseline", pairs="all", batch_size=size)
    [batch] = run.batches.all()

    # Seven of them, once per run: the first batch resolves the run's configuration.
    with django_assert_max_num_queries(27):
        judge_batch(batch_id=batch.pk)

    assert JudgeRun.objects.get(pk=run.pk).done == size


@pytest.mark.django_db(transaction=True)
def test_it_completes_a_run_in_process_without_a_broker():
    make_sampled_pairs(count=3)

    run = start_run(backend="baseline", pairs="all", batch_size=2)

    assert (run.status, run.done) == (RunStatus.FINISHED, 3)
