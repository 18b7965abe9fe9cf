"""Two-axis reviews and per-response safety: the single-preference rule, the review services
(blind then final, both kept), the final labels per axis, adjudication, and the campaign rules,
API and admin that fix a campaign's review mode."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse

from annotation.exceptions import CampaignError, ReviewConflict, ReviewError
from annotation.models import (
    Adjudication,
    AdjudicationStatus,
    Assignment,
    Campaign,
    FinalLabel,
    Pair,
    ResponseSafetyLabel,
    Review,
)
from annotation.services.assignment import claim_next_pair
from annotation.services.campaigns import CampaignRules, create_campaign, update_campaign_rules
from annotation.services.final_label import decide_adjudication, median_severity
from annotation.services.review import (
    ReviewDetails,
    give_blind_verdict,
    screen_answers,
    submit_review,
    undo_review,
)
from annotation.services.review_axes import AxisAnswers, ResponseSafety, single_preference
from spavl_web.tokens import create_token
from tests.factories import make_pair, subcategory

pytestmark = pytest.mark.django_db

SAFE = ResponseSafety(safe=True)


def _unsafe(severity: str = "moderate", subcategory_id: int | None = None) -> ResponseSafety:
    return ResponseSafety(safe=False, severity=severity, subcategory_id=subcategory_id)


def _campaign(
    *, mode: str = "two-axis", safety: bool = False, overlap: int = 1, pairs: int = 1
) -> Campaign:
    for _ in range(pairs):
        make_pair()
    rules = CampaignRules(
        overlap=overlap, control_share=0.0, review_mode=mode, per_response_safety=safety
    )
    return create_campaign(name="axes", created_by=None, rules=rules, seed=7)


def _lease(campaign: Campaign, name: str = "r1") -> Assignment:
    person, _ = User.objects.get_or_create(username=name)
    lease = claim_next_pair(campaign=campaign, reviewer=person)
    assert lease is not None
    return lease


def _review(
    campaign: Campaign, name: str, blind: AxisAnswers, final: AxisAnswers | None = None
) -> Pair:
    """One person's review with answers on the pair's sides; final = blind unless given."""
    lease = _lease(campaign, name)
    give_blind_verdict(assignment=lease, verdict="", answers=blind)
    submit_review(assignment=lease, verdict="", answers=final or blind)
    return Pair.objects.get(pk=lease.campaign_pair.pair_id)


@pytest.mark.parametrize(
    ("answers", "preference"),
    [
        (AxisAnswers(safer="a", helpful="b"), "a"),
        (AxisAnswers(safer="b", helpful="a"), "b"),
        (AxisAnswers(safer="tie", helpful="b"), "b"),
        (AxisAnswers(safer="tie", helpful="tie"), "tie"),
        (AxisAnswers(safer="tie", helpful="cannot_judge"), "cannot_judge"),
        (AxisAnswers(safer="cannot_judge", helpful="a"), "cannot_judge"),
        (AxisAnswers(safer="a", helpful="b", a=_unsafe(), b=_unsafe()), "both_unsafe"),
        (AxisAnswers(safer="a", helpful="a", a=_unsafe(), b=SAFE), "b"),
        (AxisAnswers(safer="tie", helpful="a", a=SAFE, b=SAFE), "a"),
        (AxisAnswers(a=SAFE, b=_unsafe("minor")), "a"),
        (AxisAnswers(helpful="b"), "b"),
    ],
)
def test_single_preference_puts_harmlessness_before_helpfulness(answers, preference):
    assert single_preference(answers) == preference


def test_screen_answers_map_left_and_right_to_the_pairs_sides(spavl_taxonomy):
    lease = _lease(_campaign(safety=True))
    unsafe = _unsafe("severe")
    answers = screen_answers(
        assignment=lease, safer="right", helpful="tie", left=unsafe, right=SAFE
    )
    left, right = lease.to_pair_side("left"), lease.to_pair_side("right")
    assert (answers.safer, answers.helpful) == (right, "tie")
    assert getattr(answers, left) == unsafe and getattr(answers, right) == SAFE
    with pytest.raises(ReviewError):
        screen_answers(assignment=lease, safer="both_unsafe", helpful="tie")


def test_blind_and_final_answers_are_both_kept(spavl_taxonomy):
    lease = _lease(_campaign(safety=True))
    bully = subcategory("bully")
    blind = AxisAnswers(safer="a", helpful="b", a=SAFE, b=_unsafe("minor", bully.pk))
    final = AxisAnswers(safer="a", helpful="a", a=SAFE, b=_unsafe("severe", bully.pk))
    review = give_blind_verdict(assignment=lease, verdict="", answers=blind)
    assert (review.blind_verdict, review.blind_safer, review.blind_helpful) == ("a", "a", "b")
    submit_review(assignment=lease, verdict="", answers=final)

    review.refresh_from_db()
    assert (review.final_verdict, review.final_safer, review.final_helpful) == ("a", "a", "a")
    assert review.changed_after_reveal
    labels = {(row.stage, row.side): row for row in ResponseSafetyLabel.objects.all()}
    assert (labels["blind", "b"].severity, labels["final", "b"].severity) == ("minor", "severe")
    assert labels["final", "b"].subcategory_id == bully.pk
    assert labels["blind", "a"].safe and labels["final", "a"].safe


def test_the_same_answers_unchanged_after_the_reveal_are_no_change(spavl_taxonomy):
    lease = _lease(_campaign(safety=True))
    answers = AxisAnswers(safer="b", helpful="b", a=_unsafe("minor"), b=SAFE)
    give_blind_verdict(assignment=lease, verdict="", answers=answers)
    review = submit_review(assignment=lease, verdict="", answers=answers)
    assert not review.changed_after_reveal
    assert review.final_verdict == "b"


def test_a_verdict_given_besides_the_axes_must_follow_from_them(spavl_taxonomy):
    lease = _lease(_campaign())
    answers = AxisAnswers(safer="a", helpful="b")
    wrong = lease.to_screen_side("b")
    with pytest.raises(ReviewError, match="does not follow"):
        give_blind_verdict(assignment=lease, verdict=wrong, answers=answers)
    review = give_blind_verdict(
        assignment=lease, verdict=lease.to_screen_side("a"), answers=answers
    )
    assert review.blind_verdict == "a"


@pytest.mark.parametrize(
    ("mode", "safety", "verdict", "answers", "message"),
    [
        ("two-axis", False, "", AxisAnswers(safer="a"), "which is more helpful"),
        ("two-axis", False, "", None, "which response is safer"),
        ("single", False, "left", AxisAnswers(safer="a", helpful="a"), "one verdict"),
        ("single", False, "", None, "choose a verdict"),
        ("single", True, "left", None, "safe or unsafe"),
        ("two-axis", False, "", AxisAnswers(safer="a", helpful="a", a=SAFE, b=SAFE), "does not"),
    ],
)
def test_answers_that_do_not_fit_the_campaign_are_refused_and_nothing_is_stored(
    spavl_taxonomy, mode, safety, verdict, answers, message
):
    lease = _lease(_campaign(mode=mode, safety=safety))
    with pytest.raises(ReviewError, match=message):
        give_blind_verdict(assignment=lease, verdict=verdict, answers=answers)
    assert not Review.objects.exists() and not ResponseSafetyLabel.objects.exists()


def test_a_harm_subcategory_must_be_a_live_level_3_node(spavl_taxonomy):
    lease = _lease(_campaign(safety=True))
    harm_category = subcategory("bully").parent
    answers = AxisAnswers(
        safer="b", helpful="b", a=_unsafe(subcategory_id=harm_category.pk), b=SAFE
    )
    with pytest.raises(ReviewError, match="live subcategory"):
        give_blind_verdict(assignment=lease, verdict="", answers=answers)
    assert not Review.objects.exists()


def test_the_same_blind_answers_sent_again_return_the_review_and_others_are_refused(
    spavl_taxonomy,
):
    lease = _lease(_campaign(safety=True))
    answers = AxisAnswers(safer="a", helpful="tie", a=SAFE, b=_unsafe("minor"))
    first = give_blind_verdict(assignment=lease, verdict="", answers=answers)
    assert give_blind_verdict(assignment=lease, verdict="", answers=answers).pk == first.pk
    other = AxisAnswers(safer="a", helpful="tie", a=SAFE, b=_unsafe("severe"))
    with pytest.raises(ReviewConflict):
        give_blind_verdict(assignment=lease, verdict="", answers=other)
    assert ResponseSafetyLabel.objects.filter(review=first).count() == 2


def test_undo_clears_the_final_answers_and_keeps_the_blind_ones(spavl_taxonomy):
    campaign = _campaign(safety=True)
    lease = _lease(campaign)
    answers = AxisAnswers(safer="b", helpful="b", a=_unsafe("minor"), b=SAFE)
    give_blind_verdict(assignment=lease, verdict="", answers=answers)
    submit_review(assignment=lease, verdict="", answers=answers)
    pair = Pair.objects.get(pk=lease.campaign_pair.pair_id)
    assert (pair.final_safer, pair.final_a_safe, pair.final_a_severity) == ("b", False, "minor")

    undo_review(assignment=lease)

    review = Review.objects.get()
    assert (review.final_verdict, review.final_safer, review.final_helpful) == ("", "", "")
    assert (review.blind_verdict, review.blind_safer) == ("b", "b")
    assert set(review.safety_labels.values_list("stage", flat=True)) == {"blind"}
    pair.refresh_from_db()
    assert (pair.final_safer, pair.final_helpful, pair.final_a_safe) == ("", "", None)


def test_unanimous_axes_and_safety_settle_the_pair(spavl_taxonomy):
    campaign = _campaign(safety=True, overlap=2)
    answers = AxisAnswers(safer="a", helpful="tie", a=SAFE, b=_unsafe("minor"))
    _review(campaign, "r1", answers)
    pair = _review(campaign, "r2", AxisAnswers(safer="a", helpful="tie", a=SAFE, b=_unsafe()))
    assert (pair.final_label, pair.final_chosen) == (FinalLabel.CONFIRMED, "a")
    assert (pair.final_safer, pair.final_helpful) == ("a", "tie")
    assert (pair.final_a_safe, pair.final_a_severity) == (True, "")
    # Of two, the more severe middle one.
    assert (pair.final_b_safe, pair.final_b_severity) == (False, "moderate")


def test_a_unanimous_cannot_judge_leaves_the_axis_unset(spavl_taxonomy):
    campaign = _campaign(overlap=2)
    answers = AxisAnswers(safer="a", helpful="cannot_judge")
    _review(campaign, "r1", answers)
    pair = _review(campaign, "r2", answers)
    assert (pair.final_safer, pair.final_helpful) == ("a", "")


def test_a_pair_every_reviewer_flagged_is_excluded_with_its_axes_unset(spavl_taxonomy):
    campaign = _campaign(overlap=1)
    lease = _lease(campaign)
    answers = AxisAnswers(safer="a", helpful="a")
    give_blind_verdict(assignment=lease, verdict="", answers=answers)
    flagged = ReviewDetails(flag_image_irrelevant=True)
    submit_review(assignment=lease, verdict="", answers=answers, details=flagged)
    pair = Pair.objects.get(pk=lease.campaign_pair.pair_id)
    assert (pair.final_label, pair.final_safer, pair.final_helpful) == ("excluded", "", "")


def test_disagreeing_on_helpfulness_alone_goes_to_adjudication(spavl_taxonomy):
    campaign = _campaign(overlap=2)
    _review(campaign, "r1", AxisAnswers(safer="a", helpful="a"))
    pair = _review(campaign, "r2", AxisAnswers(safer="a", helpful="b"))
    adjudication = Adjudication.objects.get()
    assert "which is more helpful" in adjudication.reason
    assert (pair.final_label, pair.final_safer) == ("", "")


def test_disagreeing_on_a_responses_safety_goes_to_adjudication(spavl_taxonomy):
    campaign = _campaign(mode="single", safety=True, overlap=2)
    leases = [_lease(campaign, name) for name in ("r1", "r2")]
    for lease, label in zip(leases, (SAFE, _unsafe()), strict=True):
        answers = AxisAnswers(a=label, b=SAFE)
        verdict = lease.to_screen_side("a")
        give_blind_verdict(assignment=lease, verdict=verdict, answers=answers)
        submit_review(assignment=lease, verdict=verdict, answers=answers)
    assert "response A is safe" in Adjudication.objects.get().reason


@pytest.mark.parametrize(
    ("severities", "median"),
    [
        (["minor"], "minor"),
        (["severe", "minor", "severe"], "severe"),
        (["minor", "minor", "severe"], "minor"),
        (["minor", "moderate"], "moderate"),
        (["moderate", "severe", "minor", "minor"], "moderate"),
    ],
)
def test_the_severity_is_the_median_erring_toward_the_more_severe(severities, median):
    assert median_severity(severities) == median


def test_three_unsafe_severities_settle_on_their_median(spavl_taxonomy):
    campaign = _campaign(safety=True, overlap=3)
    for name, severity in (("r1", "severe"), ("r2", "minor"), ("r3", "minor")):
        pair = _review(
            campaign, name, AxisAnswers(safer="b", helpful="b", a=_unsafe(severity), b=SAFE)
        )
    assert (pair.final_a_safe, pair.final_a_severity, pair.final_chosen) == (False, "minor", "b")


def test_a_decided_adjudication_sets_the_axes(spavl_taxonomy, adjudicator):
    campaign = _campaign(safety=True, overlap=2)
    _review(campaign, "r1", AxisAnswers(safer="a", helpful="a", a=SAFE, b=SAFE))
    _review(campaign, "r2", AxisAnswers(safer="a", helpful="b", a=SAFE, b=SAFE))
    adjudication = Adjudication.objects.get()
    with pytest.raises(ReviewError, match="safe or unsafe"):
        decide_adjudication(
            adjudication=adjudication,
            verdict="",
            answers=AxisAnswers(safer="a", helpful="b"),
            by=adjudicator,
        )
    decide_adjudication(
        adjudication=adjudication,
        verdict="",
        answers=AxisAnswers(safer="tie", helpful="b", a=SAFE, b=_unsafe("minor")),
        by=adjudicator,
    )
    pair = Pair.objects.get(pk=adjudication.pair_id)
    assert (pair.final_label, pair.final_chosen) == (FinalLabel.ADJUDICATED, "a")
    assert (pair.final_safer, pair.final_helpful) == ("tie", "b")
    assert (pair.final_b_safe, pair.final_b_severity) == (False, "minor")
    assert Adjudication.objects.get().status == AdjudicationStatus.DECIDED


def test_an_excluding_adjudication_unsets_the_axes(spavl_taxonomy, adjudicator):
    campaign = _campaign(overlap=2)
    _review(campaign, "r1", AxisAnswers(safer="a", helpful="a"))
    _review(campaign, "r2", AxisAnswers(safer="b", helpful="a"))
    adjudication = Adjudication.objects.get()
    decide_adjudication(adjudication=adjudication, verdict="", exclude=True, by=adjudicator)
    pair = Pair.objects.get(pk=adjudication.pair_id)
    assert (pair.final_label, pair.final_safer, pair.final_helpful) == ("excluded", "", "")


def test_the_review_mode_is_fixed_once_the_campaign_has_a_review(spavl_taxonomy):
    campaign = _campaign(mode="single")
    two_axis = CampaignRules(control_share=0.0, review_mode="two-axis")
    campaign = update_campaign_rules(campaign=campaign, rules=two_axis)
    assert campaign.review_mode == "two-axis"
    _review(campaign, "r1", AxisAnswers(safer="a", helpful="a"))
    with_safety = CampaignRules(control_share=0.0, review_mode="two-axis", per_response_safety=True)
    with pytest.raises(CampaignError, match="once the campaign has a review"):
        update_campaign_rules(campaign=campaign, rules=with_safety)
    with pytest.raises(CampaignError, match="unknown review mode"):
        create_campaign(
            name="x", created_by=None, rules=CampaignRules(review_mode="three-axis"), seed=1
        )


def _api(user: User) -> Client:
    _, secret = create_token(user=user, name="test", scopes=["admin"])
    return Client(HTTP_AUTHORIZATION=f"Token {secret}")


def test_the_api_creates_a_two_axis_campaign_and_refuses_a_mode_change_after_reviews(
    spavl_taxonomy, staff_admin
):
    make_pair()
    api = _api(staff_admin)
    rules = {"review_mode": "two-axis", "per_response_safety": True}
    created = api.post("/api/v1/campaigns/", {"name": "axes", "rules": rules}, "application/json")
    assert created.status_code == 201, created.json()
    assert created.json()["rules"] | rules == created.json()["rules"]
    campaign = Campaign.objects.get()
    assert (campaign.review_mode, campaign.per_response_safety) == ("two-axis", True)
    bad = api.post(
        "/api/v1/campaigns/", {"name": "x", "rules": {"review_mode": "x"}}, "application/json"
    )
    assert bad.status_code == 400

    _review(campaign, "r1", AxisAnswers(safer="a", helpful="a", a=SAFE, b=SAFE))
    url = f"/api/v1/campaigns/{campaign.pk}/"
    refused = api.patch(url, {"rules": {"review_mode": "single"}}, "application/json")
    assert refused.status_code == 409
    assert api.get(url).json()["rules"]["review_mode"] == "two-axis"


def test_the_admin_sets_the_review_mode_on_add_and_shows_it_read_only_after(
    client, spavl_taxonomy, staff_admin
):
    make_pair()
    client.force_login(staff_admin)
    form = {
        "name": "axes",
        "overlap": "1",
        "lease_minutes": "10",
        "control_share": "0",
        "gold_rate": "0",
        "judge_policy": "reviewers",
        "break_after_reviews": "40",
        "break_after_minutes": "45",
        "review_mode": "two-axis",
        "per_response_safety": "on",
        "seed": "1",
    }
    client.post(reverse("admin:annotation_campaign_add"), form)
    campaign = Campaign.objects.get()
    assert (campaign.review_mode, campaign.per_response_safety) == ("two-axis", True)

    change = reverse("admin:annotation_campaign_change", args=[campaign.pk])
    assert 'name="review_mode"' not in client.get(change).content.decode()
    client.post(change, form | {"review_mode": "single", "per_response_safety": "", "name": "b"})
    campaign.refresh_from_db()
    assert (campaign.name, campaign.review_mode, campaign.per_response_safety) == (
        "b",
        "two-axis",
        True,
    )


def _two_axis_adjudication() -> Adjudication:
    campaign = _campaign(safety=True, overlap=2)
    bully = subcategory("bully")
    blind = AxisAnswers(safer="a", helpful="a", a=SAFE, b=_unsafe("minor", bully.pk))
    final = AxisAnswers(safer="a", helpful="a", a=SAFE, b=_unsafe("severe", bully.pk))
    _review(campaign, "r1", blind, final)
    _review(campaign, "r2", AxisAnswers(safer="a", helpful="b", a=SAFE, b=SAFE))
    return Adjudication.objects.get()


def test_the_adjudication_page_shows_every_answer_blind_and_final(
    client, spavl_taxonomy, adjudicator, django_assert_max_num_queries
):
    adjudication = _two_axis_adjudication()
    client.force_login(adjudicator)
    with django_assert_max_num_queries(9):
        page = client.get(reverse("adjudication:page", args=[adjudication.pk]))
    html = page.content.decode()
    assert "unsafe (minor, " in html and "unsafe (severe, " in html
    assert "more helpful" in html and "(revised after the reveal)" in html
    for name in ("safer", "helpful", "a_safety", "b_safety"):
        assert f'type="radio" name="{name}"' in html
    assert 'name="verdict"' not in html
    queue = client.get(reverse("adjudication:queue")).content.decode()
    assert "each response's safety" in queue


def test_the_adjudication_page_decides_the_axes(client, spavl_taxonomy, adjudicator):
    adjudication = _two_axis_adjudication()
    client.force_login(adjudicator)
    url = reverse("adjudication:page", args=[adjudication.pk])
    missing = client.post(url, {"safer": "a", "helpful": "b"})
    assert "Label each response safe or unsafe" in missing.content.decode()
    answers = {"safer": "b", "helpful": "a", "a_safety": "moderate", "b_safety": "safe"}
    assert client.post(url, answers).status_code == 302
    pair = Pair.objects.get(pk=adjudication.pair_id)
    assert (pair.final_label, pair.final_chosen) == (FinalLabel.ADJUDICATED, "b")
    assert (pair.final_safer, pair.final_helpful) == ("b", "a")
    assert (pair.final_a_safe, pair.final_a_severity, pair.final_b_safe) == (
        False,
        "moderate",
        True,
    )
    decided = client.get(url).content.decode()
    assert "A unsafe (moderate)" in decided
