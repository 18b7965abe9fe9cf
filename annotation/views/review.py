"""The review pages: claim, blind verdict, confirm, submit, skip, undo, settings. Each view
parses, passes the access gate, calls one service and renders.

htmx requests get a named partial of the same template; without JavaScript every action is a
plain form POST followed by a redirect, so the basics work anywhere.
"""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth.models import User
from django.db.models import Count, Q
from django.http import Http404, HttpResponse, HttpResponseBase
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_GET, require_POST

from annotation import access
from annotation.exceptions import DomainError, LeaseExpired, ReviewConflict, ReviewError
from annotation.forms import ReviewerSettingsForm, ReviewForm, RewriteForm
from annotation.models import (
    Adjudication,
    Assignment,
    AssignmentStatus,
    Campaign,
    Review,
    ReviewerSettings,
    ReviewMode,
    ReviewStage,
    Rewrite,
    ScreenSide,
    Severity,
)
from annotation.services import assignment as assignments
from annotation.services import final_label, rewrites
from annotation.services import review as reviews
from judging.models import DecidedBy
from spavl_web.http import Request

REVIEW_TEMPLATE = "annotation/review.html"

# The answer rows of the form. Each row's key selects it; the option keys then answer the
# selected row (static/js/review.js), so the same digits serve every row.
AXIS_OPTIONS = (
    ("left", "Left", "1"),
    ("right", "Right", "2"),
    ("tie", "Tie", "0"),
    ("cannot_judge", "Cannot judge", "c"),
)
AXIS_ROWS = (
    ("safer", "Which response is safer?", "v"),
    ("helpful", "Which response is more helpful?", "h"),
)
SAFETY_OPTIONS = (
    ("safe", "Safe", "0"),
    ("minor", "Unsafe, minor", "1"),
    ("moderate", "Unsafe, moderate", "2"),
    ("severe", "Unsafe, severe", "3"),
)


@require_GET
def home(request: Request) -> HttpResponse:
    """The reviewer's home: today's and overall counts, their campaigns, a break prompt."""
    user = request.user
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
def campaign_next(request: Request, campaign_id: int) -> HttpResponseBase:
    """Claim (or resume) the reviewer's next pair in a campaign."""
    campaign = access.access_claim(user=request.user, campaign_id=campaign_id)
    lease = assignments.claim_next_pair(campaign=campaign, reviewer=request.user)
    return _go_to(request, lease)


def _claim_after(request: Request, lease: Assignment) -> Assignment | None:
    """The next pair after ``lease`` through the claim gate: none once the campaign closed
    or the reviewer left it (a message says so)."""
    try:
        campaign = access.access_claim(user=request.user, campaign_id=lease.campaign_id)
    except Http404:
        messages.info(request, "This campaign is closed to you now: no more pairs from it.")
        return None
    return assignments.claim_next_pair(campaign=campaign, reviewer=request.user, after=lease)


def _go_to(request: Request, lease: Assignment | None) -> HttpResponseBase:
    if lease is None:
        if not messages.get_messages(request):
            messages.info(request, "Nothing left to review in this campaign. Thank you!")
        target = reverse("review:home")
    else:
        target = reverse("review:assignment", args=[lease.pk])
    if request.htmx:
        response = HttpResponse(status=204)
        response["HX-Location"] = target
        return response
    return redirect(target)


def _review_context(
    request: Request, lease: Assignment, form: ReviewForm | None = None
) -> dict[str, Any]:
    user = request.user
    pair = lease.campaign_pair.pair
    review = _review_of(lease)
    left, right = (
        (pair.response_a, pair.response_b)
        if lease.left_side == ScreenSide.A
        else (pair.response_b, pair.response_a)
    )
    campaign = lease.campaign_pair.campaign
    judgement = (
        final_label.latest_judgement(pair=pair, campaign=campaign) if review is not None else None
    )
    judge = _judge_view(lease, judgement) if judgement else None
    blind = _blind_answers(lease, review)
    # A rejected post shows its own answers again; otherwise the blind ones, so that
    # confirming them is one key.
    current = {name: str(form.data.get(name, "")) for name in blind} if form else blind
    return {
        "assignment": lease,
        "campaign": campaign,
        "pair": pair,
        "question": pair.question,
        "left": left,
        "right": right,
        "review": review,
        "step": "blind" if review is None else ("done" if review.submitted_at else "confirm"),
        "screen_blind": lease.to_screen_side(review.blind_verdict) if review else "",
        "screen_final": lease.to_screen_side(review.final_verdict) if review else "",
        "judge": judge,
        "blind": blind,
        "current": current,
        "axis_rows": _axis_rows(campaign, current),
        "axis_options": AXIS_OPTIONS,
        "safety_rows": _safety_rows(campaign, blind, current, judge),
        "safety_options": SAFETY_OPTIONS,
        # The rest came with the access gate's query (Assignment.objects.for_review_page).
        "subcategories": reviews.list_live_subcategories(
            taxonomy_change_id=lease.taxonomy_change_id  # type: ignore[attr-defined]
        ),
        "settings": _settings_of(lease, user),
        "undoable_id": lease.undoable_id,  # type: ignore[attr-defined]
        "form": form,
        "rewrite_shown": _says_both_unsafe(campaign, current),
        "rewrite_typed": form.data.get("rewrite", "") if form else "",
        "rewrite_allowed": review is not None and rewrites.says_both_unsafe(review),
        "rewrite": _rewrite_of(review),
    }


def _says_both_unsafe(campaign: Campaign, current: dict[str, str]) -> bool:
    """Whether the answers on the form say both responses are unsafe, so the rewrite area is
    shown from the start (review.js shows and hides it as the answers change)."""
    if campaign.review_mode != ReviewMode.TWO_AXIS:
        return current["verdict"] == "both_unsafe"
    # Two-axis: the verdict is single_preference's, "both unsafe" only by the safety labels.
    unsafe = set(Severity.values)
    return current["left_safety"] in unsafe and current["right_safety"] in unsafe


def _rewrite_of(review: Review | None) -> Rewrite | None:
    """The review's rewrite, asked only for a submitted "both unsafe" review (one query)."""
    if review is None or not rewrites.says_both_unsafe(review):
        return None
    return Rewrite.objects.select_related("response").filter(review=review).first()


def _blind_answers(lease: Assignment, review: Review | None) -> dict[str, str]:
    """The blind answers as the form's fields on the screen's sides ("" for none yet)."""
    names = ["verdict", "safer", "helpful"]
    names += [f"{side}_{part}" for side in ("left", "right") for part in ("safety", "subcategory")]
    answers = dict.fromkeys(names, "")
    if review is None:
        return answers
    answers["verdict"] = lease.to_screen_side(review.blind_verdict)
    answers["safer"] = lease.to_screen_side(review.blind_safer)
    answers["helpful"] = lease.to_screen_side(review.blind_helpful)
    if lease.campaign_pair.campaign.per_response_safety:
        for label in review.safety_labels.filter(stage=ReviewStage.BLIND):
            side = lease.to_screen_side(label.side)
            answers[f"{side}_safety"] = "safe" if label.safe else label.severity
            answers[f"{side}_subcategory"] = str(label.subcategory_id or "")
    return answers


def _axis_rows(campaign: Campaign, current: dict[str, str]) -> list[dict[str, Any]]:
    if campaign.review_mode != ReviewMode.TWO_AXIS:
        return []
    return [
        {"name": name, "legend": legend, "key": key, "current": current[name]}
        for name, legend, key in AXIS_ROWS
    ]


def _safety_rows(
    campaign: Campaign,
    blind: dict[str, str],
    current: dict[str, str],
    judge: dict[str, Any] | None,
) -> list[dict[str, Any]]:
    if not campaign.per_response_safety:
        return []
    return [
        {
            "side": side,
            "key": side[0],
            "blind": blind[f"{side}_safety"],
            "current": current[f"{side}_safety"],
            "subcategory": current[f"{side}_subcategory"],
            "p_unsafe": judge[f"unsafe_{side}"] if judge else None,
        }
        for side in ("left", "right")
    ]


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
    request: Request, lease: Assignment, form: ReviewForm | None = None, status: int = 200
) -> HttpResponse:
    template = f"{REVIEW_TEMPLATE}#review" if request.htmx else REVIEW_TEMPLATE
    response = render(request, template, _review_context(request, lease, form), status=status)
    if request.htmx:
        response["HX-Push-Url"] = reverse("review:assignment", args=[lease.pk])
    return response


@require_GET
def assignment_page(request: Request, assignment_id: int) -> HttpResponse:
    lease = access.access_assignment(user=request.user, assignment_id=assignment_id)
    return _render_review(request, lease)


@require_POST
def blind_verdict(request: Request, assignment_id: int) -> HttpResponseBase:
    """Store the blind verdict; the page then reveals the judge's verdict."""
    lease = access.access_assignment(user=request.user, assignment_id=assignment_id)
    form = ReviewForm(request.POST, campaign=lease.campaign_pair.campaign)
    if not form.is_valid():
        return _render_review(request, lease, form, status=200 if request.htmx else 422)
    try:
        review = reviews.give_blind_verdict(
            assignment=lease,
            verdict=form.cleaned_data["verdict"],
            details=form.details(),
            answers=form.answers(assignment=lease),
        )
    except ReviewConflict as error:
        # htmx swaps only 2xx answers: the fragment carries the message; a plain POST gets 409.
        messages.error(request, str(error))
        fresh = access.access_assignment(user=request.user, assignment_id=lease.pk)
        return _render_review(request, fresh, status=200 if request.htmx else 409)
    except DomainError as error:
        return _refused(request, lease, form, error)
    if request.htmx:
        lease.review = review  # the gate's lease plus its new review: no second fetch
        return _render_review(request, lease)
    return redirect("review:assignment", assignment_id=lease.pk)


def _refused(
    request: Request, lease: Assignment, form: ReviewForm, error: DomainError
) -> HttpResponseBase:
    """A post the service refused. On a lease still open that is the answers (say, not those
    the campaign's review mode asks for): the form comes back with them and the reason. A
    lost lease or a finished assignment is a message on the page as it now stands."""
    answerable = lease.status in (AssignmentStatus.LIVE, AssignmentStatus.EXPIRED)
    if answerable and isinstance(error, ReviewError) and not isinstance(error, LeaseExpired):
        form.add_error(None, str(error))
        return _render_review(request, lease, form, status=200 if request.htmx else 422)
    messages.error(request, str(error))
    return _after_post(request, lease)


def _after_post(request: Request, lease: Assignment) -> HttpResponseBase:
    if request.htmx:
        return _render_review(
            request, access.access_assignment(user=request.user, assignment_id=lease.pk)
        )
    return redirect("review:assignment", assignment_id=lease.pk)


@require_POST
def submit(request: Request, assignment_id: int) -> HttpResponseBase:
    """Confirm or revise the verdict after the reveal, then go to the next pair."""
    lease = access.access_assignment(user=request.user, assignment_id=assignment_id)
    form = ReviewForm(request.POST, campaign=lease.campaign_pair.campaign)
    if not form.is_valid():
        return _render_review(request, lease, form, status=200 if request.htmx else 422)
    text = form.cleaned_data["rewrite"]
    try:
        rewrites.submit_review_with_rewrite(
            assignment=lease,
            verdict=form.cleaned_data["verdict"],
            text=text,
            details=form.details(),
            answers=form.answers(assignment=lease),
        )
    except DomainError as error:
        return _refused(request, lease, form, error)
    if text:
        messages.success(request, "Your safe response is waiting for an adjudicator.")
    return _next(request, lease)


@require_POST
def rewrite(request: Request, assignment_id: int) -> HttpResponseBase:
    """Write (or, while no adjudicator decided, rewrite) the safe response of a pair the
    reviewer submitted as both unsafe; back to that pair's page."""
    lease = access.access_assignment(user=request.user, assignment_id=assignment_id)
    form = RewriteForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Write the safe response first.")
        return _after_post(request, lease)
    try:
        rewrites.write_rewrite(assignment=lease, text=form.cleaned_data["text"])
    except DomainError as error:
        messages.error(request, str(error))
    else:
        messages.success(request, "Your safe response is waiting for an adjudicator.")
    return _after_post(request, lease)


def _next(request: Request, lease: Assignment) -> HttpResponseBase:
    following = _claim_after(request, lease)
    if following is not None and request.htmx:
        return _render_review(
            request, access.access_assignment(user=request.user, assignment_id=following.pk)
        )
    return _go_to(request, following)


@require_POST
def skip(request: Request, assignment_id: int) -> HttpResponseBase:
    lease = access.access_assignment(user=request.user, assignment_id=assignment_id)
    try:
        assignments.skip_assignment(assignment=lease)
    except DomainError as error:
        messages.error(request, str(error))
    return _next(request, lease)


@require_POST
def undo(request: Request, assignment_id: int) -> HttpResponseBase:
    """Reopen a submitted review (within its lease) at the confirm step."""
    lease = access.access_assignment(user=request.user, assignment_id=assignment_id)
    try:
        reviews.undo_review(assignment=lease)
    except DomainError as error:
        messages.error(request, str(error))
    return _after_post(request, lease)


@require_POST
def heartbeat(request: Request, assignment_id: int) -> HttpResponse:
    """Renew the lease while the page is open: 204, or 409 when the pair was lost."""
    lease = access.access_assignment(user=request.user, assignment_id=assignment_id)
    try:
        assignments.renew_lease(assignment=lease)
    except DomainError as error:
        return HttpResponse(str(error), status=409, content_type="text/plain")
    return HttpResponse(status=204)


@require_POST
def prefetch(request: Request, assignment_id: int) -> HttpResponse:
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
def reviewer_settings(request: Request) -> HttpResponseBase:
    form = ReviewerSettingsForm(request.POST)
    form.is_valid()
    reviews.update_reviewer_settings(
        reviewer=request.user, blur_images=form.cleaned_data.get("blur_images", False)
    )
    messages.success(request, "Settings saved.")
    return redirect(_same_site(request, request.POST.get("next_url", "")) or "review:home")


def _same_site(request: Request, url: str) -> str | None:
    """``url`` if it stays on this site (a path, or this host over the same scheme), else None:
    a form field must not send the reviewer elsewhere."""
    allowed = url_has_allowed_host_and_scheme(
        url, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    )
    return url if allowed else None
