"""The dataset as a pipeline reads it: questions, responses and pairs, filtered, with what the
judge and the reviewers made of them. The API's data endpoints are thin views over these.

Every query is built for cursor pages ordered by id: a page is one query for the rows (their
question, taxonomy path and responses joined in) and one for the judgements of the page's pairs,
whatever the table's size, and a row inserted while a client walks the pages appears after the
rows it has already seen, never shifting a page.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.db.models import Exists, OuterRef, Prefetch, Q, QuerySet

from annotation.models import (
    FinalLabelChange,
    LabelChange,
    Pair,
    Question,
    Response,
    Review,
    TaxonomyNode,
)
from judging.models import JudgeConfiguration, Judgement

__all__ = [
    "DataFilters",
    "label_history",
    "latest_judgement",
    "pair_reviews",
    "pairs_matching",
    "question_history",
    "questions_matching",
    "responses_matching",
    "subcategory_keys",
    "configuration_names",
]


@dataclass(frozen=True)
class DataFilters:
    """What a listing is narrowed to; ``None`` leaves a filter out. ``final_label`` "" means
    pairs with no final label yet."""

    taxonomy_node: int | None = None
    question_type: str | None = None
    model: str | None = None
    final_label: str | None = None
    judged: bool | None = None
    needs_review: bool | None = None
    campaign: int | None = None
    import_batch: int | None = None


def _under_node(node_id: int, prefix: str = "") -> Q:
    """Questions labelled with the node or anything below it, at whichever level it is."""
    return (
        Q(**{f"{prefix}subcategory_id": node_id})
        | Q(**{f"{prefix}subcategory__parent_id": node_id})
        | Q(**{f"{prefix}subcategory__parent__parent_id": node_id})
    )


def _judgements() -> QuerySet[Judgement]:
    return Judgement.objects.succeeded()


def subcategory_keys() -> dict[int, tuple[str, str, str]]:
    """Every subcategory's (class1, class2, class3), live or retired, in one query: a page of
    rows names its taxonomy by id and reads the strings from here."""
    nodes = TaxonomyNode.objects.subcategories().with_paths()
    return {node.pk: node.class_keys() for node in nodes}


def configuration_names() -> dict[int, str]:
    return {c.pk: str(c) for c in JudgeConfiguration.objects.all()}


def pairs_matching(filters: DataFilters) -> QuerySet[Pair]:
    # Taxonomy strings and judge configurations come from subcategory_keys() and
    # configuration_names(), once per page, rather than as joined rows for each pair.
    pairs = Pair.objects.select_related("question", "response_a", "response_b").defer(
        "question__provenance", "provenance"
    )
    if filters.taxonomy_node is not None:
        pairs = pairs.filter(_under_node(filters.taxonomy_node, "question__"))
    if filters.question_type is not None:
        pairs = pairs.filter(question__question_type=filters.question_type)
    if filters.model is not None:
        pairs = pairs.filter(
            Q(response_a__model_name=filters.model) | Q(response_b__model_name=filters.model)
        )
    if filters.final_label is not None:
        pairs = pairs.filter(final_label=filters.final_label)
    if filters.judged is not None:
        judged = Exists(Judgement.objects.succeeded().filter(pair=OuterRef("pk")))
        pairs = pairs.filter(judged if filters.judged else ~judged)
    if filters.needs_review is not None:
        flagged = Exists(Judgement.objects.needing_review().filter(pair=OuterRef("pk")))
        pairs = pairs.filter(flagged if filters.needs_review else ~flagged)
    if filters.campaign is not None:
        pairs = pairs.filter(campaign_pairs__campaign_id=filters.campaign)
    if filters.import_batch is not None:
        pairs = pairs.filter(import_batch_id=filters.import_batch)
    # Each pair's succeeded judgements, newest first, in one query per page.
    newest = _judgements().order_by("-created_at", "-id")
    return pairs.prefetch_related(Prefetch("judgements", newest, to_attr="ok_judgements"))


def latest_judgement(pair: Pair) -> Judgement | None:
    """The newest succeeded judgement of a pair read through :func:`pairs_matching`."""
    judgements: list[Judgement] = getattr(pair, "ok_judgements", None) or list(
        _judgements().filter(pair=pair).order_by("-created_at", "-id")[:1]
    )
    return judgements[0] if judgements else None


def questions_matching(filters: DataFilters) -> QuerySet[Question]:
    questions = Question.objects.all()
    if filters.taxonomy_node is not None:
        questions = questions.filter(_under_node(filters.taxonomy_node))
    if filters.question_type is not None:
        questions = questions.filter(question_type=filters.question_type)
    if filters.model is not None:
        by_model = Response.objects.filter(question=OuterRef("pk"), model_name=filters.model)
        questions = questions.filter(Exists(by_model))
    if filters.campaign is not None:
        in_campaign = Pair.objects.filter(
            question=OuterRef("pk"), campaign_pairs__campaign_id=filters.campaign
        )
        questions = questions.filter(Exists(in_campaign))
    if filters.import_batch is not None:
        questions = questions.filter(import_batch_id=filters.import_batch)
    return questions


def responses_matching(filters: DataFilters) -> QuerySet[Response]:
    responses = Response.objects.all()
    if filters.taxonomy_node is not None:
        responses = responses.filter(_under_node(filters.taxonomy_node, "question__"))
    if filters.question_type is not None:
        responses = responses.filter(question__question_type=filters.question_type)
    if filters.model is not None:
        responses = responses.filter(model_name=filters.model)
    if filters.import_batch is not None:
        responses = responses.filter(import_batch_id=filters.import_batch)
    return responses


def pair_reviews(pair: Pair) -> QuerySet[Review]:
    """The pair's submitted reviews, oldest first."""
    return (
        Review.objects.filter(pair=pair, submitted_at__isnull=False)
        .select_related("reviewer")
        .order_by("submitted_at", "pk")
    )


def label_history(pair: Pair) -> QuerySet[FinalLabelChange]:
    return FinalLabelChange.objects.filter(pair=pair).select_related("changed_by")


def question_history(question: Question) -> QuerySet[LabelChange]:
    return LabelChange.objects.filter(question=question).select_related("changed_by")
