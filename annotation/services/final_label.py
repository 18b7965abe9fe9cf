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

Two-axis campaigns and per-response safety (``annotation.services.review_axes``) settle more
fields of the pair, by the same rules on each reviewer's final answers. The single verdict above
is the one ``single_preference`` derives from them, so rules 1 to 6 apply unchanged; besides:

7. Disagreement on an axis (which response is safer, which is more helpful) or on whether a
   response is safe sends the pair to adjudication (rule 3), even when the derived single
   verdicts agree: every exported field needs a settled value, and the adjudicator settles them
   all. Severities and harm subcategories of responses all call unsafe do not: they are not a
   reason to adjudicate.
8. Once the overlap is reached and no adjudication is asked: ``Pair.final_safer`` and
   ``final_helpful`` get the reviewers' common answer (a, b or tie; a unanimous "cannot judge"
   leaves the axis ""); ``final_a_safe``/``final_b_safe`` get the common safe or unsafe, and an
   unsafe response gets the median of the reviewers' severities (minor < moderate < severe; of
   an even count, the more severe of the two middle ones, as a safety dataset errs toward
   harm). Every reviewer flagging the pair (rule 4) leaves them all unset.
9. Fewer reviews than the overlap (an undo) takes them back to unset; a decided adjudication
   sets them from the adjudicator's answers (``decide_adjudication``). Campaigns that ask
   neither leave a pair's axes and safety as they are. They have no history rows, and the
   adjudication row keeps only the single verdict: the reviews keep every reviewer's answers,
   the pair the adjudicator's.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Iterable, Sequence
from dataclasses import asdict, dataclass, replace
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
    ReviewMode,
    ReviewStage,
    Severity,
    TaxonomyNode,
    Verdict,
)
from annotation.services.review_axes import AxisAnswers, ResponseSafety, single_preference
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
class PairAxes:
    """A pair's final two-axis labels and per-response safety (rules 8 and 9); the defaults
    are "not settled"."""

    safer: str = ""
    helpful: str = ""
    a_safe: bool | None = None
    b_safe: bool | None = None
    a_severity: str = ""
    b_severity: str = ""


@dataclass(frozen=True)
class Decision:
    """What the rules say: a label (``label`` set), adjudication (``adjudicate`` set), or
    nothing yet (neither). ``axes`` None leaves the pair's axes as they are."""

    label: str | None = None
    chosen: str = ""
    reason: str = ""
    adjudicate: str = ""
    taxonomy_id: int | None = None
    axes: PairAxes | None = None


def review_answers(*, review: Review, stage: str, with_safety: bool = True) -> AxisAnswers:
    """A review's axes and per-response safety at one stage (blind or final), on the pair's
    sides; reads ``review.safety_labels.all()`` (prefetch it for many reviews) unless
    ``with_safety`` is false (the campaign does not ask for it: no query)."""
    rows = review.safety_labels.all() if with_safety else []
    labels = {
        label.side: ResponseSafety(
            safe=label.safe, severity=label.severity, subcategory_id=label.subcategory_id
        )
        for label in rows
        if label.stage == stage
    }
    blind = stage == ReviewStage.BLIND
    return AxisAnswers(
        safer=review.blind_safer if blind else review.final_safer,
        helpful=review.blind_helpful if blind else review.final_helpful,
        a=labels.get("a"),
        b=labels.get("b"),
    )


def asks_axes(campaign: Campaign) -> bool:
    """Whether the campaign's reviews settle the pair's axes or per-response safety."""
    return campaign.review_mode == ReviewMode.TWO_AXIS or campaign.per_response_safety


def axis_disagreement(answers: Sequence[AxisAnswers]) -> str:
    """Why the answers need adjudication on an axis or a response's safety (rule 7), or ""."""
    for name, what in (("safer", "which is safer"), ("helpful", "which is more helpful")):
        values = Counter(getattr(answer, name) for answer in answers)
        if len(values) > 1:
            counts = ", ".join(f"{v} ×{n}" for v, n in sorted(values.items()))
            return f"reviewers disagree on {what}: {counts}"
    for side in ("a", "b"):
        if len({_safety(answer, side).safe for answer in answers}) > 1:
            return f"reviewers disagree on whether response {side.upper()} is safe"
    return ""


def _safety(answer: AxisAnswers, side: str) -> ResponseSafety:
    # Without per-response safety both sides read as "safe": nothing to disagree on.
    return (answer.a if side == "a" else answer.b) or ResponseSafety(safe=True)


def median_severity(severities: Sequence[str]) -> str:
    """The median severity; of an even count the more severe of the two middle ones."""
    order = list(Severity.values)
    ranked = sorted(severities, key=order.index)
    return ranked[len(ranked) // 2]


def agreed_axes(answers: Sequence[AxisAnswers]) -> PairAxes:
    """The pair's axes from answers that agree on every axis and safe/unsafe (rule 8)."""
    first = answers[0]
    safety: dict[str, tuple[bool | None, str]] = {}
    for side in ("a", "b"):
        labels = [answer.a if side == "a" else answer.b for answer in answers]
        present = [label for label in labels if label is not None]
        if not present:
            safety[side] = (None, "")
        elif present[0].safe:
            safety[side] = (True, "")
        else:
            safety[side] = (False, median_severity([label.severity for label in present]))
    return PairAxes(
        safer=_axis_label(first.safer),
        helpful=_axis_label(first.helpful),
        a_safe=safety["a"][0],
        b_safe=safety["b"][0],
        a_severity=safety["a"][1],
        b_severity=safety["b"][1],
    )


def _axis_label(answer: str) -> str:
    return "" if answer == Verdict.CANNOT_JUDGE else answer


def checked_answers(*, campaign: Campaign, answers: AxisAnswers | None) -> AxisAnswers:
    """The answers, if they are what the campaign asks: both axes in two-axis campaigns and
    neither otherwise; both responses' safety with per-response safety and neither otherwise;
    harm subcategories that are live level-3 nodes. ReviewError says what is wrong."""
    answers = answers or AxisAnswers()
    if campaign.review_mode == ReviewMode.TWO_AXIS and not (answers.safer and answers.helpful):
        raise ReviewError("say which response is safer and which is more helpful")
    if campaign.review_mode != ReviewMode.TWO_AXIS and answers.two_axis:
        raise ReviewError("this campaign asks for one verdict, not safer and more helpful")
    if campaign.per_response_safety and answers.a is None:
        raise ReviewError("label each response safe or unsafe")
    if not campaign.per_response_safety and answers.a is not None:
        raise ReviewError("this campaign does not ask for each response's safety")
    labels = [label for label in (answers.a, answers.b) if label is not None]
    named = {label.subcategory_id for label in labels if label.subcategory_id is not None}
    live = TaxonomyNode.objects.active().subcategories().filter(pk__in=named)
    if named and len(named) != live.count():
        raise ReviewError("a harm subcategory must be a live subcategory of the taxonomy")
    return answers


def answered_verdict(*, campaign: Campaign, verdict: str, answers: AxisAnswers) -> str:
    """The single verdict (pair sides) to store: in two-axis campaigns the one
    ``single_preference`` derives, and a verdict given besides must be that one (else
    ReviewError); otherwise the verdict given, which must be one."""
    if campaign.review_mode != ReviewMode.TWO_AXIS:
        if verdict not in Verdict.values:
            raise ReviewError("choose a verdict")
        return verdict
    derived = single_preference(answers)
    if verdict and verdict != derived:
        raise ReviewError(
            f"the verdict {verdict!r} does not follow from the answers, which give {derived!r}"
        )
    return derived


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
    *,
    reviews: list[Review],
    overlap: int,
    policy: str,
    pair: Pair,
    judgement: Judgement | None,
    with_axes: bool = False,
) -> Decision:
    """Apply rules 2 to 9 (see the module docstring) to submitted reviews; ``with_axes``: the
    campaign asks for axes or per-response safety (``asks_axes``)."""
    decision = _decide_label(
        reviews=reviews, overlap=overlap, policy=policy, pair=pair, judgement=judgement
    )
    if not with_axes or decision.adjudicate or decision.label is None:
        return decision
    if len(reviews) < overlap or all(review.is_flagged for review in reviews):
        return replace(decision, axes=PairAxes())
    answers = [review_answers(review=review, stage=ReviewStage.FINAL) for review in reviews]
    if reason := axis_disagreement(answers):
        return Decision(adjudicate=reason)
    return replace(decision, axes=agreed_axes(answers))


def _decide_label(
    *, reviews: list[Review], overlap: int, policy: str, pair: Pair, judgement: Judgement | None
) -> Decision:
    """Rules 2 to 6: the single label."""
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
    if decision.axes is not None:
        set_final_axes(pair=pair, axes=decision.axes)
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


def set_final_axes(*, pair: Pair, axes: PairAxes) -> bool:
    """The one writer of a pair's final axes and per-response safety (rules 8 and 9); False
    when nothing changed. The caller holds the transaction."""
    values = {f"final_{name}": value for name, value in asdict(axes).items()}
    if all(getattr(pair, field) == value for field, value in values.items()):
        return False
    for field, value in values.items():
        setattr(pair, field, value)
    Pair.objects.filter(pk=pair.pk).update(**values)
    return True


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
    campaign, pair = campaign_pair.campaign, campaign_pair.pair
    reviews = Review.objects.filter(
        campaign_pair=campaign_pair, submitted_at__isnull=False, is_gold=False
    ).order_by("pk")
    if asks_axes(campaign):
        reviews = reviews.prefetch_related("safety_labels")
    decision = decide(
        reviews=list(reviews),
        overlap=campaign.overlap,
        policy=campaign.judge_policy,
        pair=pair,
        judgement=latest_judgement(pair=pair, campaign=campaign),
        with_axes=asks_axes(campaign),
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
    answers: AxisAnswers | None = None,
    now: datetime | None = None,
) -> Adjudication:
    """Record an adjudicator's decision and set the pair's final label from it (rule 1). A
    decided adjudication is refused: reopen it first (``reopen_adjudication``). Unless the pair
    is excluded, ``answers`` carry what the campaign asks (``checked_answers``) and set the
    pair's axes and per-response safety; in two-axis campaigns the verdict may be "" and is
    derived from them (``answered_verdict``). Excluding unsets them. Harm subcategories in
    the answers are checked but not stored: the pair has no field for them."""
    now = now or timezone.now()
    adjudication = _lock_adjudication(adjudication)
    if adjudication.status == AdjudicationStatus.DECIDED:
        who = adjudication.decided_by.username if adjudication.decided_by else "someone"
        raise ReviewError(
            f"pair {adjudication.pair_id} was already decided by {who}; reopen it to decide again"
        )
    campaign = adjudication.campaign_pair.campaign
    axes = PairAxes() if asks_axes(campaign) else None
    if not exclude:
        if not verdict and campaign.review_mode != ReviewMode.TWO_AXIS:
            raise ReviewError("choose a verdict or exclude the pair")
        answers = checked_answers(campaign=campaign, answers=answers)
        verdict = answered_verdict(campaign=campaign, verdict=verdict, answers=answers)
        axes = agreed_axes([answers]) if axes is not None else None
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
    if axes is not None:
        set_final_axes(pair=pair, axes=axes)
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
        .select_related("pair__question", "decided_by", "campaign_pair__campaign")
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
