"""Read the rows of one shard, a page of pairs at a time, with each image's original bytes.

Pages are fetched by primary key from the plan's sorted id list (two plain queries each, no
server-side cursor, so PgBouncer's transaction pooling is fine; a third, with provenance, for
the configurations of generated responses). Pairs sharing an image in a page fetch its bytes
once. Memory holds one page: about 100 images.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from typing import Any

import psycopg
from django.db import connection
from django.db.models import OuterRef, Subquery

from annotation.models import FinalLabel, Image, Pair
from annotation.services.export.plan import ExportPlan
from annotation.services.export.spec import ExportSpec
from judging.models import GenerationConfiguration, Judgement, JudgementStatus

PAGE_ROWS = 100
NO_CLASS = ("", "", "")


@dataclass(frozen=True, slots=True)
class ExportRow:
    """One output row. For deciding labels ``first`` is the chosen response and ``second`` the
    rejected one; for tie and both-unsafe rows they are responses A and B. ``source_id`` and
    ``provenance`` (JSON text: the pair's, else its question's, with ``generation``: what made
    each of the two responses, null for an imported one, where one was generated) are read
    only when asked for."""

    pair_id: int
    final_label: str
    question: str
    first: str
    second: str
    first_model: str
    second_model: str
    judge_p_first: float | None
    image_bytes: bytes
    image_name: str
    class_keys: tuple[str, str, str]
    source_id: str = ""
    provenance: str = "{}"
    # Read only for safe-rlhf-jsonl, whose rows keep the pair's order (``first`` is A): the
    # final labels of both axes and of each response's safety (None / "" where unlabelled).
    final_safer: str = ""
    final_helpful: str = ""
    a_safe: bool | None = None
    b_safe: bool | None = None
    a_severity: str = ""
    b_severity: str = ""


def iter_shard_pages(
    plan: ExportPlan, pair_ids: Sequence[int], *, spec: ExportSpec, two_axis: bool = False
) -> Iterator[list[ExportRow]]:
    """Pages of rows; ``two_axis`` (safe-rlhf-jsonl) keeps the pair's order and adds the axis
    and per-response safety labels."""
    for start in range(0, len(pair_ids), PAGE_ROWS):
        page = _read_page(plan, pair_ids[start : start + PAGE_ROWS], spec=spec, keep_order=two_axis)
        yield _with_axes(page) if two_axis else page


AXIS_FIELDS = (
    "final_safer",
    "final_helpful",
    "final_a_safe",
    "final_b_safe",
    "final_a_severity",
    "final_b_severity",
)


def _with_axes(page: list[ExportRow]) -> list[ExportRow]:
    """The page's rows with their pairs' axis and per-response safety labels (one query)."""
    found = Pair.objects.filter(pk__in=[row.pair_id for row in page]).values_list(
        "pk", *AXIS_FIELDS
    )
    labels = {pk: values for pk, *values in found}
    names = ("final_safer", "final_helpful", "a_safe", "b_safe", "a_severity", "b_severity")
    return [replace(row, **dict(zip(names, labels[row.pair_id], strict=True))) for row in page]


def _read_page(
    plan: ExportPlan, pair_ids: Sequence[int], *, spec: ExportSpec, keep_order: bool = False
) -> list[ExportRow]:
    judge = Judgement.objects.filter(pair=OuterRef("pk"), status=JudgementStatus.OK)
    if spec.judge_configuration_id is not None:
        judge = judge.filter(configuration_id=spec.judge_configuration_id)
    latest_p = Subquery(judge.order_by("-created_at", "-id").values("p_a_better")[:1])
    pairs = Pair.objects.filter(pk__in=pair_ids)
    if spec.include_provenance:
        pairs = pairs.annotate(judge_p_a=latest_p)
    fields = list(ROW_FIELDS)
    if spec.include_provenance:
        fields += PROVENANCE_FIELDS
        fields += [f"response_{side}__{name}" for side in "ab" for name in GENERATION_FIELDS]
    by_id = {row[0]: row for row in pairs.values_list(*fields)}
    image_bytes = _image_bytes(sorted({row[3] for row in by_id.values()}))
    generations = _generation_configurations(by_id.values()) if spec.include_provenance else {}
    return [
        _row(plan, by_id[pair_id], image_bytes, generations, keep_order=keep_order)
        for pair_id in pair_ids
        if pair_id in by_id
    ]


# What a page reads per pair, in row order; with provenance, then PROVENANCE_FIELDS and each
# response's GENERATION_FIELDS.
ROW_FIELDS = [
    "pk",
    "final_label",
    "final_chosen",
    "question__image_id",
    "question__subcategory_id",
    "question__text",
    "response_a__text",
    "response_b__text",
    "response_a__model_name",
    "response_b__model_name",
]
PROVENANCE_FIELDS = ["judge_p_a", "source_id", "provenance", "question__provenance"]
# A generated response's provenance, exported beside the pair's (a response: see Response).
GENERATION_FIELDS = [
    "generation_configuration_id",
    "sample_index",
    "tokens_in",
    "tokens_out",
    "finish_reason",
    "generation_seconds",
]
# Where the provenance fields and the two responses' GENERATION_FIELDS start in a row.
_PROVENANCE_START = len(ROW_FIELDS)
_GENERATION_START = _PROVENANCE_START + len(PROVENANCE_FIELDS)


def _generation_configurations(
    rows: Iterable[tuple[Any, ...]],
) -> dict[int, GenerationConfiguration]:
    width = len(GENERATION_FIELDS)
    ids = {
        row[start]
        for row in rows
        for start in (_GENERATION_START, _GENERATION_START + width)
        if row[start] is not None
    }
    return GenerationConfiguration.objects.in_bulk(ids) if ids else {}


def _generation_of(
    values: Sequence[Any], configurations: dict[int, GenerationConfiguration]
) -> dict[str, Any] | None:
    """What made a generated response (None for an imported one)."""
    if values[0] is None:
        return None
    configuration = configurations[values[0]]
    return {
        "model_id": configuration.model_id,
        "model_revision": configuration.model_revision,
        "dtype": configuration.dtype,
        "prompt_version": configuration.prompt_version,
        "config": configuration.config,
        **dict(zip(GENERATION_FIELDS[1:], values[1:], strict=True)),
    }


def _image_bytes(image_ids: list[int]) -> dict[int, bytes]:
    if connection.vendor != "postgresql":  # the embedded SQLite default: bytes come as bytes
        images = Image.objects.filter(pk__in=image_ids).values_list("pk", "data")
        return {image_id: bytes(data) for image_id, data in images}
    # A raw psycopg cursor in binary format: bytea arrives as its bytes, not as hex text twice
    # the size that PostgreSQL encodes and psycopg decodes (the image bytes are almost all of
    # the export's volume); the ORM would also wrap each value in a memoryview and copy it.
    # Django's cursors bind client-side, which has no binary results: take a plain one.
    connection.ensure_connection()
    with psycopg.Cursor(connection.connection) as cursor:
        cursor.format = psycopg.pq.Format.BINARY
        cursor.execute("SELECT id, data FROM annotation_image WHERE id = ANY(%s)", [image_ids])
        return {image_id: bytes(data) for image_id, data in cursor.fetchall()}


def _row(
    plan: ExportPlan,
    row: tuple[Any, ...],
    image_bytes: dict[int, bytes],
    generations: dict[int, GenerationConfiguration],
    *,
    keep_order: bool = False,
) -> ExportRow:
    (pair_id, label, chosen, image_id, subcategory_id, question, text_a, text_b) = row[:8]
    model_a, model_b = row[8], row[9]
    p_a, source_id, pair_provenance, question_provenance = row[
        _PROVENANCE_START:_GENERATION_START
    ] or (None, "", {}, {})
    deciding = label not in (FinalLabel.TIE, FinalLabel.BOTH_UNSAFE)
    swap = not keep_order and deciding and chosen == "b"
    provenance = dict(pair_provenance or question_provenance)
    if len(row) > _GENERATION_START:
        width = len(GENERATION_FIELDS)
        made_a = _generation_of(row[_GENERATION_START : _GENERATION_START + width], generations)
        made_b = _generation_of(row[_GENERATION_START + width :], generations)
        if made_a or made_b:
            # In the row's own order: the chosen response first where the label decides.
            provenance["generation"] = [made_b, made_a] if swap else [made_a, made_b]
    return ExportRow(
        pair_id=pair_id,
        final_label=label,
        question=question,
        first=text_b if swap else text_a,
        second=text_a if swap else text_b,
        first_model=model_b if swap else model_a,
        second_model=model_a if swap else model_b,
        judge_p_first=None if p_a is None else (1 - p_a if swap else p_a),
        image_bytes=image_bytes[image_id],
        image_name=plan.image_names[image_id],
        class_keys=plan.class_keys.get(subcategory_id, NO_CLASS),
        source_id=source_id,
        provenance=_json_text(provenance),
    )


def _json_text(value: dict[str, Any]) -> str:
    # Sorted keys: jsonb keeps no order of its own, and the same rows give the same bytes.
    return json.dumps(value, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
