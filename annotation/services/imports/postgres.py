"""Chunk writes on PostgreSQL: one multi-row ``INSERT ... ON CONFLICT DO NOTHING`` per table.

``bulk_create`` cost about 1 ms of CPU per row here (model instances, and Django's client-side
quoting of every value, 80 KB of image bytes as hex included). Here each table gets one
statement per chunk: questions, responses and pairs travel as one JSON document read with
``json_to_recordset`` (encoded and parsed in C on both sides; JSON strings carry any text without
NUL exactly), image bytes as a binary ``bytea[]``. ``RETURNING`` names the keys the statement
created; keys it did not return already existed and are looked up in one more query, so a fresh
import makes one query per table per chunk. The caller holds the transaction; the results are
those of ``write_rows_orm``.
"""

from __future__ import annotations

import json
from collections.abc import Container, Hashable, Sequence
from datetime import datetime
from typing import Any, TypeVar

import psycopg
from django.db import connection
from django.utils import timezone
from psycopg import sql

from annotation.models import FinalLabel, Image, ImportBatch, Pair, PairOrigin, Question, Response
from annotation.models import Side as PairSide
from annotation.services.imports.rows import ImportRow, NewImage

# Each image is ~80 KB: 50 per statement keep one statement's parameters near 4 MB.
IMAGE_INSERT_BATCH = 50
Key = TypeVar("Key", bound=Hashable)
Cursor = psycopg.Cursor[tuple[Any, ...]]
ResponseKey = tuple[int, str, str]


def _statement(template: str, model: type[Any]) -> sql.Composed:
    return sql.SQL(template).format(table=sql.Identifier(model._meta.db_table))


IMAGE_INSERT = _statement(
    "INSERT INTO {table} (created_at, sha256, data, format, width, height, byte_size, dhash,"
    " source_name, is_placeholder)"
    " SELECT %s, u.* FROM unnest(%b::varchar[], %b::bytea[], %b::varchar[], %b::int[],"
    " %b::int[], %b::int[], %b::bigint[], %b::varchar[], %b::bool[]) AS u"
    " ON CONFLICT (sha256) DO NOTHING RETURNING sha256, id",
    Image,
)
# Image bytes are compressed already: pglz spends ~3 ms per 80 KB image finding that out before
# storing them as they are, lz4 gives up in a fraction of that. For this transaction only, and
# only where the server was built with lz4.
FAST_TOAST_COMPRESSION = (
    "SELECT set_config('default_toast_compression', 'lz4', true) WHERE EXISTS (SELECT FROM"
    " pg_settings WHERE name = 'default_toast_compression' AND 'lz4' = ANY(enumvals))"
)
IMAGE_LOOKUP = _statement("SELECT sha256, id FROM {table} WHERE sha256 = ANY(%b::varchar[])", Image)
QUESTION_INSERT = _statement(
    "INSERT INTO {table} (created_at, import_batch_id, taxonomy_version, image_id, text,"
    " text_sha256, question_type, subcategory_id, provenance)"
    " SELECT %s, %s, 0, u.* FROM json_to_recordset(%s::json)"
    " AS u(image_id bigint, text text, text_sha256 varchar, question_type varchar,"
    " subcategory_id bigint, provenance jsonb)"
    " ON CONFLICT (image_id, text_sha256) DO NOTHING RETURNING image_id, text_sha256, id",
    Question,
)
QUESTION_LOOKUP = _statement(
    "SELECT q.image_id, q.text_sha256, q.id FROM {table} AS q"
    " JOIN json_to_recordset(%s::json) AS k(image_id bigint, text_sha256 varchar)"
    " ON q.image_id = k.image_id AND q.text_sha256 = k.text_sha256",
    Question,
)
RESPONSE_INSERT = _statement(
    "INSERT INTO {table} (import_batch_id, question_id, model_name, text_sha256, text)"
    " SELECT %s, u.* FROM json_to_recordset(%s::json)"
    " AS u(question_id bigint, model_name varchar, text_sha256 varchar, text text)"
    " ON CONFLICT (question_id, model_name, text_sha256) DO NOTHING"
    " RETURNING question_id, model_name, text_sha256, id",
    Response,
)
RESPONSE_LOOKUP = _statement(
    "SELECT r.question_id, r.model_name, r.text_sha256, r.id FROM {table} AS r"
    " JOIN json_to_recordset(%s::json)"
    " AS k(question_id bigint, model_name varchar, text_sha256 varchar)"
    " ON r.question_id = k.question_id AND r.model_name = k.model_name"
    " AND r.text_sha256 = k.text_sha256",
    Response,
)
# The conflict target is the pair_unique_responses index: {a, b} in either order.
PAIR_INSERT = _statement(
    "INSERT INTO {table} (created_at, import_batch_id, question_id, response_a_id,"
    " response_b_id, origin, final_label, final_chosen, final_label_at, source_id, provenance)"
    " SELECT %s, %s, u.question_id, u.response_a_id, u.response_b_id, u.origin, u.final_label,"
    " u.final_chosen, CASE WHEN u.final_label = '' THEN NULL ELSE %s END, u.source_id,"
    " u.provenance FROM json_to_recordset(%s::json)"
    " AS u(question_id bigint, response_a_id bigint, response_b_id bigint, origin varchar,"
    " final_label varchar, final_chosen varchar, source_id varchar, provenance jsonb)"
    " ON CONFLICT ((LEAST(response_a_id, response_b_id)),"
    " (GREATEST(response_a_id, response_b_id))) DO NOTHING"
    " RETURNING response_a_id, response_b_id, id",
    Pair,
)


def write_rows_postgresql(
    *,
    rows: list[ImportRow],
    images: list[NewImage],
    image_ids: dict[str, int],
    batch: ImportBatch,
) -> tuple[list[bool], dict[str, int]]:
    now = timezone.now()
    connection.ensure_connection()
    # A plain psycopg cursor binds on the server; Django's quotes every value into the SQL text.
    with connection.wrap_database_errors, psycopg.Cursor(connection.connection) as cursor:
        new_images = _insert_images(cursor, images, now=now)
        image_ids = {**image_ids, **new_images}
        question_keys = [(image_ids[row.image_sha256], row.question_sha256) for row in rows]
        question_ids, question_created = _insert_questions(
            cursor, rows, question_keys, batch=batch, now=now
        )
        row_questions = [question_ids[key] for key in question_keys]
        response_ids, response_created = _insert_responses(cursor, rows, row_questions, batch=batch)
        pair_created = _insert_pairs(
            cursor, rows, row_questions, response_ids, batch=batch, now=now
        )
    created = [
        pair_created[index]
        if row.is_pair
        else response_created[index]
        if row.responses
        else question_created[index]
        for index, row in enumerate(rows)
    ]
    return created, new_images


def _insert_images(cursor: Cursor, images: list[NewImage], *, now: datetime) -> dict[str, int]:
    ids: dict[str, int] = {}
    if images:
        cursor.execute(FAST_TOAST_COMPRESSION, prepare=False)
    for start in range(0, len(images), IMAGE_INSERT_BATCH):
        part = images[start : start + IMAGE_INSERT_BATCH]
        columns = [
            [image.sha256 for image in part],
            [image.data for image in part],
            [image.format for image in part],
            [image.width for image in part],
            [image.height for image in part],
            [len(image.data) for image in part],
            [image.dhash for image in part],
            [image.source_name for image in part],
            [image.is_placeholder for image in part],
        ]
        created = _fetch_ids(cursor, IMAGE_INSERT, [now, *columns])
        ids.update({sha: pk for (sha,), pk in created.items()})
    # Bytes stored by a concurrent import between our check and this insert.
    missing = [image.sha256 for image in images if image.sha256 not in ids]
    if missing:
        ids.update(cursor.execute(IMAGE_LOOKUP, [missing], prepare=False).fetchall())
    return ids


def _insert_questions(
    cursor: Cursor,
    rows: list[ImportRow],
    keys: list[tuple[int, str]],
    *,
    batch: ImportBatch,
    now: datetime,
) -> tuple[dict[tuple[int, str], int], list[bool]]:
    first = _first_rows(keys, rows)
    records = [
        {
            "image_id": image_id,
            "text": row.question,
            "text_sha256": sha,
            "question_type": str(row.question_type),
            "subcategory_id": row.subcategory_id,
            "provenance": {} if row.is_pair else row.provenance,
        }
        for (image_id, sha), row in first.items()
    ]
    created = _fetch_ids(cursor, QUESTION_INSERT, [now, batch.pk, _json(records)])
    missing = [{"image_id": k[0], "text_sha256": k[1]} for k in first if k not in created]
    ids = {**created, **_lookup(cursor, QUESTION_LOOKUP, missing)}
    return ids, _first_created(keys, created)


def _insert_responses(
    cursor: Cursor,
    rows: list[ImportRow],
    row_questions: list[int],
    *,
    batch: ImportBatch,
) -> tuple[dict[ResponseKey, int], list[bool]]:
    texts: dict[ResponseKey, str] = {}
    row_keys: list[list[ResponseKey]] = []
    for question_id, row in zip(row_questions, rows, strict=True):
        keys = [(question_id, *key) for key in row.response_keys]
        for key, (_, text) in zip(keys, row.responses, strict=True):
            texts.setdefault(key, text)
        row_keys.append(keys)
    if not texts:
        return {}, [False] * len(rows)
    records = [
        {"question_id": q, "model_name": m, "text_sha256": s, "text": text}
        for (q, m, s), text in texts.items()
    ]
    created = _fetch_ids(cursor, RESPONSE_INSERT, [batch.pk, _json(records)])
    missing = [
        {"question_id": q, "model_name": m, "text_sha256": s}
        for q, m, s in texts
        if (q, m, s) not in created
    ]
    ids = {**created, **_lookup(cursor, RESPONSE_LOOKUP, missing)}
    # A row created something when one of its responses is new and no earlier row claimed it.
    seen: set[ResponseKey] = set()
    flags = []
    for keys in row_keys:
        flags.append(any(key in created and key not in seen for key in keys))
        seen.update(keys)
    return ids, flags


def _insert_pairs(
    cursor: Cursor,
    rows: list[ImportRow],
    row_questions: list[int],
    response_ids: dict[ResponseKey, int],
    *,
    batch: ImportBatch,
    now: datetime,
) -> list[bool]:
    wanted: list[frozenset[int] | None] = []
    pending: dict[frozenset[int], dict[str, Any]] = {}
    for question_id, row in zip(row_questions, rows, strict=True):
        if not row.is_pair:
            wanted.append(None)
            continue
        chosen, rejected = (response_ids[(question_id, *key)] for key in row.response_keys)
        key = frozenset((chosen, rejected))
        wanted.append(key)
        pending.setdefault(key, _pair_record(row, question_id, chosen, rejected))
    if not pending:
        return [False] * len(rows)
    params = [now, batch.pk, now, _json(list(pending.values()))]
    created = {frozenset(key) for key in _fetch_ids(cursor, PAIR_INSERT, params)}
    return _first_created(wanted, created)


def _pair_record(row: ImportRow, question_id: int, chosen: int, rejected: int) -> dict[str, Any]:
    # An unlabelled pair arrives as a sampled one would be made: no order, no label.
    labelled = row.pair_labelled
    return {
        "question_id": question_id,
        "response_a_id": chosen,
        "response_b_id": rejected,
        "origin": PairOrigin.IMPORTED.value if labelled else PairOrigin.SAMPLED.value,
        "final_label": FinalLabel.IMPORTED.value if labelled else FinalLabel.NONE.value,
        "final_chosen": PairSide.A.value if labelled else "",
        "source_id": row.source_id,
        "provenance": row.provenance,
    }


def _json(records: list[dict[str, Any]]) -> str:
    return json.dumps(records, ensure_ascii=False, separators=(",", ":"))


def _fetch_ids(
    cursor: Cursor, statement: sql.Composed, params: Sequence[Any]
) -> dict[tuple[Any, ...], int]:
    """Run a statement returning (key columns..., id) rows; return them as {key: id}."""
    returned = cursor.execute(statement, params, prepare=False).fetchall()
    return {tuple(row[:-1]): row[-1] for row in returned}


def _lookup(
    cursor: Cursor, statement: sql.Composed, keys: list[dict[str, Any]]
) -> dict[tuple[Any, ...], int]:
    return _fetch_ids(cursor, statement, [_json(keys)]) if keys else {}


def _first_rows(keys: list[Key], rows: list[ImportRow]) -> dict[Key, ImportRow]:
    first: dict[Key, ImportRow] = {}
    for key, row in zip(keys, rows, strict=True):
        first.setdefault(key, row)
    return first


def _first_created(keys: Sequence[Key | None], created: Container[Key]) -> list[bool]:
    """Per row: did this statement create its key? Only the key's first row counts it."""
    seen: set[Key] = set()
    flags = []
    for key in keys:
        flags.append(key is not None and key in created and key not in seen)
        if key is not None:
            seen.add(key)
    return flags
