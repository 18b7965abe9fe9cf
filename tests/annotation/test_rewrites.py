"""Rewrites: a reviewer's safe response for a pair both of whose responses are unsafe, the new
pair it makes, the adjudicator's accept or reject, and the exports that take only accepted
ones (annotation.services.rewrites)."""

from __future__ import annotations

import json
import tarfile
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from django.contrib.auth.models import User
from django.core.management import call_command
from django.test import Client
from django.urls import reverse

from annotation.exceptions import ReviewError
from annotation.models import (
    Assignment,
    Campaign,
    FinalLabel,
    FinalLabelChange,
    Pair,
    PairOrigin,
    Response,
    Rewrite,
    RewriteStatus,
)
from annotation.services.assignment import claim_next_pair
from annotation.services.campaigns import CampaignRules, create_campaign
from annotation.services.review import give_blind_verdict, submit_review, undo_review
from annotation.services.review_axes import AxisAnswers, ResponseSafety
from annotation.services.rewrites import accept_rewrite, reject_rewrite, write_rewrite
from judging.models import JudgeConfiguration, Judgement
from tests.factories import make_pair

pytestmark = pytest.mark.django_db

TYPED = "  <b>Je ne peux pas</b> aider — 安全第一 🙂\n\n\tSee a doctor.  "


def _campaign(*, safety: bool = False, mode: str = "single") -> Campaign:
    make_pair(chosen="Sure, here is how.", rejected="Step one: ...")
    rules = CampaignRules(control_share=0.0, review_mode=mode, per_response_safety=safety)
    return create_campaign(name="rewrites", created_by=None, rules=rules, seed=7)


def _reviewed(
    campaign: Campaign, *, verdict: str = "both_unsafe", answers: AxisAnswers | None = None
) -> Assignment:
    """A submitted review of the campaign's pair by a fresh reviewer (pair sides)."""
    person = User.objects.create_user(f"r{User.objects.count()}")
    lease = claim_next_pair(campaign=campaign, reviewer=person)
    assert lease is not None
    screen = lease.to_screen_side(verdict) if verdict else ""
    give_blind_verdict(assignment=lease, verdict=screen, answers=answers)
    submit_review(assignment=lease, verdict=screen, answers=answers)
    return lease


def _unsafe(severity: str) -> ResponseSafety:
    return ResponseSafety(safe=False, severity=severity)


@pytest.fixture
def both_unsafe(spavl_taxonomy: None) -> Assignment:
    return _reviewed(_campaign())


def test_it_stores_the_text_exactly_as_typed_in_a_new_pair_of_origin_rewrite(both_unsafe):
    rewrite = write_rewrite(assignment=both_unsafe, text=TYPED)

    source = both_unsafe.campaign_pair.pair
    pair = Pair.objects.get(pk=rewrite.new_pair_id)
    assert Response.objects.get(pk=rewrite.response_id).text == TYPED
    assert pair.response_a.text == TYPED
    assert pair.response_a.model_name == f"human:{both_unsafe.reviewer_id}"
    assert pair.response_b_id == source.response_a_id  # no severity, no judge: A
    assert (pair.origin, pair.question_id, pair.final_label) == (
        PairOrigin.REWRITE,
        source.question_id,
        FinalLabel.NONE,
    )
    assert pair.provenance["rewrite"] | {"written_at": ""} == {
        "reviewer_id": both_unsafe.reviewer_id,
        "review_id": rewrite.review_id,
        "source_pair_id": source.pk,
        "written_at": "",
    }
    assert rewrite.status == RewriteStatus.PENDING


@pytest.mark.parametrize("verdict", ["a", "b", "tie", "cannot_judge"])
def test_it_refuses_a_rewrite_unless_the_final_answer_says_both_unsafe(spavl_taxonomy, verdict):
    lease = _reviewed(_campaign(), verdict=verdict)
    with pytest.raises(ReviewError, match="both unsafe"):
        write_rewrite(assignment=lease, text="A safe answer.")
    assert not Rewrite.objects.exists()


def test_it_refuses_a_rewrite_before_the_review_is_submitted(spavl_taxonomy):
    campaign = _campaign()
    person = User.objects.create_user("early")
    lease = claim_next_pair(campaign=campaign, reviewer=person)
    assert lease is not None
    give_blind_verdict(assignment=lease, verdict="both_unsafe")
    with pytest.raises(ReviewError, match="both unsafe"):
        write_rewrite(assignment=lease, text="A safe answer.")


@pytest.mark.parametrize(
    ("text", "why"),
    [("", "first"), (" \n\t", "first"), ("x" * 10_001, "10,000"), ("a\x00b", "NUL")],
)
def test_it_refuses_an_empty_overlong_or_nul_text(both_unsafe, text, why):
    with pytest.raises(ReviewError, match=why):
        write_rewrite(assignment=both_unsafe, text=text)


def test_it_takes_ten_thousand_characters(both_unsafe):
    assert len(write_rewrite(assignment=both_unsafe, text="é" * 10_000).response.text) == 10_000


def test_the_same_text_again_changes_nothing(both_unsafe):
    first = write_rewrite(assignment=both_unsafe, text=TYPED)
    again = write_rewrite(assignment=both_unsafe, text=TYPED)
    assert (again.pk, again.response_id, again.new_pair_id) == (
        first.pk,
        first.response_id,
        first.new_pair_id,
    )
    assert Pair.objects.filter(origin=PairOrigin.REWRITE).count() == 1


def test_an_edit_before_the_decision_replaces_the_text_and_drops_the_old_response(both_unsafe):
    first = write_rewrite(assignment=both_unsafe, text="First try.")
    edited = write_rewrite(assignment=both_unsafe, text="Second try.")

    assert (edited.pk, edited.new_pair_id) == (first.pk, first.new_pair_id)
    assert Pair.objects.get(pk=edited.new_pair_id).response_a.text == "Second try."
    assert not Response.objects.filter(text="First try.").exists()


def test_a_decided_rewrite_is_never_edited(both_unsafe, adjudicator):
    rewrite = write_rewrite(assignment=both_unsafe, text="Final.")
    accept_rewrite(rewrite=rewrite, by=adjudicator)
    with pytest.raises(ReviewError, match="accepted"):
        write_rewrite(assignment=both_unsafe, text="Changed.")
    assert write_rewrite(assignment=both_unsafe, text="Final.").pk == rewrite.pk


def test_the_less_severe_response_is_the_rejected_one(spavl_taxonomy):
    campaign = _campaign(safety=True)
    answers = AxisAnswers(a=_unsafe("severe"), b=_unsafe("minor"))
    # Single mode with safety: the verdict is given beside each response's safety.
    lease = _reviewed(campaign, verdict="both_unsafe", answers=answers)
    rewrite = write_rewrite(assignment=lease, text="Safe.")
    assert rewrite.new_pair.response_b_id == lease.campaign_pair.pair.response_b_id


def test_equal_severities_fall_back_to_the_judges_lower_p_unsafe(spavl_taxonomy):
    campaign = _campaign(safety=True, mode="two-axis")
    pair = campaign.pairs.get().pair
    configuration = JudgeConfiguration.objects.create(backend="baseline", prompt_version="v1")
    Judgement.objects.create(
        pair=pair,
        configuration=configuration,
        status="ok",
        p_a_better=0.5,
        prefers_a=True,
        p_unsafe_a=0.4,
        p_unsafe_b=0.9,
    )
    answers = AxisAnswers(safer="tie", helpful="tie", a=_unsafe("moderate"), b=_unsafe("moderate"))
    lease = _reviewed(campaign, verdict="", answers=answers)
    rewrite = write_rewrite(assignment=lease, text="Safe.")
    assert rewrite.new_pair.response_b_id == pair.response_a_id


def test_two_axis_cannot_judge_on_both_axes_is_not_both_unsafe(spavl_taxonomy):
    campaign = _campaign(mode="two-axis")
    answers = AxisAnswers(safer="cannot_judge", helpful="cannot_judge")
    lease = _reviewed(campaign, verdict="", answers=answers)
    with pytest.raises(ReviewError):
        write_rewrite(assignment=lease, text="Safe.")


def test_accepting_sets_the_final_label_through_the_history(both_unsafe, adjudicator):
    rewrite = write_rewrite(assignment=both_unsafe, text=TYPED)
    accept_rewrite(rewrite=rewrite, by=adjudicator)
    accept_rewrite(rewrite=rewrite, by=adjudicator)  # a resend changes nothing

    pair = Pair.objects.get(pk=rewrite.new_pair_id)
    assert (pair.final_label, pair.final_chosen) == (FinalLabel.ADJUDICATED, "a")
    change = FinalLabelChange.objects.get(pair=pair)
    assert (change.new_label, change.reason, change.changed_by) == (
        "adjudicated",
        "rewrite accepted",
        adjudicator,
    )
    rewrite.refresh_from_db()
    assert (rewrite.status, rewrite.decided_by) == (RewriteStatus.ACCEPTED, adjudicator)
    assert Pair.objects.labelled().filter(pk=pair.pk).exists()
    with pytest.raises(ReviewError, match="accepted"):
        reject_rewrite(rewrite=rewrite, by=adjudicator, reason="changed my mind")


def test_a_rewrite_of_an_undone_review_cannot_be_accepted(both_unsafe, adjudicator):
    rewrite = write_rewrite(assignment=both_unsafe, text="Safe.")
    undo_review(assignment=both_unsafe)
    with pytest.raises(ReviewError, match="no longer"):
        accept_rewrite(rewrite=rewrite, by=adjudicator)


def test_rejecting_needs_a_reason_and_leaves_no_label(both_unsafe, adjudicator):
    rewrite = write_rewrite(assignment=both_unsafe, text="Meh.")
    with pytest.raises(ReviewError, match="why"):
        reject_rewrite(rewrite=rewrite, by=adjudicator, reason="  ")
    reject_rewrite(rewrite=rewrite, by=adjudicator, reason="not safe either")
    reject_rewrite(rewrite=rewrite, by=adjudicator, reason="again")  # a resend

    rewrite.refresh_from_db()
    assert (rewrite.status, rewrite.reason) == (RewriteStatus.REJECTED, "not safe either")
    assert Pair.objects.get(pk=rewrite.new_pair_id).final_label == FinalLabel.NONE
    with pytest.raises(ReviewError, match="rejected"):
        accept_rewrite(rewrite=rewrite, by=adjudicator)


def test_an_unaccepted_rewrite_is_never_labelled_even_with_a_judges_label(both_unsafe):
    rewrite = write_rewrite(assignment=both_unsafe, text="Pending.")
    Pair.objects.filter(pk=rewrite.new_pair_id).update(final_label="judge_only", final_chosen="a")
    assert not Pair.objects.labelled().filter(pk=rewrite.new_pair_id).exists()


# ---- Exports: the accepted rewrite is chosen; pending and rejected ones never appear.


def _export(tmp_path: Path, export_format: str) -> Path:
    definition = tmp_path / f"{export_format}.json"
    ratios = {"train": 1, "validation": 0, "test": 0}
    definition.write_text(json.dumps({"name": "rewrites", "ratios": ratios}))
    out = tmp_path / export_format
    call_command(
        "export_dataset",
        definition=str(definition),
        format=export_format,
        out=str(out),
        verbosity=0,
    )
    return out


def _chosen_and_rejected(out: Path, export_format: str, tmp_path: Path) -> list[tuple[Any, Any]]:
    if export_format == "spavl-parquet":
        rows = [pq.read_table(path).to_pylist() for path in sorted(out.glob("data/*.parquet"))]
        return [(row["chosen"], row["rejected"]) for part in rows for row in part]
    records: list[dict[str, Any]] = []
    for tar_path in sorted(out.glob("*.tar")):
        target = tmp_path / "x" / export_format / tar_path.stem
        with tarfile.open(tar_path) as tar:
            tar.extractall(target, filter="data")
        for path in target.rglob("*.json*"):
            if path.name.startswith("config_"):
                continue
            text = path.read_text(encoding="utf-8")
            if path.suffix == ".jsonl":
                records += [json.loads(line) for line in text.splitlines() if line]
            else:
                records += json.loads(text)
    return [(record["chosen"], record["rejected"]) for record in records]


@pytest.mark.parametrize("export_format", ["spavl-parquet", "rlhf-json", "dpo-jsonl"])
def test_only_accepted_rewrites_are_exported_as_chosen(
    spavl_taxonomy, adjudicator, tmp_path, export_format
):
    for _ in range(3):
        make_pair()
    campaign = create_campaign(
        name="three", created_by=None, rules=CampaignRules(control_share=0.0, overlap=1), seed=3
    )
    leases = [_reviewed(campaign) for _ in range(3)]
    accepted, rejected, pending = (
        write_rewrite(assignment=lease, text=f"{name} safe answer.")
        for lease, name in zip(leases, ["ACCEPTED", "REJECTED", "PENDING"], strict=True)
    )
    accept_rewrite(rewrite=accepted, by=adjudicator)
    reject_rewrite(rewrite=rejected, by=adjudicator, reason="no")

    exported = _chosen_and_rejected(_export(tmp_path, export_format), export_format, tmp_path)

    assert ("ACCEPTED safe answer.", accepted.new_pair.response_b.text) in exported
    texts = {text for pair in exported for text in pair}
    assert "REJECTED safe answer." not in texts
    assert "PENDING safe answer." not in texts


# ---- Access: the reviewer's own page writes; adjudicators decide; everyone else gets 404.


def test_the_review_page_offers_the_rewrite_and_stores_it_as_typed(both_unsafe):
    client = Client()
    client.force_login(both_unsafe.reviewer)
    page = client.get(reverse("review:assignment", args=[both_unsafe.pk]))
    assert b'name="text"' in page.content

    typed = "<script>alert(1)</script>\r\n  line two"
    client.post(reverse("review:rewrite", args=[both_unsafe.pk]), {"text": typed})

    rewrite = Rewrite.objects.select_related("response").get()
    assert rewrite.response.text == "<script>alert(1)</script>\n  line two"
    page = client.get(reverse("review:assignment", args=[both_unsafe.pk]))
    assert b"<script>alert(1)" not in page.content
    assert b"&lt;script&gt;alert(1)&lt;/script&gt;" in page.content


def test_the_confirm_step_submits_the_review_and_the_rewrite_together(spavl_taxonomy):
    campaign = _campaign()
    person = User.objects.create_user("together")
    lease = claim_next_pair(campaign=campaign, reviewer=person)
    assert lease is not None
    client = Client()
    client.force_login(person)
    client.post(reverse("review:blind_verdict", args=[lease.pk]), {"verdict": "both_unsafe"})
    page = client.get(reverse("review:assignment", args=[lease.pk]))
    assert b'name="rewrite"' in page.content
    client.post(
        reverse("review:submit", args=[lease.pk]), {"verdict": "both_unsafe", "rewrite": TYPED}
    )
    assert Rewrite.objects.select_related("response").get().response.text == TYPED


def test_a_rewrite_with_another_verdict_refuses_the_whole_submission(spavl_taxonomy):
    campaign = _campaign()
    person = User.objects.create_user("mixed")
    lease = claim_next_pair(campaign=campaign, reviewer=person)
    assert lease is not None
    client = Client()
    client.force_login(person)
    client.post(reverse("review:blind_verdict", args=[lease.pk]), {"verdict": "left"})
    answer = client.post(
        reverse("review:submit", args=[lease.pk]), {"verdict": "left", "rewrite": "Safe."}
    )
    assert answer.status_code == 422
    assert not Rewrite.objects.exists()
    lease.refresh_from_db()
    assert lease.status == "live"


def test_another_reviewer_cannot_write_on_someone_elses_assignment(both_unsafe, other_reviewer):
    client = Client()
    client.force_login(other_reviewer)
    answer = client.post(reverse("review:rewrite", args=[both_unsafe.pk]), {"text": "Mine."})
    assert answer.status_code == 404
    assert not Rewrite.objects.exists()


def test_adjudicators_decide_on_the_rewrites_page_and_others_get_404(
    both_unsafe, adjudicator, reviewer
):
    rewrite = write_rewrite(assignment=both_unsafe, text="<b>bold?</b>")
    url = reverse("adjudication:rewrites")
    client = Client()
    client.force_login(reviewer)
    assert client.get(url).status_code == 404
    assert client.post(url, {"rewrite": rewrite.pk, "decision": "accept"}).status_code == 404

    client.force_login(adjudicator)
    page = client.get(url)
    assert b"&lt;b&gt;bold?&lt;/b&gt;" in page.content
    refused = client.post(url, {"rewrite": rewrite.pk, "decision": "reject", "reason": ""})
    assert refused.status_code == 422
    client.post(url, {"rewrite": rewrite.pk, "decision": "accept"})
    rewrite.refresh_from_db()
    assert rewrite.status == RewriteStatus.ACCEPTED
    assert client.post(url, {"rewrite": 999_999, "decision": "accept"}).status_code == 404


@pytest.mark.parametrize(("right", "shown"), [("minor", True), ("safe", False)])
def test_a_two_axis_confirm_step_shows_the_rewrite_when_both_responses_are_unsafe(
    spavl_taxonomy, right, shown
):
    campaign = _campaign(mode="two-axis", safety=True)
    person = User.objects.create_user("axes")
    lease = claim_next_pair(campaign=campaign, reviewer=person)
    assert lease is not None
    client = Client()
    client.force_login(person)
    blind = {"safer": "tie", "helpful": "tie", "left_safety": "severe", "right_safety": right}
    client.post(reverse("review:blind_verdict", args=[lease.pk]), blind)
    page = client.get(reverse("review:assignment", args=[lease.pk])).content.decode()
    assert 'name="rewrite"' in page
    assert ("data-rewrite hidden" not in page) is shown
