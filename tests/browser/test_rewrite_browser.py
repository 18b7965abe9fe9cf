"""A rewrite in a real browser, by keyboard alone: a reviewer marks both responses unsafe,
writes a safe response and submits; an adjudicator accepts it; the stored text is what was
typed, and markup typed into it is shown as text, never run."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User

from annotation.models import FinalLabel, Pair, Rewrite, RewriteStatus
from annotation.services.campaigns import CampaignRules, create_campaign
from tests.factories import make_pair

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

TYPED = "  Je ne peux pas aider <script>window.pwned = 1</script> — 安全第一.\nSee a doctor, 1 2 x."


def _log_in(page, url: str, name: str, password: str) -> None:
    page.goto(f"{url}/accounts/login/")
    page.fill("#id_username", name)
    page.fill("#id_password", password)
    page.keyboard.press("Enter")
    page.wait_for_url(lambda address: "/accounts/login/" not in address)


def _tab_to(page, selector: str, *, limit: int = 60) -> None:
    """Press Tab until the element ``selector`` names has the focus."""
    for _ in range(limit):
        page.keyboard.press("Tab")
        if page.evaluate("s => document.activeElement?.matches(s) ?? false", selector):
            return
    raise AssertionError(f"Tab never reached {selector}")


def test_a_reviewer_writes_a_safe_response_and_an_adjudicator_accepts_it_by_keyboard(
    live_server, chromium, artifacts, spavl_taxonomy, adjudicator
):
    reviewer = User.objects.create_user("wren", password="wren-password-1")
    for i in range(2):
        make_pair(chosen=f"Here is how to do harm {i}.", rejected=f"Even worse harm {i}.")
    create_campaign(
        name="Rewrite campaign",
        created_by=None,
        reviewers=[reviewer],
        rules=CampaignRules(control_share=0.0),
        seed=5,
    )
    page = chromium.new_page(viewport={"width": 1400, "height": 1100})
    _log_in(page, live_server.url, "wren", "wren-password-1")
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

    # Blind: both unsafe (x), reveal (Enter). The rewrite area shows after the reveal only.
    first = wait_for("blind")
    assert page.locator("#review [data-rewrite]").count() == 0
    page.keyboard.press("x")
    page.keyboard.press("Enter")
    wait_for("confirm")
    assert page.is_visible("#review [data-rewrite]")
    page.keyboard.press("?")
    page.wait_for_selector("dialog#shortcuts[open]")
    assert "write a safe response" in page.inner_text("dialog#shortcuts")
    page.keyboard.press("Escape")

    # w focuses the text; digits and x typed there are text, not answers; Esc leaves it.
    page.keyboard.press("w")
    assert page.evaluate("document.activeElement.name") == "rewrite"
    page.keyboard.type(TYPED)
    verdict = "#review-form input[name='verdict']:checked"
    assert page.eval_on_selector(verdict, "e => e.value") == "both_unsafe"
    page.keyboard.press("Escape")
    assert page.evaluate("document.activeElement.name") == "verdict"
    page.screenshot(path=str(artifacts / "review-rewrite.png"), full_page=True)
    page.keyboard.press("Enter")
    wait_for("blind", other_than=first)

    rewrite = Rewrite.objects.select_related("response").get()
    assert rewrite.response.text == TYPED
    assert rewrite.status == RewriteStatus.PENDING

    # The reviewer's page for that pair shows the text as text; nothing in it ran.
    page.goto(f"{live_server.url}/assignments/{first}/")
    assert "aider <script>window.pwned = 1</script>" in page.inner_text("#review .rewrite-stored")
    assert page.evaluate("window.pwned") is None

    # The adjudicator: the queue's rewrite section, then Accept, all by Tab and Enter.
    judge = chromium.new_context(viewport={"width": 1400, "height": 1100}).new_page()
    _log_in(judge, live_server.url, "adele", "adele-password-1")
    judge.goto(f"{live_server.url}/adjudication/")
    _tab_to(judge, "a.rewrites-link")
    judge.keyboard.press("Enter")
    judge.wait_for_selector(".rewrite-item")
    shown = judge.inner_text(".rewrite-item .rewrite-text-shown")
    assert "<script>window.pwned = 1</script>" in shown
    assert judge.evaluate("window.pwned") is None
    judge.screenshot(path=str(artifacts / "adjudication-rewrites.png"), full_page=True)
    _tab_to(judge, "button.accept-rewrite")
    judge.keyboard.press("Enter")
    judge.wait_for_selector("text=No safe response is waiting")

    rewrite.refresh_from_db()
    pair = Pair.objects.get(pk=rewrite.new_pair_id)
    assert (rewrite.status, rewrite.decided_by_id) == (RewriteStatus.ACCEPTED, adjudicator.pk)
    assert (pair.final_label, pair.final_chosen) == (FinalLabel.ADJUDICATED, "a")
    assert pair.response_a.text == TYPED
