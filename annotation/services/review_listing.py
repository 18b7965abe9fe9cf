"""People's reviews and adjudications as an analysis pipeline reads them, filtered. The API's
/reviews/ and /adjudications/ are thin views over these.

Each query joins in what a row shows (the reviewer, the corrected subcategory's path), so a
cursor page ordered by id is one query whatever its size.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.db.models import Q, QuerySet

from annotation.models import Adjudication, Review

__all__ = [
    "AdjudicationFilters",
    "ReviewFilters",
    "adjudications_matching",
    "reviews_matching",
]

_FLAGS = Q(flag_image_irrelevant=True) | Q(flag_question_malformed=True)
_FLAGS |= Q(flag_response_truncated=True) | Q(flag_other=True)


@dataclass(frozen=True)
class ReviewFilters:
    """What the reviews are narrowed to; ``None`` leaves a filter out. ``verdict`` is the
    final verdict, ``since`` the earliest submission, ``flagged`` whether the reviewer raised
    any flag."""

    campaign: int | None = None
    pair: int | None = None
    reviewer: str | None = None
    verdict: str | None = None
    since: datetime | None = None
    flagged: bool | None = None


def reviews_matching(filters: ReviewFilters) -> QuerySet[Review]:
    reviews = Review.objects.select_related("reviewer", "taxonomy_correction__parent__parent")
    if filters.campaign is not None:
        reviews = reviews.filter(campaign_pair__campaign_id=filters.campaign)
    if filters.pair is not None:
        reviews = reviews.filter(pair_id=filters.pair)
    if filters.reviewer is not None:
        reviews = reviews.filter(reviewer__username=filters.reviewer)
    if filters.verdict is not None:
        reviews = reviews.filter(final_verdict=filters.verdict)
    if filters.since is not None:
        reviews = reviews.filter(submitted_at__gte=filters.since)
    if filters.flagged is not None:
        reviews = reviews.filter(_FLAGS) if filters.flagged else reviews.exclude(_FLAGS)
    return reviews


@dataclass(frozen=True)
class AdjudicationFilters:
    """What the adjudications are narrowed to; ``None`` leaves a filter out. ``since`` keeps
    those opened or decided at or after it."""

    campaign: int | None = None
    pair: int | None = None
    status: str | None = None
    verdict: str | None = None
    adjudicator: str | None = None
    since: datetime | None = None


def adjudications_matching(filters: AdjudicationFilters) -> QuerySet[Adjudication]:
    adjudications = Adjudication.objects.select_related(
        "campaign_pair", "decided_by", "taxonomy_correction__parent__parent"
    )
    if filters.campaign is not None:
        adjudications = adjudications.filter(campaign_pair__campaign_id=filters.campaign)
    if filters.pair is not None:
        adjudications = adjudications.filter(pair_id=filters.pair)
    if filters.status is not None:
        adjudications = adjudications.filter(status=filters.status)
    if filters.verdict is not None:
        adjudications = adjudications.filter(verdict=filters.verdict)
    if filters.adjudicator is not None:
        adjudications = adjudications.filter(decided_by__username=filters.adjudicator)
    if filters.since is not None:
        since = filters.since
        adjudications = adjudications.filter(Q(created_at__gte=since) | Q(decided_at__gte=since))
    return adjudications
