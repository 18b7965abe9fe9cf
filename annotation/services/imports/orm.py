"""Chunk writes through the Django ORM: the path for SQLite (the embedded demo) and any backend
without a faster one. ``bulk_create`` per table, existing keys looked up in bulk first.

The caller holds a transaction. Returns the created flag of each row (its pair, else its
responses, else its question) and the ids of the images it stored.
"""

from __future__ import annotations

from django.utils import timezone

from annotation.models import (
    FinalLabel,
    Image,
    ImportBatch,
    Pair,
    PairOrigin,
    Question,
    Response,
    Side,
)
from annotation.services.imports.rows import ImportRow, NewImage

# Small insert batches: each image is ~100 KB and a 500-row INSERT would hold 50+ MB.
IMAGE_INSERT_BATCH = 50
ResponseKey = tuple[int, str, str]


def write_rows_orm(
    *,
    rows: list[ImportRow],
    images: list[NewImage],
    image_ids: dict[str, int],
    batch: ImportBatch,
) -> tuple[list[bool], dict[str, int]]:
    new_images = _create_images(images)
    image_ids = {**image_ids, **new_images}
    question_ids, question_created = _create_questions(rows, image_ids=image_ids, batch=batch)
    row_questions = [
        question_ids[(image_ids[row.image_sha256], row.question_sha256)] for row in rows
    ]
    response_ids, response_created = _create_responses(rows, row_questions, batch=batch)
    pair_created = _create_pairs(rows, row_questions, response_ids, batch=batch)
    created = []
    for index, row in enumerate(rows):
        if row.is_pair:
            created.append(pair_created[index])
        elif row.responses:
            created.append(response_created[index])
        else:
            created.append(question_created[index])
    return created, new_images


def _create_images(images: list[NewImage]) -> dict[str, int]:
    pending = [
        Image(
            sha256=image.sha256,
            data=image.data,
            format=image.format,
            width=image.width,
            height=image.height,
            byte_size=len(image.data),
            dhash=image.dhash,
            source_name=image.source_name,
            is_placeholder=image.is_placeholder,
        )
        for image in images
    ]
    Image.objects.bulk_create(pending, batch_size=IMAGE_INSERT_BATCH)
    return {image.sha256: image.pk for image in pending}


def _create_questions(
    rows: list[ImportRow], *, image_ids: dict[str, int], batch: ImportBatch
) -> tuple[dict[tuple[int, str], int], list[bool]]:
    keys = [(image_ids[row.image_sha256], row.question_sha256) for row in rows]
    found = Question.objects.filter(
        image_id__in={k[0] for k in keys}, text_sha256__in={k[1] for k in keys}
    ).values_list("image_id", "text_sha256", "pk")
    ids = {(image_id, sha): pk for image_id, sha, pk in found}
    pending: dict[tuple[int, str], Question] = {}
    created = []
    for key, row in zip(keys, rows, strict=True):
        is_new = key not in ids and key not in pending
        created.append(is_new)
        if is_new:
            pending[key] = Question(
                image_id=key[0],
                text=row.question,
                text_sha256=key[1],
                question_type=row.question_type,
                subcategory_id=row.subcategory_id,
                import_batch=batch,
                provenance={} if row.is_pair else row.provenance,
            )
    Question.objects.bulk_create(pending.values())
    ids.update({key: question.pk for key, question in pending.items()})
    return ids, created


def _create_responses(
    rows: list[ImportRow], row_questions: list[int], *, batch: ImportBatch
) -> tuple[dict[ResponseKey, int], list[bool]]:
    found = Response.objects.filter(question_id__in=set(row_questions)).values_list(
        "question_id", "model_name", "text_sha256", "pk"
    )
    ids = {(q, m, s): pk for q, m, s, pk in found}
    pending: dict[ResponseKey, Response] = {}
    created = []
    for question_id, row in zip(row_questions, rows, strict=True):
        any_new = False
        for (model_name, text), (_, digest) in zip(row.responses, row.response_keys, strict=True):
            key = (question_id, model_name, digest)
            if key in ids or key in pending:
                continue
            any_new = True
            pending[key] = Response(
                question_id=question_id,
                model_name=model_name,
                text=text,
                text_sha256=digest,
                import_batch=batch,
            )
        created.append(any_new)
    Response.objects.bulk_create(pending.values())
    ids.update({key: response.pk for key, response in pending.items()})
    return ids, created


def _create_pairs(
    rows: list[ImportRow],
    row_questions: list[int],
    response_ids: dict[ResponseKey, int],
    *,
    batch: ImportBatch,
) -> list[bool]:
    wanted: list[tuple[int, int, int, ImportRow] | None] = []
    for question_id, row in zip(row_questions, rows, strict=True):
        if not row.is_pair:
            wanted.append(None)
            continue
        chosen, rejected = (response_ids[(question_id, *key)] for key in row.response_keys)
        wanted.append((question_id, chosen, rejected, row))
    question_set = {w[0] for w in wanted if w}
    found = Pair.objects.filter(question_id__in=question_set).values_list(
        "response_a_id", "response_b_id"
    )
    existing = {frozenset(pair) for pair in found}
    pending: list[Pair] = []
    created = []
    for want in wanted:
        is_new = want is not None and frozenset(want[1:3]) not in existing
        created.append(is_new)
        if want is not None and is_new:
            existing.add(frozenset(want[1:3]))
            pending.append(_imported_pair(*want, batch=batch))
    Pair.objects.bulk_create(pending)
    return created


def _imported_pair(
    question_id: int, chosen: int, rejected: int, row: ImportRow, *, batch: ImportBatch
) -> Pair:
    # Imports set the initial label directly (no FinalLabelChange row): the source decided it.
    # An unlabelled pair arrives as a sampled one would be made: no order, no label.
    labelled = row.pair_labelled
    return Pair(
        question_id=question_id,
        response_a_id=chosen,
        response_b_id=rejected,
        origin=PairOrigin.IMPORTED if labelled else PairOrigin.SAMPLED,
        import_batch=batch,
        final_label=FinalLabel.IMPORTED if labelled else FinalLabel.NONE,
        final_chosen=Side.A if labelled else "",
        final_label_at=timezone.now() if labelled else None,
        source_id=row.source_id,
        provenance=row.provenance,
    )
