"""Forms of the review pages. Verdicts are posted as the reviewer saw them (left/right)."""

from __future__ import annotations

from django import forms

from annotation.models import ScreenVerdict, TaxonomyNode, Verdict
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
