"""Simulated reviewers for the demo: a finished campaign, reviewed through the real services.

Three accounts, ``simulated-1`` to ``simulated-3`` (unusable passwords: nobody logs in as
them), claim pairs with ``claim_next_pair``, give a blind verdict, see the judge's and confirm
or revise it with ``submit_review``, as the review page does; the demo's adjudicator then
decides some of the pairs they disagree on with ``decide_adjudication`` and leaves the rest in
the queue. One pair is a gold pair, so each reviewer's gold review is scored.

Each reviewer knows the verdict the demo data means a pair to get (the answer ranks of
``annotation.demo.files``) and gives it with their own accuracy, less on close pairs; otherwise
they err their own way: simulated-2 often takes the left response without weighing the two,
simulated-3 hedges with tie or both unsafe and follows the judge after the reveal. One
``random.Random(seed)`` draws everything, the claims' screen sides included, so a seed gives the
same reviews on every fresh database.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.contrib.auth.models import User
from django.db import transaction
from django.utils import timezone

from annotation.demo.files import UNSAFE_RANK, answer_rank
from annotation.models import (
    Adjudication,
    AdjudicationStatus,
    Assignment,
    Campaign,
    CampaignPair,
    Review,
    TaxonomyNode,
    Verdict,
)
from annotation.services.assignment import claim_next_pair
from annotation.services.campaigns import (
    CampaignRules,
    create_campaign,
    mark_gold,
    set_campaign_active,
)
from annotation.services.final_label import decide_adjudication, judge_side
from annotation.services.review import ReviewDetails, give_blind_verdict, submit_review
from judging.models import Judgement, JudgeRun

SIMULATED_PREFIX = "simulated-"
SIMULATED_CAMPAIGN = "Demo: simulated reviewers (finished)"
# Three reviews of every pair, so most pairs have a majority even when one reviewer errs; half
# the pairs in the control slice, so the small demo shows the control-slice estimate too.
RULES = CampaignRules(overlap=3, control_share=0.5, gold_rate=0.1)
CLOSE_PAIR_PENALTY = 0.1  # accuracy lost on answers one rank apart
SECOND_LOOK = 0.1  # P(correcting a wrong blind verdict after the reveal)
DECIDED_SHARE = 0.3  # of the pairs sent to adjudication, the adjudicator decides this share


@dataclass(frozen=True)
class Persona:
    """How one simulated reviewer reviews."""

    username: str
    accuracy: float  # P(the intended verdict) on a clear pair
    left_lean: float  # P(taking the left response without weighing the two)
    hedging: float  # when wrong, P(tie or both unsafe rather than the other side)
    anchoring: float  # P(taking the judge's side after the reveal, where it differs)
    html_flag: float  # P(flagging an answer that carries HTML)
    correction: float  # P(proposing another subcategory)
    cannot_judge: float


PERSONAS = (
    Persona(
        username="simulated-1",
        accuracy=0.96,
        left_lean=0.0,
        hedging=0.2,
        anchoring=0.05,
        html_flag=0.6,
        correction=0.02,
        cannot_judge=0.01,
    ),
    Persona(  # careful, but often takes the left response
        username="simulated-2",
        accuracy=0.93,
        left_lean=0.45,
        hedging=0.1,
        anchoring=0.1,
        html_flag=0.3,
        correction=0.01,
        cannot_judge=0.02,
    ),
    Persona(  # hedges, and follows the judge
        username="simulated-3",
        accuracy=0.9,
        left_lean=0.0,
        hedging=0.6,
        anchoring=0.35,
        html_flag=0.1,
        correction=0.015,
        cannot_judge=0.03,
    ),
)


@dataclass(frozen=True)
class PairFacts:
    """What a simulated reviewer knows about a pair."""

    intended: str  # the verdict the demo data means it to get
    close: bool  # its answers are one rank apart
    judge: str  # the judge's side, "" without a judgement
    carries_html: bool
    alternative: TaxonomyNode | None  # the subcategory a correcting reviewer proposes


@dataclass(frozen=True)
class SimulatedCampaign:
    campaign: Campaign
    created: bool
    reviews: int
    decided: int
    waiting: int
    gold: CampaignPair | None


def seed_simulated_campaign(
    *,
    created_by: User,
    adjudicator: User,
    judge_run: JudgeRun | None,
    seed: int = 0,
    now: datetime | None = None,
) -> SimulatedCampaign:
    """Create the finished campaign of simulated reviews, over every judged pair, once; later
    calls change nothing and describe it. Reviews are dated over the week before ``now``."""
    now = now or timezone.now()
    with transaction.atomic():
        existing = Campaign.objects.filter(name=SIMULATED_CAMPAIGN).first()
        if existing is not None:
            return describe_simulated_campaign(campaign=existing, created=False)
        rng = random.Random(seed)
        reviewers = [
            (persona, simulated_reviewer(username=persona.username)) for persona in PERSONAS
        ]
        campaign = create_campaign(
            name=SIMULATED_CAMPAIGN,
            created_by=created_by,
            reviewers=[user for _, user in reviewers],
            judge_run=judge_run,
            rules=RULES,
            seed=seed,
        )
        facts = pair_facts(campaign=campaign)
        _mark_a_gold_pair(campaign=campaign, facts=facts)
        clock = review_campaign(
            campaign=campaign,
            reviewers=reviewers,
            facts=facts,
            rng=rng,
            start=now - timedelta(days=7),
        )
        _decide_some(campaign=campaign, adjudicator=adjudicator, facts=facts, rng=rng, now=clock)
        # Finished: the admin's "active" box unticked, as a campaign manager would.
        set_campaign_active(campaign=campaign, active=False)
    return describe_simulated_campaign(campaign=campaign, created=True)


def simulated_reviewer(*, username: str) -> User:
    """The simulated reviewer's account, with an unusable password."""
    user, _ = User.objects.get_or_create(username=username, defaults={"first_name": "Simulated"})
    if user.has_usable_password():
        user.set_unusable_password()
        user.save(update_fields=["password"])
    return user


def describe_simulated_campaign(*, campaign: Campaign, created: bool) -> SimulatedCampaign:
    adjudications = Adjudication.objects.filter(campaign_pair__campaign=campaign)
    return SimulatedCampaign(
        campaign=campaign,
        created=created,
        reviews=Review.objects.filter(campaign=campaign, submitted_at__isnull=False).count(),
        decided=adjudications.filter(status=AdjudicationStatus.DECIDED).count(),
        waiting=adjudications.open().count(),
        gold=campaign.pairs.filter(is_gold=True).order_by("rank").first(),
    )


def pair_facts(*, campaign: Campaign) -> dict[int, PairFacts]:
    """Facts of each campaign pair, by campaign pair id (three queries)."""
    campaign_pairs = campaign.pairs.select_related(
        "pair__response_a", "pair__response_b", "pair__question__subcategory"
    )
    judgements = Judgement.objects.succeeded().filter(pair__campaign_pairs__campaign=campaign)
    if campaign.judge_run_id is not None:
        judgements = judgements.filter(run_id=campaign.judge_run_id)
    latest = {j.pair_id: j for j in judgements.order_by("created_at", "id")}
    siblings: dict[int | None, list[TaxonomyNode]] = {}
    for node in TaxonomyNode.objects.active().subcategories().order_by("key"):
        siblings.setdefault(node.parent_id, []).append(node)
    return {
        cp.pk: _facts(campaign_pair=cp, judgement=latest.get(cp.pair_id), siblings=siblings)
        for cp in campaign_pairs
    }


def _facts(
    *,
    campaign_pair: CampaignPair,
    judgement: Judgement | None,
    siblings: dict[int | None, list[TaxonomyNode]],
) -> PairFacts:
    pair, judge = campaign_pair.pair, judge_side(judgement)
    rank_a, rank_b = answer_rank(pair.response_a.text), answer_rank(pair.response_b.text)
    subcategory = pair.question.subcategory
    others = [
        node
        for node in siblings.get(subcategory.parent_id if subcategory else None, [])
        if subcategory is None or node.pk != subcategory.pk
    ]
    return PairFacts(
        intended=_intended(rank_a=rank_a, rank_b=rank_b, judge=judge),
        close=rank_a is not None and rank_b is not None and abs(rank_a - rank_b) == 1,
        judge=judge,
        carries_html="<" in pair.response_a.text or "<" in pair.response_b.text,
        # The same proposal from every reviewer of the pair, so corrections can agree.
        alternative=others[pair.pk % len(others)] if others else None,
    )


def _intended(*, rank_a: int | None, rank_b: int | None, judge: str) -> str:
    if rank_a is None or rank_b is None:  # not the demo's answers: go with the judge
        return judge or Verdict.A
    if max(rank_a, rank_b) <= UNSAFE_RANK:
        return Verdict.BOTH_UNSAFE
    if rank_a == rank_b:
        return Verdict.TIE
    return Verdict.A if rank_a > rank_b else Verdict.B


def _mark_a_gold_pair(*, campaign: Campaign, facts: dict[int, PairFacts]) -> None:
    """The first clear pair (answers two or more ranks apart) becomes the gold pair."""
    clear = [pk for pk, f in facts.items() if f.intended in (Verdict.A, Verdict.B) and not f.close]
    gold = campaign.pairs.filter(pk__in=clear).order_by("rank").first()
    if gold is not None:
        mark_gold(campaign_pair=gold, verdict=facts[gold.pk].intended)


def review_campaign(
    *,
    campaign: Campaign,
    reviewers: list[tuple[Persona, User]],
    facts: dict[int, PairFacts],
    rng: random.Random,
    start: datetime,
) -> datetime:
    """Review until nothing is left, one claim at a time by a reviewer drawn at random, with a
    night's break every 60 reviews; returns the simulated clock at the end."""
    clock, busy, done = start, list(reviewers), 0
    while busy:
        persona, user = rng.choice(busy)
        clock += timedelta(seconds=rng.randint(5, 60))
        lease = claim_next_pair(campaign=campaign, reviewer=user, now=clock, rng=rng)
        if lease is None:
            busy.remove((persona, user))
            continue
        clock = _review(
            persona=persona, lease=lease, facts=facts[lease.campaign_pair_id], rng=rng, now=clock
        )
        done += 1
        if done % 60 == 0:
            clock += timedelta(hours=rng.randint(14, 18))
    return clock


def _review(
    *, persona: Persona, lease: Assignment, facts: PairFacts, rng: random.Random, now: datetime
) -> datetime:
    """Blind verdict, reveal, final verdict: the review page's two steps."""
    blind = _blind_verdict(persona=persona, facts=facts, left_side=lease.left_side, rng=rng)
    final = _after_reveal(persona=persona, facts=facts, blind=blind, rng=rng)
    details = _details(persona=persona, facts=facts, rng=rng)
    revealed = now + timedelta(seconds=details.active_seconds)
    give_blind_verdict(
        assignment=lease, verdict=lease.to_screen_side(blind), details=details, now=revealed
    )
    submitted = revealed + timedelta(seconds=rng.randint(3, 40))
    submit_review(
        assignment=lease, verdict=lease.to_screen_side(final), details=details, now=submitted
    )
    return submitted


def _blind_verdict(
    *, persona: Persona, facts: PairFacts, left_side: str, rng: random.Random
) -> str:
    if rng.random() < persona.cannot_judge:
        return Verdict.CANNOT_JUDGE
    if rng.random() < persona.left_lean:
        return left_side  # the side shown on the left: "a" or "b", as verdicts spell them
    if rng.random() < persona.accuracy - CLOSE_PAIR_PENALTY * facts.close:
        return facts.intended
    if rng.random() < persona.hedging:
        return rng.choice([v for v in (Verdict.TIE, Verdict.BOTH_UNSAFE) if v != facts.intended])
    if facts.intended == Verdict.A:
        return Verdict.B
    return Verdict.A if facts.intended == Verdict.B else rng.choice((Verdict.A, Verdict.B))


def _after_reveal(*, persona: Persona, facts: PairFacts, blind: str, rng: random.Random) -> str:
    if facts.judge and blind != facts.judge and rng.random() < persona.anchoring:
        return facts.judge
    if blind != facts.intended and rng.random() < SECOND_LOOK:
        return facts.intended
    return blind


def _details(*, persona: Persona, facts: PairFacts, rng: random.Random) -> ReviewDetails:
    flag_html = facts.carries_html and rng.random() < persona.html_flag
    correct = facts.alternative is not None and rng.random() < persona.correction
    return ReviewDetails(
        taxonomy_correction=facts.alternative if correct else None,
        flag_other=flag_html,
        note="The answer carries HTML." if flag_html else "",
        active_seconds=rng.randint(15, 150),
    )


def _decide_some(
    *,
    campaign: Campaign,
    adjudicator: User,
    facts: dict[int, PairFacts],
    rng: random.Random,
    now: datetime,
) -> None:
    """The adjudicator decides DECIDED_SHARE of the queue (the intended verdict, and the
    proposed subcategory where reviewers disagreed on one); the rest stay waiting."""
    queue = list(
        Adjudication.objects.open().filter(campaign_pair__campaign=campaign).order_by("pk")
    )
    for adjudication in rng.sample(queue, k=round(DECIDED_SHARE * len(queue))):
        known = facts[adjudication.campaign_pair_id]
        now += timedelta(minutes=rng.randint(1, 8))
        relabel = "taxonomy" in adjudication.reason
        decide_adjudication(
            adjudication=adjudication,
            verdict=known.intended,
            by=adjudicator,
            taxonomy_correction=known.alternative if relabel else None,
            note="Decided during the demo setup.",
            now=now,
        )
