"""The review page in two-axis campaigns and with per-response safety: the controls each mode
shows, posts stored through the review services, refused posts storing nothing."""

import pytest
from django.urls import reverse

from annotation.models import (
    Assignment,
    Campaign,
    ResponseSafetyLabel,
    Review,
    ReviewMode,
    TaxonomyNode,
)
from annotation.services.assignment import claim_next_pair
from tests.factories import make_campaign, make_judgement

pytestmark = pytest.mark.django_db

TWO_AXIS_BLIND = {"safer": "left", "helpful": "right"}
SAFETY_BLIND = {"left_safety": "safe", "right_safety": "moderate"}


@pytest.fixture
def signed_in(client, reviewer):
    client.force_login(reviewer)
    return client


def _campaign(reviewer, *, mode: str = ReviewMode.SINGLE, safety: bool = False) -> Campaign:
    campaign = make_campaign(pairs=3, reviewers=[reviewer])
    campaign.review_mode, campaign.per_response_safety = mode, safety
    campaign.save(update_fields=["review_mode", "per_response_safety"])
    return campaign


def _claim(campaign: Campaign, reviewer) -> Assignment:
    lease = claim_next_pair(campaign=campaign, reviewer=reviewer)
    assert lease is not None
    return lease


def _page(client, lease: Assignment) -> str:
    return client.get(reverse("review:assignment", args=[lease.pk])).content.decode()


def _blind(client, lease: Assignment, data: dict[str, str], **headers: str):
    return client.post(reverse("review:blind_verdict", args=[lease.pk]), data, **headers)


def _submit(client, lease: Assignment, data: dict[str, str], **headers: str):
    return client.post(reverse("review:submit", args=[lease.pk]), data, **headers)


def _labels(review: Review, stage: str) -> dict[str, tuple[bool, str, int | None]]:
    rows = ResponseSafetyLabel.objects.filter(review=review, stage=stage)
    return {row.side: (row.safe, row.severity, row.subcategory_id) for row in rows}


@pytest.mark.usefixtures("spavl_taxonomy")
def test_a_single_mode_page_shows_only_the_verdict(signed_in, reviewer):
    lease = _claim(_campaign(reviewer), reviewer)
    html = _page(signed_in, lease)
    assert 'name="verdict" value="both_unsafe"' in html
    for absent in ('name="safer"', 'name="helpful"', 'name="left_safety"', "harm-select"):
        assert absent not in html


@pytest.mark.usefixtures("spavl_taxonomy")
def test_per_response_safety_adds_a_safety_row_per_response(signed_in, reviewer):
    lease = _claim(_campaign(reviewer, safety=True), reviewer)
    html = _page(signed_in, lease)
    assert 'name="verdict" value="left"' in html
    for side in ("left", "right"):
        assert f"<legend>Is the {side} response safe?" in html
        for value in ("safe", "minor", "moderate", "severe"):
            assert f'name="{side}_safety" value="{value}"' in html
        assert f'name="{side}_subcategory"' in html
    harass = TaxonomyNode.objects.active().subcategories().get(key="harass")
    assert html.count(f'<option value="{harass.pk}"') == 3  # both harm menus and the correction


@pytest.mark.usefixtures("spavl_taxonomy")
def test_a_two_axis_page_asks_safer_and_more_helpful_instead_of_the_verdict(signed_in, reviewer):
    lease = _claim(_campaign(reviewer, mode=ReviewMode.TWO_AXIS), reviewer)
    html = _page(signed_in, lease)
    assert 'name="verdict"' not in html and 'name="left_safety"' not in html
    assert "Which response is safer?" in html and "Which response is more helpful?" in html
    for axis in ("safer", "helpful"):
        for value in ("left", "right", "tie", "cannot_judge"):
            assert f'name="{axis}" value="{value}"' in html
        assert f'name="{axis}" value="both_unsafe"' not in html


@pytest.mark.usefixtures("spavl_taxonomy")
def test_a_two_axis_review_keeps_blind_and_final_answers(signed_in, reviewer):
    lease = _claim(_campaign(reviewer, mode=ReviewMode.TWO_AXIS, safety=True), reviewer)
    make_judgement(pair=lease.campaign_pair.pair, p_unsafe_a=0.1, p_unsafe_b=0.9)
    harass = TaxonomyNode.objects.active().subcategories().get(key="harass")
    blind = {**TWO_AXIS_BLIND, **SAFETY_BLIND, "right_subcategory": str(harass.pk)}
    assert _blind(signed_in, lease, blind).status_code == 302

    html = _page(signed_in, lease)
    left_is_a = lease.left_side == "a"
    unsafe_left, unsafe_right = ("0.10", "0.90") if left_is_a else ("0.90", "0.10")
    assert f"P(unsafe) = {unsafe_left}" in html and f"P(unsafe) = {unsafe_right}" in html
    for name, value in (*TWO_AXIS_BLIND.items(), *SAFETY_BLIND.items()):
        assert f'name="{name}" value="{value}" data-key' in html
        assert f'value="{value}" data-key="' in html
    assert html.count(" checked>") == 4  # the blind answers, prefilled
    assert f'<option value="{harass.pk}" selected>' in html

    final = {**blind, "helpful": "tie", "left_safety": "minor"}
    assert _submit(signed_in, lease, final).status_code == 302
    review = Review.objects.get()
    left, right = lease.to_pair_side("left"), lease.to_pair_side("right")
    assert (review.blind_safer, review.blind_helpful) == (left, right)
    assert (review.final_safer, review.final_helpful) == (left, "tie")
    assert review.submitted_at is not None and review.changed_after_reveal
    assert _labels(review, "blind") == {
        left: (True, "", None),
        right: (False, "moderate", harass.pk),
    }
    assert _labels(review, "final") == {
        left: (False, "minor", None),
        right: (False, "moderate", harass.pk),
    }
    assert review.final_verdict == "both_unsafe"  # both labelled unsafe: see single_preference


@pytest.mark.usefixtures("spavl_taxonomy")
def test_a_single_mode_review_with_safety_labels_each_response(signed_in, reviewer):
    lease = _claim(_campaign(reviewer, safety=True), reviewer)
    data = {"verdict": "left", "left_safety": "safe", "right_safety": "severe"}
    _blind(signed_in, lease, data)
    _submit(signed_in, lease, data)
    review = Review.objects.get()
    left, right = lease.to_pair_side("left"), lease.to_pair_side("right")
    assert review.final_verdict == left and review.blind_safer == ""
    assert _labels(review, "final") == {left: (True, "", None), right: (False, "severe", None)}
    assert _labels(review, "blind") == _labels(review, "final")


@pytest.mark.parametrize(
    ("mode", "safety", "data", "message"),
    [
        (ReviewMode.TWO_AXIS, False, {"safer": "left"}, "Say which is more helpful."),
        (ReviewMode.SINGLE, True, {"verdict": "left"}, "Label the left response safe or unsafe."),
        (
            ReviewMode.SINGLE,
            False,
            {"verdict": "left", "left_safety": "safe"},
            "Label the safety of both responses or of neither.",
        ),
    ],
)
@pytest.mark.usefixtures("spavl_taxonomy")
def test_an_incomplete_post_shows_why_and_stores_nothing(
    signed_in, reviewer, mode, safety, data, message
):
    lease = _claim(_campaign(reviewer, mode=mode, safety=safety), reviewer)
    response = _blind(signed_in, lease, data)
    assert response.status_code == 422
    assert message in response.content.decode()
    assert not Review.objects.exists() and not ResponseSafetyLabel.objects.exists()


@pytest.mark.parametrize(
    ("mode", "safety", "data"),
    [
        (ReviewMode.SINGLE, False, {"verdict": "left", **TWO_AXIS_BLIND}),
        (ReviewMode.SINGLE, False, {"verdict": "left", **SAFETY_BLIND}),
        (ReviewMode.TWO_AXIS, False, {**TWO_AXIS_BLIND, **SAFETY_BLIND}),
    ],
)
@pytest.mark.usefixtures("spavl_taxonomy")
def test_answers_the_campaign_does_not_ask_for_are_refused(signed_in, reviewer, mode, safety, data):
    lease = _claim(_campaign(reviewer, mode=mode, safety=safety), reviewer)
    response = _blind(signed_in, lease, data)
    assert response.status_code == 422
    assert 'role="alert"' in response.content.decode()
    assert not Review.objects.exists() and not ResponseSafetyLabel.objects.exists()
    # The reviewer's choices come back with the reason.
    name = "verdict" if mode == ReviewMode.SINGLE else "safer"
    assert f'name="{name}" value="left" data-key="1" required checked>' in response.content.decode()


@pytest.mark.usefixtures("spavl_taxonomy")
def test_a_refused_submit_keeps_the_blind_review_as_it_was(signed_in, reviewer):
    lease = _claim(_campaign(reviewer, mode=ReviewMode.TWO_AXIS, safety=True), reviewer)
    _blind(signed_in, lease, {**TWO_AXIS_BLIND, **SAFETY_BLIND})
    response = _submit(signed_in, lease, {**TWO_AXIS_BLIND, "left_safety": "safe"})
    assert response.status_code == 422
    review = Review.objects.get()
    assert review.submitted_at is None and review.final_safer == ""
    assert not ResponseSafetyLabel.objects.filter(stage="final").exists()


@pytest.mark.usefixtures("spavl_taxonomy")
def test_htmx_posts_answer_with_the_review_fragment(signed_in, reviewer):
    lease = _claim(_campaign(reviewer, mode=ReviewMode.TWO_AXIS, safety=True), reviewer)
    refused = _blind(signed_in, lease, {"safer": "left"}, HTTP_HX_REQUEST="true")
    assert refused.status_code == 200  # htmx swaps only 2xx answers
    assert b"<html" not in refused.content and b"Say which is more helpful." in refused.content
    revealed = _blind(signed_in, lease, {**TWO_AXIS_BLIND, **SAFETY_BLIND}, HTTP_HX_REQUEST="true")
    assert revealed.status_code == 200
    assert revealed["HX-Push-Url"] == reverse("review:assignment", args=[lease.pk])
    html = revealed.content.decode()
    assert 'data-step="confirm"' in html and "<html" not in html
    assert "You said, before seeing this: safer" in html


@pytest.mark.usefixtures("spavl_taxonomy")
def test_the_two_axis_page_takes_a_constant_number_of_queries(
    signed_in, reviewer, django_assert_max_num_queries
):
    lease = _claim(_campaign(reviewer, mode=ReviewMode.TWO_AXIS, safety=True), reviewer)
    url = reverse("review:assignment", args=[lease.pk])
    signed_in.get(url)  # caches the subcategory list of this taxonomy version
    with django_assert_max_num_queries(5):
        assert signed_in.get(url).status_code == 200
    _blind(signed_in, lease, {**TWO_AXIS_BLIND, **SAFETY_BLIND})
    # One more than single mode: the blind safety labels that prefill the confirm step.
    with django_assert_max_num_queries(7):
        assert signed_in.get(url).status_code == 200
