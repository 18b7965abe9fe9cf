"""HTML views: parse, pass the access gate, call one service, render.

htmx requests get a named partial of the same template; without JavaScript every action is a
plain form POST followed by a redirect, so the basics work anywhere.
"""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth.models import User
from django.db.models import Count, Q
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseBase
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from annotation import access
from annotation.exceptions import DomainError
from annotation.forms import (
    AdjudicationForm,
    GoldVerdictForm,
    ReopenForm,
    ReviewerSettingsForm,
    ReviewForm,
)
from annotation.models import (
    Adjudication,
    Assignment,
    Campaign,
    Review,
    ReviewerSettings,
    ScreenSide,
    TaxonomyNode,
)
from annotation.services import assignment as assignments
from annotation.services import campaigns, final_label
from annotation.services import review as reviews
from judging.models import DecidedBy

REVIEW_TEMPLATE = "annotation/review.html"


@require_GET
def image(request: HttpRequest, image_id: int) -> HttpResponse:
    """Serve an image's original bytes with a Content-Type from its validated format."""
    picture = access.access_image(user=request.user, image_id=image_id)
    response = HttpResponse(bytes(picture.data), content_type=picture.content_type)
    response["Cache-Control"] = "private, max-age=86400, immutable"
    response["Content-Security-Policy"] = "default-src 'none'; sandbox"
    return response


def _user(request: HttpRequest) -> User:
    assert isinstance(request.user, User)  # LoginRequiredMiddleware guarantees a user
    return request.user


@require_GET
def home(request: HttpRequest) -> HttpResponse:
    """The reviewer's home: today's and overall counts, their campaigns, a break prompt."""
    user = _user(request)
    campaigns = (
        Campaign.objects.filter(reviewers__id=user.pk, is_active=True)
        .annotate(open_pairs=Count("pairs", filter=Q(pairs__slots_left__gt=0)))
        .order_by("-created_at")
    )
    day = reviews.count_reviews(reviewer=user)
    campaign_list = list(campaigns)
    first = campaign_list[0] if campaign_list else None
    context = {
        "campaigns": campaign_list,
        "day": day,
        "break_prompt": first is not None and _needs_break(day=day, campaign=first),
        "open_adjudications": (
            Adjudication.objects.open().count() if access.is_adjudicator(user) else None
        ),
        "settings": reviews.get_reviewer_settings(reviewer=user),
    }
    return render(request, "annotation/home.html", context)


def _needs_break(*, day: reviews.ReviewerDay, campaign: Campaign) -> bool:
    by_count = day.today > 0 and day.today % campaign.break_after_reviews == 0
    return by_count or day.minutes_today >= campaign.break_after_minutes


@require_POST
def campaign_next(request: HttpRequest, campaign_id: int) -> HttpResponseBase:
    """Claim (or resume) the reviewer's next pair in a campaign."""
    campaign = access.access_claim(user=request.user, campaign_id=campaign_id)
    lease = assignments.claim_next_pair(campaign=campaign, reviewer=_user(request))
    return _go_to(request, lease)


def _claim_after(request: HttpRequest, lease: Assignment) -> Assignment | None:
    """The next pair after ``lease`` through the claim gate: none once the campaign closed
    or the reviewer left it (a message says so)."""
    try:
        campaign = access.access_claim(user=request.user, campaign_id=lease.campaign_id)
    except Http404:
        messages.info(request, "This campaign is closed to you now: no more pairs from it.")
        return None
    return assignments.claim_next_pair(campaign=campaign, reviewer=_user(request), after=lease)


def _go_to(request: HttpRequest, lease: Assignment | None) -> HttpResponseBase:
    if lease is None:
        if not messages.get_messages(request):
            messages.info(request, "Nothing left to review in this campaign. Thank you!")
        target = reverse("annotation:home")
    else:
        target = reverse("annotation:assignment", args=[lease.pk])
    if request.htmx:  # type: ignore[attr-defined]
        response = HttpResponse(status=204)
        response["HX-Location"] = target
        return response
    return redirect(target)


def _review_context(
    request: HttpRequest, lease: Assignment, form: ReviewForm | None = None
) -> dict[str, Any]:
    user = _user(request)
    pair = lease.campaign_pair.pair
    review = _review_of(lease)
    left, right = (
        (pair.response_a, pair.response_b)
        if lease.left_side == ScreenSide.A
        else (pair.response_b, pair.response_a)
    )
    judgement = (
        final_label.latest_judgement(pair=pair, campaign=lease.campaign_pair.campaign)
        if review is not None
        else None
    )
    return {
        "assignment": lease,
        "campaign": lease.campaign_pair.campaign,
        "pair": pair,
        "question": pair.question,
        "left": left,
        "right": right,
        "review": review,
        "step": "blind" if review is None else ("done" if review.submitted_at else "confirm"),
        "screen_blind": lease.to_screen_side(review.blind_verdict) if review else "",
        "screen_final": lease.to_screen_side(review.final_verdict) if review else "",
        "judge": _judge_view(lease, judgement) if judgement else None,
        # The rest came with the access gate's query (Assignment.objects.for_review_page).
        "subcategories": reviews.list_live_subcategories(
            taxonomy_change_id=lease.taxonomy_change_id  # type: ignore[attr-defined]
        ),
        "settings": _settings_of(lease, user),
        "undoable_id": lease.undoable_id,  # type: ignore[attr-defined]
        "form": form,
    }


def _review_of(lease: Assignment) -> Review | None:
    try:
        return lease.review
    except Review.DoesNotExist:
        return None


def _settings_of(lease: Assignment, user: User) -> ReviewerSettings:
    settings = ReviewerSettings(reviewer=user)  # defaults until the reviewer changes one
    if (blur := getattr(lease, "blur_images", None)) is not None:
        settings.blur_images = blur
    return settings


def _judge_view(lease: Assignment, judgement: Any) -> dict[str, Any]:
    """The judge's numbers on the reviewer's screen sides (left/right)."""
    p_left = judgement.p_a_better if lease.left_side == ScreenSide.A else 1 - judgement.p_a_better
    unsafe = (judgement.p_unsafe_a, judgement.p_unsafe_b)
    if lease.left_side == ScreenSide.B:
        unsafe = unsafe[::-1]
    # The judge's decision, as the final label and the anchoring figures use it: for pairs
    # decided by safety it need not follow p.
    side = final_label.judge_side(judgement)
    prefers = lease.to_screen_side(side) if side else ""
    return {
        "prefers": prefers,
        "confidence": p_left if prefers == "left" else 1 - p_left,
        "p_left": p_left,
        "unsafe_left": unsafe[0],
        "unsafe_right": unsafe[1],
        "orders_agree": judgement.orders_agree,
        "decided_by": judgement.get_decided_by_display(),
        "by_safety": judgement.decided_by == DecidedBy.SAFETY,
        "reasons": judgement.review_reasons,
    }


def _render_review(
    request: HttpRequest, lease: Assignment, form: ReviewForm | None = None, status: int = 200
) -> HttpResponse:
    template = f"{REVIEW_TEMPLATE}#review" if request.htmx else REVIEW_TEMPLATE  # type: ignore[attr-defined]
    response = render(request, template, _review_context(request, lease, form), status=status)
    if request.htmx:  # type: ignore[attr-defined]
        response["HX-Push-Url"] = reverse("annotation:assignment", args=[lease.pk])
    return response


@require_GET
def assignment_page(request: HttpRequest, assignment_id: int) -> HttpResponse:
    lease = access.access_assignment(user=request.user, assignment_id=assignment_id)
    return _render_review(request, lease)


@require_POST
def blind_verdict(request: HttpRequest, assignment_id: int) -> HttpResponseBase:
    """Store the blind verdict; the page then reveals the judge's verdict."""
    lease = access.access_assignment(user=request.user, assignment_id=assignment_id)
    form = ReviewForm(request.POST)
    if not form.is_valid():
        return _render_review(request, lease, form, status=200 if request.htmx else 422)  # type: ignore[attr-defined]
    try:
        review = reviews.give_blind_verdict(
            assignment=lease, verdict=form.cleaned_data["verdict"], details=form.details()
        )
    except DomainError as error:
        messages.error(request, str(error))
        return _after_post(request, lease)
    if request.htmx:  # type: ignore[attr-defined]
        lease.review = review  # the gate's lease plus its new review: no second fetch
        return _render_review(request, lease)
    return redirect("annotation:assignment", assignment_id=lease.pk)


def _after_post(request: HttpRequest, lease: Assignment) -> HttpResponseBase:
    if request.htmx:  # type: ignore[attr-defined]
        return _render_review(
            request, access.access_assignment(user=request.user, assignment_id=lease.pk)
        )
    return redirect("annotation:assignment", assignment_id=lease.pk)


@require_POST
def submit(request: HttpRequest, assignment_id: int) -> HttpResponseBase:
    """Confirm or revise the verdict after the reveal, then go to the next pair."""
    lease = access.access_assignment(user=request.user, assignment_id=assignment_id)
    form = ReviewForm(request.POST)
    if not form.is_valid():
        return _render_review(request, lease, form, status=200 if request.htmx else 422)  # type: ignore[attr-defined]
    try:
        reviews.submit_review(
            assignment=lease, verdict=form.cleaned_data["verdict"], details=form.details()
        )
    except DomainError as error:
        messages.error(request, str(error))
        return _after_post(request, lease)
    return _next(request, lease)


def _next(request: HttpRequest, lease: Assignment) -> HttpResponseBase:
    following = _claim_after(request, lease)
    if following is not None and request.htmx:  # type: ignore[attr-defined]
        return _render_review(
            request, access.access_assignment(user=request.user, assignment_id=following.pk)
        )
    return _go_to(request, following)


@require_POST
def skip(request: HttpRequest, assignment_id: int) -> HttpResponseBase:
    lease = access.access_assignment(user=request.user, assignment_id=assignment_id)
    try:
        assignments.skip_assignment(assignment=lease)
    except DomainError as error:
        messages.error(request, str(error))
    return _next(request, lease)


@require_POST
def undo(request: HttpRequest, assignment_id: int) -> HttpResponseBase:
    """Reopen a submitted review (within its lease) at the confirm step."""
    lease = access.access_assignment(user=request.user, assignment_id=assignment_id)
    try:
        reviews.undo_review(assignment=lease)
    except DomainError as error:
        messages.error(request, str(error))
    return _after_post(request, lease)


@require_POST
def heartbeat(request: HttpRequest, assignment_id: int) -> HttpResponse:
    """Renew the lease while the page is open: 204, or 409 when the pair was lost."""
    lease = access.access_assignment(user=request.user, assignment_id=assignment_id)
    try:
        assignments.renew_lease(assignment=lease)
    except DomainError as error:
        return HttpResponse(str(error), status=409, content_type="text/plain")
    return HttpResponse(status=204)


@require_POST
def prefetch(request: HttpRequest, assignment_id: int) -> HttpResponse:
    """Lease the next pair while the reviewer reads this one, and let the browser load its
    image, so "submit and next" shows it at once."""
    lease = access.access_assignment(user=request.user, assignment_id=assignment_id)
    following = _claim_after(request, lease)
    if following is None:
        return HttpResponse(status=204)
    image_id = (
        Assignment.objects.filter(pk=following.pk)
        .values_list("campaign_pair__pair__question__image_id", flat=True)
        .get()
    )
    return render(request, f"{REVIEW_TEMPLATE}#prefetch", {"next_image_id": image_id})


@require_POST
def reviewer_settings(request: HttpRequest) -> HttpResponseBase:
    form = ReviewerSettingsForm(request.POST)
    form.is_valid()
    reviews.update_reviewer_settings(
        reviewer=_user(request), blur_images=form.cleaned_data.get("blur_images", False)
    )
    messages.success(request, "Settings saved.")
    return redirect(request.POST.get("next_url") or "annotation:home")


@require_GET
def adjudication_queue(request: HttpRequest) -> HttpResponse:
    access.access_adjudications(user=request.user)
    queue = Adjudication.objects.open().select_related(
        "campaign_pair__campaign", "pair__question__subcategory"
    )[:200]
    return render(request, "annotation/adjudication_list.html", {"queue": queue})


@require_http_methods(["GET", "POST"])
def adjudication_page(request: HttpRequest, adjudication_id: int) -> HttpResponseBase:
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
                by=_user(request),
            )
        except DomainError as error:
            messages.error(request, str(error))
        else:
            messages.success(request, f"Pair {adjudication.pair_id} decided.")
            return redirect("annotation:adjudication_queue")
    return _adjudication_page(request, adjudication, form=form)


def _adjudication_page(
    request: HttpRequest,
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
def adjudication_reopen(request: HttpRequest, adjudication_id: int) -> HttpResponseBase:
    """Put a decided pair back in the queue, with the reason in its history."""
    adjudication = access.access_adjudication(user=request.user, adjudication_id=adjudication_id)
    form = ReopenForm(request.POST)
    if not form.is_valid():
        return _adjudication_page(request, adjudication, reopen_form=form, status=422)
    try:
        final_label.reopen_adjudication(
            adjudication=adjudication, by=_user(request), reason=form.cleaned_data["reason"]
        )
    except DomainError as error:
        messages.error(request, str(error))
    else:
        messages.success(request, f"Pair {adjudication.pair_id} is open again.")
    return redirect("annotation:adjudication", adjudication_id=adjudication.pk)


@require_POST
def adjudication_gold(request: HttpRequest, adjudication_id: int) -> HttpResponseBase:
    """Make the adjudicated pair a gold pair of its campaign, with a known verdict."""
    adjudication = access.access_adjudication(user=request.user, adjudication_id=adjudication_id)
    form = GoldVerdictForm(request.POST)
    if not form.is_valid():
        return _adjudication_page(request, adjudication, gold_form=form, status=422)
    campaigns.mark_gold(
        campaign_pair=adjudication.campaign_pair, verdict=form.cleaned_data["gold_verdict"]
    )
    messages.success(request, f"Pair {adjudication.pair_id} is now a gold pair.")
    return redirect("annotation:adjudication", adjudication_id=adjudication.pk)
