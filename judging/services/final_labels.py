"""The judge-only final label: what a pair's final label is before any person has looked."""

from __future__ import annotations

from collections.abc import Sequence

from django.utils import timezone

from annotation.models import FinalLabel, FinalLabelChange, Pair, Side
from judging.models import Judgement

JUDGE_ONLY_REASON = "judge verdict (no people yet), judgement {judgement_id}"


def apply_judgements_to_final_labels(*, judgements: Sequence[Judgement]) -> int:
    """Give pairs that no person has labelled yet the judge's verdict as final label.

    Only pairs whose final label is empty or already `judge_only` change; imported and people's
    labels are never overwritten. Every change is recorded as a FinalLabelChange. Call inside a
    transaction; returns the number of pairs changed."""
    chosen = {
        j.pair_id: Side.A if j.prefers_a else Side.B for j in judgements if j.prefers_a is not None
    }
    judgement_ids = {j.pair_id: j.pk for j in judgements}
    pairs = list(
        Pair.objects.select_for_update()
        .filter(pk__in=chosen, final_label__in=[FinalLabel.NONE, FinalLabel.JUDGE_ONLY])
        .only("final_label", "final_chosen", "final_label_at")
    )
    now = timezone.now()
    changes = []
    for pair in pairs:
        new_chosen = chosen[pair.pk]
        if pair.final_label == FinalLabel.JUDGE_ONLY and pair.final_chosen == new_chosen:
            continue
        changes.append(
            FinalLabelChange(
                pair=pair,
                old_label=pair.final_label,
                old_chosen=pair.final_chosen,
                new_label=FinalLabel.JUDGE_ONLY,
                new_chosen=new_chosen,
                reason=JUDGE_ONLY_REASON.format(judgement_id=judgement_ids[pair.pk]),
            )
        )
        pair.final_label, pair.final_chosen, pair.final_label_at = (
            FinalLabel.JUDGE_ONLY,
            new_chosen,
            now,
        )
    changed = [change.pair for change in changes]
    Pair.objects.bulk_update(changed, ["final_label", "final_chosen", "final_label_at"])
    FinalLabelChange.objects.bulk_create(changes)
    return len(changes)
