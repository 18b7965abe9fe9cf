"""The adjudication queue and page: every reviewer's verdict beside the form that decides."""

from __future__ import annotations

from django.contrib import messages
from django.http import HttpResponse, HttpResponseBase
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from annotation import access
from annotation.exceptions import DomainError
from annotation.forms import AdjudicationForm, GoldVerdictForm, ReopenForm
from annotation.models import Adjudication, Review, TaxonomyNode
from annotation.services import campaigns, final_label
from spavl_web.http import Request


@require_GET
def queue(request: Request) -> HttpResponse:
    access.access_adjudications(user=request.user)
    queue = Adjudication.objects.open().select_related(
        "campaign_pair__campaign", "pair__question__subcategory"
    )[:200]
    return render(request, "annotation/adjudication_list.html", {"queue": queue})


@require_http_methods(["GET", "POST"])
def page(request: Request, adjudication_id: int) -> HttpResponseBase:
    """Every reviewer's verdict, note and taxonomy correction, and the form to decide."""
    adjudication = access.access_adjudication(user=request.user, adjudication_id=adjudication_id)
    form = AdjudicationForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            final_label.decide_adjudication(
                adjudication=adjudication,
                verdict=form.cleaned_data["verdict"],
                exclude=form.cleaned_data["exclude"],
                taxonomy_correction=form.cleaned_data["taxonomy_correction"],
                note=form.cleaned_data["note"],
                by=request.user,
            )
        except DomainError as error:
            messages.error(request, str(error))
        else:
            messages.success(request, f"Pair {adjudication.pair_id} decided.")
            return redirect("adjudication:queue")
    return _render(request, adjudication, form=form)


def _render(
    request: Request,
    adjudication: Adjudication,
    *,
    form: AdjudicationForm | None = None,
    gold_form: GoldVerdictForm | None = None,
    reopen_form: ReopenForm | None = None,
    status: int = 200,
) -> HttpResponse:
    pair = adjudication.pair
    context = {
        "adjudication": adjudication,
        "pair": pair,
        "question": pair.question,
        "reviews": Review.objects.filter(campaign_pair=adjudication.campaign_pair)
        .select_related("reviewer", "taxonomy_correction__parent__parent")
        .order_by("submitted_at"),
        "judgement": final_label.latest_judgement(
            pair=pair, campaign=adjudication.campaign_pair.campaign
        ),
        "subcategories": list(TaxonomyNode.objects.active().subcategories().with_paths()),
        "form": form or AdjudicationForm(),
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
