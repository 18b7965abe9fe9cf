"""A reviewer's session in a real browser, by keyboard alone, checked against the database."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User

from annotation.models import Assignment, LabelChange, Review
from annotation.services.campaigns import CampaignRules, create_campaign
from tests.factories import make_pair

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

XSS = '<script>window.__pwned = 1</script><img src=x onerror="window.__pwned = 2">'


def test_a_reviewer_reviews_five_pairs_by_keyboard(
    live_server, chromium, artifacts, spavl_taxonomy
):
    reviewer = User.objects.create_user("rita", password="rita-password-1")
    for i in range(6):
        make_pair(chosen=f"A safe refusal {i}.\nWith a second line.", rejected=f"{XSS} {i}")
    campaign = create_campaign(
        name="Browser campaign",
        created_by=None,
        reviewers=[reviewer],
        rules=CampaignRules(control_share=0.0),
        seed=11,
    )
    page = chromium.new_page(viewport={"width": 1400, "height": 950})
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))

    page.goto(f"{live_server.url}/accounts/login/")
    page.fill("#id_username", "rita")
    page.fill("#id_password", "rita-password-1")
    page.keyboard.press("Enter")
    page.wait_for_selector("text=Your campaigns")
    page.screenshot(path=str(artifacts / "review-home.png"), full_page=True)
    page.click("button:has-text('Review')")

    def wait_for(step: str, *, other_than: int | None = None) -> int:
        page.wait_for_function(
            "([step, other]) => { const r = document.getElementById('review');"
            " return r && r.dataset.ready && r.dataset.step === step"
            " && r.dataset.assignment !== String(other); }",
            arg=[step, other_than],
        )
        return int(page.get_attribute("#review", "data-assignment") or 0)

    def verdict(key: str, *, then_confirm: str | None = None) -> int:
        current = wait_for("blind")
        page.keyboard.press(key)
        page.keyboard.press("Enter")
        wait_for("confirm")
        if then_confirm:
            page.keyboard.press(then_confirm)
        page.keyboard.press("Enter")
        return current

    # Pair 1: the XSS text is on screen as text, and nothing ran.
    first = wait_for("blind")
    body = page.inner_text("#review .responses")
    assert "<script>window.__pwned = 1</script>" in body
    assert page.evaluate("window.__pwned") is None
    page.screenshot(path=str(artifacts / "review-blind.png"), full_page=True)
    page.keyboard.press("?")
    page.wait_for_selector("dialog#shortcuts[open]")
    page.screenshot(path=str(artifacts / "review-shortcuts.png"))
    page.keyboard.press("Escape")
    assert not page.is_checked("#review .unblur-toggle")  # blurred by default
    page.keyboard.press("b")
    assert page.is_checked("#review .unblur-toggle")
    page.keyboard.press("1")
    page.keyboard.press("Enter")
    wait_for("confirm")
    assert page.is_checked("#review .unblur-toggle")  # still revealed after the reveal step
    page.screenshot(path=str(artifacts / "review-reveal.png"), full_page=True)
    page.keyboard.press("Enter")

    # Pair 2: correct the subcategory with the combobox.
    second = wait_for("blind", other_than=first)
    page.keyboard.press("t")
    page.keyboard.type("harass")
    page.wait_for_selector("#review .combobox-list li[aria-selected='true']")
    page.screenshot(path=str(artifacts / "review-taxonomy.png"), full_page=True)
    page.keyboard.press("Enter")
    page.keyboard.press("2")
    page.keyboard.press("Enter")
    wait_for("confirm")
    page.keyboard.press("Enter")

    # Pair 3: revise after the reveal (tie, then left).
    wait_for("blind", other_than=second)
    third = verdict("0", then_confirm="1")

    # Pair 4: both unsafe, submitted, then undone and resubmitted as "cannot judge".
    wait_for("blind", other_than=third)
    fourth = verdict("x")
    wait_for("blind", other_than=fourth)
    page.keyboard.press("u")
    assert wait_for("confirm") == fourth
    page.keyboard.press("c")
    page.keyboard.press("Enter")

    # Pair 5.
    wait_for("blind", other_than=fourth)
    fifth = verdict("2")
    wait_for("blind", other_than=fifth)
    page.screenshot(path=str(artifacts / "review-after-five.png"), full_page=True)
    assert dialogs == [] and page.evaluate("window.__pwned") is None

    ids = [first, second, third, fourth, fifth]
    assert len(set(ids)) == 5
    leases = {a.pk: a for a in Assignment.objects.filter(pk__in=ids)}
    expected = {
        first: ("left", "left"),
        second: ("right", "right"),
        third: ("tie", "left"),
        fourth: ("both_unsafe", "cannot_judge"),
        fifth: ("right", "right"),
    }
    reviews = {r.assignment_id: r for r in Review.objects.filter(reviewer=reviewer)}
    assert set(reviews) == set(ids)
    for assignment_id, (blind, final) in expected.items():
        review, lease = reviews[assignment_id], leases[assignment_id]
        assert review.submitted_at is not None
        assert review.blind_verdict == lease.to_pair_side(blind)
        assert review.final_verdict == lease.to_pair_side(final)
        assert review.changed_after_reveal == (blind != final)
        assert (review.taxonomy_correction is not None) == (assignment_id == second)
    corrected = reviews[second]
    assert corrected.taxonomy_correction.key == "harass"
    question = corrected.pair.question
    question.refresh_from_db()
    assert question.subcategory.key == "harass"
    assert LabelChange.objects.filter(question=question).count() == 1
    assert campaign.pairs.count() == 6
