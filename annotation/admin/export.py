"""Admin for export definitions (editable) and export jobs (read-only records)."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from annotation.models import ExportDefinition, ExportJob


@admin.register(ExportDefinition)
class ExportDefinitionAdmin(admin.ModelAdmin[ExportDefinition]):
    list_display = ["name", "final_labels", "split_seed", "formats", "include_provenance"]
    search_fields = ["name"]
    readonly_fields = ["created_by", "created_at"]

    def save_model(
        self, request: HttpRequest, obj: ExportDefinition, form: Any, change: bool
    ) -> None:
        if not change:
            obj.created_by = request.user  # type: ignore[assignment]
        super().save_model(request, obj, form, change)


@admin.register(ExportJob)
class ExportJobAdmin(admin.ModelAdmin[ExportJob]):
    list_display = [
        "id",
        "definition",
        "format",
        "status",
        "done",
        "total",
        "created_by",
        "created_at",
    ]
    list_filter = ["format", "status"]
    readonly_fields = [f.name for f in ExportJob._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
