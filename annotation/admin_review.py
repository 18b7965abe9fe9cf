"""Admin for review campaigns: rules, reviewers, gold pairs and each reviewer's gold accuracy."""

from __future__ import annotations

from django.contrib import admin
from django.db.models import Count, F, Q
from django.http import HttpRequest
from django.utils.html import format_html_join
from django.utils.safestring import SafeString

from annotation.models import (
    Adjudication,
    Assignment,
    Campaign,
    CampaignPair,
    Review,
    ReviewerSettings,
)


def gold_accuracy(campaign: Campaign) -> list[tuple[str, int, int]]:
    """(reviewer, correct, answered) on the campaign's gold pairs, by final verdict."""
    rows = (
        Review.objects.filter(
            campaign_pair__campaign=campaign, is_gold=True, submitted_at__isnull=False
        )
        .values("reviewer__username")
        .annotate(
            answered=Count("pk"),
            correct=Count("pk", filter=Q(final_verdict=F("campaign_pair__gold_verdict"))),
        )
        .order_by("reviewer__username")
    )
    return [(r["reviewer__username"], r["correct"], r["answered"]) for r in rows]


@admin.register(Campaign)
class CampaignAdmin(admin.ModelAdmin[Campaign]):
    list_display = ["name", "overlap", "lease_minutes", "control_share", "gold_rate", "is_active"]
    list_filter = ["is_active", "judge_policy"]
    filter_horizontal = ["reviewers"]
    readonly_fields = [
        "judge_run",
        "taxonomy_nodes",
        "question_types",
        "flagged_only",
        "seed",
        "created_by",
        "gold_accuracy_table",
    ]
    fields = [
        "name",
        "is_active",
        "reviewers",
        "overlap",
        "lease_minutes",
        "control_share",
        "gold_rate",
        "judge_policy",
        "break_after_reviews",
        "break_after_minutes",
        *readonly_fields,
    ]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # campaigns select pairs: annotation.services.assignment.create_campaign

    @admin.display(description="gold accuracy by reviewer")
    def gold_accuracy_table(self, obj: Campaign) -> SafeString | str:
        rows = gold_accuracy(obj)
        if not rows:
            return "no gold reviews yet"
        return format_html_join(
            "",
            "<div>{}: {} of {} correct ({}%)</div>",
            ((name, ok, n, round(100 * ok / n)) for name, ok, n in rows),
        )


@admin.register(CampaignPair)
class CampaignPairAdmin(admin.ModelAdmin[CampaignPair]):
    list_display = [
        "pk",
        "campaign",
        "pair",
        "priority",
        "in_control_slice",
        "slots_left",
        "is_gold",
    ]
    list_filter = ["campaign", "is_gold", "in_control_slice", "priority"]
    list_select_related = ["campaign"]
    raw_id_fields = ["pair"]
    fields = [
        "campaign",
        "pair",
        "priority",
        "in_control_slice",
        "slots_left",
        "is_gold",
        "gold_verdict",
    ]
    readonly_fields = ["campaign", "pair", "priority", "in_control_slice", "slots_left"]


@admin.register(Assignment)
class AssignmentAdmin(admin.ModelAdmin[Assignment]):
    list_display = ["pk", "campaign", "reviewer", "status", "left_side", "claimed_at", "expires_at"]
    list_filter = ["status", "campaign"]
    list_select_related = ["campaign", "reviewer"]
    readonly_fields = [f.name for f in Assignment._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False


@admin.register(Review)
class ReviewAdmin(admin.ModelAdmin[Review]):
    list_display = [
        "pk",
        "pair",
        "reviewer",
        "blind_verdict",
        "final_verdict",
        "changed_after_reveal",
        "from_control_slice",
        "is_gold",
        "active_seconds",
        "submitted_at",
    ]
    list_filter = ["final_verdict", "changed_after_reveal", "from_control_slice", "is_gold"]
    list_select_related = ["reviewer"]
    readonly_fields = [f.name for f in Review._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False


@admin.register(Adjudication)
class AdjudicationAdmin(admin.ModelAdmin[Adjudication]):
    list_display = ["pk", "pair", "status", "reason", "verdict", "exclude", "decided_by"]
    list_filter = ["status"]
    readonly_fields = [f.name for f in Adjudication._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False


admin.site.register(ReviewerSettings)
