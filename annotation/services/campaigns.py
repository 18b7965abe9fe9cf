"""Campaigns: the selection of pairs, the rules for handing them out, reviewers and gold.

Each change of a campaign's state has one service here, called by the admin, the pages, the
API and the demo alike: the slots a pair has left always equal the overlap minus the live
leases and submitted reviews holding one, and a change of the rules re-settles the pairs whose
outcome it changes.
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any, TypedDict

from django.contrib.auth.models import User
from django.db import connection, transaction
from django.db.models import (
    Count,
    Exists,
    IntegerField,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    Value,
)
from django.db.models.functions import Coalesce, Greatest
from django.utils import timezone

from annotation.exceptions import CampaignError
from annotation.models import (
    Assignment,
    AssignmentStatus,
    Campaign,
    CampaignPair,
    JudgePolicy,
    Pair,
    Review,
    ReviewMode,
    TaxonomyNode,
    Verdict,
)
from annotation.services.final_label import settle_pair
from judging.models import Judgement, JudgeRun

# The seed of a campaign's control-slice draw, when none is given.
_system_random = random.SystemRandom()

MAX_OVERLAP = 100
MAX_LEASE_MINUTES = 24 * 60
# The break reminders are PositiveSmallIntegerFields; the review page divides by the count.
MAX_BREAK_AFTER = 32767


@dataclass(frozen=True)
class CampaignRules:
    """How a campaign hands out pairs and settles them."""

    overlap: int = 1
    lease_minutes: int = 10
    control_share: float = 0.15
    gold_rate: float = 0.0
    judge_policy: str = JudgePolicy.REVIEWERS_ONLY
    break_after_reviews: int = 40
    break_after_minutes: int = 45
    # What reviewers answer; fixed once the campaign has a review (see check_campaign_rules).
    review_mode: str = ReviewMode.SINGLE
    per_response_safety: bool = False

    @classmethod
    def fields(cls) -> tuple[str, ...]:
        return tuple(asdict(cls()))


def _selected_pairs(
    *,
    judge_run: JudgeRun | None,
    taxonomy_nodes: Iterable[TaxonomyNode],
    question_types: Iterable[str],
    flagged: QuerySet[Judgement],
    flagged_only: bool,
) -> QuerySet[Pair]:
    pairs = Pair.objects.all()
    if judge_run is not None:
        pairs = pairs.filter(judgements__run=judge_run)
    if nodes := list(taxonomy_nodes):
        pairs = pairs.filter(
            Q(question__subcategory__in=nodes)
            | Q(question__subcategory__parent__in=nodes)
            | Q(question__subcategory__parent__parent__in=nodes)
        )
    if types := list(question_types):
        pairs = pairs.filter(question__question_type__in=types)
    if flagged_only:
        pairs = pairs.filter(pk__in=flagged.values("pair_id"))
    return pairs


@transaction.atomic
def create_campaign(
    *,
    name: str,
    created_by: User | None,
    reviewers: Iterable[User] = (),
    judge_run: JudgeRun | None = None,
    taxonomy_nodes: Iterable[TaxonomyNode] = (),
    question_types: Iterable[str] = (),
    flagged_only: bool = False,
    rules: CampaignRules | None = None,
    seed: int | None = None,
) -> Campaign:
    """Create a campaign and its pairs. Judge-flagged pairs get priority 1; the control slice
    (``control_share`` of the pairs) and the tie-breaking ranks are drawn with a seeded RNG
    and stored, so the draw can be reproduced and audited."""
    rules = rules or CampaignRules()
    _check_rules(rules)
    seed = seed if seed is not None else _system_random.randrange(2**62)
    nodes, types = list(taxonomy_nodes), list(question_types)
    flagged = Judgement.objects.needing_review()
    if judge_run is not None:
        flagged = flagged.filter(run=judge_run)
    pair_ids = sorted(
        _selected_pairs(
            judge_run=judge_run,
            taxonomy_nodes=nodes,
            question_types=types,
            flagged=flagged,
            flagged_only=flagged_only,
        )
        .distinct()
        .values_list("pk", flat=True)
    )
    campaign = Campaign.objects.create(
        name=name,
        created_by=created_by,
        judge_run=judge_run,
        question_types=types,
        flagged_only=flagged_only,
        seed=seed,
        **asdict(rules),
    )
    campaign.taxonomy_nodes.set(nodes)
    campaign.reviewers.set(list(reviewers))
    flagged_ids = set(flagged.filter(pair_id__in=pair_ids).values_list("pair_id", flat=True))
    rng = random.Random(seed)
    control = set(rng.sample(pair_ids, round(rules.control_share * len(pair_ids))))
    ranks = rng.sample(range(len(pair_ids)), len(pair_ids))
    CampaignPair.objects.bulk_create(
        (
            CampaignPair(
                campaign=campaign,
                pair_id=pair_id,
                priority=1 if pair_id in flagged_ids else 0,
                rank=rank,
                in_control_slice=pair_id in control,
                slots_left=rules.overlap,
            )
            for pair_id, rank in zip(pair_ids, ranks, strict=True)
        ),
        batch_size=5000,
    )
    return campaign


def rules_of(campaign: Campaign) -> CampaignRules:
    return CampaignRules(**{name: getattr(campaign, name) for name in CampaignRules.fields()})


@transaction.atomic
def update_campaign_rules(*, campaign: Campaign, rules: CampaignRules) -> Campaign:
    """Change a campaign's rules. A new overlap gives every pair its slots anew (the overlap
    less the live leases and submitted reviews on it) and re-settles the reviewed pairs, whose
    outcome depends on it; so does a new judge policy. An overlap the campaign's reviewers
    cannot reach is refused: a pair is never offered twice to one reviewer."""
    campaign = Campaign.objects.select_for_update().get(pk=campaign.pk)
    check_campaign_rules(campaign=campaign, rules=rules, reviewers=campaign.reviewers.count())
    old = rules_of(campaign)
    if rules == old:
        return campaign
    for name, value in asdict(rules).items():
        setattr(campaign, name, value)
    campaign.save(update_fields=list(CampaignRules.fields()))
    if rules.overlap != old.overlap:
        recount_slots(campaign=campaign)
    if (rules.overlap, rules.judge_policy) != (old.overlap, old.judge_policy):
        _resettle_reviewed(campaign=campaign)
    return campaign


def check_campaign_rules(*, campaign: Campaign, rules: CampaignRules, reviewers: int) -> None:
    """Raise CampaignError for rules the campaign cannot honour with that many reviewers. The
    review mode and per-response safety are refused once a review exists: the reviews of one
    campaign are of one shape, or its final labels would mix answers of different questions."""
    _check_rules(rules)
    shape = (rules.review_mode, rules.per_response_safety)
    reviewed = Review.objects.filter(campaign_pair__campaign_id=campaign.pk)
    if shape != (campaign.review_mode, campaign.per_response_safety) and reviewed.exists():
        raise CampaignError(
            "the review mode and per-response safety cannot change once the campaign has a review"
        )
    if rules.overlap > campaign.overlap and rules.overlap > reviewers:
        raise CampaignError(
            f"overlap {rules.overlap} needs at least {rules.overlap} reviewers; "
            f"the campaign has {reviewers}"
        )


def _check_rules(rules: CampaignRules) -> None:
    if not 1 <= rules.overlap <= MAX_OVERLAP:
        raise CampaignError(f"the overlap must be between 1 and {MAX_OVERLAP}")
    if not 1 <= rules.lease_minutes <= MAX_LEASE_MINUTES:
        raise CampaignError(f"a lease lasts 1 to {MAX_LEASE_MINUTES} minutes")
    if not (0 <= rules.control_share <= 1 and 0 <= rules.gold_rate <= 1):
        raise CampaignError("the control share and the gold rate are shares between 0 and 1")
    if rules.judge_policy not in JudgePolicy.values:
        raise CampaignError(f"unknown judge policy {rules.judge_policy!r}")
    if rules.review_mode not in ReviewMode.values:
        raise CampaignError(f"unknown review mode {rules.review_mode!r}")
    if not isinstance(rules.per_response_safety, bool):
        raise CampaignError("per-response safety is true or false")
    breaks = (rules.break_after_reviews, rules.break_after_minutes)
    if not all(1 <= value <= MAX_BREAK_AFTER for value in breaks):
        raise CampaignError(f"a break comes after 1 to {MAX_BREAK_AFTER} reviews and minutes")


def _holding(campaign_pair: str = "pk") -> Subquery:
    """Live leases and submitted reviews that hold one of a pair's slots (gold ones hold
    none)."""
    held = (
        Assignment.objects.filter(
            campaign_pair=OuterRef(campaign_pair),
            is_gold=False,
            status__in=[AssignmentStatus.LIVE, AssignmentStatus.SUBMITTED],
        )
        .order_by()
        .annotate(one=Value(1))
        .values("one")
        .annotate(n=Count("pk"))
        .values("n")
    )
    return Subquery(held, output_field=IntegerField())


def recount_slots(*, campaign: Campaign, pair_ids: Iterable[int] | None = None) -> None:
    """Set slots_left from the assignments (all the campaign's pairs, or those given). The
    campaign pairs are locked first, so claims in flight finish before the count and later
    claims skip them until this commits."""
    pairs = CampaignPair.objects.filter(campaign=campaign, is_gold=False)
    if pair_ids is not None:
        pairs = pairs.filter(pk__in=list(pair_ids))
    if connection.vendor == "postgresql":
        list(pairs.select_for_update(no_key=True).order_by("pk").values_list("pk", flat=True))
    pairs.update(slots_left=Greatest(Value(campaign.overlap) - Coalesce(_holding(), 0), 0))


def _resettle_reviewed(*, campaign: Campaign) -> None:
    reviewed = (
        CampaignPair.objects.filter(campaign=campaign, is_gold=False)
        .filter(pk__in=Review.objects.filter(campaign=campaign).values("campaign_pair_id"))
        .select_related("pair__question")
        .order_by("pk")
    )
    for campaign_pair in reviewed:
        campaign_pair.campaign = campaign
        settle_pair(campaign_pair=campaign_pair, by=None)


@transaction.atomic
def set_campaign_reviewers(*, campaign: Campaign, reviewers: Iterable[User]) -> Campaign:
    """Who reviews in the campaign. A removed reviewer's live leases end at once and give
    their slots back; their submitted reviews stay."""
    campaign = Campaign.objects.select_for_update().get(pk=campaign.pk)
    keep = {user.pk for user in reviewers}
    removed = set(campaign.reviewers.values_list("pk", flat=True)) - keep
    campaign.reviewers.set(list(keep))
    if removed:
        _end_live_leases(campaign=campaign, reviewer_ids=removed)
    return campaign


def _end_live_leases(*, campaign: Campaign, reviewer_ids: Iterable[int] | None = None) -> None:
    """End the live leases of those reviewers (None: of everyone) and give their slots back."""
    leases = Assignment.objects.filter(campaign=campaign, status=AssignmentStatus.LIVE)
    if reviewer_ids is not None:
        leases = leases.filter(reviewer_id__in=list(reviewer_ids))
    pair_ids = set(leases.values_list("campaign_pair_id", flat=True))
    leases.update(status=AssignmentStatus.EXPIRED, finished_at=timezone.now())
    recount_slots(campaign=campaign, pair_ids=pair_ids)


@transaction.atomic
def set_campaign_active(*, campaign: Campaign, active: bool) -> Campaign:
    """Open or close a campaign. A closed campaign hands out no pair; its leases end."""
    campaign = Campaign.objects.select_for_update().get(pk=campaign.pk)
    if campaign.is_active == active:
        return campaign
    campaign.is_active = active
    campaign.save(update_fields=["is_active"])
    if not active:
        _end_live_leases(campaign=campaign)
    return campaign


@transaction.atomic
def rename_campaign(*, campaign: Campaign, name: str) -> Campaign:
    name = name.strip()
    if not name:
        raise CampaignError("a campaign needs a name")
    campaign.name = name
    campaign.save(update_fields=["name"])
    return campaign


@transaction.atomic
def mark_gold(*, campaign_pair: CampaignPair, verdict: str) -> CampaignPair:
    """Make a pair a gold pair with a known verdict; it is then mixed in at the gold rate."""
    if verdict not in Verdict.values:
        raise CampaignError("a gold pair needs its known verdict")
    campaign_pair = CampaignPair.objects.select_for_update(no_key=True).get(pk=campaign_pair.pk)
    campaign_pair.is_gold, campaign_pair.gold_verdict = True, Verdict(verdict)
    campaign_pair.save(update_fields=["is_gold", "gold_verdict"])
    return campaign_pair


@transaction.atomic
def unmark_gold(*, campaign_pair: CampaignPair) -> CampaignPair:
    """Make a gold pair an ordinary one again: it gets its slots and its outcome from the
    reviews it has."""
    campaign_pair = (
        CampaignPair.objects.select_for_update(of=("self",), no_key=True)
        .select_related("campaign", "pair__question")
        .get(pk=campaign_pair.pk)
    )
    if not campaign_pair.is_gold:
        return campaign_pair
    campaign_pair.is_gold, campaign_pair.gold_verdict = False, ""
    campaign_pair.save(update_fields=["is_gold", "gold_verdict"])
    recount_slots(campaign=campaign_pair.campaign, pair_ids=[campaign_pair.pk])
    settle_pair(campaign_pair=campaign_pair, by=None)
    campaign_pair.refresh_from_db(fields=["slots_left"])
    return campaign_pair


@transaction.atomic
def change_campaign(
    *,
    campaign: Campaign,
    name: str | None = None,
    rules: CampaignRules | None = None,
    active: bool | None = None,
) -> Campaign:
    """Rename, re-rule, open or close a campaign through the services above, in one
    transaction: a refused part (CampaignError) changes nothing. ``None`` leaves a part as is."""
    if rules is not None:
        campaign = update_campaign_rules(campaign=campaign, rules=rules)
    if active is not None:
        campaign = set_campaign_active(campaign=campaign, active=active)
    if name is not None:
        campaign = rename_campaign(campaign=campaign, name=name)
    return campaign


@transaction.atomic
def add_campaign_reviewers(*, campaign: Campaign, reviewers: Iterable[User]) -> Campaign:
    """Add reviewers to the ones the campaign has (under its row lock, so two additions at
    once both count)."""
    campaign = Campaign.objects.select_for_update().get(pk=campaign.pk)
    current = list(campaign.reviewers.all())
    return set_campaign_reviewers(campaign=campaign, reviewers=[*current, *reviewers])


@transaction.atomic
def remove_campaign_reviewer(*, campaign: Campaign, reviewer: User) -> Campaign:
    """Take one reviewer off the campaign: their live leases end, their reviews stay."""
    campaign = Campaign.objects.select_for_update().get(pk=campaign.pk)
    keep = campaign.reviewers.exclude(pk=reviewer.pk)
    return set_campaign_reviewers(campaign=campaign, reviewers=list(keep))


class ReviewerProgress(TypedDict):
    username: str
    reviews_submitted: int
    live_leases: int


class CampaignProgress(TypedDict):
    """Every pair of a campaign is in one of these: gold (mixed in at the gold rate, never
    done), leased (a live lease on it), done (its overlap of submitted reviews) or open."""

    pairs: int
    open: int
    leased: int
    done: int
    gold: int
    reviewers: list[ReviewerProgress]


def _count(queryset: QuerySet[Any]) -> Coalesce:
    counted = queryset.order_by().annotate(one=Value(1)).values("one").annotate(n=Count("pk"))
    return Coalesce(Subquery(counted.values("n"), output_field=IntegerField()), 0)


def campaign_progress(*, campaign: Campaign, now: datetime | None = None) -> CampaignProgress:
    """Where the campaign stands, in two queries whatever its size: its pairs by state, and
    each of its reviewers (and anyone taken off it who reviewed in it) with their submitted
    reviews and live leases. A lease past its expiry is not live: its pair counts as open."""
    now = now or timezone.now()
    live = Assignment.objects.live(now=now)
    pairs = CampaignPair.objects.filter(campaign=campaign).annotate(
        has_lease=Exists(live.filter(campaign_pair=OuterRef("pk"))),
        submitted=_count(
            Assignment.objects.filter(
                campaign_pair=OuterRef("pk"), status=AssignmentStatus.SUBMITTED, is_gold=False
            )
        ),
    )
    ordinary = Q(is_gold=False)
    counts = pairs.aggregate(
        pairs=Count("pk"),
        gold=Count("pk", filter=~ordinary),
        leased=Count("pk", filter=ordinary & Q(has_lease=True)),
        done=Count("pk", filter=ordinary & Q(has_lease=False, submitted__gte=campaign.overlap)),
    )
    open_pairs = counts["pairs"] - counts["gold"] - counts["leased"] - counts["done"]
    return CampaignProgress(
        pairs=counts["pairs"],
        open=open_pairs,
        leased=counts["leased"],
        done=counts["done"],
        gold=counts["gold"],
        reviewers=_reviewer_progress(campaign=campaign, live=live),
    )


def _reviewer_progress(*, campaign: Campaign, live: QuerySet[Assignment]) -> list[ReviewerProgress]:
    listed = Campaign.reviewers.through.objects.filter(campaign=campaign).values("user_id")
    # Through the campaign's pairs: reviews and assignments have no index on the campaign.
    reviewed = Review.objects.filter(campaign_pair__campaign=campaign)
    people = (
        User.objects.filter(Q(pk__in=listed) | Q(pk__in=reviewed.values("reviewer_id")))
        .annotate(
            reviews_submitted=_count(
                reviewed.filter(reviewer=OuterRef("pk"), submitted_at__isnull=False)
            ),
            live_leases=_count(live.filter(campaign=campaign, reviewer=OuterRef("pk"))),
        )
        .order_by("username")
        .values_list("username", "reviews_submitted", "live_leases")
    )
    return [
        ReviewerProgress(username=username, reviews_submitted=submitted, live_leases=leases)
        for username, submitted, leases in people
    ]
