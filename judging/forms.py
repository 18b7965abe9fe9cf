from __future__ import annotations

from django import forms

from judging.models import JudgeBackend
from judging.services import PAIR_SELECTIONS


class StartRunForm(forms.Form):
    backend = forms.ChoiceField(choices=JudgeBackend.choices, initial=JudgeBackend.BASELINE)
    model = forms.CharField(
        required=False, max_length=300, help_text="Hub id or local path (transformers only)."
    )
    pairs = forms.ChoiceField(choices=[(p, p) for p in PAIR_SELECTIONS], initial="unjudged")
    batch_size = forms.IntegerField(required=False, min_value=1, max_value=10_000)
