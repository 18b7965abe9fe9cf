"""Reading parquet rows in memory bounded whatever the file declares, for every parquet format.

Read by row group with pyarrow's ``iter_batches``, so memory stays flat in the file size. Before
a row group is read its page headers are walked (``parquet_pages``): a row group whose pages do
not fit ``IMPORT_PAGE_MAX_BYTES`` is refused row by row without decompressing anything, and the
others are read in batches small enough for ``READ_BATCH_BYTES``. An image above
``IMAGE_MAX_BYTES`` (or a row's other values above ``IMPORT_ROW_MAX_BYTES``, text nested in lists
and structs included) is measured in Arrow and rejected before it becomes a Python object. A
format names its columns and its image column, and parses each row that fits.

Text in a repeated column (a list, or a struct or map inside one) is read as dictionary arrays:
its values may all point at one large dictionary entry, so decoding them at once could cost far
more than their pages (a 50 KB file made 1 GB a row). Such rows are always measured, and a batch
whose rows add up to more than ``READ_BATCH_BYTES`` becomes Python objects one row at a time.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from django.conf import settings

from annotation.exceptions import ImportFileError
from annotation.services.imports.files import NotRegularFile, open_regular
from annotation.services.imports.parquet_pages import PageHeaderError, row_group_budget
from annotation.services.imports.rows import BadRow, ImportRow

READ_BATCH_ROWS = 100
# Values one read batch may hold, beside the pages it is read from.
READ_BATCH_BYTES = 32 << 20
# pyarrow reads the footer whole; Hugging Face's are a few KB.
FOOTER_MAX_BYTES = 16 << 20

RowParser = Callable[[int, Mapping[str, Any]], ImportRow | BadRow]


def parquet_shards(path: Path) -> list[Path]:
    """The file, or the folder's ``.parquet`` files in order; each is checked when opened."""
    if not path.exists():
        raise ImportFileError(f"{path} does not exist")
    if not path.is_dir():
        return [path]
    files = sorted(p for p in path.rglob("*.parquet") if not p.is_dir())
    if not files:
        raise ImportFileError(f"{path} holds no .parquet files")
    return files


def open_parquet(file: Path) -> pq.ParquetFile:
    """The file opened for bounded reading, or ImportFileError saying why it cannot be."""
    try:
        handle = open_regular(file)
    except NotRegularFile as error:
        raise ImportFileError(str(error)) from error
    except OSError as error:
        raise ImportFileError(f"{file.name} cannot be read: {error}") from error
    try:
        _check_footer(file, handle)
        # pre_buffer (the default) keeps every row group read so far: memory grew with the file.
        parquet = pq.ParquetFile(handle, pre_buffer=False, buffer_size=1 << 20)
        repeated = _repeated_text(parquet.metadata.schema)
        if not repeated:
            return parquet
        return pq.ParquetFile(
            handle,
            metadata=parquet.metadata,
            pre_buffer=False,
            buffer_size=1 << 20,
            read_dictionary=repeated,
        )
    except (pa.ArrowException, OSError) as error:
        handle.close()
        raise ImportFileError(f"{file.name} is not a readable parquet file: {error}") from error


def _repeated_text(schema: pq.ParquetSchema) -> list[str]:
    """The text and binary leaves of repeated columns, to be read as dictionary arrays."""
    leaves = (schema.column(index) for index in range(len(schema)))
    return [
        leaf.path
        for leaf in leaves
        if leaf.max_repetition_level > 0
        and leaf.physical_type in ("BYTE_ARRAY", "FIXED_LEN_BYTE_ARRAY")
    ]


def _check_footer(file: Path, handle: BinaryIO) -> None:
    size = os.fstat(handle.fileno()).st_size
    if size < 12:
        return  # pyarrow says what is wrong
    handle.seek(size - 8)
    tail = handle.read(8)
    footer = int.from_bytes(tail[:4], "little")
    if tail[4:] == b"PAR1" and footer > FOOTER_MAX_BYTES:
        handle.close()
        raise ImportFileError(
            f"{file.name} has a {footer}-byte footer, above {FOOTER_MAX_BYTES}: "
            "not a dataset parquet file"
        )
    handle.seek(0)


@dataclass(frozen=True)
class BoundedRows:
    """How one format reads its shards: which columns (None: all), its image, its row parser.

    ``encoded_images``: the image column may hold base64 text, measured against the length
    the largest allowed image takes in base64 rather than against the image limit itself.
    """

    shards: Sequence[tuple[Path, pq.ParquetFile]]
    image_column: str
    parse: RowParser
    columns: Sequence[str] | None = None
    encoded_images: bool = False

    def __iter__(self) -> Iterator[ImportRow | BadRow]:
        number = 0
        for file, parquet in self.shards:
            try:
                with open_regular(file) as handle:
                    for group in range(parquet.metadata.num_row_groups):
                        yield from self._row_group(parquet, handle, group, number)
                        number += parquet.metadata.row_group(group).num_rows
            except (pa.ArrowException, OSError, PageHeaderError) as error:
                raise ImportFileError(f"{file.name} stopped being readable: {error}") from error

    def _row_group(
        self, parquet: pq.ParquetFile, handle: BinaryIO, group: int, number: int
    ) -> Iterator[ImportRow | BadRow]:
        columns = list(self.columns or parquet.schema_arrow.names)
        budget = row_group_budget(
            handle=handle,
            metadata=parquet.metadata,
            group=group,
            columns=set(columns),
            file_size=os.fstat(handle.fileno()).st_size,
            page_limit=settings.IMPORT_PAGE_MAX_BYTES,
            batch_bytes=READ_BATCH_BYTES,
            batch_rows=READ_BATCH_ROWS,
        )
        if not budget.batch_rows:
            for row in range(budget.rows):
                yield BadRow(number + row + 1, budget.refusal(row))
            return
        batches = parquet.iter_batches(
            batch_size=budget.batch_rows, row_groups=[group], columns=columns, use_threads=False
        )
        measure = _repeats(parquet, columns) or self._may_be_oversized(budget.value_bounds)
        for batch in batches:
            yield from self._batch(batch, number, measure=measure)
            number += batch.num_rows

    def _batch(
        self, batch: pa.RecordBatch, number: int, *, measure: bool
    ) -> Iterator[ImportRow | BadRow]:
        oversized, total = self._measure(batch) if measure else ({}, 0)
        if not oversized and total <= READ_BATCH_BYTES:
            for offset, record in enumerate(records(batch), start=1):
                yield self.parse(number + offset, record)
            return
        # Only the rows that fit are made Python objects, one at a time.
        for row in range(batch.num_rows):
            if row in oversized:
                yield BadRow(number + row + 1, oversized[row])
            else:
                yield self.parse(number + row + 1, next(records(batch.slice(row, 1))))

    def _may_be_oversized(self, value_bounds: dict[str, int]) -> bool:
        """Whether the pages leave room for an image or a row's values above their limits."""
        image = sum(size for leaf, size in value_bounds.items() if self._is_image_leaf(leaf))
        text = sum(size for leaf, size in value_bounds.items() if not self._is_image_leaf(leaf))
        return image > settings.IMAGE_MAX_BYTES or text > settings.IMPORT_ROW_MAX_BYTES

    def _is_image_leaf(self, leaf: str) -> bool:
        # The image's bytes, not the name it was saved under (``image.path``).
        return leaf.split(".")[0] == self.image_column and not leaf.endswith(".path")

    def _measure(self, batch: pa.RecordBatch) -> tuple[dict[int, str], int]:
        """Rows whose image or other values are above their limits, measured in Arrow, and the
        bytes the batch's values take as Python objects."""
        found: dict[int, str] = {}
        image, others = _split_image(batch, self.image_column)
        images = (_value_bytes(image) if image is not None else None) or [0] * batch.num_rows
        if image is not None:
            limit, what = _image_limit(image.type, encoded=self.encoded_images)
            for row, length in enumerate(images):
                if length > limit:
                    found[row] = f"image is {length} bytes{what}, above {limit}"
        text = [0] * batch.num_rows
        for column in others:
            lengths = _value_bytes(column)
            if lengths is not None:
                text = [total + length for total, length in zip(text, lengths, strict=True)]
        limit = settings.IMPORT_ROW_MAX_BYTES
        for row, length in enumerate(text):
            if length > limit and row not in found:
                found[row] = f"text fields hold {length} bytes, above {limit}"
        return found, sum(images) + sum(text)


def _repeats(parquet: pq.ParquetFile, columns: Sequence[str]) -> bool:
    """Whether a column read has a repeated field: its rows are not bounded by its pages."""
    schema = parquet.metadata.schema
    leaves = (schema.column(index) for index in range(len(schema)))
    return any(
        leaf.max_repetition_level > 0 and leaf.path.split(".")[0] in columns for leaf in leaves
    )


def _split_image(batch: pa.RecordBatch, name: str) -> tuple[pa.Array | None, list[pa.Array]]:
    """The image bytes (a column, or the ``bytes`` field of a struct) and every other value."""
    image: pa.Array | None = None
    others: list[pa.Array] = []
    for column_name, column in zip(batch.schema.names, batch.columns, strict=True):
        if column_name != name:
            others.append(column)
        elif pa.types.is_struct(column.type):
            fields = [column.type.field(i).name for i in range(column.type.num_fields)]
            image = column.field("bytes") if "bytes" in fields else None
            others += [column.field(f) for f in fields if f != "bytes"]
        else:
            image = column
    return image, others


def _image_limit(kind: pa.DataType, *, encoded: bool) -> tuple[int, str]:
    limit = settings.IMAGE_MAX_BYTES
    if encoded and _is_text(kind):
        # Base64 takes 4 characters per 3 bytes; a data: URI adds a short header.
        return (limit + 2) // 3 * 4 + 64, " of text"
    return limit, ""


def _is_text(kind: pa.DataType) -> bool:
    return pa.types.is_string(kind) or pa.types.is_large_string(kind)


def _value_bytes(column: pa.Array) -> list[int] | None:
    """Each row's bytes of text and binary values, nested in lists and structs included
    (None where a column holds neither, such as numbers: their size is bounded by their type)."""
    kind = column.type
    if pa.types.is_dictionary(kind):
        # Measured through the indices: the entries are never repeated in memory.
        entries = _value_bytes(column.dictionary)
        if entries is None:
            return None
        return [0 if index is None else entries[index] for index in column.indices.to_pylist()]
    if (
        _is_text(kind)
        or pa.types.is_binary(kind)
        or pa.types.is_large_binary(kind)
        or pa.types.is_fixed_size_binary(kind)
    ):
        return [length or 0 for length in pc.binary_length(column).to_pylist()]
    if pa.types.is_map(kind):
        entries = pa.struct([kind.key_field, kind.item_field])
        return _value_bytes(column.cast(pa.list_(entries)))
    if pa.types.is_list(kind) or pa.types.is_large_list(kind) or pa.types.is_fixed_size_list(kind):
        return _nested_bytes(column)
    if pa.types.is_struct(kind):
        fields = [_value_bytes(child) for child in column.flatten()]
        measured = [lengths for lengths in fields if lengths is not None]
        return [sum(row) for row in zip(*measured, strict=True)] if measured else None
    return None


def _nested_bytes(column: pa.Array) -> list[int] | None:
    inner = _value_bytes(column.flatten())
    if inner is None:
        return None
    totals = [0] * len(column)
    for parent, length in zip(pc.list_parent_indices(column).to_pylist(), inner, strict=True):
        totals[parent] += length
    return totals


def records(batch: pa.RecordBatch) -> Iterator[dict[str, Any]]:
    """The batch's rows as ``to_pylist()`` gives them, converted a column at a time (2x faster)."""
    columns = [_column_values(batch.column(name)) for name in batch.schema.names]
    for values in zip(*columns, strict=True):
        yield dict(zip(batch.schema.names, values, strict=True))


def _column_values(column: pa.Array) -> list[Any]:
    if not pa.types.is_struct(column.type):
        return column.to_pylist()
    names = [column.type.field(index).name for index in range(column.type.num_fields)]
    # flatten() applies the struct's own nulls to its fields.
    fields = [child.to_pylist() for child in column.flatten()]
    valid = column.is_valid().to_pylist()
    return [
        dict(zip(names, values, strict=True)) if ok else None
        for ok, *values in zip(valid, *fields, strict=True)
    ]
