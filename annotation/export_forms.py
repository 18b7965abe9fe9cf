"""The export page's form: start a job for a saved definition in one format."""

from __future__ import annotations

from django import forms

from annotation.models import ExportDefinition, ExportFormat


class StartExportForm(forms.Form):
    definition = forms.ModelChoiceField(queryset=ExportDefinition.objects.all())
    format = forms.ChoiceField(choices=ExportFormat.choices)
