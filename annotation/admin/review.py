"""Admin for review campaigns: rules, reviewers, gold pairs and each reviewer's gold accuracy."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.auth.models import User
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db.models import Count, F, Q, QuerySet
from django.forms import BaseForm
from django.http import HttpRequest
from django.utils.html import format_html_join
from django.utils.safestring import SafeString

from annotation.exceptions import DomainError
from annotation.models import (
    Adjudication,
    AdjudicationEvent,
    Assignment,
    Campaign,
    CampaignPair,
    QuestionType,
    Review,
    ReviewerSettings,
    ReviewMode,
    Rewrite,
)
from annotation.services import campaigns
from annotation.services.campaigns import CampaignRules, create_campaign
from annotation.services.review import discard_review


def _actor(request: HttpRequest) -> User | None:
    return request.user if isinstance(request.user, User) else None


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


class CampaignCreateForm(forms.ModelForm[Campaign]):
    """The admin's "add campaign" form: the selection and the rules, saved by create_campaign
    (a plain save would skip the pair selection and the control-slice draw)."""

    question_types = forms.MultipleChoiceField(
        choices=QuestionType.choices,
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text="Empty: all.",
    )
    control_share = forms.FloatField(
        initial=0.15, validators=[MinValueValidator(0.0), MaxValueValidator(1.0)]
    )
    gold_rate = forms.FloatField(
        initial=0.0, validators=[MinValueValidator(0.0), MaxValueValidator(1.0)]
    )
    overlap = forms.IntegerField(initial=1, min_value=1, max_value=campaigns.MAX_OVERLAP)
    lease_minutes = forms.IntegerField(
        initial=10, min_value=1, max_value=campaigns.MAX_LEASE_MINUTES
    )
    # At least one: the review page counts reviews modulo this.
    break_after_reviews = forms.IntegerField(
        initial=40, min_value=1, max_value=campaigns.MAX_BREAK_AFTER
    )
    break_after_minutes = forms.IntegerField(
        initial=45, min_value=1, max_value=campaigns.MAX_BREAK_AFTER
    )
    # Optional, so a form without them (an older script) makes a single-verdict campaign.
    review_mode = forms.ChoiceField(
        choices=ReviewMode.choices, initial=ReviewMode.SINGLE, required=False
    )
    seed = forms.IntegerField(
        required=False,
        min_value=0,
        max_value=2**62,
        help_text="Seed of the control-slice draw; empty: a random one (stored).",
    )

    class Meta:
        model = Campaign
        fields = [
            "name",
            "reviewers",
            "judge_run",
            "taxonomy_nodes",
            "question_types",
            "flagged_only",
            "overlap",
            "lease_minutes",
            "control_share",
            "gold_rate",
            "judge_policy",
            "break_after_reviews",
            "break_after_minutes",
            "review_mode",
            "per_response_safety",
            "seed",
        ]

    def rules(self) -> CampaignRules:
        data = self.cleaned_data
        return CampaignRules(
            overlap=data["overlap"],
            lease_minutes=data["lease_minutes"],
            control_share=data["control_share"],
            gold_rate=data["gold_rate"],
            judge_policy=data["judge_policy"],
            break_after_reviews=data["break_after_reviews"],
            break_after_minutes=data["break_after_minutes"],
            review_mode=data["review_mode"] or ReviewMode.SINGLE,
            per_response_safety=data["per_response_safety"],
        )


# Chosen when the campaign is created and shown read-only after: reviews of one campaign are
# of one shape (check_campaign_rules refuses a change once a review exists).
_FIXED_RULES = ["review_mode", "per_response_safety"]
_RULE_FIELDS = [name for name in CampaignRules.fields() if name not in _FIXED_RULES]


class CampaignChangeForm(forms.ModelForm[Campaign]):
    """The admin's "change campaign" form: checked by the same rules the services apply, and
    saved through them (CampaignAdmin.save_model), never as raw fields."""

    class Meta:
        model = Campaign
        fields = ["name", "is_active", "reviewers", *_RULE_FIELDS]

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if self.errors:
            return data
        try:
            campaigns.check_campaign_rules(
                campaign=Campaign.objects.get(pk=self.instance.pk),
                rules=self.rules(),
                reviewers=len(data["reviewers"]),
            )
        except DomainError as error:
            raise forms.ValidationError(str(error)) from error
        return data

    def rules(self) -> CampaignRules:
        fixed = {name: getattr(self.instance, name) for name in _FIXED_RULES}
        return CampaignRules(**{name: self.cleaned_data[name] for name in _RULE_FIELDS}, **fixed)


@admin.register(Campaign)
class CampaignAdmin(admin.ModelAdmin[Campaign]):
    list_display = ["name", "overlap", "lease_minutes", "control_share", "gold_rate", "is_active"]
    list_filter = ["is_active", "judge_policy", "review_mode"]
    filter_horizontal = ["reviewers"]
    readonly_fields = [
        *_FIXED_RULES,
        "judge_run",
        "taxonomy_nodes",
        "question_types",
        "flagged_only",
        "seed",
        "created_by",
        "pairs_selected",
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

    add_form = CampaignCreateForm
    add_fields = CampaignCreateForm.Meta.fields

    def get_form(
        self, request: HttpRequest, obj: Campaign | None = None, change: bool = False, **kwargs: Any
    ) -> type[forms.ModelForm[Campaign]]:
        kwargs["form"] = self.add_form if obj is None else CampaignChangeForm
        return super().get_form(request, obj, change, **kwargs)

    def get_fields(self, request: HttpRequest, obj: Campaign | None = None) -> Any:
        return self.add_fields if obj is None else super().get_fields(request, obj)

    def get_readonly_fields(self, request: HttpRequest, obj: Campaign | None = None) -> Any:
        return () if obj is None else super().get_readonly_fields(request, obj)

    def save_model(self, request: HttpRequest, obj: Campaign, form: BaseForm, change: bool) -> None:
        if change:
            assert isinstance(form, CampaignChangeForm)
            self._change(obj, form)
            return
        assert isinstance(form, CampaignCreateForm)
        data = form.cleaned_data
        campaign = create_campaign(
            name=data["name"],
            created_by=request.user,  # type: ignore[arg-type]
            reviewers=data["reviewers"],
            judge_run=data["judge_run"],
            taxonomy_nodes=data["taxonomy_nodes"],
            question_types=data["question_types"],
            flagged_only=data["flagged_only"],
            rules=form.rules(),
            seed=data["seed"],
        )
        # The admin goes on with ``obj`` (history entry, redirect): make it the saved campaign.
        obj.pk = campaign.pk
        obj.refresh_from_db()
        obj._state.adding = False
        count = campaign.pairs.count()
        self.message_user(
            request, f"{count} pairs selected for “{campaign.name}”.", messages.SUCCESS
        )

    @staticmethod
    def _change(obj: Campaign, form: CampaignChangeForm) -> None:
        """The edit through the campaign services: reviewers first (an overlap may need the
        new ones), then the rules, the state and the name. The admin view holds a transaction,
        so a refusal anywhere undoes the rest."""
        data = form.cleaned_data
        campaign = campaigns.set_campaign_reviewers(campaign=obj, reviewers=data["reviewers"])
        campaign = campaigns.update_campaign_rules(campaign=campaign, rules=form.rules())
        campaign = campaigns.set_campaign_active(campaign=campaign, active=data["is_active"])
        campaigns.rename_campaign(campaign=campaign, name=data["name"])
        obj.refresh_from_db()

    def save_related(
        self, request: HttpRequest, form: BaseForm, formsets: Any, change: bool
    ) -> None:
        """Nothing: create_campaign and the campaign services saved the reviewers and nodes."""

    @admin.display(description="pairs selected")
    def pairs_selected(self, obj: Campaign) -> int:
        return obj.pairs.count()

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


class GoldForm(forms.ModelForm[CampaignPair]):
    """Gold and its verdict, saved by mark_gold / unmark_gold."""

    class Meta:
        model = CampaignPair
        fields = ["is_gold", "gold_verdict"]

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if data.get("is_gold") and not data.get("gold_verdict"):
            self.add_error("gold_verdict", "A gold pair needs its known verdict.")
        if not data.get("is_gold"):
            data["gold_verdict"] = ""
        return data

    def _post_clean(self) -> None:
        """No model validation of the raw fields: the services decide."""


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
    form = GoldForm

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # pairs join a campaign when it is created

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # its reviews and leases would go with it

    def save_model(
        self, request: HttpRequest, obj: CampaignPair, form: BaseForm, change: bool
    ) -> None:
        if form.cleaned_data["is_gold"]:
            campaigns.mark_gold(campaign_pair=obj, verdict=form.cleaned_data["gold_verdict"])
        else:
            campaigns.unmark_gold(campaign_pair=obj)
        obj.refresh_from_db()


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

    def delete_model(self, request: HttpRequest, obj: Review) -> None:
        discard_review(review=obj, by=_actor(request))

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Review]) -> None:
        for review in queryset.order_by("pk"):
            discard_review(review=review, by=_actor(request))


class AdjudicationEventInline(admin.TabularInline[AdjudicationEvent, Adjudication]):
    model = AdjudicationEvent
    fields = ["at", "action", "verdict", "exclude", "taxonomy_correction", "note", "by"]
    readonly_fields = fields  # type: ignore[assignment]  # same names, narrower type
    extra = 0
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Adjudication)
class AdjudicationAdmin(admin.ModelAdmin[Adjudication]):
    """Read-only: adjudicators decide and reopen on the adjudication page."""

    list_display = ["pk", "pair", "status", "reason", "verdict", "exclude", "decided_by"]
    list_filter = ["status"]
    readonly_fields = [f.name for f in Adjudication._meta.fields]
    inlines = [AdjudicationEventInline]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Rewrite)
class RewriteAdmin(admin.ModelAdmin[Rewrite]):
    """Read-only: reviewers write rewrites on the review page, adjudicators accept or reject
    them on the rewrites page (annotation.services.rewrites)."""

    list_display = ["pk", "source_pair", "new_pair", "status", "decided_by", "created_at"]
    list_filter = ["status"]
    readonly_fields = [f.name for f in Rewrite._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


admin.site.register(ReviewerSettings)
