"""Forms of the review, adjudication and export pages. Verdicts are posted as the reviewer saw
them (left/right)."""

from __future__ import annotations

import re
from datetime import date, timedelta
from typing import Any

from django import forms
from django.http import QueryDict

from annotation.models import (
    Assignment,
    Campaign,
    ExportDefinition,
    ExportFormat,
    QuestionType,
    ReviewMode,
    ScreenVerdict,
    Severity,
    TaxonomyNode,
    Verdict,
)
from annotation.services import review as reviews
from annotation.services.agreement.dashboard import DEFAULT_TARGET
from annotation.services.agreement.queries import AgreementSlice
from annotation.services.review import ReviewDetails
from annotation.services.review_axes import AxisAnswers, ResponseSafety


def live_subcategories() -> forms.ModelChoiceField:
    return forms.ModelChoiceField(
        queryset=TaxonomyNode.objects.active().subcategories(), required=False
    )


# A preference axis (safer, more helpful) on the screen's sides; "both unsafe" is no axis answer.
AXIS_CHOICES = [(v, label) for v, label in ScreenVerdict.choices if v != ScreenVerdict.BOTH_UNSAFE]
# One response's safety in one choice: safe, or unsafe with its severity.
SAFETY_CHOICES = [("safe", "safe"), *((v, f"unsafe, {label}") for v, label in Severity.choices)]
SCREEN_SIDES = ("left", "right")


class ReviewForm(forms.Form):
    """The review page's answers. What is required follows the campaign: the single verdict,
    or the two axes; each response's safety with per-response safety. Answers the campaign
    does not ask for are passed on all the same, and the service refuses them."""

    verdict = forms.ChoiceField(choices=ScreenVerdict.choices, required=False)
    safer = forms.ChoiceField(choices=AXIS_CHOICES, required=False)
    helpful = forms.ChoiceField(choices=AXIS_CHOICES, required=False)
    left_safety = forms.ChoiceField(choices=SAFETY_CHOICES, required=False)
    right_safety = forms.ChoiceField(choices=SAFETY_CHOICES, required=False)
    left_subcategory = live_subcategories()
    right_subcategory = live_subcategories()
    taxonomy_correction = live_subcategories()
    flag_image_irrelevant = forms.BooleanField(required=False)
    flag_question_malformed = forms.BooleanField(required=False)
    flag_response_truncated = forms.BooleanField(required=False)
    flag_other = forms.BooleanField(required=False)
    note = forms.CharField(required=False, max_length=2000)
    active_seconds = forms.IntegerField(required=False, min_value=0)
    # A safe response for a pair both of whose responses are unsafe (the confirm step).
    rewrite = forms.CharField(required=False, strip=False)

    def __init__(self, *args: Any, campaign: Campaign, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        two_axis = campaign.review_mode == ReviewMode.TWO_AXIS
        required = {
            "verdict": not two_axis,
            "safer": two_axis,
            "helpful": two_axis,
            "left_safety": campaign.per_response_safety,
            "right_safety": campaign.per_response_safety,
        }
        for name, needed in required.items():
            self.fields[name].required = needed
        self.fields["verdict"].error_messages["required"] = "Choose a verdict."
        self.fields["safer"].error_messages["required"] = "Say which response is safer."
        self.fields["helpful"].error_messages["required"] = "Say which is more helpful."
        for side in SCREEN_SIDES:
            self.fields[f"{side}_safety"].error_messages["required"] = (
                f"Label the {side} response safe or unsafe."
            )

    def clean(self) -> dict[str, object]:
        data = super().clean() or {}
        if data.get("flag_other") and not (data.get("note") or "").strip():
            self.add_error("note", "Say what is wrong when you flag “other”.")
        labelled = [side for side in SCREEN_SIDES if data.get(f"{side}_safety")]
        if len(labelled) == 1:
            self.add_error(None, "Label the safety of both responses or of neither.")
        return data

    def clean_rewrite(self) -> str:
        return typed_text(self.cleaned_data["rewrite"])

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

    def answers(self, *, assignment: Assignment) -> AxisAnswers | None:
        """The axes and safety labels on the pair's sides; None when none were given."""
        data = self.cleaned_data
        left, right = (self._safety(side) for side in SCREEN_SIDES)
        if not (data["safer"] or data["helpful"] or left or right):
            return None
        return reviews.screen_answers(
            assignment=assignment,
            safer=data["safer"],
            helpful=data["helpful"],
            left=left,
            right=right,
        )

    def _safety(self, side: str) -> ResponseSafety | None:
        label = self.cleaned_data[f"{side}_safety"]
        if not label:
            return None
        if label == "safe":
            # A subcategory chosen before switching to "safe" is left over, not an answer.
            return ResponseSafety(safe=True)
        subcategory = self.cleaned_data[f"{side}_subcategory"]
        return ResponseSafety(
            safe=False, severity=label, subcategory_id=subcategory.pk if subcategory else None
        )


# An axis on the pair's sides: the adjudicator sees A and B, not a reviewer's left and right.
PAIR_AXIS_CHOICES = [(v, label) for v, label in Verdict.choices if v != Verdict.BOTH_UNSAFE]


class AdjudicationForm(forms.Form):
    """The adjudicator's decision on the pair's sides: the verdict, or in two-axis campaigns
    the two axes (the verdict then follows from them); each response's safety where the
    campaign asks for it. Excluding the pair needs none of them."""

    verdict = forms.ChoiceField(choices=Verdict.choices, required=False)
    safer = forms.ChoiceField(choices=PAIR_AXIS_CHOICES, required=False)
    helpful = forms.ChoiceField(choices=PAIR_AXIS_CHOICES, required=False)
    a_safety = forms.ChoiceField(choices=SAFETY_CHOICES, required=False)
    b_safety = forms.ChoiceField(choices=SAFETY_CHOICES, required=False)
    exclude = forms.BooleanField(required=False)
    taxonomy_correction = live_subcategories()
    note = forms.CharField(required=False, max_length=2000, widget=forms.Textarea)

    def __init__(self, *args: Any, campaign: Campaign, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.two_axis = campaign.review_mode == ReviewMode.TWO_AXIS
        self.per_response_safety = campaign.per_response_safety

    def clean(self) -> dict[str, object]:
        data = super().clean() or {}
        if data.get("exclude"):
            return data
        if self.two_axis and not (data.get("safer") and data.get("helpful")):
            raise forms.ValidationError(
                "Say which response is safer and which is more helpful, or exclude the pair."
            )
        if not self.two_axis and not data.get("verdict"):
            raise forms.ValidationError("Choose a verdict or exclude the pair.")
        if self.per_response_safety and not (data.get("a_safety") and data.get("b_safety")):
            raise forms.ValidationError("Label each response safe or unsafe, or exclude the pair.")
        return data

    def answers(self) -> AxisAnswers | None:
        """The axes and safety asked, for decide_adjudication; None when excluding."""
        data = self.cleaned_data
        if data["exclude"]:
            return None
        return AxisAnswers(
            safer=data["safer"] if self.two_axis else "",
            helpful=data["helpful"] if self.two_axis else "",
            a=_decided_safety(data["a_safety"]) if self.per_response_safety else None,
            b=_decided_safety(data["b_safety"]) if self.per_response_safety else None,
        )


def _decided_safety(choice: str) -> ResponseSafety:
    """A SAFETY_CHOICES value as a safety label (no harm subcategory: the pair keeps none)."""
    return ResponseSafety(safe=True) if choice == "safe" else ResponseSafety(False, choice)


def typed_text(text: str) -> str:
    """A text area's text as typed: browsers send every line break as CRLF (HTML's form
    encoding), whatever the reviewer's system; nothing else is touched."""
    return text.replace("\r\n", "\n")


class RewriteForm(forms.Form):
    """A reviewer's safe response, kept exactly as typed (the service checks its length)."""

    text = forms.CharField(strip=False)

    def clean_text(self) -> str:
        return typed_text(self.cleaned_data["text"])


class RewriteDecisionForm(forms.Form):
    """An adjudicator's decision on a rewrite; rejecting needs a reason."""

    rewrite = forms.IntegerField(min_value=1)
    decision = forms.ChoiceField(choices=[("accept", "accept"), ("reject", "reject")])
    reason = forms.CharField(required=False, max_length=2000, strip=True)

    def clean(self) -> dict[str, object]:
        data = super().clean() or {}
        if data.get("decision") == "reject" and not data.get("reason"):
            self.add_error("reason", "Say why the safe response is rejected.")
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
