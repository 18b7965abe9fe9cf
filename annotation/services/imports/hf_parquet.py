"""hf-parquet: any preference dataset, through a column mapping (see ``column_map``).

Reads a Hugging Face-style parquet file or folder of shards (bounded as every parquet import is,
``parquet_reader``), or, by extension, JSON lines (``.jsonl``, ``.ndjson``, line-capped) or a
JSON list (``.json``). The mapping is checked against the file's columns (JSON: the first row's)
before anything is written. An image is an embedded ``{bytes, path}`` struct (the ``datasets``
Image feature), plain bytes, base64 text (a ``data:image/...;base64,`` URI, or any text with
``image_encoding=base64``), or a path under the image root (the file's folder unless given;
an absolute path only inside it); a list of one image is that image. The taxonomy comes from
mapped ``class1``-``class3`` columns or from ``category`` through a taxonomy map; a category the
taxonomy does not know rejects the row, or with ``unknown_taxonomy="unlabelled"`` leaves the
question without a subcategory. Every column not mapped is kept as provenance (``provenance``).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, TypeVar

import pyarrow as pa

from annotation.exceptions import ImportFileError, RowRejected
from annotation.models import QuestionType
from annotation.services.imports.column_map import ColumnMap
from annotation.services.imports.image_values import ImageValues
from annotation.services.imports.jsonfile import (
    check_json_list,
    json_lines,
    json_list_rows,
)
from annotation.services.imports.parquet_reader import BoundedRows, open_parquet, parquet_shards
from annotation.services.imports.provenance import provenance_of
from annotation.services.imports.rlhf_json import QUESTION_TYPE_NAMES, SOURCE_ID_MAX
from annotation.services.imports.rows import (
    MODEL_NAME_MAX,
    BadRow,
    ImportRow,
    TaxonomyResolver,
    optional_text,
    require_record,
    text_field,
)
from annotation.services.imports.taxonomy_map import RowTaxonomy, load_taxonomy_map

UNKNOWN_TAXONOMY = ("reject", "unlabelled")
JSON_LINES = (".jsonl", ".ndjson")
Responses = tuple[tuple[str, str], ...]
# The (text, model) keys of each side of a pair, per kind of pair.
PAIR_KEYS = {
    "labelled": (("chosen", "chosen_model"), ("rejected", "rejected_model")),
    "unlabelled": (("response_a", "model_a"), ("response_b", "model_b")),
}
T = TypeVar("T")


class HfParquetSource:
    """Rows of any preference dataset, mapped by a column map; see the module's docstring."""

    split = ""

    def __init__(
        self,
        *,
        path: Path,
        column_map: Mapping[str, str],
        image_root: Path | None,
        taxonomy: TaxonomyResolver,
        taxonomy_map: Path | Mapping[str, Any] | None = None,
        unknown_taxonomy: str = "reject",
        question_type: str = "",
    ) -> None:
        mapping = ColumnMap.of(column_map)
        categories = _categories(mapping, taxonomy_map, taxonomy)
        if unknown_taxonomy not in UNKNOWN_TAXONOMY:
            raise ImportFileError(f"unknown_taxonomy is {' or '.join(UNKNOWN_TAXONOMY)}")
        if question_type and question_type not in QUESTION_TYPE_NAMES:
            names = ", ".join(QUESTION_TYPE_NAMES)
            raise ImportFileError(f"unknown question type {question_type!r}: use one of {names}")
        self._path = path
        self._json = path.suffix.lower() in (*JSON_LINES, ".json") and not path.is_dir()
        self.files = [path] if self._json else parquet_shards(path)
        self._parquet = [] if self._json else [open_parquet(file) for file in self.files]
        self.total: int | None = None if self._json else self._check_parquet(mapping)
        if self._json:
            self._check_first_record(mapping)
        root = image_root or (path if path.is_dir() else path.parent)
        self._parse = _RowParser(
            mapping=mapping,
            images=ImageValues(
                column=mapping.keys["image"], root=root, base64=mapping.base64_images
            ),
            taxonomy=RowTaxonomy(
                mapping=mapping,
                resolver=taxonomy,
                categories=categories,
                keep_unknown=unknown_taxonomy == "unlabelled",
            ),
            question_type=QUESTION_TYPE_NAMES.get(question_type, QuestionType.UNKNOWN),
        )

    def rows(self) -> Iterator[ImportRow | BadRow]:
        if not self._json:
            shards = list(zip(self.files, self._parquet, strict=True))
            image = self._parse.mapping.keys["image"]
            yield from BoundedRows(
                shards=shards, image_column=image, parse=self._parse, encoded_images=True
            )
            return
        for item in self._json_rows():
            yield item if isinstance(item, BadRow) else self._parse(*item)

    def _json_rows(self) -> Iterator[tuple[int, Any] | BadRow]:
        if self._path.suffix.lower() == ".json":
            yield from json_list_rows(self._path)
            return
        for line in json_lines(self._path):
            yield line if isinstance(line, BadRow) else _json_line(*line)

    def _check_parquet(self, mapping: ColumnMap) -> int:
        for file, parquet in zip(self.files, self._parquet, strict=True):
            schema = parquet.schema_arrow
            mapping.check_columns(schema.names, where=file.name)
            if "completions" in mapping.keys:
                column = schema.field(mapping.keys["completions"])
                fields = _element_fields(column.type, where=file.name, name=column.name)
                mapping.check_completion_fields(fields, where=file.name)
        return sum(parquet.metadata.num_rows for parquet in self._parquet)

    def _check_first_record(self, mapping: ColumnMap) -> None:
        """The mapped columns must be in the first row: a map naming the wrong columns would
        otherwise reject every row instead of failing the file."""
        first = self._first_record()
        if first is None:
            return  # empty, or its first row too large to look at: each row says why
        number, record = first
        if not isinstance(record, dict):
            raise ImportFileError(f"{self._path.name}: row {number} is not a JSON object")
        where = f"{self._path.name} (row {number})"
        mapping.check_columns(list(record), where=where)
        if "completions" in mapping.keys:
            items = _elements(record[mapping.keys["completions"]])
            if items:
                fields = list(items[0]) if isinstance(items[0], dict) else None
                mapping.check_completion_fields(fields, where=where)

    def _first_record(self) -> tuple[int, Any] | None:
        if self._path.suffix.lower() == ".json":
            check_json_list(self._path)
            row = _first(json_list_rows(self._path))
            return None if row is None or isinstance(row, BadRow) else row
        line = _first(json_lines(self._path))
        if line is None or isinstance(line, BadRow):
            return None
        parsed = _json_line(*line)
        if isinstance(parsed, BadRow):
            raise ImportFileError(
                f"{self._path.name} is not JSON lines: line {line[0]}: {parsed.reason}"
            )
        return parsed


def _first(items: Iterator[T]) -> T | None:
    try:
        return next(items, None)
    finally:
        close = getattr(items, "close", None)  # a generator: its file closes now
        if close is not None:
            close()


def _categories(
    mapping: ColumnMap, taxonomy_map: Path | Mapping[str, Any] | None, taxonomy: TaxonomyResolver
) -> dict[str, int | None] | None:
    if "category" in mapping.keys and taxonomy_map is None:
        raise ImportFileError("a mapped category needs a taxonomy map (--taxonomy-map)")
    if taxonomy_map is not None and "category" not in mapping.keys:
        raise ImportFileError("a taxonomy map needs a mapped category column (category=...)")
    return None if taxonomy_map is None else load_taxonomy_map(taxonomy_map, taxonomy=taxonomy)


def _json_line(number: int, raw: bytes) -> tuple[int, Any] | BadRow:
    try:
        return number, json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        return BadRow(number, "line is not valid UTF-8")
    except (ValueError, RecursionError) as error:
        return BadRow(number, f"line is not valid JSON: {error}")


def _element_fields(kind: Any, *, where: str, name: str) -> list[str] | None:
    """The field names of a completions column's elements, None for a list of text."""
    if pa.types.is_struct(kind):  # ``datasets``' Sequence of a dict: a struct of lists
        return [kind.field(index).name for index in range(kind.num_fields)]
    if pa.types.is_list(kind) or pa.types.is_large_list(kind):
        element = kind.value_type
        if pa.types.is_dictionary(element):  # text in lists is read as dictionary arrays
            element = element.value_type
        if pa.types.is_struct(element):
            return [element.field(index).name for index in range(element.num_fields)]
        if pa.types.is_string(element) or pa.types.is_large_string(element):
            return None
    raise ImportFileError(f"{where}: {name!r} is {kind}, not a list of completions")


def _elements(value: Any) -> list[Any]:
    """A completions value as a list: a struct of lists (``datasets``' Sequence of a dict) is
    zipped into one dict per completion."""
    if isinstance(value, dict):
        lists = {key: item for key, item in value.items() if isinstance(item, list)}
        if len(lists) != len(value) or len({len(item) for item in lists.values()}) > 1:
            raise RowRejected("completions are a struct whose fields are not lists of one length")
        return [dict(zip(lists, items, strict=True)) for items in zip(*lists.values(), strict=True)]
    if isinstance(value, list):
        return value
    raise RowRejected(f"completions are a {type(value).__name__}, not a list")


class _RowParser:
    """One record (a parquet row or a JSON object) -> ImportRow or BadRow, by the mapping."""

    def __init__(
        self, *, mapping: ColumnMap, images: ImageValues, taxonomy: RowTaxonomy, question_type: str
    ) -> None:
        self.mapping = mapping
        self._images = images
        self._taxonomy = taxonomy
        self._question_type = question_type
        self._mapped = set(mapping.columns())
        # A row that makes no pair has no source_id field to fill: its id stays in provenance.
        self._mapped_unpaired = self._mapped - {mapping.keys.get("id")}

    def __call__(self, number: int, value: Any) -> ImportRow | BadRow:
        try:
            record = require_record(value)
            question = text_field(record, self.mapping.keys["question"], allow_empty=False)
            responses, is_pair, labelled, extra = self._responses(record)
            mapped = self._mapped if is_pair else self._mapped_unpaired
            kept = {k: v for k, v in record.items() if k not in mapped} | extra
            source_id, provenance = self._source_id(record), provenance_of(kept)
            subcategory_id = self._taxonomy.subcategory(record)
            image, image_name = self._images.load(record)
            return ImportRow(
                number=number,
                image=image,
                image_name=image_name,
                question=question,
                subcategory_id=subcategory_id,
                question_type=self._type(record),
                responses=responses,
                is_pair=is_pair,
                pair_labelled=labelled,
                source_id=source_id,
                provenance=provenance,
            )
        except RowRejected as error:
            return BadRow(number, str(error))

    def _responses(self, record: Mapping[str, Any]) -> tuple[Responses, bool, bool, dict[str, Any]]:
        """(responses, is_pair, pair_labelled, provenance from inside the completions)."""
        shape = self.mapping.shape
        if shape in PAIR_KEYS:
            first, second = PAIR_KEYS[shape]
            pair = (self._response(record, *first), self._response(record, *second))
            return pair, True, shape == "labelled", {}
        if shape == "single":
            return (self._response(record, "response", "model"),), False, True, {}
        responses, rest = self._completions(record)
        return responses, False, True, rest

    def _response(self, record: Mapping[str, Any], text: str, model: str) -> tuple[str, str]:
        model_column = self.mapping.get(model)
        name = _model_name(record, model_column) if model_column else ""
        return name, text_field(record, self.mapping.keys[text])

    def _completions(self, record: Mapping[str, Any]) -> tuple[Responses, dict[str, Any]]:
        """Each completion's (model, text), once each; what else they hold is provenance."""
        column = self.mapping.keys["completions"]
        if record.get(column) is None:
            raise RowRejected(f"missing field {column!r}")
        items = _elements(record[column])
        if not items:
            raise RowRejected(f"field {column!r} holds no completions")
        text_key = self.mapping.completion_field("completion_text")
        model_key = self.mapping.completion_field("completion_model")
        responses: dict[tuple[str, str], None] = {}
        rest: list[dict[str, Any]] = []
        for index, item in enumerate(items, start=1):
            try:
                if not isinstance(item, dict):
                    responses.setdefault(("", text_field({column: item}, column)), None)
                    continue
                responses.setdefault(
                    (_model_name(item, model_key), text_field(item, text_key)), None
                )
                rest.append({k: v for k, v in item.items() if k not in (text_key, model_key)})
            except RowRejected as error:
                raise RowRejected(f"completion {index} in {column!r}: {error}") from error
        return tuple(responses), ({column: rest} if any(rest) else {})

    def _source_id(self, record: Mapping[str, Any]) -> str:
        column = self.mapping.get("id")
        if column is None or record.get(column) is None:
            return ""
        value = record[column]
        if isinstance(value, int) and not isinstance(value, bool):
            value = str(value)
        text = text_field({column: value}, column)
        if len(text) > SOURCE_ID_MAX:
            raise RowRejected(f"id is longer than {SOURCE_ID_MAX} characters")
        return text

    def _type(self, record: Mapping[str, Any]) -> str:
        column = self.mapping.get("question_type")
        value = optional_text(record, column) if column else ""
        if value and value not in QUESTION_TYPE_NAMES:
            raise RowRejected(f"unknown question type {value!r} ({', '.join(QUESTION_TYPE_NAMES)})")
        return QUESTION_TYPE_NAMES[value] if value else self._question_type


def _model_name(record: Mapping[str, Any], column: str) -> str:
    name = optional_text(record, column)
    if len(name) > MODEL_NAME_MAX:
        raise RowRejected(f"model name in {column!r} is longer than {MODEL_NAME_MAX} characters")
    return name
