"""A reviewer's work on one assignment: blind verdict, reveal, final verdict, undo.

Verdicts arrive as the reviewer saw the screen (left/right) and are stored on the pair's
sides (a/b) through the assignment's stored screen side; so do the answers of two-axis
campaigns and per-response safety (``screen_answers``), kept blind and final like the verdict.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.contrib.auth.models import User
from django.db import transaction
from django.db.models import Count, Q, Sum
from django.utils import timezone

from annotation.exceptions import ReviewConflict, ReviewError
from annotation.models import (
    Assignment,
    AssignmentStatus,
    CampaignPair,
    LabelChange,
    Question,
    ResponseSafetyLabel,
    Review,
    ReviewerSettings,
    ReviewStage,
    ScreenVerdict,
    TaxonomyChange,
    TaxonomyNode,
    Verdict,
)
from annotation.services.assignment import renew_lease
from annotation.services.campaigns import recount_slots
from annotation.services.final_label import (
    answered_verdict,
    checked_answers,
    review_answers,
    settle_pair,
)
from annotation.services.review_axes import AxisAnswers, ResponseSafety
from annotation.services.taxonomy import relabel_question

# Active time is measured in the browser; more than this per review is not believable.
MAX_ACTIVE_SECONDS = 4 * 3600


@dataclass(frozen=True)
class ReviewDetails:
    """Everything a reviewer may add to a verdict."""

    taxonomy_correction: TaxonomyNode | None = None
    flag_image_irrelevant: bool = False
    flag_question_malformed: bool = False
    flag_response_truncated: bool = False
    flag_other: bool = False
    note: str = ""
    active_seconds: int = 0


def _apply_details(*, review: Review, details: ReviewDetails, current_subcategory_id: int | None):
    correction = details.taxonomy_correction
    if correction is not None and correction.pk == current_subcategory_id:
        correction = None  # choosing the label it already has is no correction
    if correction is not None and correction.pk != review.taxonomy_correction_id:
        review.taxonomy_version = TaxonomyChange.current_version()
    review.taxonomy_correction = correction
    review.flag_image_irrelevant = details.flag_image_irrelevant
    review.flag_question_malformed = details.flag_question_malformed
    review.flag_response_truncated = details.flag_response_truncated
    review.flag_other = details.flag_other
    review.note = details.note.strip()[:2000]
    review.active_seconds = max(
        review.active_seconds, min(max(details.active_seconds, 0), MAX_ACTIVE_SECONDS)
    )


_DETAIL_FIELDS = [
    "taxonomy_correction",
    "taxonomy_version",
    "flag_image_irrelevant",
    "flag_question_malformed",
    "flag_response_truncated",
    "flag_other",
    "note",
    "active_seconds",
]


def _live(assignment: Assignment, *, now: datetime) -> Assignment:
    """Lock the assignment; a lease that lapsed while the page was open is renewed if its slot
    is still free (renew_lease raises LeaseExpired otherwise)."""
    locked = (
        Assignment.objects.select_for_update(of=("self",), no_key=True)
        .select_related("campaign", "reviewer", "campaign_pair__pair__question")
        .get(pk=assignment.pk)
    )
    locked.campaign_pair.campaign = locked.campaign
    if locked.status not in (AssignmentStatus.LIVE, AssignmentStatus.EXPIRED):
        raise ReviewError(f"this assignment is {locked.get_status_display()}")
    if not locked.is_live(now=now):
        renewed = renew_lease(
            assignment=locked, now=now, lease_minutes=locked.campaign.lease_minutes
        )
        locked.status, locked.expires_at = renewed.status, renewed.expires_at
        locked.heartbeat_at = renewed.heartbeat_at
    return locked


def screen_answers(
    *,
    assignment: Assignment,
    safer: str = "",
    helpful: str = "",
    left: ResponseSafety | None = None,
    right: ResponseSafety | None = None,
) -> AxisAnswers:
    """The review page's answers, given on the screen's sides (``ScreenVerdict`` values for
    the axes, the left and right responses' safety), on the pair's sides through the
    assignment, as the single verdict is mapped. ReviewError for an answer no axis takes."""
    left_is_a = assignment.to_pair_side(ScreenVerdict.LEFT) == Verdict.A
    a, b = (left, right) if left_is_a else (right, left)
    try:
        return AxisAnswers(
            safer=_pair_side(assignment, safer), helpful=_pair_side(assignment, helpful), a=a, b=b
        )
    except ValueError as error:
        raise ReviewError(str(error)) from None


def _pair_side(assignment: Assignment, answer: str) -> str:
    if answer and answer not in ScreenVerdict.values:
        raise ReviewError(f"{answer!r} is not an answer")
    return assignment.to_pair_side(answer) if answer else ""


def _checked(
    *, assignment: Assignment, verdict: str, answers: AxisAnswers | None
) -> tuple[str, AxisAnswers]:
    """The single verdict (pair sides) and the answers to store, if they fit the campaign's
    review mode; ReviewError otherwise, before anything is stored."""
    campaign = assignment.campaign
    answers = checked_answers(campaign=campaign, answers=answers)
    if verdict and verdict not in ScreenVerdict.values:
        raise ReviewError(f"{verdict!r} is not a verdict")
    given = assignment.to_pair_side(verdict) if verdict else ""
    return answered_verdict(campaign=campaign, verdict=given, answers=answers), answers


def _blind(review: Review, *, assignment: Assignment) -> tuple[str, AxisAnswers]:
    """The stored blind verdict and answers (no query for safety the campaign never asks)."""
    answers = review_answers(
        review=review,
        stage=ReviewStage.BLIND,
        with_safety=assignment.campaign.per_response_safety,
    )
    return review.blind_verdict, answers


def _store_safety(*, review: Review, stage: str, answers: AxisAnswers) -> None:
    ResponseSafetyLabel.objects.bulk_create(
        ResponseSafetyLabel(
            review=review,
            side=side,
            stage=stage,
            safe=label.safe,
            severity=label.severity,
            subcategory_id=label.subcategory_id,
        )
        for side, label in (("a", answers.a), ("b", answers.b))
        if label is not None
    )


@transaction.atomic
def give_blind_verdict(
    *,
    assignment: Assignment,
    verdict: str,
    details: ReviewDetails | None = None,
    answers: AxisAnswers | None = None,
    now: datetime | None = None,
) -> Review:
    """Store the verdict given before the judge's verdict is shown; then the page reveals it.
    One blind verdict per assignment: once revealed, it cannot be given again. The same verdict
    sent again (a double click, a retried request, two tabs) returns the stored review.
    ``answers`` (pair sides, see ``screen_answers``) carry what the campaign asks besides or
    instead of the verdict (``final_label.checked_answers``); in two-axis campaigns the verdict
    may be "" and is derived from them. They are kept as the blind answers, under the same
    rule as the blind verdict."""
    now, details = now or timezone.now(), details or ReviewDetails()
    assignment = _live(assignment, now=now)
    blind_verdict, answers = _checked(assignment=assignment, verdict=verdict, answers=answers)
    # Asked after the lock, in its own statement: a subquery of the locking SELECT reads the
    # snapshot from before the wait and misses a review committed meanwhile.
    stored = Review.objects.filter(assignment_id=assignment.pk).first()
    if stored is not None:
        if (blind_verdict, answers) == _blind(stored, assignment=assignment):
            return stored
        raise ReviewConflict("the judge's verdict was already revealed for this pair")
    pair = assignment.campaign_pair.pair
    review = Review(
        assignment=assignment,
        campaign_pair_id=assignment.campaign_pair_id,
        pair=pair,
        reviewer_id=assignment.reviewer_id,
        blind_verdict=blind_verdict,
        blind_safer=answers.safer,
        blind_helpful=answers.helpful,
        revealed_at=now,
        from_control_slice=assignment.from_control_slice,
        left_side=assignment.left_side,
        campaign_id=assignment.campaign_id,
        flagged=assignment.campaign_pair.priority > 0,
        is_gold=assignment.is_gold,
    )
    _apply_details(
        review=review, details=details, current_subcategory_id=pair.question.subcategory_id
    )
    review.save()
    _store_safety(review=review, stage=ReviewStage.BLIND, answers=answers)
    return review


@transaction.atomic
def submit_review(
    *,
    assignment: Assignment,
    verdict: str,
    details: ReviewDetails | None = None,
    answers: AxisAnswers | None = None,
    now: datetime | None = None,
) -> Review:
    """Confirm or revise the verdict (and the answers, as for ``give_blind_verdict``) after the
    reveal and finish the assignment; the blind ones stay beside them, and
    ``changed_after_reveal`` says whether any differs. The pair's final label is then
    recomputed (annotation.services.final_label)."""
    now, details = now or timezone.now(), details or ReviewDetails()
    assignment = _live(assignment, now=now)
    final_verdict, answers = _checked(assignment=assignment, verdict=verdict, answers=answers)
    review = (
        Review.objects.select_for_update(of=("self",), no_key=True)
        .select_related("pair__question")
        .filter(assignment=assignment)
        .first()
    )
    if review is None:
        raise ReviewError("give a blind verdict first")
    blind = _blind(review, assignment=assignment)
    review.final_verdict, review.submitted_at = final_verdict, now
    review.final_safer, review.final_helpful = answers.safer, answers.helpful
    review.changed_after_reveal = (final_verdict, answers) != blind
    _apply_details(
        review=review,
        details=details,
        current_subcategory_id=review.pair.question.subcategory_id,
    )
    review.save(
        update_fields=[
            "final_verdict",
            "final_safer",
            "final_helpful",
            "changed_after_reveal",
            "submitted_at",
            *_DETAIL_FIELDS,
        ]
    )
    _store_safety(review=review, stage=ReviewStage.FINAL, answers=answers)
    assignment.status, assignment.finished_at = AssignmentStatus.SUBMITTED, now
    assignment.save(update_fields=["status", "finished_at"])
    settle_pair(campaign_pair=assignment.campaign_pair, by=assignment.reviewer)
    return review


@transaction.atomic
def undo_review(*, assignment: Assignment, now: datetime | None = None) -> Assignment:
    """Reopen a submitted review while its lease still runs: the final verdict, axes and
    per-response safety are cleared and the page returns to the confirm step (the blind ones
    stay: the judge was seen)."""
    now = now or timezone.now()
    assignment = Assignment.objects.select_for_update(no_key=True).get(pk=assignment.pk)
    if assignment.status != AssignmentStatus.SUBMITTED or assignment.expires_at <= now:
        raise ReviewError("only a review submitted within its lease can be undone")
    review = Review.objects.select_related("pair__question").get(assignment=assignment)
    Review.objects.filter(pk=review.pk).update(
        final_verdict="",
        final_safer="",
        final_helpful="",
        submitted_at=None,
        changed_after_reveal=False,
    )
    ResponseSafetyLabel.objects.filter(review=review, stage=ReviewStage.FINAL).delete()
    assignment.status, assignment.finished_at = AssignmentStatus.LIVE, None
    assignment.save(update_fields=["status", "finished_at"])
    settle_pair(campaign_pair=assignment.campaign_pair, by=assignment.reviewer)
    if review.taxonomy_correction_id is not None:
        _revert_correction(review=review, by=assignment.reviewer)
    return assignment


@transaction.atomic
def discard_review(*, review: Review, by: User | None) -> None:
    """Delete a review (an admin removing bad work): its assignment ends as expired, so the
    slot returns to the pool but the pair is never offered to that reviewer again, and the
    pair is settled anew from the reviews left. Its per-response safety labels go with it
    (cascade). A correction it made stays, with its history (``relabel_question`` recorded
    it)."""
    review = Review.objects.select_for_update(of=("self",), no_key=True).get(pk=review.pk)
    assignment = Assignment.objects.select_for_update(no_key=True).get(pk=review.assignment_id)
    review.delete()
    if assignment.status != AssignmentStatus.EXPIRED:
        assignment.status = AssignmentStatus.EXPIRED
        assignment.finished_at = assignment.finished_at or timezone.now()
        assignment.save(update_fields=["status", "finished_at"])
    campaign_pair = CampaignPair.objects.select_related("campaign", "pair__question").get(
        pk=assignment.campaign_pair_id
    )
    recount_slots(campaign=campaign_pair.campaign, pair_ids=[campaign_pair.pk])
    settle_pair(campaign_pair=campaign_pair, by=by)


def _revert_correction(*, review: Review, by: User) -> None:
    """Take back the relabel an undone review's correction made, through relabel_question so
    the label history keeps both steps; a later relabel by anyone else is left alone."""
    question = Question.objects.get(pk=review.pair.question_id)
    if question.subcategory_id != review.taxonomy_correction_id:
        return
    change = (
        LabelChange.objects.filter(
            question=question,
            new_subcategory_id=review.taxonomy_correction_id,
            reason__startswith="review correction",
        )
        .select_related("old_subcategory")
        .order_by("-changed_at", "-id")
        .first()
    )
    previous = change.old_subcategory if change is not None else None
    if previous is None or previous.is_retired:
        return  # nothing live to go back to: the correction stays, with its history
    relabel_question(
        question=question, subcategory=previous, reason="review correction undone", by=by
    )


def last_undoable(*, reviewer: User, now: datetime | None = None) -> Assignment | None:
    """The reviewer's most recent submitted assignment whose lease still runs."""
    return (
        Assignment.objects.filter(
            reviewer=reviewer,
            status=AssignmentStatus.SUBMITTED,
            expires_at__gt=now or timezone.now(),
        )
        .order_by("-finished_at", "-id")
        .first()
    )


@dataclass(frozen=True)
class ReviewerDay:
    today: int
    overall: int
    minutes_today: int


def count_reviews(*, reviewer: User, now: datetime | None = None) -> ReviewerDay:
    """A reviewer's submitted reviews today (UTC day) and overall, in one query."""
    start = timezone.localtime(now or timezone.now()).replace(
        hour=0, minute=0, second=0, microsecond=0
    )
    today = Q(submitted_at__gte=start)
    counts = Review.objects.filter(reviewer=reviewer, submitted_at__isnull=False).aggregate(
        overall=Count("pk"),
        today=Count("pk", filter=today),
        seconds=Sum("active_seconds", filter=today, default=0),
    )
    return ReviewerDay(
        today=counts["today"], overall=counts["overall"], minutes_today=counts["seconds"] // 60
    )


# The live subcategory list by the latest taxonomy change: every taxonomy edit records a
# change, so a new change id means a new list. Per process; a handful of lists at most.
_subcategories: dict[int, list[TaxonomyNode]] = {}


def list_live_subcategories(*, taxonomy_change_id: int | None) -> list[TaxonomyNode]:
    """Live subcategories with their paths, for the taxonomy correction menu."""
    found = _subcategories.get(taxonomy_change_id) if taxonomy_change_id else None
    if found is None:
        found = list(TaxonomyNode.objects.active().subcategories().with_paths())
        if taxonomy_change_id:
            _subcategories.clear()  # only the latest list is ever asked for again
            _subcategories[taxonomy_change_id] = found
    return found


def get_reviewer_settings(*, reviewer: User) -> ReviewerSettings:
    """The reviewer's settings; defaults (unsaved) until they change one."""
    found = ReviewerSettings.objects.filter(reviewer=reviewer).first()
    return found or ReviewerSettings(reviewer=reviewer)


@transaction.atomic
def update_reviewer_settings(*, reviewer: User, blur_images: bool) -> ReviewerSettings:
    settings, _ = ReviewerSettings.objects.update_or_create(
        reviewer=reviewer, defaults={"blur_images": blur_images}
    )
    return settings
