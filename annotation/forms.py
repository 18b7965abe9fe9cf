"""Forms of the review, adjudication and export pages. Verdicts are posted as the reviewer saw
them (left/right)."""

from __future__ import annotations

import re
from datetime import date, timedelta

from django import forms
from django.http import QueryDict

from annotation.models import (
    ExportDefinition,
    ExportFormat,
    QuestionType,
    ScreenVerdict,
    TaxonomyNode,
    Verdict,
)
from annotation.services.agreement.dashboard import DEFAULT_TARGET
from annotation.services.agreement.queries import AgreementSlice
from annotation.services.review import ReviewDetails


def live_subcategories() -> forms.ModelChoiceField:
    return forms.ModelChoiceField(
        queryset=TaxonomyNode.objects.active().subcategories(), required=False
    )


class ReviewForm(forms.Form):
    verdict = forms.ChoiceField(choices=ScreenVerdict.choices)
    taxonomy_correction = live_subcategories()
    flag_image_irrelevant = forms.BooleanField(required=False)
    flag_question_malformed = forms.BooleanField(required=False)
    flag_response_truncated = forms.BooleanField(required=False)
    flag_other = forms.BooleanField(required=False)
    note = forms.CharField(required=False, max_length=2000)
    active_seconds = forms.IntegerField(required=False, min_value=0)

    def clean(self) -> dict[str, object]:
        data = super().clean() or {}
        if data.get("flag_other") and not (data.get("note") or "").strip():
            self.add_error("note", "Say what is wrong when you flag “other”.")
        return data

    def details(self) -> ReviewDetails:
        data = self.cleaned_data
        return ReviewDetails(
            taxonomy_correction=data["taxonomy_correction"],
            flag_image_irrelevant=data["flag_image_irrelevant"],
            flag_question_malformed=data["flag_question_malformed"],
            flag_response_truncated=data["flag_response_truncated"],
            flag_other=data["flag_other"],
            note=data["note"],
            active_seconds=data["active_seconds"] or 0,
        )


class AdjudicationForm(forms.Form):
    verdict = forms.ChoiceField(choices=Verdict.choices, required=False)
    exclude = forms.BooleanField(required=False)
    taxonomy_correction = live_subcategories()
    note = forms.CharField(required=False, max_length=2000, widget=forms.Textarea)

    def clean(self) -> dict[str, object]:
        data = super().clean() or {}
        if not data.get("verdict") and not data.get("exclude"):
            raise forms.ValidationError("Choose a verdict or exclude the pair.")
        return data


class ReopenForm(forms.Form):
    """Why a decided adjudication goes back to the queue (kept in its history)."""

    reason = forms.CharField(max_length=2000, strip=True)


class GoldVerdictForm(forms.Form):
    """An adjudicator's known verdict, which makes the pair a gold pair of its campaign."""

    gold_verdict = forms.ChoiceField(choices=Verdict.choices)


class ReviewerSettingsForm(forms.Form):
    blur_images = forms.BooleanField(required=False)


class StartExportForm(forms.Form):
    """Start a job for a saved definition in one format."""

    definition = forms.ModelChoiceField(queryset=ExportDefinition.objects.all())
    format = forms.ChoiceField(choices=ExportFormat.choices)


MAX_ID = 2**63 - 1  # a BigAutoField; larger ids would overflow the query, not match nothing
ISO_WEEK = re.compile(r"^(\d{4})-W(\d{2})$")


def _id_field(label: str | None = None) -> forms.IntegerField:
    return forms.IntegerField(required=False, min_value=1, max_value=MAX_ID, label=label)


class AgreementFilterForm(forms.Form):
    """The agreement slice's query parameters (page, CSV and API alike)."""

    node = _id_field("Domain, category or subcategory")
    question_type = forms.ChoiceField(
        required=False, choices=[("", "all")] + list(QuestionType.choices)
    )
    run = _id_field("Judge run")
    configuration = _id_field("Judge configuration")
    campaign = _id_field()
    reviewer = _id_field()
    week = forms.CharField(required=False, max_length=8, help_text="ISO week, e.g. 2026-W05")
    target = forms.IntegerField(required=False, min_value=50, max_value=100, label="Target %")

    def clean_week(self) -> date | None:
        raw = (self.cleaned_data.get("week") or "").strip()
        if not raw:
            return None
        match = ISO_WEEK.match(raw)
        try:
            if match is None:
                raise ValueError(raw)
            monday = date.fromisocalendar(int(match[1]), int(match[2]), 1)
            monday + timedelta(days=7)  # the week's end must be a date too
        except (ValueError, OverflowError):
            raise forms.ValidationError(
                "use an ISO week such as 2026-W05 (years 1 to 9999, weeks 01 to 53)"
            ) from None
        return monday


class InvalidFilters(ValueError):
    """Query parameters that name no slice; ``errors`` says which and why."""

    def __init__(self, errors: dict[str, list[str]]) -> None:
        super().__init__("; ".join(f"{name}: {' '.join(e)}" for name, e in errors.items()))
        self.errors = errors


def parse_slice(query: QueryDict) -> tuple[AgreementSlice, float]:
    """The slice and agreement target from query parameters. Raises ``InvalidFilters`` (each
    page answers 400 with the reasons) rather than quietly showing another slice."""
    form = AgreementFilterForm(query)
    if not form.is_valid():
        raise InvalidFilters(
            {name: [str(e) for e in errors] for name, errors in form.errors.items()}
        )
    data = form.cleaned_data
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
