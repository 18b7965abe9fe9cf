"""Sampling pairs from the responses of different models, as SPA-VL did.

Two responses may be paired when they come from different models. A response whose model is
unknown (empty name) counts as a different model from any response whose text differs from its
own; two responses with the same text never pair. Sampling is seeded per question, so the same
database state and seed give the same pairs, and a question never gets more than ``per_question``
sampled pairs: re-running with the same seed creates nothing.
"""

from __future__ import annotations

import itertools
import random
from collections import defaultdict
from dataclasses import dataclass

from django.db import transaction

from annotation.models import Pair, PairOrigin, Question, Response

QUESTIONS_PER_CHUNK = 500
ResponseRow = tuple[int, str, str]  # id, model name, text sha256


@dataclass(frozen=True)
class PairSampleResult:
    questions: int
    created: int


def may_pair(first: ResponseRow, second: ResponseRow) -> bool:
    if first[2] == second[2]:
        return False
    return not first[1] or not second[1] or first[1] != second[1]


def make_pairs(
    *, seed: int = 0, per_question: int = 1, question_type: str | None = None
) -> PairSampleResult:
    """Sample up to ``per_question`` pairs per question, never duplicating an existing pair.

    Sampled pairs have origin SAMPLED and no final label. Which response is A is drawn by the
    same seeded generator: import order often follows the source model, and a fixed A/B order
    would hand every position effect of a judge or reviewer a systematic direction.
    """
    questions = Question.objects.order_by("pk")
    if question_type:
        questions = questions.filter(question_type=question_type)
    ids = list(questions.values_list("pk", flat=True))
    created = 0
    for start in range(0, len(ids), QUESTIONS_PER_CHUNK):
        created += _sample_chunk(ids[start : start + QUESTIONS_PER_CHUNK], seed, per_question)
    return PairSampleResult(questions=len(ids), created=created)


@transaction.atomic
def _sample_chunk(question_ids: list[int], seed: int, per_question: int) -> int:
    responses: dict[int, list[ResponseRow]] = defaultdict(list)
    rows = (
        Response.objects.filter(question_id__in=question_ids)
        .order_by("pk")
        .values_list("question_id", "pk", "model_name", "text_sha256")
    )
    for question_id, pk, model_name, digest in rows:
        responses[question_id].append((pk, model_name, digest))
    existing: dict[int, set[frozenset[int]]] = defaultdict(set)
    sampled: dict[int, int] = defaultdict(int)
    pairs = Pair.objects.filter(question_id__in=question_ids)
    for question_id, a, b, origin in pairs.values_list(
        "question_id", "response_a_id", "response_b_id", "origin"
    ):
        existing[question_id].add(frozenset((a, b)))
        sampled[question_id] += origin == PairOrigin.SAMPLED
    new = []
    for question_id in question_ids:
        wanted = per_question - sampled[question_id]
        candidates = [
            (first[0], second[0])
            for first, second in itertools.combinations(responses[question_id], 2)
            if may_pair(first, second)
            and frozenset((first[0], second[0])) not in existing[question_id]
        ]
        if wanted <= 0 or not candidates:
            continue
        picker = random.Random(f"{seed}:{question_id}")
        for first, second in picker.sample(candidates, min(wanted, len(candidates))):
            a, b = (first, second) if picker.random() < 0.5 else (second, first)
            new.append(
                Pair(
                    question_id=question_id,
                    response_a_id=a,
                    response_b_id=b,
                    origin=PairOrigin.SAMPLED,
                )
            )
    Pair.objects.bulk_create(new, ignore_conflicts=True)
    return len(new)
