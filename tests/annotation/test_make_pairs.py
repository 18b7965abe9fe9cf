"""make_pairs: seeded sampling of pairs from responses of different models."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import call_command

from annotation.models import Pair, PairOrigin, Question, QuestionType
from annotation.services.pairs import make_pairs
from tests.factories import make_pair, make_question, make_response

pytestmark = pytest.mark.usefixtures("spavl_taxonomy")


def question_with_models(*models: str, question_type: str = QuestionType.EASY) -> Question:
    question = make_question(question_type=question_type)
    for n, model in enumerate(models):
        make_response(question=question, model_name=model, text=f"answer {n} of {question.pk}")
    return question


def sampled() -> list[tuple[int, int, int]]:
    pairs = Pair.objects.filter(origin=PairOrigin.SAMPLED).order_by("question_id", "response_a")
    return list(pairs.values_list("question_id", "response_a_id", "response_b_id"))


def test_it_samples_the_same_pairs_for_the_same_seed_and_database_state() -> None:
    for _ in range(6):
        question_with_models("m1", "m2", "m3", "m4")

    make_pairs(seed=7, per_question=2)
    first = sampled()
    Pair.objects.filter(origin=PairOrigin.SAMPLED).delete()
    make_pairs(seed=7, per_question=2)

    assert sampled() == first
    assert len(first) == 12
    Pair.objects.filter(origin=PairOrigin.SAMPLED).delete()
    make_pairs(seed=8, per_question=2)
    assert sampled() != first


def test_it_draws_which_response_is_a_so_import_order_sets_no_side() -> None:
    for _ in range(40):
        question_with_models("first-imported", "second-imported")
    make_pairs(seed=3)
    a_first = sum(a < b for _, a, b in sampled())
    assert len(sampled()) == 40
    assert 8 <= a_first <= 32  # a fixed order would give 0 or 40


def test_it_pairs_only_responses_of_different_models() -> None:
    question = question_with_models("m1", "m1", "m1")
    make_response(question=question, model_name="m2", text="other")

    make_pairs(seed=1, per_question=10)

    pairs = Pair.objects.select_related("response_a", "response_b")
    assert len(pairs) == 3
    assert all(p.response_a.model_name != p.response_b.model_name for p in pairs)


def test_it_counts_unknown_models_as_distinct_only_when_the_text_differs() -> None:
    question = make_question()
    make_response(question=question, model_name="", text="same")
    make_response(question=question, model_name="m1", text="same")
    make_response(question=question, model_name="", text="different")

    make_pairs(seed=1, per_question=10)

    texts = {
        frozenset((p.response_a.text, p.response_b.text))
        for p in Pair.objects.select_related("response_a", "response_b")
    }
    assert texts == {frozenset(("same", "different"))}
    assert Pair.objects.count() == 2


def test_it_never_duplicates_an_existing_pair_and_reruns_create_nothing() -> None:
    imported = make_pair()
    make_response(question=imported.question, model_name="model-c", text="third")

    result = make_pairs(seed=3, per_question=5)
    again = make_pairs(seed=3, per_question=5)

    assert (result.created, again.created) == (2, 0)
    keys = [frozenset((p.response_a_id, p.response_b_id)) for p in Pair.objects.all()]
    assert len(keys) == len(set(keys)) == 3


def test_it_filters_by_question_type_through_the_command() -> None:
    question_with_models("m1", "m2", question_type=QuestionType.HARD_QUESTION)
    question_with_models("m1", "m2", question_type=QuestionType.EASY)
    out = StringIO()

    call_command("make_pairs", "--seed", "1", "--question-type", "hardq", stdout=out)

    assert out.getvalue().strip() == "1 pairs sampled over 1 questions"
    assert Pair.objects.get().question.question_type == QuestionType.HARD_QUESTION
