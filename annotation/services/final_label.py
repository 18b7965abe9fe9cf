"""A pair's final label from people's reviews and adjudication.

The rules, applied in this order to the submitted, non-gold reviews of one campaign pair
(verdicts are final verdicts, given after the judge's verdict was revealed):

1. A decided adjudication wins: verdict A or B gives ``adjudicated`` with that side chosen;
   tie gives ``tie``; both unsafe gives ``both_unsafe``; cannot judge or "exclude" gives
   ``excluded``.
2. Fewer reviews than the campaign's overlap: the label falls back to the base label: the
   judge's (``judge_only``, its preferred side) when a successful judgement exists, else
   ``imported`` (A chosen) for imported pairs, else none. Labels set by people are taken back
   this way when a review is undone.
3. Some but not all reviewers flagged the pair, reviewers gave different verdicts, or different
   taxonomy corrections: the pair goes to the adjudication queue; the label is left as it is.
4. Every reviewer flagged the pair, or every reviewer said "cannot judge": ``excluded``.
5. All say tie: ``tie``; all say both unsafe: ``both_unsafe``.
6. All chose the same side. The reference is the judge's preferred side when a successful
   judgement exists, else A for imported pairs. Same side as the reference (or no reference):
   ``confirmed``. Other side: ``flipped`` (chosen and rejected swap), unless the campaign's
   policy is ``with_judge`` and a judgement exists: then adjudication.

An agreed taxonomy correction relabels the question through ``relabel_question``, which keeps
the label history. Every change of the final label writes a ``FinalLabelChange``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from django.contrib.auth.models import User
from django.db import transaction
from django.utils import timezone

from annotation.exceptions import ReviewError
from annotation.models import (
    Adjudication,
    AdjudicationAction,
    AdjudicationEvent,
    AdjudicationStatus,
    Campaign,
    CampaignPair,
    FinalLabel,
    FinalLabelChange,
    JudgePolicy,
    Pair,
    PairOrigin,
    Review,
    TaxonomyNode,
    Verdict,
)
from annotation.services.taxonomy import relabel_question
from judging.models import Judgement

PEOPLE_LABELS = {
    FinalLabel.CONFIRMED,
    FinalLabel.FLIPPED,
    FinalLabel.TIE,
    FinalLabel.BOTH_UNSAFE,
    FinalLabel.EXCLUDED,
    FinalLabel.ADJUDICATED,
}
_SIDE_LABELS = {
    Verdict.TIE: FinalLabel.TIE,
    Verdict.BOTH_UNSAFE: FinalLabel.BOTH_UNSAFE,
    Verdict.CANNOT_JUDGE: FinalLabel.EXCLUDED,
}


@dataclass(frozen=True)
class Decision:
    """What the rules say: a label (``label`` set), adjudication (``adjudicate`` set), or
    nothing yet (neither)."""

    label: str | None = None
    chosen: str = ""
    reason: str = ""
    adjudicate: str = ""
    taxonomy_id: int | None = None


def judge_side(judgement: Judgement | None) -> str:
    """The side the judge prefers, or "" without a successful judgement."""
    if judgement is None or judgement.prefers_a is None:
        return ""
    return Verdict.A if judgement.prefers_a else Verdict.B


def base_decision(*, pair: Pair, judgement: Judgement | None) -> Decision:
    if side := judge_side(judgement):
        return Decision(label=FinalLabel.JUDGE_ONLY, chosen=side, reason="judge only")
    if pair.origin == PairOrigin.IMPORTED:
        return Decision(label=FinalLabel.IMPORTED, chosen=Verdict.A, reason="imported label")
    return Decision(label=FinalLabel.NONE, reason="no verdict yet")


def decide(
    *, reviews: list[Review], overlap: int, policy: str, pair: Pair, judgement: Judgement | None
) -> Decision:
    """Apply rules 2 to 6 (see the module docstring) to submitted reviews."""
    if len(reviews) < overlap:
        return base_decision(pair=pair, judgement=judgement)
    flagged = sum(review.is_flagged for review in reviews)
    verdicts = Counter(review.final_verdict for review in reviews)
    corrections = {review.taxonomy_correction_id for review in reviews}
    if 0 < flagged < len(reviews):
        return Decision(adjudicate=f"flagged by {flagged} of {len(reviews)} reviewers")
    if len(verdicts) > 1 and flagged == 0:
        counts = ", ".join(f"{v} ×{n}" for v, n in sorted(verdicts.items()))
        return Decision(adjudicate=f"reviewers disagree: {counts}")
    if len(corrections) > 1:
        return Decision(adjudicate="reviewers gave different taxonomy corrections")
    taxonomy_id = corrections.pop()
    if flagged:
        return Decision(label=FinalLabel.EXCLUDED, reason="flagged by every reviewer")
    (verdict,) = verdicts
    if verdict in _SIDE_LABELS:
        label = _SIDE_LABELS[Verdict(verdict)]
        return Decision(label=label, reason=f"reviewers: {verdict}", taxonomy_id=taxonomy_id)
    reference = judge_side(judgement) or (Verdict.A if pair.has_source_verdict else "")
    if not reference or verdict == reference:
        reason = "reviewers confirm" + (" the judge" if judge_side(judgement) else "")
        return Decision(
            label=FinalLabel.CONFIRMED, chosen=verdict, reason=reason, taxonomy_id=taxonomy_id
        )
    if policy == JudgePolicy.WITH_JUDGE and judge_side(judgement):
        return Decision(adjudicate="reviewers overrule the judge")
    return Decision(
        label=FinalLabel.FLIPPED,
        chosen=verdict,
        reason="reviewers chose the other response",
        taxonomy_id=taxonomy_id,
    )


def latest_judgement(*, pair: Pair, campaign: Campaign) -> Judgement | None:
    judgements = Judgement.objects.succeeded().filter(pair=pair)
    if campaign.judge_run_id is not None:
        judgements = judgements.filter(run_id=campaign.judge_run_id)
    return judgements.order_by("-created_at", "-id").first()


@dataclass(frozen=True)
class LabelUpdate:
    """A final label to give a pair, and why."""

    pair_id: int
    label: str
    chosen: str
    reason: str


def set_final_labels(
    *,
    updates: Iterable[LabelUpdate],
    by: User | None,
    only_from: Collection[str] | None = None,
    now: datetime | None = None,
) -> list[int]:
    """The one writer of final labels: set each pair's label and write its history row,
    skipping pairs whose label would not change (and, with ``only_from``, pairs whose current
    label is not one of those). Returns the ids of the pairs changed. Locks the pairs."""
    wanted = {update.pair_id: update for update in updates}
    if not wanted:
        return []
    now = now or timezone.now()
    # No savepoint: a failure here fails the caller's transaction as a whole anyway.
    with transaction.atomic(savepoint=False):
        pairs = Pair.objects.select_for_update(no_key=True).filter(pk__in=list(wanted))
        if only_from is not None:
            pairs = pairs.filter(final_label__in=list(only_from))
        changed, history = [], []
        for pair in pairs.only("final_label", "final_chosen", "final_label_at").order_by("pk"):
            update = wanted[pair.pk]
            if (pair.final_label, pair.final_chosen) == (update.label, update.chosen):
                continue
            history.append(
                FinalLabelChange(
                    pair=pair,
                    old_label=pair.final_label,
                    old_chosen=pair.final_chosen,
                    new_label=update.label,
                    new_chosen=update.chosen,
                    reason=update.reason[:300],
                    changed_by=by,
                )
            )
            pair.final_label, pair.final_chosen = update.label, update.chosen
            pair.final_label_at = now
            changed.append(pair)
        Pair.objects.bulk_update(changed, ["final_label", "final_chosen", "final_label_at"])
        FinalLabelChange.objects.bulk_create(history)
    return [pair.pk for pair in changed]


def set_final_label(
    *,
    pair: Pair,
    label: str,
    chosen: str,
    reason: str,
    by: User | None,
    now: datetime | None = None,
) -> bool:
    """Set one pair's final label, writing its history; False when nothing changed."""
    update = LabelUpdate(pair_id=pair.pk, label=label, chosen=chosen, reason=reason)
    return bool(set_final_labels(updates=[update], by=by, now=now))


JUDGE_ONLY_REASON = "judge verdict (no people yet), judgement {judgement_id}"


def apply_judge_labels(*, judgements: Sequence[Judgement]) -> int:
    """The base label from the judge (rule 2): pairs no person has labelled, whose final label
    is empty or the judge's, get the judge's preferred side; imported and people's labels are
    never overwritten. Returns the number of pairs changed."""
    updates = [
        LabelUpdate(
            pair_id=judgement.pair_id,
            label=FinalLabel.JUDGE_ONLY,
            chosen=judge_side(judgement),
            reason=JUDGE_ONLY_REASON.format(judgement_id=judgement.pk),
        )
        for judgement in judgements
        if judge_side(judgement)
    ]
    only_from = [FinalLabel.NONE, FinalLabel.JUDGE_ONLY]
    return len(set_final_labels(updates=updates, by=None, only_from=only_from))


def _apply(
    *,
    campaign_pair: CampaignPair,
    decision: Decision,
    by: User | None,
    adjudication: Adjudication | None,
) -> None:
    pair = campaign_pair.pair
    if decision.adjudicate:
        Adjudication.objects.update_or_create(
            campaign_pair=campaign_pair,
            status=AdjudicationStatus.OPEN,
            defaults={"pair": pair, "reason": decision.adjudicate},
        )
        return
    if adjudication is not None:  # open: a decided one returned early in settle_pair
        Adjudication.objects.filter(pk=adjudication.pk).open().delete()
    if decision.label is None:
        return
    # The base label (judge or import) belongs to the judge's services; people's rules only
    # take it back when a label they set loses its reviews (an undo).
    if decision.label in PEOPLE_LABELS or pair.final_label in PEOPLE_LABELS:
        set_final_label(
            pair=pair, label=decision.label, chosen=decision.chosen, reason=decision.reason, by=by
        )
    if decision.taxonomy_id is not None:
        relabel_question(
            question=pair.question,
            subcategory=TaxonomyNode.objects.get(pk=decision.taxonomy_id),
            reason=f"review correction ({decision.reason})",
            by=by,
        )


def _loaded(campaign_pair: CampaignPair) -> CampaignPair:
    """The campaign pair with its campaign, pair and question: as given when the caller has
    loaded them (in its transaction), else fetched."""
    cached = (
        CampaignPair.campaign.is_cached(campaign_pair)
        and CampaignPair.pair.is_cached(campaign_pair)
        and Pair.question.is_cached(campaign_pair.pair)
    )
    if cached:
        return campaign_pair
    return CampaignPair.objects.select_related("campaign", "pair__question").get(
        pk=campaign_pair.pk
    )


@transaction.atomic(savepoint=False)
def settle_pair(*, campaign_pair: CampaignPair, by: User | None) -> Decision:
    """Recompute a campaign pair's outcome after a review was submitted or undone."""
    campaign_pair = _loaded(campaign_pair)
    if campaign_pair.is_gold:
        return Decision()
    # At most one adjudication per campaign pair (one-to-one): decided stops here, open may go.
    adjudication = Adjudication.objects.filter(campaign_pair=campaign_pair).first()
    if adjudication is not None and adjudication.status == AdjudicationStatus.DECIDED:
        return Decision()
    reviews = list(
        Review.objects.filter(
            campaign_pair=campaign_pair, submitted_at__isnull=False, is_gold=False
        ).order_by("pk")
    )
    campaign, pair = campaign_pair.campaign, campaign_pair.pair
    decision = decide(
        reviews=reviews,
        overlap=campaign.overlap,
        policy=campaign.judge_policy,
        pair=pair,
        judgement=latest_judgement(pair=pair, campaign=campaign),
    )
    _apply(campaign_pair=campaign_pair, decision=decision, by=by, adjudication=adjudication)
    return decision


@transaction.atomic
def decide_adjudication(
    *,
    adjudication: Adjudication,
    verdict: str,
    by: User,
    exclude: bool = False,
    taxonomy_correction: TaxonomyNode | None = None,
    note: str = "",
    now: datetime | None = None,
) -> Adjudication:
    """Record an adjudicator's decision and set the pair's final label from it (rule 1). A
    decided adjudication is refused: reopen it first (``reopen_adjudication``)."""
    now = now or timezone.now()
    adjudication = _lock_adjudication(adjudication)
    if adjudication.status == AdjudicationStatus.DECIDED:
        who = adjudication.decided_by.username if adjudication.decided_by else "someone"
        raise ReviewError(
            f"pair {adjudication.pair_id} was already decided by {who}; reopen it to decide again"
        )
    if not exclude and verdict not in Verdict.values:
        raise ReviewError("choose a verdict or exclude the pair")
    adjudication.status = AdjudicationStatus.DECIDED
    adjudication.verdict, adjudication.exclude = verdict if not exclude else "", exclude
    adjudication.taxonomy_correction, adjudication.note = taxonomy_correction, note
    adjudication.decided_by, adjudication.decided_at = by, now
    adjudication.save(
        update_fields=[
            "status",
            "verdict",
            "exclude",
            "taxonomy_correction",
            "note",
            "decided_by",
            "decided_at",
        ]
    )
    _record_event(adjudication=adjudication, action=AdjudicationAction.DECIDED, by=by, at=now)
    pair = adjudication.pair
    if exclude or verdict == Verdict.CANNOT_JUDGE:
        label, chosen = FinalLabel.EXCLUDED, ""
    elif verdict in (Verdict.A, Verdict.B):
        label, chosen = FinalLabel.ADJUDICATED, verdict
    else:
        label, chosen = _SIDE_LABELS[Verdict(verdict)], ""
    reason = f"adjudicated: {note}" if note else "adjudicated"
    set_final_label(pair=pair, label=label, chosen=chosen, reason=reason, by=by, now=now)
    if taxonomy_correction is not None:
        relabel_question(
            question=pair.question, subcategory=taxonomy_correction, reason="adjudication", by=by
        )
    return adjudication


@transaction.atomic
def reopen_adjudication(
    *, adjudication: Adjudication, by: User, reason: str, now: datetime | None = None
) -> Adjudication:
    """Put a decided adjudication back in the queue. The pair keeps its label until the next
    decision; the first decision stays in the history."""
    now = now or timezone.now()
    adjudication = _lock_adjudication(adjudication)
    if adjudication.status != AdjudicationStatus.DECIDED:
        raise ReviewError(f"pair {adjudication.pair_id} is not decided")
    if not reason.strip():
        raise ReviewError("say why the decision is reopened")
    adjudication.status = AdjudicationStatus.OPEN
    adjudication.save(update_fields=["status"])
    AdjudicationEvent.objects.create(
        adjudication=adjudication,
        action=AdjudicationAction.REOPENED,
        note=reason.strip()[:2000],
        by=by,
        at=now,
    )
    return adjudication


def _lock_adjudication(adjudication: Adjudication) -> Adjudication:
    return (
        Adjudication.objects.select_for_update(of=("self",), no_key=True)
        .select_related("pair__question", "decided_by")
        .get(pk=adjudication.pk)
    )


def _record_event(*, adjudication: Adjudication, action: str, by: User, at: datetime) -> None:
    AdjudicationEvent.objects.create(
        adjudication=adjudication,
        action=action,
        verdict=adjudication.verdict,
        exclude=adjudication.exclude,
        taxonomy_correction=adjudication.taxonomy_correction,
        note=adjudication.note,
        by=by,
        at=at,
    )
