"""Admin for the judge side: configurations, runs (read-only counts) and judgements."""

from __future__ import annotations

from django.contrib import admin, messages
from django.contrib.auth.models import User
from django.db.models import QuerySet
from django.http import HttpRequest

from annotation.exceptions import DomainError
from judging.models import JudgeBatch, JudgeConfiguration, Judgement, JudgeRun
from judging.services import cancel_run


@admin.register(JudgeConfiguration)
class JudgeConfigurationAdmin(admin.ModelAdmin[JudgeConfiguration]):
    list_display = ["__str__", "backend", "model_id", "model_revision", "prompt_version", "dtype"]
    list_filter = ["backend"]
    readonly_fields = [f.name for f in JudgeConfiguration._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # a worker resolves them from the judge it loaded, never typed in


_BATCH_FIELDS = ["index", "status", "attempts", "error", "started_at", "finished_at"]


class JudgeBatchInline(admin.TabularInline[JudgeBatch, JudgeRun]):
    model = JudgeBatch
    fields = tuple(_BATCH_FIELDS)
    readonly_fields = _BATCH_FIELDS
    extra = 0
    can_delete = False
    show_change_link = False

    def has_add_permission(self, request: HttpRequest, obj: JudgeRun | None = None) -> bool:
        return False


@admin.register(JudgeRun)
class JudgeRunAdmin(admin.ModelAdmin[JudgeRun]):
    list_display = [
        "pk",
        "backend",
        "model",
        "configuration",
        "status",
        "total",
        "done",
        "failed",
        "pairs_per_second",
    ]
    list_filter = ["status", "backend"]
    list_select_related = ["configuration"]
    readonly_fields = [f.name for f in JudgeRun._meta.fields]
    inlines = [JudgeBatchInline]
    actions = ["cancel_runs"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # runs start from /judging/runs/ or `manage.py judge`

    @admin.action(description="Cancel selected runs", permissions=["change"])
    def cancel_runs(self, request: HttpRequest, queryset: QuerySet[JudgeRun]) -> None:
        by = request.user if isinstance(request.user, User) else None
        for run in queryset:
            try:
                cancel_run(run_id=run.pk, by=by)
                self.message_user(request, f"Cancelled run {run.pk}.")
            except DomainError as exc:
                self.message_user(request, str(exc), level=messages.WARNING)


@admin.register(Judgement)
class JudgementAdmin(admin.ModelAdmin[Judgement]):
    list_display = [
        "pk",
        "pair",
        "configuration",
        "status",
        "prefers_a",
        "p_a_better",
        "decided_by",
        "needs_review",
    ]
    list_filter = ["configuration", "status", "needs_review", "decided_by"]
    list_select_related = ["configuration"]
    raw_id_fields = ["pair", "run"]
    readonly_fields = [f.name for f in Judgement._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False
