"""Review campaigns, leases on pairs, people's reviews, adjudication, reviewer settings.

A campaign selects pairs (``CampaignPair``); a reviewer claims one through an ``Assignment``
(a lease that expires); a ``Review`` holds the blind verdict given before the judge's verdict
was revealed and the final verdict given after, both on the pair's own sides (a/b), never on
screen sides (left/right), which differ per assignment.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from django.conf import settings
from django.db import models
from django.db.models import OuterRef, Q, Subquery
from django.utils import timezone

from annotation.models.dataset import (
    Pair,
    Severity,
    TaxonomyChange,
    TaxonomyLevel,
    TaxonomyNode,
)

__all__ = [
    "Adjudication",
    "AdjudicationAction",
    "AdjudicationEvent",
    "AdjudicationQuerySet",
    "AdjudicationStatus",
    "Assignment",
    "AssignmentQuerySet",
    "AssignmentStatus",
    "Campaign",
    "CampaignPair",
    "JudgePolicy",
    "Review",
    "ReviewerSettings",
    "AXIS_VERDICTS",
    "ResponseSafetyLabel",
    "ReviewMode",
    "ReviewStage",
    "ScreenSide",
    "ScreenVerdict",
    "Verdict",
]


class Verdict(models.TextChoices):
    """A verdict on the pair's own sides."""

    A = "a", "response A better"
    B = "b", "response B better"
    TIE = "tie", "tie (both acceptable)"
    BOTH_UNSAFE = "both_unsafe", "both unsafe"
    CANNOT_JUDGE = "cannot_judge", "cannot judge"


class ScreenVerdict(models.TextChoices):
    """A verdict as the reviewer sees the screen; mapped to ``Verdict`` by the assignment."""

    LEFT = "left", "left better"
    RIGHT = "right", "right better"
    TIE = "tie", "tie (both acceptable)"
    BOTH_UNSAFE = "both_unsafe", "both unsafe"
    CANNOT_JUDGE = "cannot_judge", "cannot judge"


class ReviewMode(models.TextChoices):
    """What a campaign's reviewers answer (set when it is created)."""

    SINGLE = "single", "one preference (SPA-VL)"
    TWO_AXIS = "two-axis", "safer and more helpful, separately"


# The answers of a preference axis (safer, more helpful), on the pair's sides.
AXIS_VERDICTS = ("a", "b", "tie", "cannot_judge")


class ScreenSide(models.TextChoices):
    A = "a", "A on the left"
    B = "b", "B on the left"


class JudgePolicy(models.TextChoices):
    REVIEWERS_ONLY = "reviewers", "adjudicate when reviewers disagree with each other"
    WITH_JUDGE = "with_judge", "also adjudicate when reviewers overrule the judge"


class Campaign(models.Model):
    """A selection of pairs to review and the rules for handing them out."""

    name = models.CharField(max_length=200)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    is_active = models.BooleanField(default=True)
    reviewers = models.ManyToManyField(
        settings.AUTH_USER_MODEL, blank=True, related_name="review_campaigns"
    )
    # The selection, kept to show how the campaign was made; the pairs are CampaignPair rows.
    judge_run = models.ForeignKey(
        "judging.JudgeRun", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    taxonomy_nodes = models.ManyToManyField(
        TaxonomyNode, blank=True, related_name="+", help_text="Any level; empty: all."
    )
    question_types = models.JSONField(default=list, blank=True, help_text="Empty: all.")
    flagged_only = models.BooleanField(default=False, help_text="Only pairs the judge flagged.")
    # The rules.
    overlap = models.PositiveSmallIntegerField(default=1, help_text="Reviews needed per pair.")
    lease_minutes = models.PositiveSmallIntegerField(default=10)
    control_share = models.FloatField(default=0.15)
    gold_rate = models.FloatField(default=0.0)
    judge_policy = models.CharField(
        max_length=16, choices=JudgePolicy.choices, default=JudgePolicy.REVIEWERS_ONLY
    )
    seed = models.BigIntegerField(help_text="Seed of the control-slice draw.")
    break_after_reviews = models.PositiveSmallIntegerField(default=40)
    break_after_minutes = models.PositiveSmallIntegerField(default=45)
    # What reviewers answer: fixed at creation (reviews of one campaign are of one shape).
    review_mode = models.CharField(
        max_length=16,
        choices=ReviewMode.choices,
        default=ReviewMode.SINGLE,
        db_default=ReviewMode.SINGLE,
    )
    per_response_safety = models.BooleanField(
        default=False,
        db_default=False,
        help_text="Reviewers also label each response safe or unsafe.",
    )

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.CheckConstraint(condition=Q(overlap__gte=1), name="campaign_overlap_positive"),
            models.CheckConstraint(
                condition=Q(lease_minutes__gte=1), name="campaign_lease_positive"
            ),
            models.CheckConstraint(
                condition=Q(control_share__gte=0, control_share__lte=1),
                name="campaign_control_share_is_a_share",
            ),
            models.CheckConstraint(
                condition=Q(gold_rate__gte=0, gold_rate__lte=1),
                name="campaign_gold_rate_is_a_share",
            ),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def lease(self) -> timedelta:
        return timedelta(minutes=self.lease_minutes)


class CampaignPair(models.Model):
    """A pair in a campaign. ``slots_left`` counts down with live leases and submitted reviews,
    so the claim query reads one indexed row instead of counting assignments."""

    # No index of its own: campaign_pair_unique (campaign, pair) leads with it, and every
    # claim rewrites this row, so each index here is paid on every claim.
    campaign = models.ForeignKey(
        Campaign, on_delete=models.CASCADE, related_name="pairs", db_index=False
    )
    pair = models.ForeignKey(Pair, on_delete=models.CASCADE, related_name="campaign_pairs")
    priority = models.SmallIntegerField(default=0, help_text="Higher first; judge-flagged: 1.")
    rank = models.PositiveIntegerField(help_text="Seeded random order; breaks ties uniformly.")
    in_control_slice = models.BooleanField(default=False)
    slots_left = models.PositiveSmallIntegerField()
    is_gold = models.BooleanField(default=False)
    gold_verdict = models.CharField(max_length=16, choices=Verdict.choices, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["campaign", "pair"], name="campaign_pair_unique"),
            models.CheckConstraint(
                condition=Q(is_gold=False, gold_verdict="")
                | Q(is_gold=True, gold_verdict__in=list(Verdict.values)),
                name="campaign_pair_gold_has_verdict",
            ),
        ]
        indexes = [
            models.Index(
                "campaign",
                "in_control_slice",
                models.F("priority").desc(),
                "slots_left",
                "rank",
                condition=Q(slots_left__gt=0, is_gold=False),
                name="campaign_pair_open_queue",
            ),
            # The control slice ignores priority: without its own order the claim sorts it all.
            models.Index(
                "campaign",
                "slots_left",
                "rank",
                condition=Q(slots_left__gt=0, is_gold=False, in_control_slice=True),
                name="campaign_pair_control_queue",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.campaign} · pair {self.pair_id}"


class AssignmentStatus(models.TextChoices):
    LIVE = "live", "live lease"
    SUBMITTED = "submitted", "submitted"
    SKIPPED = "skipped", "skipped"
    EXPIRED = "expired", "expired"


class AssignmentQuerySet(models.QuerySet["Assignment"]):
    def live(self, *, now: datetime | None = None) -> AssignmentQuerySet:
        return self.filter(status=AssignmentStatus.LIVE, expires_at__gt=now or timezone.now())

    def stale(self, *, now: datetime | None = None) -> AssignmentQuerySet:
        return self.filter(status=AssignmentStatus.LIVE, expires_at__lte=now or timezone.now())

    def for_review_page(self, *, now: datetime | None = None) -> AssignmentQuerySet:
        """Everything the review page shows, in one query: the pair, the review so far, the
        reviewer's blur setting (``blur_images``, None for the default), the last undoable
        assignment (``undoable_id``) and the latest taxonomy change (``taxonomy_change_id``,
        the key of the cached subcategory list)."""
        undoable = (
            Assignment.objects.filter(
                reviewer=OuterRef("reviewer"),
                status=AssignmentStatus.SUBMITTED,
                expires_at__gt=now or timezone.now(),
            )
            .order_by("-finished_at", "-id")
            .values("pk")[:1]
        )
        latest_change = TaxonomyChange.objects.order_by("-version", "-pk").values("pk")[:1]
        # Subqueries, not joins: each join adds about a millisecond of planning to this query.
        blur = ReviewerSettings.objects.filter(reviewer=OuterRef("reviewer")).values("blur_images")
        return (
            self.select_related(
                "campaign_pair__campaign",
                "campaign_pair__pair__question__subcategory__parent__parent",
                "campaign_pair__pair__response_a",
                "campaign_pair__pair__response_b",
                "review",
            )
            .defer("campaign_pair__pair__question__image__data")
            .annotate(
                undoable_id=Subquery(undoable),
                taxonomy_change_id=Subquery(latest_change),
                blur_images=Subquery(blur[:1]),
            )
        )


class Assignment(models.Model):
    """A reviewer's lease on a campaign pair, with the screen side drawn for them."""

    # Indexed by assignment_once_per_reviewer (campaign_pair, reviewer), which leads with it.
    campaign_pair = models.ForeignKey(
        CampaignPair, on_delete=models.CASCADE, related_name="assignments", db_index=False
    )
    # No plain index: every lookup by campaign is of live leases (the partial indexes below),
    # and with a fresh campaign's stale statistics the planner took a plain one for the
    # claim's live-lease check and read every lease of the campaign on every claim.
    campaign = models.ForeignKey(
        Campaign, on_delete=models.CASCADE, related_name="assignments", db_index=False
    )
    reviewer = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="assignments"
    )
    left_side = models.CharField(max_length=1, choices=ScreenSide.choices)
    status = models.CharField(
        max_length=16, choices=AssignmentStatus.choices, default=AssignmentStatus.LIVE
    )
    from_control_slice = models.BooleanField(default=False)
    is_gold = models.BooleanField(default=False)
    claimed_at = models.DateTimeField()
    expires_at = models.DateTimeField()
    heartbeat_at = models.DateTimeField()
    finished_at = models.DateTimeField(null=True, blank=True)

    objects = AssignmentQuerySet.as_manager()

    class Meta:
        ordering = ["claimed_at", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["campaign_pair", "reviewer"], name="assignment_once_per_reviewer"
            ),
            models.CheckConstraint(
                condition=Q(status__in=AssignmentStatus.values), name="assignment_status_valid"
            ),
            models.CheckConstraint(
                condition=Q(left_side__in=ScreenSide.values), name="assignment_side_valid"
            ),
        ]
        indexes = [
            # The two hot lookups: a reviewer's live lease, and stale leases to return.
            models.Index(
                fields=["reviewer", "campaign", "expires_at"],
                condition=Q(status="live"),
                name="assignment_live_by_reviewer",
            ),
            models.Index(
                fields=["campaign", "expires_at"],
                condition=Q(status="live"),
                name="assignment_live_by_expiry",
            ),
        ]

    def __str__(self) -> str:
        return f"assignment {self.pk} ({self.status})"

    def to_pair_side(self, verdict: str) -> str:
        """Map a screen verdict (left/right/...) to a pair verdict (a/b/...)."""
        right_side = Verdict.B if self.left_side == ScreenSide.A else Verdict.A
        return {ScreenVerdict.LEFT: self.left_side, ScreenVerdict.RIGHT: right_side}.get(
            ScreenVerdict(verdict), verdict
        )

    def to_screen_side(self, verdict: str) -> str:
        """Map a pair verdict (a/b/...) to what the reviewer saw (left/right/...)."""
        if verdict not in (Verdict.A, Verdict.B):
            return verdict
        return ScreenVerdict.LEFT if verdict == self.left_side else ScreenVerdict.RIGHT

    def is_live(self, *, now: datetime | None = None) -> bool:
        return self.status == AssignmentStatus.LIVE and self.expires_at > (now or timezone.now())


class Review(models.Model):
    """One person's review of one pair, blind first, then after the judge's verdict."""

    assignment = models.OneToOneField(Assignment, on_delete=models.CASCADE, related_name="review")
    campaign_pair = models.ForeignKey(
        CampaignPair, on_delete=models.CASCADE, related_name="reviews"
    )
    pair = models.ForeignKey(Pair, on_delete=models.CASCADE, related_name="reviews")
    reviewer = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="reviews"
    )
    # The single preference: as given in single mode; in two-axis mode derived from the axes
    # and per-response safety by annotation.services.review_axes.single_preference.
    blind_verdict = models.CharField(max_length=16, choices=Verdict.choices)
    final_verdict = models.CharField(max_length=16, choices=Verdict.choices, blank=True)
    # Two-axis campaigns: which response is safer, which more helpful (AXIS_VERDICTS), blind
    # and after the reveal; empty in single mode.
    blind_safer = models.CharField(
        max_length=16, choices=Verdict.choices, blank=True, default="", db_default=""
    )
    final_safer = models.CharField(
        max_length=16, choices=Verdict.choices, blank=True, default="", db_default=""
    )
    blind_helpful = models.CharField(
        max_length=16, choices=Verdict.choices, blank=True, default="", db_default=""
    )
    final_helpful = models.CharField(
        max_length=16, choices=Verdict.choices, blank=True, default="", db_default=""
    )
    revealed_at = models.DateTimeField()
    submitted_at = models.DateTimeField(null=True, blank=True)
    changed_after_reveal = models.BooleanField(default=False)
    from_control_slice = models.BooleanField(default=False)
    # The assignment's left side, copied here so the agreement dashboard reads reviewers'
    # position bias without joining every assignment (a review never changes its side).
    left_side = models.CharField(max_length=1, choices=ScreenSide.choices, blank=True)
    # The campaign pair's sampling stratum (campaign, judge-flagged; the control slice is
    # from_control_slice), copied for the same reason: the dashboard's inverse-probability
    # weights group reviews by it without joining each review to its campaign pair. None of
    # them changes once the campaign exists. No database constraint: campaign_pair has one.
    campaign = models.ForeignKey(
        Campaign, on_delete=models.CASCADE, related_name="+", db_index=False, db_constraint=False
    )
    flagged = models.BooleanField(default=False)
    is_gold = models.BooleanField(default=False)
    active_seconds = models.PositiveIntegerField(default=0)
    taxonomy_correction = models.ForeignKey(
        TaxonomyNode,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        limit_choices_to={"level": TaxonomyLevel.SUBCATEGORY},
    )
    taxonomy_version = models.PositiveIntegerField(default=0)
    flag_image_irrelevant = models.BooleanField(default=False)
    flag_question_malformed = models.BooleanField(default=False)
    flag_response_truncated = models.BooleanField(default=False)
    flag_other = models.BooleanField(default=False)
    note = models.TextField(blank=True, max_length=2000)

    class Meta:
        ordering = ["-submitted_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["campaign_pair", "reviewer"], name="review_once_per_reviewer"
            ),
            models.CheckConstraint(
                condition=Q(blind_verdict__in=Verdict.values), name="review_blind_verdict_valid"
            ),
            models.CheckConstraint(
                condition=Q(final_verdict="", submitted_at__isnull=True)
                | Q(final_verdict__in=Verdict.values, submitted_at__isnull=False),
                name="review_submitted_has_final_verdict",
            ),
            models.CheckConstraint(
                condition=Q(blind_safer__in=["", *AXIS_VERDICTS])
                & Q(final_safer__in=["", *AXIS_VERDICTS])
                & Q(blind_helpful__in=["", *AXIS_VERDICTS])
                & Q(final_helpful__in=["", *AXIS_VERDICTS]),
                name="review_axis_verdicts_valid",
            ),
        ]

    def __str__(self) -> str:
        return f"review of pair {self.pair_id} by {self.reviewer_id}"

    @property
    def is_flagged(self) -> bool:
        return (
            self.flag_image_irrelevant
            or self.flag_question_malformed
            or self.flag_response_truncated
            or self.flag_other
        )

    @property
    def flags(self) -> list[str]:
        names = {
            "flag_image_irrelevant": "image irrelevant",
            "flag_question_malformed": "question malformed",
            "flag_response_truncated": "response truncated",
            "flag_other": "other",
        }
        return [label for field, label in names.items() if getattr(self, field)]


class ReviewStage(models.TextChoices):
    BLIND = "blind", "before the judge's verdict was shown"
    FINAL = "final", "after the reveal"


class ResponseSafetyLabel(models.Model):
    """A reviewer's safety label of one response of the pair (campaigns with per-response
    safety): safe, or unsafe with a severity and optionally the harm subcategory; one per
    review, side and stage, so the blind answer is kept beside the revised one."""

    review = models.ForeignKey(Review, on_delete=models.CASCADE, related_name="safety_labels")
    side = models.CharField(max_length=1, choices=[("a", "response A"), ("b", "response B")])
    stage = models.CharField(max_length=5, choices=ReviewStage.choices)
    safe = models.BooleanField()
    severity = models.CharField(max_length=8, choices=Severity.choices, blank=True)
    subcategory = models.ForeignKey(
        TaxonomyNode,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        limit_choices_to={"level": TaxonomyLevel.SUBCATEGORY},
    )

    class Meta:
        ordering = ["review", "stage", "side"]
        constraints = [
            models.UniqueConstraint(
                fields=["review", "side", "stage"], name="safety_label_once_per_side_and_stage"
            ),
            models.CheckConstraint(
                condition=Q(safe=True, severity="", subcategory__isnull=True)
                | Q(safe=False, severity__in=Severity.values),
                name="safety_label_severity_iff_unsafe",
            ),
        ]

    def __str__(self) -> str:
        verdict = "safe" if self.safe else f"unsafe ({self.severity})"
        return f"review {self.review_id} {self.stage} {self.side}: {verdict}"


class AdjudicationStatus(models.TextChoices):
    OPEN = "open", "waiting for an adjudicator"
    DECIDED = "decided", "decided"


class AdjudicationQuerySet(models.QuerySet["Adjudication"]):
    def open(self) -> AdjudicationQuerySet:
        return self.filter(status=AdjudicationStatus.OPEN)


class Adjudication(models.Model):
    """A pair the rules could not settle, and the adjudicator's decision on it."""

    campaign_pair = models.OneToOneField(
        CampaignPair, on_delete=models.CASCADE, related_name="adjudication"
    )
    pair = models.ForeignKey(Pair, on_delete=models.CASCADE, related_name="adjudications")
    reason = models.CharField(max_length=300)
    status = models.CharField(
        max_length=16, choices=AdjudicationStatus.choices, default=AdjudicationStatus.OPEN
    )
    verdict = models.CharField(max_length=16, choices=Verdict.choices, blank=True)
    exclude = models.BooleanField(default=False)
    taxonomy_correction = models.ForeignKey(
        TaxonomyNode, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    note = models.TextField(blank=True, max_length=2000)
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    decided_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    objects = AdjudicationQuerySet.as_manager()

    class Meta:
        ordering = ["created_at", "id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(status__in=AdjudicationStatus.values),
                name="adjudication_status_valid",
            ),
            models.CheckConstraint(
                condition=Q(status="open") | Q(verdict__in=Verdict.values) | Q(exclude=True),
                name="adjudication_decided_has_verdict",
            ),
        ]
        indexes = [
            models.Index(
                fields=["created_at"], condition=Q(status="open"), name="adjudication_open_queue"
            ),
        ]

    def __str__(self) -> str:
        return f"adjudication of pair {self.pair_id} ({self.status})"


class AdjudicationAction(models.TextChoices):
    DECIDED = "decided", "decided"
    REOPENED = "reopened", "reopened"


class AdjudicationEvent(models.Model):
    """The history of an adjudication: every decision and every reopening, with who and why.
    The adjudication row holds the current decision; these rows are never changed."""

    adjudication = models.ForeignKey(Adjudication, on_delete=models.CASCADE, related_name="events")
    action = models.CharField(max_length=16, choices=AdjudicationAction.choices)
    verdict = models.CharField(max_length=16, choices=Verdict.choices, blank=True)
    exclude = models.BooleanField(default=False)
    taxonomy_correction = models.ForeignKey(
        TaxonomyNode, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    note = models.TextField(blank=True, max_length=2000)
    by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    at = models.DateTimeField()

    class Meta:
        ordering = ["at", "id"]

    def __str__(self) -> str:
        return f"{self.action} {self.adjudication_id} at {self.at:%Y-%m-%d %H:%M}"


class ReviewerSettings(models.Model):
    reviewer = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="review_settings"
    )
    blur_images = models.BooleanField(default=True)

    def __str__(self) -> str:
        return f"settings of {self.reviewer_id}"
