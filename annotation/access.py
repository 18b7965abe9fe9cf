"""Access gates: one per object type. Missing and not-yours both answer 404."""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.http import Http404

from annotation.models import Adjudication, Assignment, Campaign, Image, Pair, Review

AnyUser = AbstractBaseUser | AnonymousUser


def access_image(*, user: AnyUser, image_id: int) -> Image:
    """Images are visible to every signed-in member of the team (reviewers see harmful content
    by role); the gate exists so later tenant or campaign scoping has one place to live."""
    if not user.is_authenticated:
        raise Http404
    try:
        return Image.objects.only("data", "format").get(pk=image_id)
    except Image.DoesNotExist:
        raise Http404 from None


def is_admin(user: AnyUser) -> bool:
    if not user.is_authenticated:
        return False
    return bool(getattr(user, "is_superuser", False)) or _in_group(user, "admin")


def is_adjudicator(user: AnyUser) -> bool:
    return is_admin(user) or (user.is_authenticated and _in_group(user, "adjudicator"))


def _in_group(user: AnyUser, name: str) -> bool:
    # One query per request object, however often a page asks.
    names: set[str] | None = user.__dict__.get("_spavl_groups")
    if names is None:
        names = set(user.groups.values_list("name", flat=True))  # type: ignore[union-attr]
        user.__dict__["_spavl_groups"] = names
    return name in names


def access_campaign(*, user: AnyUser, campaign_id: int) -> Campaign:
    """Admins see every campaign; a reviewer only the active campaigns they are on."""
    if not user.is_authenticated:
        raise Http404
    campaigns = Campaign.objects.all()
    if not is_admin(user):
        campaigns = campaigns.filter(reviewers__id=user.pk, is_active=True)
    try:
        return campaigns.get(pk=campaign_id)
    except Campaign.DoesNotExist:
        raise Http404 from None


def access_assignment(*, user: AnyUser, assignment_id: int) -> Assignment:
    """An assignment is its reviewer's alone; admins and adjudicators see reviews, not leases."""
    if not user.is_authenticated:
        raise Http404
    try:
        return Assignment.objects.for_review_page().get(pk=assignment_id, reviewer_id=user.pk)
    except Assignment.DoesNotExist:
        raise Http404 from None


def access_pair(*, user: AnyUser, pair_id: int) -> Pair:
    """Adjudicators and admins see every pair; a reviewer only pairs assigned to them."""
    if not user.is_authenticated:
        raise Http404
    pairs = Pair.objects.for_display()
    if not is_adjudicator(user):
        pairs = pairs.filter(campaign_pairs__assignments__reviewer_id=user.pk).distinct()
    try:
        return pairs.get(pk=pair_id)
    except Pair.DoesNotExist:
        raise Http404 from None


def access_review(*, user: AnyUser, review_id: int) -> Review:
    """A review is visible to its author, adjudicators and admins."""
    if not user.is_authenticated:
        raise Http404
    reviews = Review.objects.select_related("reviewer", "taxonomy_correction", "assignment")
    if not is_adjudicator(user):
        reviews = reviews.filter(reviewer_id=user.pk)
    try:
        return reviews.get(pk=review_id)
    except Review.DoesNotExist:
        raise Http404 from None


def access_adjudication(*, user: AnyUser, adjudication_id: int) -> Adjudication:
    if not is_adjudicator(user):
        raise Http404
    try:
        return Adjudication.objects.select_related(
            "campaign_pair__campaign",
            "pair__question__subcategory__parent__parent",
            "pair__response_a",
            "pair__response_b",
        ).get(pk=adjudication_id)
    except Adjudication.DoesNotExist:
        raise Http404 from None
