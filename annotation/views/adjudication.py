"""The adjudication queue and page: every reviewer's verdict beside the form that decides."""

from __future__ import annotations

from dataclasses import dataclass

from django.contrib import messages
from django.db.models import Prefetch
from django.http import HttpResponse, HttpResponseBase
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from annotation import access
from annotation.exceptions import DomainError
from annotation.forms import AdjudicationForm, GoldVerdictForm, ReopenForm, RewriteDecisionForm
from annotation.models import (
    Adjudication,
    ResponseSafetyLabel,
    Review,
    ReviewMode,
    ReviewStage,
    Rewrite,
    TaxonomyNode,
)
from annotation.services import campaigns, final_label, rewrites
from spavl_web.http import Request


@require_GET
def queue(request: Request) -> HttpResponse:
    access.access_adjudications(user=request.user)
    queue = Adjudication.objects.open().select_related(
        "campaign_pair__campaign", "pair__question__subcategory"
    )[:200]
    context = {"queue": queue, "pending_rewrites": Rewrite.objects.pending().count()}
    return render(request, "annotation/adjudication_list.html", context)


@require_http_methods(["GET", "POST"])
def rewrites_page(request: Request) -> HttpResponseBase:
    """Safe responses reviewers wrote for pairs both of whose responses are unsafe, beside
    the question and the response each would be chosen over; accept or reject (with a
    reason) each one."""
    access.access_adjudications(user=request.user)
    form = RewriteDecisionForm(request.POST or None)
    if request.method == "POST":
        if not form.is_valid():
            return _render_rewrites(request, form=form, status=422)
        rewrite = access.access_rewrite(user=request.user, rewrite_id=form.cleaned_data["rewrite"])
        try:
            _decide_rewrite(request, rewrite, form)
        except DomainError as error:
            messages.error(request, str(error))
        return redirect("adjudication:rewrites")
    return _render_rewrites(request, form=None)


def _decide_rewrite(request: Request, rewrite: Rewrite, form: RewriteDecisionForm) -> None:
    if form.cleaned_data["decision"] == "accept":
        rewrites.accept_rewrite(rewrite=rewrite, by=request.user)
        messages.success(
            request, f"The safe response for pair {rewrite.source_pair_id} is accepted."
        )
    else:
        rewrites.reject_rewrite(
            rewrite=rewrite, by=request.user, reason=form.cleaned_data["reason"]
        )
        messages.success(
            request, f"The safe response for pair {rewrite.source_pair_id} is rejected."
        )


def _render_rewrites(
    request: Request, *, form: RewriteDecisionForm | None, status: int = 200
) -> HttpResponse:
    pending = Rewrite.objects.pending().select_related(
        "review__reviewer",
        "source_pair__question__subcategory",
        "new_pair__response_a",
        "new_pair__response_b",
    )[:100]
    context = {"rewrites": pending, "form": form}
    return render(request, "annotation/rewrites.html", context, status=status)


@require_http_methods(["GET", "POST"])
def page(request: Request, adjudication_id: int) -> HttpResponseBase:
    """Every reviewer's verdict, note and taxonomy correction, and the form to decide."""
    adjudication = access.access_adjudication(user=request.user, adjudication_id=adjudication_id)
    campaign = adjudication.campaign_pair.campaign
    form = AdjudicationForm(request.POST or None, campaign=campaign)
    if request.method == "POST" and form.is_valid():
        try:
            final_label.decide_adjudication(
                adjudication=adjudication,
                verdict=form.cleaned_data["verdict"],
                exclude=form.cleaned_data["exclude"],
                taxonomy_correction=form.cleaned_data["taxonomy_correction"],
                note=form.cleaned_data["note"],
                answers=form.answers(),
                by=request.user,
            )
        except DomainError as error:
            messages.error(request, str(error))
        else:
            messages.success(request, f"Pair {adjudication.pair_id} decided.")
            return redirect("adjudication:queue")
    return _render(request, adjudication, form=form)


@dataclass(frozen=True)
class ReviewRow:
    """One review as the page shows it: per-response safety, blind and final, in words."""

    review: Review
    blind_a: str
    blind_b: str
    final_a: str
    final_b: str


def _describe(label: ResponseSafetyLabel | None) -> str:
    if label is None:
        return "–"
    if label.safe:
        return "safe"
    harm = f", {label.subcategory.path}" if label.subcategory else ""
    return f"unsafe ({label.get_severity_display()}{harm})"


def _review_rows(adjudication: Adjudication) -> list[ReviewRow]:
    labels = ResponseSafetyLabel.objects.select_related("subcategory__parent__parent")
    reviews = (
        Review.objects.filter(campaign_pair=adjudication.campaign_pair)
        .select_related("reviewer", "taxonomy_correction__parent__parent")
        .prefetch_related(Prefetch("safety_labels", queryset=labels))
        .order_by("submitted_at")
    )
    rows = []
    for review in reviews:
        found = {(label.stage, label.side): label for label in review.safety_labels.all()}
        blind, final = ReviewStage.BLIND, ReviewStage.FINAL
        rows.append(
            ReviewRow(
                review=review,
                blind_a=_describe(found.get((blind, "a"))),
                blind_b=_describe(found.get((blind, "b"))),
                final_a=_describe(found.get((final, "a"))),
                final_b=_describe(found.get((final, "b"))),
            )
        )
    return rows


def _render(
    request: Request,
    adjudication: Adjudication,
    *,
    form: AdjudicationForm | None = None,
    gold_form: GoldVerdictForm | None = None,
    reopen_form: ReopenForm | None = None,
    status: int = 200,
) -> HttpResponse:
    pair, campaign = adjudication.pair, adjudication.campaign_pair.campaign
    context = {
        "adjudication": adjudication,
        "campaign": campaign,
        "two_axis": campaign.review_mode == ReviewMode.TWO_AXIS,
        "pair": pair,
        "question": pair.question,
        "rows": _review_rows(adjudication),
        "judgement": final_label.latest_judgement(pair=pair, campaign=campaign),
        "subcategories": list(TaxonomyNode.objects.active().subcategories().with_paths()),
        "form": form or AdjudicationForm(campaign=campaign),
        "gold_form": gold_form or GoldVerdictForm(),
        "reopen_form": reopen_form or ReopenForm(),
        "events": adjudication.events.select_related("by"),
    }
    return render(request, "annotation/adjudication.html", context, status=status)


@require_POST
def reopen(request: Request, adjudication_id: int) -> HttpResponseBase:
    """Put a decided pair back in the queue, with the reason in its history."""
    adjudication = access.access_adjudication(user=request.user, adjudication_id=adjudication_id)
    form = ReopenForm(request.POST)
    if not form.is_valid():
        return _render(request, adjudication, reopen_form=form, status=422)
    try:
        final_label.reopen_adjudication(
            adjudication=adjudication, by=request.user, reason=form.cleaned_data["reason"]
        )
    except DomainError as error:
        messages.error(request, str(error))
    else:
        messages.success(request, f"Pair {adjudication.pair_id} is open again.")
    return redirect("adjudication:page", adjudication_id=adjudication.pk)


@require_POST
def gold(request: Request, adjudication_id: int) -> HttpResponseBase:
    """Make the adjudicated pair a gold pair of its campaign, with a known verdict."""
    adjudication = access.access_adjudication(user=request.user, adjudication_id=adjudication_id)
    form = GoldVerdictForm(request.POST)
    if not form.is_valid():
        return _render(request, adjudication, gold_form=form, status=422)
    campaigns.mark_gold(
        campaign_pair=adjudication.campaign_pair, verdict=form.cleaned_data["gold_verdict"]
    )
    messages.success(request, f"Pair {adjudication.pair_id} is now a gold pair.")
    return redirect("adjudication:page", adjudication_id=adjudication.pk)
