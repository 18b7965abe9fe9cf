"""Campaigns and leases: who reviews which pair next.

Claiming follows one rule set, in one transaction: a reviewer's live lease is handed back
before anything new; stale leases return their slot to the pool; a pair is never offered twice
to one reviewer and never holds more than ``overlap`` live leases plus submitted reviews.
Candidates are locked with ``SELECT ... FOR UPDATE SKIP LOCKED`` on PostgreSQL, so concurrent
reviewers never wait on one another; on SQLite the IMMEDIATE transaction mode serialises them.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta

from django.contrib.auth.models import User
from django.db import transaction
from django.db.models import Exists, F, OuterRef, Q, QuerySet
from django.utils import timezone

from annotation.exceptions import LeaseExpired, ReviewError
from annotation.models import (
    Assignment,
    AssignmentStatus,
    Campaign,
    CampaignPair,
    JudgePolicy,
    Pair,
    ScreenSide,
    TaxonomyNode,
    Verdict,
)
from judging.models import Judgement, JudgeRun

# Screen sides and pool draws need no reproducibility, only fairness.
_system_random = random.SystemRandom()


@dataclass(frozen=True)
class CampaignRules:
    overlap: int = 1
    lease_minutes: int = 10
    control_share: float = 0.15
    gold_rate: float = 0.0
    judge_policy: str = JudgePolicy.REVIEWERS_ONLY
    break_after_reviews: int = 40
    break_after_minutes: int = 45


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


@transaction.atomic
def mark_gold(*, campaign_pair: CampaignPair, verdict: str) -> CampaignPair:
    """Make a pair a gold pair with a known verdict; it is then mixed in at the gold rate."""
    campaign_pair.is_gold, campaign_pair.gold_verdict = True, Verdict(verdict)
    campaign_pair.save(update_fields=["is_gold", "gold_verdict"])
    return campaign_pair


def _return_stale_leases(*, campaign: Campaign, now: datetime) -> None:
    stale = list(
        Assignment.objects.stale(now=now)
        .filter(campaign=campaign)
        .select_for_update(skip_locked=True, no_key=True)
        .values_list("pk", "campaign_pair_id", "is_gold")
    )
    if not stale:
        return
    Assignment.objects.filter(pk__in=[pk for pk, _, _ in stale]).update(
        status=AssignmentStatus.EXPIRED, finished_at=now
    )
    freed = Counter(pair_id for _, pair_id, is_gold in stale if not is_gold)
    for count in set(freed.values()):
        pair_ids = sorted(pair_id for pair_id, n in freed.items() if n == count)
        CampaignPair.objects.filter(pk__in=pair_ids).update(slots_left=F("slots_left") + count)


def _pools(*, campaign: Campaign, rng: random.Random) -> list[str]:
    """The order in which to try the pools for this claim."""
    main = ["control", "main"] if rng.random() < campaign.control_share else ["main", "control"]
    return ["gold", *main] if rng.random() < campaign.gold_rate else main


def _pick(*, campaign: Campaign, reviewer: User, pool: str) -> CampaignPair | None:
    seen = Assignment.objects.filter(campaign_pair=OuterRef("pk"), reviewer=reviewer)
    candidates = (
        CampaignPair.objects.select_for_update(skip_locked=True, of=("self",), no_key=True)
        .filter(campaign=campaign)
        .exclude(Exists(seen))
    )
    if pool == "gold":
        candidates = candidates.filter(is_gold=True).order_by("rank")
    else:
        candidates = candidates.filter(
            is_gold=False, slots_left__gt=0, in_control_slice=pool == "control"
        )
        # The control slice ignores priority, so agreement on it is free of routing bias;
        # both finish partly reviewed pairs (fewer slots left) before fresh ones.
        order = ["slots_left", "rank"] if pool == "control" else ["-priority", "slots_left", "rank"]
        candidates = candidates.order_by(*order)
    return candidates.only("pk", "campaign_id", "in_control_slice", "is_gold").first()


def claim_next_pair(
    *,
    campaign: Campaign,
    reviewer: User,
    after: Assignment | None = None,
    now: datetime | None = None,
    rng: random.Random | None = None,
) -> Assignment | None:
    """Return the reviewer's live lease in the campaign, or lease them a new pair; None when
    the campaign has nothing left for them. ``after`` is the assignment on screen: a lease
    other than it is returned (that is how the next pair is prefetched)."""
    now, rng = now or timezone.now(), rng or _system_random
    with transaction.atomic():
        existing = Assignment.objects.live(now=now).filter(reviewer=reviewer, campaign=campaign)
        if after is not None:
            existing = existing.exclude(pk=after.pk)
        if (lease := existing.first()) is not None:
            return lease
        _return_stale_leases(campaign=campaign, now=now)
        for pool in _pools(campaign=campaign, rng=rng):
            if (
                campaign_pair := _pick(campaign=campaign, reviewer=reviewer, pool=pool)
            ) is not None:
                campaign_pair.campaign = campaign
                return _lease(campaign_pair=campaign_pair, reviewer=reviewer, now=now, rng=rng)
        return None


def _lease(
    *, campaign_pair: CampaignPair, reviewer: User, now: datetime, rng: random.Random
) -> Assignment:
    campaign = campaign_pair.campaign
    if not campaign_pair.is_gold:
        CampaignPair.objects.filter(pk=campaign_pair.pk).update(slots_left=F("slots_left") - 1)
    return Assignment.objects.create(
        campaign_pair=campaign_pair,
        campaign=campaign,
        reviewer=reviewer,
        left_side=rng.choice([ScreenSide.A, ScreenSide.B]),
        from_control_slice=campaign_pair.in_control_slice,
        is_gold=campaign_pair.is_gold,
        claimed_at=now,
        expires_at=now + campaign.lease,
        heartbeat_at=now,
    )


def _revive(*, assignment: Assignment, now: datetime) -> None:
    """Take back a slot for an expired lease, if nobody else has taken it meanwhile."""
    campaign_pair = CampaignPair.objects.select_for_update(no_key=True).get(
        pk=assignment.campaign_pair_id
    )
    if not campaign_pair.is_gold:
        if campaign_pair.slots_left == 0:
            raise LeaseExpired("your lease on this pair expired and another reviewer has it now")
        CampaignPair.objects.filter(pk=campaign_pair.pk).update(slots_left=F("slots_left") - 1)
    assignment.status = AssignmentStatus.LIVE


@transaction.atomic
def renew_lease(
    *, assignment: Assignment, now: datetime | None = None, lease_minutes: int | None = None
) -> Assignment:
    """Extend a lease (the page's heartbeat). A lease already returned to the pool is taken
    back when its pair still has a free slot; otherwise LeaseExpired."""
    now = now or timezone.now()
    assignment = Assignment.objects.select_for_update(no_key=True).get(pk=assignment.pk)
    if assignment.status == AssignmentStatus.EXPIRED:
        _revive(assignment=assignment, now=now)
    elif assignment.status != AssignmentStatus.LIVE:
        raise ReviewError(f"this assignment is {assignment.get_status_display()}")
    minutes = lease_minutes or Campaign.objects.values_list("lease_minutes", flat=True).get(
        pk=assignment.campaign_id
    )
    assignment.expires_at = now + timedelta(minutes=minutes)
    assignment.heartbeat_at = now
    assignment.save(update_fields=["status", "expires_at", "heartbeat_at"])
    return assignment


@transaction.atomic
def skip_assignment(*, assignment: Assignment, now: datetime | None = None) -> Assignment:
    """Give a pair back unreviewed; it is not offered to this reviewer again."""
    now = now or timezone.now()
    assignment = Assignment.objects.select_for_update(no_key=True).get(pk=assignment.pk)
    if assignment.status != AssignmentStatus.LIVE:
        raise ReviewError(f"this assignment is {assignment.get_status_display()}")
    assignment.status, assignment.finished_at = AssignmentStatus.SKIPPED, now
    assignment.save(update_fields=["status", "finished_at"])
    if not assignment.is_gold:
        CampaignPair.objects.filter(pk=assignment.campaign_pair_id).update(
            slots_left=F("slots_left") + 1
        )
    return assignment
