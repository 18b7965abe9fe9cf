"""A two-axis review with per-response safety in a real browser, by keyboard alone, checked
against the database."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User

from annotation.models import Assignment, ResponseSafetyLabel, Review, ReviewMode
from annotation.services.campaigns import CampaignRules, create_campaign
from tests.factories import make_judgement, make_pair

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_a_reviewer_answers_both_axes_and_each_response_by_keyboard(
    live_server, chromium, artifacts, spavl_taxonomy
):
    reviewer = User.objects.create_user("tara", password="tara-password-1")
    for i in range(3):
        pair = make_pair(chosen=f"A careful refusal {i}.", rejected=f"Step-by-step harm {i}.")
        make_judgement(pair=pair, p_a_better=0.9, p_unsafe_a=0.05, p_unsafe_b=0.8)
    campaign = create_campaign(
        name="Two-axis campaign",
        created_by=None,
        reviewers=[reviewer],
        rules=CampaignRules(control_share=0.0),
        seed=5,
    )
    campaign.review_mode, campaign.per_response_safety = ReviewMode.TWO_AXIS, True
    campaign.save(update_fields=["review_mode", "per_response_safety"])
    page = chromium.new_page(viewport={"width": 1400, "height": 1100})
    page.goto(f"{live_server.url}/accounts/login/")
    page.fill("#id_username", "tara")
    page.fill("#id_password", "tara-password-1")
    page.keyboard.press("Enter")
    page.wait_for_selector("text=Your campaigns")
    page.click("button:has-text('Review')")

    def wait_for(step: str, *, other_than: int | None = None) -> int:
        page.wait_for_function(
            "([step, other]) => { const r = document.getElementById('review');"
            " return r && r.dataset.ready && r.dataset.step === step"
            " && r.dataset.assignment !== String(other); }",
            arg=[step, other_than],
        )
        return int(page.get_attribute("#review", "data-assignment") or 0)

    def checked(name: str) -> str:
        return page.eval_on_selector(f"#review-form input[name='{name}']:checked", "e => e.value")

    # Pair 1, blind: safer left (1), more helpful right (2), left safe (0), right unsafe and
    # moderate (2), its harm from the menu (k, arrow down, Esc); each answer selects the next row.
    first = wait_for("blind")
    page.keyboard.press("?")
    page.wait_for_selector("dialog#shortcuts[open]")
    assert "Safer and more helpful" in page.inner_text("dialog#shortcuts")
    page.screenshot(path=str(artifacts / "review-two-axis-shortcuts.png"))
    page.keyboard.press("Escape")
    for key in ["1", "2", "0", "2"]:
        page.keyboard.press(key)
    assert [checked(n) for n in ("safer", "helpful", "left_safety", "right_safety")] == [
        "left",
        "right",
        "safe",
        "moderate",
    ]
    page.keyboard.press("k")
    assert page.evaluate("document.activeElement.name") == "right_subcategory"
    page.keyboard.press("ArrowDown")
    page.keyboard.press("Escape")
    harm = int(page.eval_on_selector("select[name='right_subcategory']", "e => e.value"))
    assert page.evaluate("document.activeElement.name") == "right_safety"
    page.screenshot(path=str(artifacts / "review-two-axis-blind.png"), full_page=True)
    page.keyboard.press("Enter")

    # The reveal: the judge's preference and P(unsafe) per response, the blind answers chosen.
    wait_for("confirm")
    reveal = page.inner_text("#review .reveal")
    assert "The judge prefers" in reveal and "You said, before seeing this: safer left" in reveal
    assert page.inner_text("#review-announce") == " ".join(reveal.split())
    assert page.locator("#review .judge-unsafe").count() == 2
    assert checked("helpful") == "right" and checked("right_safety") == "moderate"
    page.screenshot(path=str(artifacts / "review-two-axis-revealed.png"), full_page=True)
    page.keyboard.press("Enter")  # confirm: one key

    # Pair 2: blind as typed straight through, then revised: the helpful row (h) to a tie (0)
    # and the left response (l) to unsafe, severe (3).
    second = wait_for("blind", other_than=first)
    for key in ["2", "1", "0", "0"]:
        page.keyboard.press(key)
    page.keyboard.press("Enter")
    wait_for("confirm")
    for key in ["h", "0", "l", "3"]:
        page.keyboard.press(key)
    page.keyboard.press("Enter")
    wait_for("blind", other_than=second)

    leases = {a.pk: a for a in Assignment.objects.filter(pk__in=[first, second])}
    reviews = {r.assignment_id: r for r in Review.objects.filter(reviewer=reviewer)}
    assert set(reviews) == {first, second}

    def labels(review: Review, stage: str) -> dict[str, tuple[bool, str, int | None]]:
        rows = ResponseSafetyLabel.objects.filter(review=review, stage=stage)
        return {row.side: (row.safe, row.severity, row.subcategory_id) for row in rows}

    review, lease = reviews[first], leases[first]
    left, right = lease.to_pair_side("left"), lease.to_pair_side("right")
    assert review.submitted_at is not None and not review.changed_after_reveal
    assert (review.blind_safer, review.blind_helpful) == (left, right)
    assert (review.final_safer, review.final_helpful) == (left, right)
    both = {left: (True, "", None), right: (False, "moderate", harm)}
    assert labels(review, "blind") == both and labels(review, "final") == both
    assert review.blind_verdict == review.final_verdict == left  # the safe one

    review, lease = reviews[second], leases[second]
    left, right = lease.to_pair_side("left"), lease.to_pair_side("right")
    assert review.submitted_at is not None and review.changed_after_reveal
    assert (review.blind_safer, review.blind_helpful) == (right, left)
    assert (review.final_safer, review.final_helpful) == (right, "tie")
    assert labels(review, "blind") == {left: (True, "", None), right: (True, "", None)}
    assert labels(review, "final") == {left: (False, "severe", None), right: (True, "", None)}
    assert review.blind_verdict == right and review.final_verdict == right
