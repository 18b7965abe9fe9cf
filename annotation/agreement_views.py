"""The agreement dashboard page, its htmx partial and its CSV download."""

from __future__ import annotations

import csv
from datetime import date
from typing import Any

from django import forms
from django.contrib.auth.models import User
from django.db.models import Exists, OuterRef
from django.http import HttpRequest, HttpResponse, QueryDict
from django.shortcuts import render
from django.views.decorators.http import require_GET

from annotation.access import access_agreement
from annotation.agreement import charts
from annotation.agreement.cache import cached_dashboard
from annotation.agreement.dashboard import DEFAULT_TARGET, DEFINITIONS, flatten_dashboard
from annotation.agreement.queries import AgreementSlice
from annotation.demo_reviews import SIMULATED_PREFIX
from annotation.models import Campaign, QuestionType, Review, TaxonomyNode
from judging.models import JudgeConfiguration, JudgeRun


class AgreementFilterForm(forms.Form):
    node = forms.IntegerField(required=False, label="Domain, category or subcategory")
    question_type = forms.ChoiceField(
        required=False, choices=[("", "all")] + list(QuestionType.choices)
    )
    run = forms.IntegerField(required=False, label="Judge run")
    configuration = forms.IntegerField(required=False, label="Judge configuration")
    campaign = forms.IntegerField(required=False)
    reviewer = forms.IntegerField(required=False)
    week = forms.CharField(required=False, help_text="ISO week, e.g. 2026-W05")
    target = forms.IntegerField(required=False, min_value=50, max_value=100, label="Target %")

    def clean_week(self) -> date | None:
        raw = (self.cleaned_data.get("week") or "").strip()
        if not raw:
            return None
        try:
            return date.fromisocalendar(int(raw[:4]), int(raw.split("W")[-1]), 1)
        except ValueError:
            raise forms.ValidationError("use an ISO week such as 2026-W05") from None


def parse_slice(query: QueryDict) -> tuple[AgreementSlice, float]:
    """The slice and agreement target from query parameters; invalid values are ignored."""
    form = AgreementFilterForm(query)
    form.is_valid()
    data = {name: form.cleaned_data.get(name) for name in form.fields if name not in form.errors}
    slice_ = AgreementSlice(
        taxonomy_node_id=data.get("node"),
        question_type=data.get("question_type") or None,
        judge_run_id=data.get("run"),
        configuration_id=data.get("configuration"),
        campaign_id=data.get("campaign"),
        reviewer_id=data.get("reviewer"),
        week=data.get("week"),
    )
    target = data.get("target")
    return slice_, (target / 100 if target else DEFAULT_TARGET)


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


def dashboard_charts(result: dict[str, Any]) -> list[charts.Chart]:
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
            markers=[(row["spavl"] or {}).get("chosen", 0) / 100 or None for row in safety],
            marker_label="SPA-VL Table 1",
        ),
    ]


def simulated_share(result: dict[str, Any]) -> dict[str, Any] | None:
    """The slice's reviews by simulated demo reviewers (annotation.demo_reviews), read from the
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
def agreement(request: HttpRequest) -> HttpResponse:
    access_agreement(user=request.user)
    slice_, target = parse_slice(request.GET)
    result = cached_dashboard(slice_=slice_, target=target)
    context = {
        "result": result,
        "charts": dashboard_charts(result),
        "simulated": simulated_share(result),
        "definitions": DEFINITIONS,
        "form": AgreementFilterForm(request.GET),
        "options": filter_options(),
        "query": request.GET.urlencode(),
        "target_pct": round(target * 100),
    }
    template = "annotation/agreement.html"
    if getattr(request, "htmx", False):
        template += "#results"
    return render(request, template, context)


@require_GET
def agreement_csv(request: HttpRequest) -> HttpResponse:
    access_agreement(user=request.user)
    slice_, target = parse_slice(request.GET)
    rows = flatten_dashboard(cached_dashboard(slice_=slice_, target=target))
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = 'attachment; filename="agreement.csv"'
    writer = csv.DictWriter(response, fieldnames=list(rows[0]) if rows else ["section"])
    writer.writeheader()
    writer.writerows(rows)
    return response
