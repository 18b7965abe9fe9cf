"""`spavl-parquet`: Hugging Face parquet shards laid out like SPA-VL's.

Columns per split follow SPA-VL (train: image, question, chosen, rejected, image_name;
validation: + class1-3 instead of image_name; test: no responses). ``image`` is the struct
``{bytes, path}`` that ``datasets`` reads as an Image feature, holding the original bytes. Row
groups of 100 rows, zstd on text, no compression or dictionary on image bytes (JPEG does not
compress), fixed writer settings and no timestamps, so the same rows give the same bytes.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from annotation.services.export.files import HashingSink
from annotation.services.export.rows import ExportRow

ROW_GROUP_ROWS = 100
IMAGE_TYPE = pa.struct([("bytes", pa.binary()), ("path", pa.string())])
STRING = {"dtype": "string", "_type": "Value"}
CLASSES = ["class1", "class2", "class3"]

# SPA-VL's columns per split; tie and both-unsafe files keep both responses, undecided.
COLUMNS = {
    "train": ["image", "question", "chosen", "rejected", "image_name"],
    "validation": ["image", "question", "chosen", "rejected", *CLASSES],
    "test": ["image", "question", *CLASSES],
    "separate": ["image", "question", "response_a", "response_b", *CLASSES],
}
# ``provenance`` is JSON text: the source's other columns (the pair's, else its question's).
SOURCE = ["source_id", "provenance"]
PROVENANCE = {
    "decided": [
        "pair_id",
        "final_label",
        "chosen_model",
        "rejected_model",
        "judge_p_chosen",
        *SOURCE,
    ],
    "separate": ["pair_id", "final_label", "model_a", "model_b", "judge_p_a", *SOURCE],
}


def _columns(split: str, *, provenance: bool) -> list[str]:
    kind = split if split in COLUMNS else "separate"
    extra = PROVENANCE["separate" if kind == "separate" else "decided"] if provenance else []
    return COLUMNS[kind] + extra


def _arrow_type(column: str) -> pa.DataType:
    if column == "image":
        return IMAGE_TYPE
    if column == "pair_id":
        return pa.int64()
    if column.startswith("judge_p"):
        return pa.float64()
    return pa.string()


def _feature(column: str) -> dict[str, str]:
    if column == "image":
        return {"_type": "Image"}
    if column == "pair_id":
        return {"dtype": "int64", "_type": "Value"}
    if column.startswith("judge_p"):
        return {"dtype": "float64", "_type": "Value"}
    return STRING


def parquet_schema(split: str, *, provenance: bool) -> pa.Schema:
    """The Arrow schema with Hugging Face ``Features`` under the b"huggingface" key."""
    columns = _columns(split, provenance=provenance)
    features = {column: _feature(column) for column in columns}
    metadata = {b"huggingface": json.dumps({"info": {"features": features}}).encode()}
    return pa.schema([(column, _arrow_type(column)) for column in columns], metadata=metadata)


# Where each column's value sits on an ExportRow ("image" is built from two fields).
ROW_FIELDS = {
    "question": "question",
    "chosen": "first",
    "rejected": "second",
    "response_a": "first",
    "response_b": "second",
    "image_name": "image_name",
    "pair_id": "pair_id",
    "final_label": "final_label",
    "chosen_model": "first_model",
    "rejected_model": "second_model",
    "model_a": "first_model",
    "model_b": "second_model",
    "judge_p_chosen": "judge_p_first",
    "judge_p_a": "judge_p_first",
    "source_id": "source_id",
    "provenance": "provenance",
}


def _column_values(page: list[ExportRow], column: str) -> list[Any]:
    if column == "image":
        return [{"bytes": row.image_bytes, "path": row.image_name} for row in page]
    if column in CLASSES:
        level = CLASSES.index(column)
        return [row.class_keys[level] for row in page]
    field = ROW_FIELDS[column]
    return [getattr(row, field) for row in page]


def write_parquet_shard(
    sink: HashingSink, pages: Iterable[list[ExportRow]], *, split: str, provenance: bool
) -> int:
    """Write the pages to ``sink`` one row group at a time; return the number of rows."""
    schema = parquet_schema(split, provenance=provenance)
    text_columns = [name for name in schema.names if schema.field(name).type == pa.string()]
    writer = pq.ParquetWriter(
        sink,
        schema,
        version="2.6",
        compression={"image.bytes": "NONE", "image.path": "ZSTD"}
        | dict.fromkeys(text_columns, "ZSTD"),
        use_dictionary=["image.path", *[c for c in text_columns if c in CLASSES]],
        write_statistics=[c for c in schema.names if c not in ("image",)],
    )
    rows = 0
    # Writing and hashing run in a second thread (both release the GIL) while this one reads
    # the next page from the database; at most one page waits, so memory stays at two pages.
    with ThreadPoolExecutor(max_workers=1) as background:
        pending: Future[None] | None = None
        try:
            for page in pages:
                table = _table(page, schema)
                if pending is not None:
                    pending.result()
                pending = background.submit(
                    writer.write_table, table, row_group_size=ROW_GROUP_ROWS
                )
                rows += len(page)
            if pending is not None:
                pending.result()
        finally:
            writer.close()
    return rows


def _table(page: list[ExportRow], schema: pa.Schema) -> pa.Table:
    columns = [_column_values(page, name) for name in schema.names]
    arrays = [pa.array(values, type=f.type) for values, f in zip(columns, schema, strict=True)]
    return pa.Table.from_arrays(arrays, schema=schema)
