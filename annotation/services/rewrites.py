"""Rewrites: a safe response a reviewer writes for a pair both of whose responses are unsafe.

Such pairs teach a preference model nothing as they stand (their final label is
``both_unsafe``), yet a person's safe answer beside the less bad response is a strong pair. The
rules:

1. Only a submitted review whose final verdict is ``both_unsafe`` may carry one. In two-axis
   campaigns that verdict is the one ``review_axes.single_preference`` derives, i.e. the
   per-response safety labels both responses unsafe. "Cannot judge" on both axes does not count:
   it says the reviewer could not decide, not that neither response is acceptable.
2. The text is stored exactly as typed (nothing stripped), as a ``Response`` of the pair's
   question with ``model_name = "human:<reviewer id>"``; it must hold a non-blank character,
   at most ``MAX_REWRITE_CHARS`` characters, and no NUL (PostgreSQL text cannot hold one).
3. It makes a new pair of origin ``rewrite``: response A is the rewrite (chosen), response B
   the less bad of the two unsafe ones (``rejected_side``): the less severe by the reviewer's
   final per-response severity where it differs, else the one the judge's latest successful
   judgement gives the lower P(unsafe), else response A. The pair's provenance says who wrote
   it, when, in which review, for which pair.
4. One rewrite per review. While it is pending, writing again replaces the text: a new
   response, the pair and the rewrite repointed at it, the old response deleted (a response's
   text is immutable, and a text nobody decided on needs no history). The same text again
   changes nothing. A decided rewrite is never edited. A review undone (or revised) after
   its rewrite leaves the rewrite pending, but it cannot be accepted while the review does not
   say both unsafe.
5. The new pair has no final label until an adjudicator accepts it: then ``adjudicated`` with
   A chosen, through ``set_final_labels`` with the reason "rewrite accepted", so the exports
   take it like any decided pair. A rejected one keeps no label, and
   ``PairQuerySet.exclude_unaccepted_rewrites`` keeps every unaccepted rewrite out of the
   labelled pairs and the export plan whatever label anything else gives it.
"""

from __future__ import annotations

from contextlib import nullcontext
from datetime import datetime

from django.contrib.auth.models import User
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from annotation.exceptions import ReviewError
from annotation.models import (
    MAX_REWRITE_CHARS,
    Assignment,
    FinalLabel,
    Pair,
    PairOrigin,
    Response,
    ResponseSafetyLabel,
    Review,
    ReviewStage,
    Rewrite,
    RewriteQuerySet,
    RewriteStatus,
    Severity,
    Side,
    Verdict,
    text_digest,
)
from annotation.services.final_label import latest_judgement, set_final_label
from annotation.services.review import ReviewDetails, submit_review
from annotation.services.review_axes import AxisAnswers

ACCEPTED_REASON = "rewrite accepted"


def says_both_unsafe(review: Review) -> bool:
    """Whether the review's submitted final answer says both responses are unsafe (rule 1)."""
    return review.submitted_at is not None and review.final_verdict == Verdict.BOTH_UNSAFE


def checked_text(text: str) -> str:
    """The text as typed, if rule 2 allows it; ReviewError says why not."""
    if not text.strip():
        raise ReviewError("write the safe response first")
    if len(text) > MAX_REWRITE_CHARS:
        raise ReviewError(f"a safe response has at most {MAX_REWRITE_CHARS:,} characters")
    if "\x00" in text:
        raise ReviewError("the safe response holds a NUL character")
    return text


def rejected_side(review: Review) -> str:
    """The less bad of the two unsafe responses (rule 3), the new pair's rejected side."""
    order = list(Severity.values)
    labels = ResponseSafetyLabel.objects.filter(review=review, stage=ReviewStage.FINAL)
    severity = {label.side: label.severity for label in labels if not label.safe}
    if len(severity) == 2 and severity["a"] != severity["b"]:
        return min(severity, key=lambda side: order.index(severity[side]))
    judgement = latest_judgement(pair=review.pair, campaign=review.campaign)
    a, b = (judgement.p_unsafe_a, judgement.p_unsafe_b) if judgement else (None, None)
    if a is not None and b is not None and a != b:
        return Side.B if b < a else Side.A
    return Side.A


@transaction.atomic
def write_rewrite(*, assignment: Assignment, text: str, now: datetime | None = None) -> Rewrite:
    """Store the reviewer's safe response for the assignment's pair and its new pair (rules 1
    to 4); the same text sent again returns the stored rewrite. ReviewError when the final
    answer does not say both unsafe, the text is not allowed, or the rewrite was decided."""
    now = now or timezone.now()
    review = (
        Review.objects.select_for_update(of=("self",), no_key=True)
        .select_related("pair__question", "campaign")
        .filter(assignment_id=assignment.pk)
        .first()
    )
    if review is None or not says_both_unsafe(review):
        raise ReviewError("a safe response is written for a pair you submitted as both unsafe")
    text = checked_text(text)
    stored = _locked(Rewrite.objects.filter(review=review)).first()
    if stored is None:
        return _create(review=review, text=text, now=now)
    if stored.response.text == text:
        return stored
    if stored.status != RewriteStatus.PENDING:
        raise ReviewError(f"this safe response was {stored.status} and can no longer change")
    return _replace(rewrite=stored, text=text, now=now)


def _locked(rewrites: RewriteQuerySet) -> RewriteQuerySet:
    return rewrites.select_for_update(of=("self",)).select_related(
        "response", "new_pair", "review__reviewer", "decided_by"
    )


def _response(*, review: Review, text: str) -> Response:
    # get_or_create: the reviewer may write the same text for another pair of this question.
    response, _ = Response.objects.get_or_create(
        question=review.pair.question,
        model_name=f"human:{review.reviewer_id}",
        text_sha256=text_digest(text),
        defaults={"text": text},
    )
    return response


def _create(*, review: Review, text: str, now: datetime) -> Rewrite:
    source = review.pair
    response = _response(review=review, text=text)
    rejected = source.response_b if rejected_side(review) == Side.B else source.response_a
    provenance = {
        "rewrite": {
            "reviewer_id": review.reviewer_id,
            "written_at": now.isoformat(),
            "review_id": review.pk,
            "source_pair_id": source.pk,
        }
    }
    pair = Pair.objects.create(
        question=source.question,
        response_a=response,
        response_b=rejected,
        origin=PairOrigin.REWRITE,
        provenance=provenance,
    )
    return Rewrite.objects.create(
        review=review,
        source_pair=source,
        new_pair=pair,
        response=response,
        created_at=now,
        updated_at=now,
    )


def _replace(*, rewrite: Rewrite, text: str, now: datetime) -> Rewrite:
    """Rule 4: the pending rewrite's new text in a new response; the old one goes."""
    old = rewrite.response
    response = _response(review=rewrite.review, text=text)
    pair = rewrite.new_pair
    pair.response_a = response
    pair.provenance = {**pair.provenance, "rewrite": {**pair.provenance["rewrite"]}}
    pair.provenance["rewrite"]["written_at"] = now.isoformat()
    pair.save(update_fields=["response_a", "provenance"])
    rewrite.response, rewrite.updated_at = response, now
    rewrite.save(update_fields=["response", "updated_at"])
    if not Pair.objects.filter(Q(response_a=old) | Q(response_b=old)).exists():
        old.delete()
    return rewrite


def _lock(rewrite: Rewrite) -> Rewrite:
    return _locked(Rewrite.objects.filter(pk=rewrite.pk)).get()


def submit_review_with_rewrite(
    *,
    assignment: Assignment,
    verdict: str,
    text: str,
    details: ReviewDetails | None = None,
    answers: AxisAnswers | None = None,
    now: datetime | None = None,
) -> Review:
    """``submit_review``, then ``write_rewrite`` when ``text`` is not empty, as one change: a
    refused text refuses the submission too, so the form comes back with both. Without a
    text it is ``submit_review`` alone (no savepoint around it on the hot path)."""
    if text:
        checked_text(text)  # before anything is stored
    with transaction.atomic() if text else nullcontext():
        review = submit_review(
            assignment=assignment, verdict=verdict, details=details, answers=answers, now=now
        )
        if text:
            write_rewrite(assignment=assignment, text=text, now=now)
    return review


@transaction.atomic
def accept_rewrite(*, rewrite: Rewrite, by: User, now: datetime | None = None) -> Rewrite:
    """Accept a pending rewrite: its pair gets the final label ``adjudicated`` with the
    rewrite chosen (rule 5). Accepting it again returns it; a rejected one is refused."""
    now = now or timezone.now()
    rewrite = _lock(rewrite)
    if rewrite.status == RewriteStatus.ACCEPTED:
        return rewrite
    if rewrite.status == RewriteStatus.REJECTED:
        raise ReviewError("this safe response was rejected")
    if not says_both_unsafe(rewrite.review):
        raise ReviewError("its review no longer says both responses are unsafe (undone or revised)")
    _decide(rewrite=rewrite, status=RewriteStatus.ACCEPTED, by=by, reason="", now=now)
    set_final_label(
        pair=rewrite.new_pair,
        label=FinalLabel.ADJUDICATED,
        chosen=Side.A,
        reason=ACCEPTED_REASON,
        by=by,
        now=now,
    )
    return rewrite


@transaction.atomic
def reject_rewrite(
    *, rewrite: Rewrite, by: User, reason: str, now: datetime | None = None
) -> Rewrite:
    """Reject a pending rewrite, saying why: its pair keeps no final label and never reaches
    an export (rule 5). Rejecting it again returns it; an accepted one is refused."""
    now = now or timezone.now()
    if not reason.strip():
        raise ReviewError("say why the safe response is rejected")
    rewrite = _lock(rewrite)
    if rewrite.status == RewriteStatus.REJECTED:
        return rewrite
    if rewrite.status == RewriteStatus.ACCEPTED:
        raise ReviewError("this safe response was accepted")
    _decide(rewrite=rewrite, status=RewriteStatus.REJECTED, by=by, reason=reason.strip(), now=now)
    return rewrite


def _decide(*, rewrite: Rewrite, status: str, by: User, reason: str, now: datetime) -> None:
    rewrite.status, rewrite.decided_by, rewrite.decided_at = status, by, now
    rewrite.reason = reason[:2000]
    rewrite.save(update_fields=["status", "decided_by", "decided_at", "reason"])
