"""A reviewer's work on one assignment: blind verdict, reveal, final verdict, undo.

Verdicts arrive as the reviewer saw the screen (left/right) and are stored on the pair's
sides (a/b) through the assignment's stored screen side.
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
    Review,
    ReviewerSettings,
    ScreenVerdict,
    TaxonomyChange,
    TaxonomyNode,
)
from annotation.services.assignment import renew_lease
from annotation.services.campaigns import recount_slots
from annotation.services.final_label import settle_pair
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


@transaction.atomic
def give_blind_verdict(
    *,
    assignment: Assignment,
    verdict: str,
    details: ReviewDetails | None = None,
    now: datetime | None = None,
) -> Review:
    """Store the verdict given before the judge's verdict is shown; then the page reveals it.
    One blind verdict per assignment: once revealed, it cannot be given again. The same verdict
    sent again (a double click, a retried request, two tabs) returns the stored review."""
    now, details = now or timezone.now(), details or ReviewDetails()
    assignment = _live(assignment, now=now)
    # Asked after the lock, in its own statement: a subquery of the locking SELECT reads the
    # snapshot from before the wait and misses a review committed meanwhile.
    stored = Review.objects.filter(assignment_id=assignment.pk).first()
    if stored is not None:
        if stored.blind_verdict == assignment.to_pair_side(ScreenVerdict(verdict)):
            return stored
        raise ReviewConflict("the judge's verdict was already revealed for this pair")
    pair = assignment.campaign_pair.pair
    review = Review(
        assignment=assignment,
        campaign_pair_id=assignment.campaign_pair_id,
        pair=pair,
        reviewer_id=assignment.reviewer_id,
        blind_verdict=assignment.to_pair_side(ScreenVerdict(verdict)),
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
    return review


@transaction.atomic
def submit_review(
    *,
    assignment: Assignment,
    verdict: str,
    details: ReviewDetails | None = None,
    now: datetime | None = None,
) -> Review:
    """Confirm or revise the verdict after the reveal and finish the assignment; the pair's
    final label is then recomputed (annotation.services.final_label)."""
    now, details = now or timezone.now(), details or ReviewDetails()
    assignment = _live(assignment, now=now)
    review = (
        Review.objects.select_for_update(of=("self",), no_key=True)
        .select_related("pair__question")
        .filter(assignment=assignment)
        .first()
    )
    if review is None:
        raise ReviewError("give a blind verdict first")
    review.final_verdict = assignment.to_pair_side(ScreenVerdict(verdict))
    review.changed_after_reveal = review.final_verdict != review.blind_verdict
    review.submitted_at = now
    _apply_details(
        review=review,
        details=details,
        current_subcategory_id=review.pair.question.subcategory_id,
    )
    review.save(
        update_fields=["final_verdict", "changed_after_reveal", "submitted_at", *_DETAIL_FIELDS]
    )
    assignment.status, assignment.finished_at = AssignmentStatus.SUBMITTED, now
    assignment.save(update_fields=["status", "finished_at"])
    settle_pair(campaign_pair=assignment.campaign_pair, by=assignment.reviewer)
    return review


@transaction.atomic
def undo_review(*, assignment: Assignment, now: datetime | None = None) -> Assignment:
    """Reopen a submitted review while its lease still runs: the final verdict is cleared and
    the page returns to the confirm step (the blind verdict stays: the judge was seen)."""
    now = now or timezone.now()
    assignment = Assignment.objects.select_for_update(no_key=True).get(pk=assignment.pk)
    if assignment.status != AssignmentStatus.SUBMITTED or assignment.expires_at <= now:
        raise ReviewError("only a review submitted within its lease can be undone")
    review = Review.objects.select_related("pair__question").get(assignment=assignment)
    Review.objects.filter(pk=review.pk).update(
        final_verdict="", submitted_at=None, changed_after_reveal=False
    )
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
    pair is settled anew from the reviews left. A correction it made stays, with its
    history (``relabel_question`` recorded it)."""
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
