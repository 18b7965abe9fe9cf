"""The page headers of a parquet column chunk, read without decompressing any page.

A page header (Thrift compact protocol) states the page's compressed and uncompressed size and
how many values it holds. pyarrow allocates each page's uncompressed size before decompressing
it, and fails when the data decompress to anything else, so the headers (not the footer's
``total_uncompressed_size``, which is only the writer's claim) bound what reading a row group
can cost. The chunk's byte range and value count are found as Arrow finds them, so the pages
walked here are at least those Arrow would read.
"""

from __future__ import annotations

import bisect
import heapq
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import BinaryIO

import pyarrow.parquet as pq

DATA_PAGE, DICTIONARY_PAGE, DATA_PAGE_V2 = 0, 2, 3
# Arrow refuses page headers above 16 MB (ReaderProperties' max page header size).
MAX_HEADER_BYTES = 16 << 20
MAX_STRUCT_DEPTH = 16
# Arrow reads up to this much past a chunk written by old parquet-mr (PARQUET-816).
CHUNK_PADDING = 100
# Rows refused for their own page, kept per column chunk (the rest get the row group's reason).
MAX_REFUSALS_KEPT = 1000
# What Arrow holds per value of a repeated column beside the value (offsets, levels, indices):
# a page of run-length-encoded levels can declare millions of values in a few bytes.
VALUE_BYTES = 16

_STOP, _TRUE, _FALSE, _BYTE, _I16, _I32, _I64, _DOUBLE, _BINARY = range(9)
_LIST, _SET, _MAP, _STRUCT = 9, 10, 11, 12


class PageHeaderError(ValueError):
    """The bytes where a page header should be are not one."""


@dataclass(frozen=True)
class Page:
    kind: int
    uncompressed: int
    compressed: int
    rows: int  # data pages: the values (v1) or rows (v2) they hold; 0 for other pages
    values: int = 0  # data pages: the values they hold (v1 and v2)

    @property
    def size(self) -> int:
        """What holding this page costs: its compressed bytes are read, then decompressed."""
        return max(self.uncompressed, self.compressed)


def column_pages(
    handle: BinaryIO, column: pq.ColumnChunkMetaData, file_size: int
) -> Iterator[Page]:
    """Every page header of one column chunk, in order; raises PageHeaderError on junk."""
    start = column.data_page_offset
    dictionary = column.dictionary_page_offset
    if column.has_dictionary_page and dictionary and 0 < dictionary < start:
        start = dictionary
    end = min(start + column.total_compressed_size + CHUNK_PADDING, file_size)
    offset, seen = start, 0
    while seen < column.num_values and offset < end:
        handle.seek(offset)
        reader = _CompactReader(handle)
        page = _page_header(reader)
        if page.compressed < 0 or page.uncompressed < 0:
            raise PageHeaderError(f"page header at byte {offset} has a negative size")
        yield page
        seen += page.rows if page.kind in (DATA_PAGE, DATA_PAGE_V2) else 0
        offset += reader.consumed + page.compressed


def _page_header(reader: _CompactReader) -> Page:
    fields: dict[int, int] = {}
    for field_id, kind in reader.fields():
        if field_id in (1, 2, 3) and kind == _I32:
            fields[field_id] = reader.varint_signed()
        elif field_id in (5, 8) and kind == _STRUCT:
            # DataPageHeader.num_values is field 1; DataPageHeaderV2 has num_values (1) and
            # num_rows (3).
            counts = _struct_i32s(reader, (1, 3))
            fields[100] = counts.get(1 if field_id == 5 else 3, 0)
            fields[101] = counts.get(1, 0)
        else:
            reader.skip(kind, depth=1)
    if not {1, 2, 3} <= fields.keys():
        raise PageHeaderError("page header lacks its type or sizes")
    return Page(
        kind=fields[1],
        uncompressed=fields[2],
        compressed=fields[3],
        rows=fields.get(100, 0),
        values=fields.get(101, 0),
    )


def _struct_i32s(reader: _CompactReader, wanted: tuple[int, ...]) -> dict[int, int]:
    values: dict[int, int] = {}
    for field_id, kind in reader.fields():
        if field_id in wanted and kind == _I32:
            values[field_id] = reader.varint_signed()
        else:
            reader.skip(kind, depth=2)
    return values


class _CompactReader:
    """Just enough of Thrift's compact protocol to read one struct and skip what it ignores."""

    def __init__(self, handle: BinaryIO) -> None:
        self._handle = handle
        self.consumed = 0

    def byte(self) -> int:
        data = self._handle.read(1)
        if not data:
            raise PageHeaderError("the file ends inside a page header")
        self._count(1)
        return data[0]

    def varint(self) -> int:
        value, shift = 0, 0
        while True:
            byte = self.byte()
            value |= (byte & 0x7F) << shift
            if not byte & 0x80:
                return value
            shift += 7
            if shift > 63:
                raise PageHeaderError("varint longer than 64 bits in a page header")

    def varint_signed(self) -> int:
        value = self.varint()
        return (value >> 1) ^ -(value & 1)

    def fields(self) -> _Fields:
        return _Fields(self)

    def skip(self, kind: int, *, depth: int) -> None:
        if depth > MAX_STRUCT_DEPTH:
            raise PageHeaderError("page header nested too deep")
        if kind in (_TRUE, _FALSE):
            return
        if kind == _BYTE:
            self.byte()
        elif kind in (_I16, _I32, _I64):
            self.varint()
        elif kind == _DOUBLE:
            self._skip_bytes(8)
        elif kind == _BINARY:
            self._skip_bytes(self.varint())
        elif kind in (_LIST, _SET):
            header = self.byte()
            size = header >> 4 if header >> 4 != 15 else self.varint()
            # Booleans in a list take a byte each, where a boolean field takes none.
            element = _BYTE if header & 0x0F in (_TRUE, _FALSE) else header & 0x0F
            for _ in range(size):
                self.skip(element, depth=depth + 1)
        elif kind == _MAP:
            size = self.varint()
            types = self.byte() if size else 0
            for _ in range(size):
                self.skip(types >> 4, depth=depth + 1)
                self.skip(types & 0x0F, depth=depth + 1)
        elif kind == _STRUCT:
            for _, inner in self.fields():
                self.skip(inner, depth=depth + 1)
        else:
            raise PageHeaderError(f"unknown Thrift type {kind} in a page header")

    def _skip_bytes(self, count: int) -> None:
        self._count(count)
        self._handle.seek(count, 1)

    def _count(self, count: int) -> None:
        self.consumed += count
        if self.consumed > MAX_HEADER_BYTES:
            raise PageHeaderError(f"page header longer than {MAX_HEADER_BYTES} bytes")


class _Fields:
    """Iterates a struct's (field id, type) headers up to its stop byte."""

    def __init__(self, reader: _CompactReader) -> None:
        self._reader = reader
        self._last = 0

    def __iter__(self) -> _Fields:
        return self

    def __next__(self) -> tuple[int, int]:
        header = self._reader.byte()
        kind = header & 0x0F
        if kind == _STOP:
            raise StopIteration
        delta = header >> 4
        self._last = self._last + delta if delta else self._reader.varint_signed()
        return self._last, kind


@dataclass(frozen=True)
class RowGroupBudget:
    """How one row group is read: ``batch_rows`` at a time, or not at all (``batch_rows`` 0).

    A refused group's rows each get ``reason``, or the reason of their own page where that page
    alone is above the limit (``refusals``: per column, sorted (first row, end row, reason)).
    """

    rows: int
    batch_rows: int
    reason: str = ""
    refusals: tuple[tuple[tuple[int, int, str], ...], ...] = ()
    # Per column (leaf path): no value can be larger than its largest page.
    value_bounds: dict[str, int] = field(default_factory=dict)

    def refusal(self, row: int) -> str:
        for column in self.refusals:
            index = bisect.bisect_right(column, row, key=lambda refusal: refusal[0]) - 1
            if index >= 0 and row < column[index][1]:
                return column[index][2]
        return self.reason


@dataclass
class _ColumnCost:
    """What reading one column chunk holds, gathered page by page (never a list of pages).

    Data pages map to rows only where a row is one value (``mapped``: no repeated field).
    A repeated column's values can all fall in one row, so all of them count at once.
    """

    name: str
    rows: int
    mapped: bool
    limit: int
    keep: int
    largest: list[int] = field(default_factory=list)  # the ``keep`` largest data pages, a heap
    dictionary: int = 0
    values: int = 0
    next_row: int = 0
    refusals: list[tuple[int, int, str]] = field(default_factory=list)

    def add(self, page: Page) -> None:
        if page.kind == DICTIONARY_PAGE:
            self.dictionary += page.size
            self._refuse(page, 0, self.rows, f"{self.name}'s dictionary page")
            return
        heapq.heappush(self.largest, page.size)
        self.values += max(page.values, 0)
        if len(self.largest) > self.keep:
            heapq.heappop(self.largest)
        if self.mapped:
            held = "this row" if page.rows == 1 else f"{page.rows} rows"
            self._refuse(page, self.next_row, self.next_row + page.rows, f"{self.name} for {held}")
            self.next_row += page.rows

    def value_bound(self) -> int:
        return max(max(self.largest, default=0), self.dictionary)

    def held(self) -> int:
        """The largest data page and the dictionary, twice (as read and as decoded), and
        what a repeated column's values cost beside them."""
        per_value = 0 if self.mapped else self.values * VALUE_BYTES
        return max(self.largest, default=0) + 2 * self.dictionary + per_value

    def batch_cost(self, rows: int) -> int:
        """At most the ``rows`` largest data pages, and a dictionary value in every row."""
        return sum(heapq.nlargest(rows, self.largest)) + rows * self.dictionary

    def _refuse(self, page: Page, first: int, end: int, what: str) -> None:
        if page.size > self.limit and len(self.refusals) < MAX_REFUSALS_KEPT:
            reason = f"{what} holds {page.size} bytes uncompressed, above the {self.limit}-byte"
            self.refusals.append((first, end, f"{reason} page limit: not read"))


def row_group_budget(
    *,
    handle: BinaryIO,
    metadata: pq.FileMetaData,
    group: int,
    columns: set[str],
    file_size: int,
    page_limit: int,
    batch_bytes: int,
    batch_rows: int,
) -> RowGroupBudget:
    """Read a row group only if its pages fit ``page_limit``, in batches of ``batch_bytes``.

    Reading holds, per column, its largest data page and its dictionary page, so their sum must
    stay within ``page_limit``. A batch is as many rows (one at least, up to ``batch_rows``) as
    fit ``batch_bytes`` by :meth:`_ColumnCost.batch_cost`.
    """
    row_group = metadata.row_group(group)
    rows = row_group.num_rows
    costs: list[_ColumnCost] = []
    for index in range(row_group.num_columns):
        schema = metadata.schema.column(index)
        if schema.path.split(".")[0] not in columns:
            continue
        cost = _ColumnCost(
            name=schema.path,
            rows=rows,
            mapped=schema.max_repetition_level == 0,
            limit=page_limit,
            keep=batch_rows,
        )
        for page in column_pages(handle, row_group.column(index), file_size):
            cost.add(page)
        costs.append(cost)
    held = sum(cost.held() for cost in costs)
    if held > page_limit:
        reason = (
            f"not read: its row group ({group}) needs {held} bytes decompressed at once, "
            f"above the {page_limit}-byte page limit"
        )
        refusals = tuple(tuple(cost.refusals) for cost in costs if cost.refusals)
        return RowGroupBudget(rows=rows, batch_rows=0, reason=reason, refusals=refusals)
    fitting = (
        size
        for size in range(batch_rows, 0, -1)
        if sum(cost.batch_cost(size) for cost in costs) <= batch_bytes
    )
    bounds = {cost.name: cost.value_bound() for cost in costs}
    return RowGroupBudget(rows=rows, batch_rows=next(fitting, 1), value_bounds=bounds)
