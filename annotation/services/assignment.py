"""Leases: who reviews which pair next (campaigns themselves: annotation.services.campaigns).

Claiming follows one rule set, in one transaction: a reviewer's live lease is handed back
before anything new; stale leases return their slot to the pool; a pair is never offered twice
to one reviewer and never holds more than ``overlap`` live leases plus submitted reviews.
Candidates are locked with ``SELECT ... FOR UPDATE SKIP LOCKED`` on PostgreSQL, so concurrent
reviewers never wait on one another; there a claim is one SQL statement, and stale leases are
swept at most every few seconds. On SQLite (the embedded demo) the same rules run through the
ORM, and the IMMEDIATE transaction mode serialises claims.
"""

from __future__ import annotations

import functools
import random
import time
from collections import Counter
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

import psycopg
from django.contrib.auth.models import User
from django.db import connection, transaction
from django.db.models import Exists, F, OuterRef
from django.utils import timezone

from annotation.exceptions import LeaseExpired, ReviewError
from annotation.models import (
    Assignment,
    AssignmentStatus,
    Campaign,
    CampaignPair,
    ScreenSide,
)

# Screen sides and pool draws need no reproducibility, only fairness.
_system_random = random.SystemRandom()


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
    # The one place the two claim paths part: one SQL statement on PostgreSQL, the ORM on
    # SQLite (the embedded demo). Both follow the rules in the module docstring.
    claim = _claim_by_sql if connection.vendor == "postgresql" else _claim_by_orm
    lease = claim(campaign=campaign, reviewer=reviewer, after=after, now=now, rng=rng)
    if lease is not None:
        lease.campaign = campaign
    return lease


@transaction.atomic
def _claim_by_orm(
    *,
    campaign: Campaign,
    reviewer: User,
    after: Assignment | None,
    now: datetime,
    rng: random.Random,
) -> Assignment | None:
    existing = Assignment.objects.live(now=now).filter(reviewer=reviewer, campaign=campaign)
    if after is not None:
        existing = existing.exclude(pk=after.pk)
    if (lease := existing.first()) is not None:
        return lease
    _return_stale_leases(campaign=campaign, now=now)
    for pool in _pools(campaign=campaign, rng=rng):
        if (campaign_pair := _pick(campaign=campaign, reviewer=reviewer, pool=pool)) is not None:
            campaign_pair.campaign = campaign
            return _lease(campaign_pair=campaign_pair, reviewer=reviewer, now=now, rng=rng)
    return None


# How often one process returns a campaign's stale leases to the pool on PostgreSQL: a lapsed
# lease waits at most this long, and claims in between skip the sweep.
STALE_SWEEP_INTERVAL = timedelta(seconds=5)
_last_sweep: dict[int, datetime] = {}

_SWEEP_SQL = """
WITH stale AS (
    UPDATE annotation_assignment SET status = 'expired', finished_at = %(now)s
    WHERE id IN (
        SELECT id FROM annotation_assignment
        WHERE campaign_id = %(campaign)s AND status = 'live' AND expires_at <= %(now)s
            AND pg_try_advisory_xact_lock(%(lock_class)s, %(campaign)s::integer)
        FOR NO KEY UPDATE SKIP LOCKED
    )
    RETURNING campaign_pair_id, is_gold
), freed AS (
    SELECT campaign_pair_id, count(*) AS n FROM stale WHERE NOT is_gold GROUP BY campaign_pair_id
)
UPDATE annotation_campaignpair cp SET slots_left = cp.slots_left + freed.n
FROM freed WHERE cp.id = freed.campaign_pair_id
"""
# Namespace of the advisory lock that lets one sweeper at a time work on a campaign, so two
# sweeps never lock the same campaign pairs in different orders.
_SWEEP_LOCK_CLASS = 0x5A55


def _sweep_due(*, campaign_id: int, now: datetime) -> bool:
    last = _last_sweep.get(campaign_id)
    if last is not None and abs(now - last) < STALE_SWEEP_INTERVAL:
        return False
    _last_sweep[campaign_id] = now
    return True


# Each pool's candidates, best first, as in _pick: the control slice ignores priority, so
# agreement on it is free of routing bias; both finish partly reviewed pairs (fewer slots
# left) before fresh ones; gold pairs are offered to every reviewer once.
_POOL_SQL = {
    "gold": ("cp.is_gold", "cp.rank"),
    "main": (
        "NOT cp.is_gold AND cp.slots_left > 0 AND cp.in_control_slice = false",
        "cp.priority DESC, cp.slots_left, cp.rank",
    ),
    "control": (
        "NOT cp.is_gold AND cp.slots_left > 0 AND cp.in_control_slice",
        "cp.slots_left, cp.rank",
    ),
}
_CANDIDATE_SQL = """{name} AS (
    SELECT cp.id, cp.in_control_slice, cp.is_gold FROM annotation_campaignpair cp
    WHERE cp.campaign_id = %(campaign)s AND {where} AND NOT EXISTS (SELECT FROM existing)
        AND NOT EXISTS (
            SELECT FROM annotation_assignment seen
            WHERE seen.campaign_pair_id = cp.id AND seen.reviewer_id = %(reviewer)s
        )
    ORDER BY {order} LIMIT 1 FOR NO KEY UPDATE OF cp SKIP LOCKED
)"""
# The live lease to resume, else the first free candidate of the pools in the drawn order
# (UNION ALL runs its branches in turn and LIMIT stops it, so later pools are neither read nor
# locked), its slot taken and its assignment inserted.
_CLAIM_SQL = """
WITH existing AS (
    SELECT * FROM annotation_assignment
    WHERE reviewer_id = %(reviewer)s AND campaign_id = %(campaign)s AND status = 'live'
        AND expires_at > %(now)s AND id IS DISTINCT FROM %(after)s {async_commit}
    ORDER BY claimed_at, id LIMIT 1
), {candidates}, pick AS (
    {union} LIMIT 1
), taken AS (
    UPDATE annotation_campaignpair cp SET slots_left = cp.slots_left - 1
    FROM pick WHERE cp.id = pick.id AND NOT pick.is_gold
), leased AS (
    INSERT INTO annotation_assignment (
        campaign_pair_id, campaign_id, reviewer_id, left_side, status, from_control_slice,
        is_gold, claimed_at, expires_at, heartbeat_at
    )
    SELECT id, %(campaign)s, %(reviewer)s, %(left_side)s, 'live', in_control_slice, is_gold,
        %(now)s, %(expires_at)s, %(now)s
    FROM pick
    RETURNING *
)
SELECT * FROM existing UNION ALL SELECT * FROM leased
"""


# A lease is soft state. Were the server to crash just after a claim, the claim would be lost
# with its slot (both or neither), and any later synchronous commit, such as the review's,
# writes it to disk first; so a claim that is a transaction of its own does not wait for the
# disk. The setting is local to that transaction; as a one-time filter it runs exactly once.
_ASYNC_COMMIT = "AND (SELECT set_config('synchronous_commit', 'off', true)) IS NOT NULL"


@functools.cache
def _claim_sql(pools: tuple[str, ...], *, async_commit: bool) -> str:
    names = [f"pool_{pool}" for pool in pools]
    candidates = ", ".join(
        _CANDIDATE_SQL.format(name=name, where=_POOL_SQL[pool][0], order=_POOL_SQL[pool][1])
        for name, pool in zip(names, pools, strict=True)
    )
    union = " UNION ALL ".join(f"SELECT * FROM {name}" for name in names)
    return _CLAIM_SQL.format(
        candidates=candidates, union=union, async_commit=_ASYNC_COMMIT if async_commit else ""
    )


def _claim_by_sql(
    *,
    campaign: Campaign,
    reviewer: User,
    after: Assignment | None,
    now: datetime,
    rng: random.Random,
) -> Assignment | None:
    """Each statement is a transaction of its own: the sweep stands alone, and the claim
    statement locks, decrements and inserts at once."""
    if _sweep_due(campaign_id=campaign.pk, now=now):
        with connection.cursor() as cursor:
            cursor.execute(
                _SWEEP_SQL,
                {"now": now, "campaign": campaign.pk, "lock_class": _SWEEP_LOCK_CLASS},
            )
    pools = _pools(campaign=campaign, rng=rng)  # drawn before the side, as on the ORM path
    params = {
        "campaign": campaign.pk,
        "reviewer": reviewer.pk,
        "after": after.pk if after is not None else None,
        "now": now,
        "expires_at": now + campaign.lease,
        "left_side": rng.choice([ScreenSide.A, ScreenSide.B]),
    }
    # Inside a caller's transaction the setting would cover the caller's writes too.
    sql = _claim_sql(tuple(pools), async_commit=not connection.in_atomic_block)
    columns, row = _execute_prepared(sql, params)
    if row is None:
        return None
    values = dict(zip(columns, row, strict=True))
    names = [field.attname for field in Assignment._meta.concrete_fields]
    return Assignment.from_db(connection.alias, names, [values[name] for name in names])


def _execute_prepared(sql: str, params: Mapping[str, Any]) -> tuple[list[str], tuple | None]:
    """Run one statement as a server-side prepared statement: PostgreSQL plans the claim once
    per connection instead of once per claim (planning costs more than running it). Django's
    cursors bind on the client and never prepare, so this goes to psycopg directly and logs
    the query as Django would (query counts in tests see it). It needs the connection's
    prepare_threshold set (settings.py does; Django's default, None, ignores prepare=True)."""
    connection.ensure_connection()
    started = time.monotonic()
    with psycopg.Cursor(connection.connection) as cursor:
        cursor.execute(sql, params, prepare=True)
        row = cursor.fetchone()
        columns = [column.name for column in cursor.description or ()]
    if connection.queries_logged:
        connection.queries_log.append({"sql": sql, "time": f"{time.monotonic() - started:.3f}"})
    return columns, row


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
    changed = ["expires_at", "heartbeat_at"]
    if assignment.status == AssignmentStatus.EXPIRED:
        _revive(assignment=assignment, now=now)
        changed.append("status")
    elif assignment.status != AssignmentStatus.LIVE:
        raise ReviewError(f"this assignment is {assignment.get_status_display()}")
    minutes = lease_minutes or Campaign.objects.values_list("lease_minutes", flat=True).get(
        pk=assignment.campaign_id
    )
    assignment.expires_at = now + timedelta(minutes=minutes)
    assignment.heartbeat_at = now
    assignment.save(update_fields=changed)
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
