"""The agreement dashboard page, its htmx partial and its CSV download."""

from __future__ import annotations

import csv
from typing import Any

from django.contrib.auth.models import User
from django.core.cache import cache
from django.db.models import Exists, OuterRef
from django.http import HttpResponse
from django.shortcuts import render
from django.template.loader import render_to_string
from django.utils.safestring import SafeString, mark_safe
from django.views.decorators.http import require_GET

from annotation.access import access_agreement
from annotation.demo.reviews import SIMULATED_PREFIX
from annotation.forms import AgreementFilterForm, InvalidFilters, parse_slice
from annotation.models import Campaign, QuestionType, Review, TaxonomyNode
from annotation.services.agreement import charts
from annotation.services.agreement.cache import TIMEOUT_S, cached_dashboard
from annotation.services.agreement.dashboard import DEFAULT_TARGET, DEFINITIONS, flatten_dashboard
from annotation.services.agreement.queries import AgreementSlice
from annotation.services.agreement.results import CachedDashboard, Dashboard, SafetyRow
from judging.models import JudgeConfiguration, JudgeRun
from spavl_web.http import Request


def filter_options() -> dict[str, Any]:
    reviewed = Review.objects.filter(reviewer=OuterRef("pk"))
    return {
        "nodes": TaxonomyNode.objects.active().order_by("level", "key").only("id", "key", "level"),
        "question_types": QuestionType.choices,
        "runs": JudgeRun.objects.order_by("-created_at").only("id", "status", "created_at")[:50],
        "configurations": JudgeConfiguration.objects.order_by("-created_at")[:50],
        "campaigns": Campaign.objects.order_by("-created_at").only("id", "name")[:100],
        "reviewers": User.objects.filter(Exists(reviewed)).order_by("username").only("username"),
    }


def dashboard_charts(result: Dashboard) -> list[charts.Chart]:
    judge = result["judge_vs_people"]
    reviewers = result["people_vs_people"]["reviewers"]
    safety = result["safety"]["by_category"]
    return [
        charts.interval_bars(
            chart_id="by-category",
            title="Judge agrees with people, by category (raw)",
            axis_label="pairs where judge and people agree",
            rows=[(row["category"], row["percent"]) for row in judge["by_category"]],
        ),
        charts.confusion_matrix(chart_id="confusion", **judge["confusion"]),
        charts.reliability_diagram(chart_id="reliability", bins=result["calibration"]["bins"]),
        charts.interval_bars(
            chart_id="left-side",
            title="Reviewers choosing the left side (50 % expected)",
            axis_label="share of A/B verdicts given to the left side",
            rows=[(r["reviewer"], r["left_side"]) for r in reviewers],
            reference=0.5,
            reference_label="50 % expected",
        ),
        charts.interval_bars(
            chart_id="judge-flips",
            title="Judge flips its verdict when A and B are swapped, by category",
            axis_label="pairs whose two one-order verdicts differ",
            rows=[(row["category"], row["flip"]) for row in result["position_bias"]["by_category"]],
        ),
        charts.interval_bars(
            chart_id="safety",
            title="Unsafe chosen responses by category (red: SPA-VL Table 1)",
            axis_label="chosen responses judged unsafe",
            rows=[(row["category"], row["chosen"]) for row in safety],
            markers=[_table1_chosen(row) for row in safety],
            marker_label="SPA-VL Table 1",
        ),
    ]


def charts_markup(result: CachedDashboard, *, slice_: AgreementSlice, target: float) -> SafeString:
    """Every chart of the dashboard drawn, rendered once per data version, slice and target
    (the figures they draw cannot change without the version) and then served from the cache."""
    version = result["freshness"]["version"]
    key = f"agreement:charts:1:{version}:{slice_.cache_key()}:{target:.4f}"
    markup: str | None = cache.get(key)
    if markup is None:
        markup = render_to_string(
            "annotation/charts.html#grid", {"charts": dashboard_charts(result)}
        )
        cache.set(key, markup, TIMEOUT_S)
    return mark_safe(markup)  # our own template's output, escaped as it was rendered


def _table1_chosen(row: SafetyRow) -> float | None:
    """SPA-VL Table 1's unsafe rate of chosen responses in the row's category, as a share."""
    return (row["spavl"]["chosen"] / 100 or None) if row["spavl"] else None


def simulated_share(result: Dashboard) -> dict[str, object] | None:
    """The slice's reviews by simulated demo reviewers (annotation.demo.reviews), read from the
    reviewer rows so it costs no query; None when there are none."""
    rows = [
        row
        for row in result["people_vs_people"]["reviewers"]
        if row["reviewer"].startswith(SIMULATED_PREFIX) and row["reviews"]
    ]
    if not rows:
        return None
    return {
        "reviews": sum(row["reviews"] for row in rows),
        "reviewers": [r["reviewer"] for r in rows],
    }


@require_GET
def page(request: Request) -> HttpResponse:
    access_agreement(user=request.user)
    template = "annotation/agreement.html" + ("#results" if request.htmx else "")
    try:
        slice_, target = parse_slice(request.GET)
    except InvalidFilters as invalid:
        context = {
            "filter_errors": invalid.errors,
            "form": AgreementFilterForm(request.GET),
            "options": filter_options(),
            "target_pct": round(DEFAULT_TARGET * 100),
        }
        # htmx swaps only 2xx answers: its fragment carries the reasons, a plain GET gets 400.
        return render(request, template, context, status=200 if request.htmx else 400)
    result = cached_dashboard(slice_=slice_, target=target)
    context = {
        "result": result,
        "charts": charts_markup(result, slice_=slice_, target=target),
        "simulated": simulated_share(result),
        "definitions": DEFINITIONS,
        "form": AgreementFilterForm(request.GET),
        "options": filter_options(),
        "query": request.GET.urlencode(),
        "target_pct": round(target * 100),
    }
    return render(request, template, context)


@require_GET
def csv_download(request: Request) -> HttpResponse:
    access_agreement(user=request.user)
    try:
        slice_, target = parse_slice(request.GET)
    except InvalidFilters as invalid:
        return HttpResponse(
            f"Invalid filters: {invalid}\n", status=400, content_type="text/plain; charset=utf-8"
        )
    rows = flatten_dashboard(cached_dashboard(slice_=slice_, target=target))
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = 'attachment; filename="agreement.csv"'
    writer = csv.DictWriter(response, fieldnames=list(rows[0]) if rows else ["section"])
    writer.writeheader()
    writer.writerows({key: spreadsheet_safe(value) for key, value in row.items()} for row in rows)
    return response


FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def spreadsheet_safe(value: object) -> object:
    """A cell a spreadsheet will not run: text starting like a formula (``=``, ``+``, ``-``,
    ``@``, tab, carriage return; OWASP's list) gets a leading apostrophe. Numbers stay numbers,
    negative ones included (a kappa can be below zero)."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value
