"""`manage.py judge` end to end, with the in-process (no broker) Celery of the demo."""

from __future__ import annotations

import io

import pytest
from django.core.management import CommandError, call_command

from judging.models import Judgement, JudgeRun, RunStatus
from tests.factories import make_sampled_pairs


def judge(**options: object) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    call_command("judge", stdout=out, stderr=err, **options)
    return out.getvalue(), err.getvalue()


@pytest.mark.django_db(transaction=True)
def test_it_judges_the_unjudged_pairs_and_prints_a_summary():
    make_sampled_pairs(count=5)

    out, _ = judge(backend="baseline", batch_size=2, wait=True)

    run = JudgeRun.objects.get()
    assert f"Judge run {run.pk}: 5 pairs, baseline (no model)" in out
    assert f"Run {run.pk} finished: 5 judged, 0 failed" in out
    assert Judgement.objects.count() == 5


@pytest.mark.django_db(transaction=True)
def test_it_skips_pairs_judged_before_unless_asked_for_all():
    make_sampled_pairs(count=3)
    judge(backend="baseline", wait=True)

    again, _ = judge(backend="baseline", wait=True)
    everything, _ = judge(backend="baseline", pairs="all", wait=True)

    assert ": 0 pairs," in again
    assert ": 3 pairs," in everything
    assert Judgement.objects.count() == 3


@pytest.mark.django_db
def test_it_says_where_to_follow_a_run_left_to_the_workers():
    make_sampled_pairs(count=2)

    out, _ = judge(backend="baseline")  # the test transaction never commits: tasks wait

    run = JudgeRun.objects.get()
    assert run.status == RunStatus.QUEUED
    assert f"/judging/runs/{run.pk}/" in out


@pytest.mark.django_db
def test_it_refuses_a_transformers_run_without_a_model():
    with pytest.raises(CommandError, match="needs a model"):
        judge(backend="transformers")


@pytest.mark.django_db(transaction=True)
def test_it_says_why_a_run_failed(tmp_path):
    make_sampled_pairs(count=2)
    missing = tmp_path / "no-such-model"

    with pytest.raises(CommandError, match=f"failed: could not load the judge {missing}"):
        judge(backend="transformers", model=str(missing), wait=True)

    assert JudgeRun.objects.get().status == RunStatus.FAILED
