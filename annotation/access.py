"""Every access gate of the annotation app, on the roles of spavl_web.roles.

A gate returns the object the user may act on, or raises Http404: missing and not-yours answer
the same, so nobody learns what exists. Views, the API and the admin's own pages call these
and nothing else to decide who sees what.
"""

from __future__ import annotations

from pathlib import Path

from django.contrib.auth.models import User
from django.db.models import Prefetch, QuerySet
from django.http import Http404
from django.shortcuts import get_object_or_404

from annotation.models import (
    Adjudication,
    Assignment,
    Campaign,
    ExportJob,
    Image,
    ImportBatch,
    Pair,
    Review,
    Rewrite,
    TaxonomyNode,
)
from spavl_web.roles import (
    AnyUser,
    is_adjudicator,
    is_admin,
    is_analyst,
    is_data_reader,
    is_exporter,
    is_importer,
)

__all__ = [
    "access_adjudication",
    "access_adjudications",
    "access_rewrite",
    "access_agreement",
    "access_assignment",
    "access_campaign",
    "access_campaign_admin",
    "access_campaign_progress",
    "access_campaigns",
    "access_managed_campaign",
    "access_reviews",
    "access_data",
    "access_import",
    "access_imports",
    "access_claim",
    "access_export_file",
    "access_export_job",
    "access_exports",
    "access_image",
    "access_pair",
    "access_review",
    "access_taxonomy_admin",
    "campaigns_for_display",
    "is_adjudicator",
    "is_admin",
    "is_analyst",
    "is_exporter",
    "visible_export_jobs",
    "visible_imports",
]


def _signed_in(user: AnyUser) -> User:
    if not isinstance(user, User) or not user.is_active:
        raise Http404
    return user


def access_image(*, user: AnyUser, image_id: int) -> Image:
    """Images are visible to every signed-in member of the team (reviewers see harmful content
    by role); the gate exists so later tenant or campaign scoping has one place to live."""
    _signed_in(user)
    return get_object_or_404(Image.objects.only("data", "format"), pk=image_id)


def reviewer_campaigns(*, user: AnyUser) -> QuerySet[Campaign]:
    """The campaigns a user reviews in: active, with them among the reviewers."""
    if not isinstance(user, User):
        return Campaign.objects.none()
    return Campaign.objects.filter(reviewers__id=user.pk, is_active=True)


def access_campaign(*, user: AnyUser, campaign_id: int) -> Campaign:
    """Admins see every campaign; a reviewer only the active campaigns they are on."""
    _signed_in(user)
    campaigns = Campaign.objects.all() if is_admin(user) else reviewer_campaigns(user=user)
    return get_object_or_404(campaigns, pk=campaign_id)


def access_claim(*, user: AnyUser, campaign_id: int) -> Campaign:
    """The campaign if the user may be handed a new pair in it: an active campaign they
    review in (admins: any active campaign). Every claim path (next, submit and next, skip,
    prefetch, the API) passes here, so a closed campaign or a removed reviewer gets no pair."""
    _signed_in(user)
    found = reviewer_campaigns(user=user).filter(pk=campaign_id).first()
    if found is None and is_admin(user):  # asked second: most claims are by reviewers
        found = Campaign.objects.filter(is_active=True, pk=campaign_id).first()
    if found is None:
        raise Http404
    return found


def access_assignment(*, user: AnyUser, assignment_id: int) -> Assignment:
    """An assignment is its reviewer's alone; admins and adjudicators see reviews, not leases."""
    _signed_in(user)
    leases = Assignment.objects.for_review_page().filter(reviewer_id=user.pk)
    return get_object_or_404(leases, pk=assignment_id)


def access_pair(*, user: AnyUser, pair_id: int) -> Pair:
    """Adjudicators and admins see every pair; a reviewer only pairs assigned to them."""
    _signed_in(user)
    pairs = Pair.objects.for_display()
    if not is_adjudicator(user):
        pairs = pairs.filter(campaign_pairs__assignments__reviewer_id=user.pk).distinct()
    return get_object_or_404(pairs, pk=pair_id)


def access_review(*, user: AnyUser, review_id: int) -> Review:
    """A review is visible to its author, adjudicators and admins."""
    _signed_in(user)
    reviews = Review.objects.select_related("reviewer", "taxonomy_correction", "assignment")
    if not is_adjudicator(user):
        reviews = reviews.filter(reviewer_id=user.pk)
    return get_object_or_404(reviews, pk=review_id)


def access_adjudications(*, user: AnyUser) -> User:
    """The adjudicator (the queue and its decisions), or 404."""
    if not is_adjudicator(user):
        raise Http404
    return _signed_in(user)


def access_adjudication(*, user: AnyUser, adjudication_id: int) -> Adjudication:
    access_adjudications(user=user)
    adjudications = Adjudication.objects.select_related(
        "campaign_pair__campaign",
        "pair__question__subcategory__parent__parent",
        "pair__response_a",
        "pair__response_b",
        "decided_by",
    )
    return get_object_or_404(adjudications, pk=adjudication_id)


def access_rewrite(*, user: AnyUser, rewrite_id: int) -> Rewrite:
    """A rewrite is decided by adjudicators and admins; 404 for everyone else and for none."""
    access_adjudications(user=user)
    return get_object_or_404(Rewrite.objects.all(), pk=rewrite_id)


def access_agreement(*, user: AnyUser) -> User:
    """Analysts see agreement figures; everybody else gets 404 (reviewers must not learn how
    the judge or their colleagues did on pairs they still review)."""
    if not is_analyst(user):
        raise Http404
    return _signed_in(user)


def access_exports(*, user: AnyUser) -> User:
    """The user if they may see and start exports; everyone else gets 404."""
    if not is_exporter(user):
        raise Http404
    return _signed_in(user)


def visible_export_jobs(*, user: AnyUser) -> QuerySet[ExportJob]:
    """The jobs an exporter sees: all for admins, their own otherwise."""
    jobs = ExportJob.objects.select_related("definition", "created_by")
    return jobs if is_admin(user) else jobs.filter(created_by_id=user.pk)


def access_export_job(*, user: AnyUser, job_id: int) -> ExportJob:
    """The job if the user may see it: their own as an exporter, any as an admin."""
    access_exports(user=user)
    return get_object_or_404(visible_export_jobs(user=user), pk=job_id)


def access_export_file(*, job: ExportJob, name: str) -> Path:
    """The path of a finished file of a job the user passed ``access_export_job`` for. Only
    names recorded as finished are served (never a ``.partial`` being written), and the path
    must stay inside the job's folder."""
    if job.finished_file(name) is None:
        raise Http404
    root = Path(job.output_dir).resolve()
    path = (root / name).resolve()
    if not path.is_relative_to(root) or not path.is_file():
        raise Http404
    return path


def access_data(*, user: AnyUser) -> User:
    """Questions, responses, pairs and their labels: data readers (analysts, exporters, judge
    watchers); reviewers review blind and see none of it here."""
    if not is_data_reader(user):
        raise Http404
    return _signed_in(user)


def access_imports(*, user: AnyUser) -> User:
    """Importers push data in and follow their imports (admins follow every import)."""
    if not is_importer(user):
        raise Http404
    return _signed_in(user)


def visible_imports(*, user: AnyUser) -> QuerySet[ImportBatch]:
    """An importer's own imports; admins see every import."""
    importer = access_imports(user=user)
    batches = ImportBatch.objects.select_related("started_by")
    return batches if is_admin(importer) else batches.filter(started_by=importer)


def access_import(*, user: AnyUser, batch_id: int) -> ImportBatch:
    return get_object_or_404(visible_imports(user=user), pk=batch_id)


def access_campaigns(*, user: AnyUser) -> User:
    """Analysts follow every campaign's rules and progress (adjudicators and admins are
    analysts); a reviewer sees only the campaigns they review in, on the review pages."""
    if not is_analyst(user):
        raise Http404
    return _signed_in(user)


def campaigns_for_display() -> QuerySet[Campaign]:
    reviewers = Prefetch("reviewers", queryset=User.objects.order_by("username"))
    nodes = Prefetch("taxonomy_nodes", queryset=TaxonomyNode.objects.order_by("pk"))
    return Campaign.objects.select_related("created_by").prefetch_related(reviewers, nodes)


def access_campaign_progress(*, user: AnyUser, campaign_id: int) -> Campaign:
    access_campaigns(user=user)
    return get_object_or_404(campaigns_for_display(), pk=campaign_id)


def access_campaign_admin(*, user: AnyUser) -> User:
    """Admins create campaigns and change their rules, state and reviewers."""
    if not is_admin(user):
        raise Http404
    return _signed_in(user)


def access_managed_campaign(*, user: AnyUser, campaign_id: int) -> Campaign:
    access_campaign_admin(user=user)
    return get_object_or_404(campaigns_for_display(), pk=campaign_id)


def access_reviews(*, user: AnyUser) -> User:
    """Every review and adjudication, for analysis: analysts (adjudicators and admins are
    analysts). A reviewer sees their own reviews only on the review pages."""
    if not is_analyst(user):
        raise Http404
    return _signed_in(user)


def access_taxonomy_admin(*, user: AnyUser) -> User:
    """Taxonomy edits outside the Django admin: admins only, as there."""
    if not is_admin(user):
        raise Http404
    return _signed_in(user)
