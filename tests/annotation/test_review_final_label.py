import pytest
from django.contrib.auth.models import User

from annotation.models import (
    Adjudication,
    AdjudicationStatus,
    FinalLabel,
    FinalLabelChange,
    Pair,
    TaxonomyNode,
)
from annotation.services.assignment import claim_next_pair
from annotation.services.final_label import decide_adjudication
from annotation.services.review import ReviewDetails, give_blind_verdict, submit_review
from judging.models import JudgeConfiguration, Judgement
from tests.factories import make_campaign

pytestmark = pytest.mark.django_db


def _review(campaign, name: str, verdict: str, **details) -> Pair:
    """One person's review with a verdict on the pair's sides (a/b/tie/...)."""
    person, _ = User.objects.get_or_create(username=name)
    lease = claim_next_pair(campaign=campaign, reviewer=person)
    assert lease is not None
    screen = lease.to_screen_side(verdict)
    give_blind_verdict(assignment=lease, verdict=screen)
    submit_review(assignment=lease, verdict=screen, details=ReviewDetails(**details))
    pair = lease.campaign_pair.pair
    pair.refresh_from_db()
    return pair


def _judge(pair: Pair, *, prefers_a: bool) -> None:
    configuration, _ = JudgeConfiguration.objects.get_or_create(
        backend="baseline", prompt_version="v1"
    )
    Judgement.objects.create(
        pair=pair,
        configuration=configuration,
        status="ok",
        p_a_better=0.9 if prefers_a else 0.1,
        prefers_a=prefers_a,
    )


@pytest.fixture
def single(spavl_taxonomy):
    return make_campaign(pairs=1)


@pytest.fixture
def double(spavl_taxonomy):
    return make_campaign(pairs=1, overlap=2)


def test_agreeing_with_the_imported_choice_confirms_it(single):
    pair = _review(single, "r1", "a")
    assert (pair.final_label, pair.final_chosen) == (FinalLabel.CONFIRMED, "a")
    change = FinalLabelChange.objects.get(pair=pair)
    assert (change.old_label, change.new_label, change.changed_by.username) == (
        "",
        "confirmed",
        "r1",
    )


def test_choosing_the_other_response_flips_chosen_and_rejected(single):
    pair = _review(single, "r1", "b")
    assert (pair.final_label, pair.final_chosen) == (FinalLabel.FLIPPED, "b")


def test_the_judges_side_is_the_reference_when_there_is_a_judgement(single):
    _judge(single.pairs.get().pair, prefers_a=False)
    pair = _review(single, "r1", "b")
    assert (pair.final_label, pair.final_chosen) == (FinalLabel.CONFIRMED, "b")


@pytest.mark.parametrize(
    ("verdict", "label"),
    [
        ("tie", FinalLabel.TIE),
        ("both_unsafe", FinalLabel.BOTH_UNSAFE),
        ("cannot_judge", FinalLabel.EXCLUDED),
    ],
)
def test_tie_both_unsafe_and_cannot_judge_name_no_chosen_response(single, verdict, label):
    pair = _review(single, "r1", verdict)
    assert (pair.final_label, pair.final_chosen) == (label, "")


def test_a_flagged_pair_is_excluded(single):
    pair = _review(single, "r1", "a", flag_question_malformed=True)
    assert pair.final_label == FinalLabel.EXCLUDED


def test_the_label_waits_for_the_overlap(double):
    pair = _review(double, "r1", "a")
    assert pair.final_label == FinalLabel.NONE
    pair = _review(double, "r2", "a")
    assert pair.final_label == FinalLabel.CONFIRMED


def test_disagreeing_reviewers_send_the_pair_to_adjudication(double, adjudicator):
    _review(double, "r1", "a")
    pair = _review(double, "r2", "b")
    assert pair.final_label == FinalLabel.NONE
    adjudication = Adjudication.objects.get(pair=pair, status=AdjudicationStatus.OPEN)
    assert "disagree" in adjudication.reason
    decide_adjudication(adjudication=adjudication, verdict="b", by=adjudicator, note="B refuses")
    pair.refresh_from_db()
    assert (pair.final_label, pair.final_chosen) == (FinalLabel.ADJUDICATED, "b")
    change = pair.final_label_changes.first()
    assert change.changed_by == adjudicator and "B refuses" in change.reason


def test_different_taxonomy_corrections_go_to_adjudication(double):
    harass = TaxonomyNode.objects.active().subcategories().get(key="harass")
    _review(double, "r1", "a", taxonomy_correction=harass)
    pair = _review(double, "r2", "a")
    assert Adjudication.objects.open().filter(pair=pair).exists()


def test_overruling_the_judge_is_adjudicated_under_the_with_judge_policy(spavl_taxonomy):
    campaign = make_campaign(pairs=1, judge_policy="with_judge")
    _judge(campaign.pairs.get().pair, prefers_a=True)
    pair = _review(campaign, "r1", "b")
    assert pair.final_label == FinalLabel.NONE
    assert Adjudication.objects.open().get(pair=pair).reason == "reviewers overrule the judge"


def test_an_adjudicator_can_exclude_and_relabel(double, adjudicator):
    _review(double, "r1", "tie")
    pair = _review(double, "r2", "both_unsafe")
    hate = TaxonomyNode.objects.active().subcategories().get(key="hate")
    decide_adjudication(
        adjudication=Adjudication.objects.get(pair=pair),
        verdict="",
        exclude=True,
        taxonomy_correction=hate,
        by=adjudicator,
    )
    pair.refresh_from_db()
    pair.question.refresh_from_db()
    assert pair.final_label == FinalLabel.EXCLUDED and pair.question.subcategory == hate
