from __future__ import annotations

from typing import Any

from django import forms

from annotation.models import QuestionType
from judging.engine.generation_types import SamplingSettings
from judging.models import JudgeBackend, QuestionSelection
from judging.services import PAIR_SELECTIONS, ModelRequest
from judging.services.generation import MAX_NEW_TOKENS, MAX_SAMPLES


class StartRunForm(forms.Form):
    backend = forms.ChoiceField(choices=JudgeBackend.choices, initial=JudgeBackend.BASELINE)
    model = forms.CharField(
        required=False, max_length=300, help_text="Hub id or local path (transformers only)."
    )
    pairs = forms.ChoiceField(choices=[(p, p) for p in PAIR_SELECTIONS], initial="unjudged")
    batch_size = forms.IntegerField(required=False, min_value=1, max_value=10_000)


class StartGenerationForm(forms.Form):
    """A generation run as the page asks for it; the service checks the rest (ranges, ids)."""

    models = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 3, "cols": 40}),
        max_length=5_000,
        help_text="One per line: hub id or local path, optionally ID@REVISION; "
        "baseline:cautious, baseline:helpful and baseline:terse are torch-free stand-ins "
        "(templates, not models).",
    )
    questions = forms.ChoiceField(
        choices=QuestionSelection.choices, initial=QuestionSelection.MISSING
    )
    question_types = forms.MultipleChoiceField(
        choices=[(t.value, t.label) for t in QuestionType if t != QuestionType.UNKNOWN],
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text="None ticked: every type.",
    )
    import_batch = forms.IntegerField(
        required=False, min_value=1, help_text="Only the questions of this import (id)."
    )
    samples = forms.IntegerField(min_value=1, max_value=MAX_SAMPLES, initial=1)
    max_new_tokens = forms.IntegerField(min_value=1, max_value=MAX_NEW_TOKENS, initial=256)
    temperature = forms.FloatField(min_value=0, max_value=10, initial=0.0, help_text="0: greedy.")
    top_p = forms.FloatField(min_value=0.001, max_value=1, initial=1.0)
    seed = forms.IntegerField(min_value=0, max_value=2**31 - 1, initial=0)
    batch_size = forms.IntegerField(
        required=False, min_value=1, max_value=1_000, help_text="Questions per worker task."
    )

    def clean_models(self) -> list[ModelRequest]:
        lines = [line.strip() for line in self.cleaned_data["models"].splitlines()]
        return [ModelRequest.parse(line) for line in lines if line]

    def service_arguments(self) -> dict[str, Any]:
        data = self.cleaned_data
        return {
            "models": data["models"],
            "questions": data["questions"],
            "question_types": data["question_types"],
            "import_batch_id": data["import_batch"],
            "samples": data["samples"],
            "sampling": SamplingSettings(
                max_new_tokens=data["max_new_tokens"],
                temperature=data["temperature"],
                top_p=data["top_p"],
                seed=data["seed"],
            ),
            "batch_size": data["batch_size"],
        }
