"""Reading JSON list files and JSON lines one row at a time, in memory bounded by the limits.

A JSON list is cut into its elements by a scanner that follows only strings and brackets, and
each element is parsed on its own by the standard library. ijson streams too, but it fails the
whole file on one row's invalid UTF-8 (and on a lone ``\\udcff`` escape, which is valid JSON),
and it holds a token of any size; here a row above ``IMPORT_ROW_MAX_BYTES`` or nested deeper than
``JSON_MAX_DEPTH`` is skipped without being held, and rejected as that row. Bytes that are not
UTF-8 are kept as surrogate escapes, so the row holding them is rejected on its own
(``text_field`` refuses text that cannot be encoded). A syntax error fails the file with its
line and byte offset; the rows before it have been imported by then.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

from django.conf import settings

from annotation.exceptions import ImportFileError
from annotation.services.imports.files import NotRegularFile, open_regular
from annotation.services.imports.rows import BadRow

JSON_MAX_DEPTH = 64
READ_BLOCK = 1 << 20
# Brackets, quotes and commas are all the scanner follows; a run of brackets is one step.
_STRUCTURE = re.compile(rb'[\[\]{}",]')
_OPENERS, _CLOSERS = re.compile(rb"[\[{]+"), re.compile(rb"[\]}]+")
# The rest of a string up to its closing quote, escapes included (most strings end in the block).
_STRING_REST = re.compile(rb'[^"\\]*+(?:\\.[^"\\]*+)*+"', re.DOTALL)
_CONTENT = re.compile(rb"[^ \t\r\n]")
_OPEN, _CLOSE, _QUOTE, _COMMA = b"[{", b"]}", ord('"'), ord(",")
_BOM = b"\xef\xbb\xbf"

Row = tuple[int, Any]  # (row number, parsed value)


def open_data_file(path: Path) -> BinaryIO:
    """The import's data file, or ImportFileError saying why it cannot be read."""
    try:
        return open_regular(path)
    except FileNotFoundError as error:
        raise ImportFileError(f"{path} does not exist") from error
    except NotRegularFile as error:
        raise ImportFileError(str(error)) from error
    except OSError as error:
        raise ImportFileError(f"{path} cannot be read: {error}") from error


def check_json_list(path: Path) -> None:
    """ImportFileError now unless the file starts a JSON list; reads one block at most."""
    with open_data_file(path) as handle:
        head = handle.read(READ_BLOCK)
        whole = not handle.read(1)
    text = head.removeprefix(_BOM).lstrip(b" \t\r\n")
    if text.startswith(b"["):
        return
    if not text and whole:
        raise ImportFileError(f"{path.name} is not valid JSON: the file is empty")
    try:
        document = json.loads(text.decode("utf-8", errors="surrogateescape"))
    except ValueError as error:
        if whole:
            raise ImportFileError(f"{path.name} is not valid JSON: {error}") from error
        raise ImportFileError(
            f"{path.name} is not a JSON list of rows: it starts with {text[:1]!r}"
        ) from error
    raise ImportFileError(
        f"{path.name} holds a JSON {type(document).__name__}; expected a list of rows"
    )


def json_list_rows(path: Path) -> Iterator[Row | BadRow]:
    """Each element of the file's top-level list, parsed, or rejected as too large or deep."""
    scanner = _ListScanner(name=path.name, row_limit=settings.IMPORT_ROW_MAX_BYTES)
    with open_data_file(path) as handle:
        while block := handle.read(READ_BLOCK):
            yield from scanner.feed(block)
    scanner.finish()


def json_lines(path: Path) -> Iterator[tuple[int, bytes] | BadRow]:
    """(line number, bytes) of each non-blank line; a line above the limit is rejected unread."""
    limit = settings.IMPORT_ROW_MAX_BYTES
    with open_data_file(path) as handle:
        number = 0
        while raw := handle.readline(limit + 1):
            number += 1
            if len(raw) > limit and not raw.endswith(b"\n"):
                size = len(raw) + _skip_line(handle)
                yield BadRow(number, f"line is {size} bytes, above {limit}")
            elif raw.strip():
                yield number, raw


def _run_end(run: re.Pattern[bytes], block: bytes, start: int) -> int:
    found = run.match(block, start)
    assert found is not None  # the run starts with the character found at ``start``
    return found.end()


def _skip_line(handle: BinaryIO) -> int:
    skipped = 0
    while part := handle.readline(READ_BLOCK):
        skipped += len(part)
        if part.endswith(b"\n"):
            break
    return skipped


class _ListScanner:
    """Cuts a JSON list into its elements' bytes, block by block, following strings and depth.

    Only what an element needs is kept: none of an element above the row limit or too deep.
    Whether each element is valid JSON is left to ``json.loads``; the scanner checks the list
    around them (an opening ``[``, a closing ``]``, nothing after it).
    """

    def __init__(self, *, name: str, row_limit: int) -> None:
        self.name = name
        self.row_limit = row_limit
        self.depth = 0
        self.started = self.ended = False
        self.in_string = self.escaped = False
        self.number = 0
        self.offset = 0  # of the block being scanned
        self.line, self.counted = 1, 0  # lines before ``counted`` in the block being scanned
        # The row being scanned: where it starts, its bytes so far (None once it is refused).
        self.row_offset, self.row_line, self.size = 0, 1, 0
        self.parts: list[bytes] | None = []
        self.too_deep = False

    def feed(self, block: bytes) -> Iterator[Row | BadRow]:
        position = self._open_list(block) if not self.started else 0
        segment = position
        while position < len(block) and not self.ended:
            if self.in_string:
                position = self._skip_string(block, position)
                continue
            found = _STRUCTURE.search(block, position)
            if found is None:
                break
            start = found.start()
            char = block[start]
            if char == _QUOTE:
                self.in_string = True
                position = self._skip_string(block, start + 1)
            elif char == _COMMA:
                position = start + 1
                if self.depth == 1:  # between rows
                    self._keep(block[segment:start])
                    yield from self._end_row(last=False)
                    segment = position
                    self._start_row(position, block)
            elif char in _OPEN:  # a run of them is one step: a deep row costs little
                position = _run_end(_OPENERS, block, start)
                self.depth += position - start
                self.too_deep = self.too_deep or self.depth - 1 > JSON_MAX_DEPTH
            else:
                position = _run_end(_CLOSERS, block, start)
                if position - start < self.depth:
                    self.depth -= position - start
                    continue
                position = start + self.depth  # the run closes the list at this bracket
                self._close_list(block, position - 1)
                self._keep(block[segment : position - 1])
                yield from self._end_row(last=True)
        if self.ended:
            self._refuse_trailing(block, position)
        elif self.started:
            self._keep(block[segment:])
        self._count_lines(block, len(block))
        self.offset += len(block)
        self.counted = 0

    def _close_list(self, block: bytes, position: int) -> None:
        if block[position] != ord("]"):
            self._fail(block, position, "the list is closed by '}'")
        self.depth, self.ended = 0, True

    def finish(self) -> None:
        if not self.started:
            raise ImportFileError(f"{self.name} is not valid JSON: the file is empty")
        if not self.ended:
            raise ImportFileError(
                f"{self.name} is not valid JSON: the file ends inside row {self.number + 1}"
                f" (line {self.line})"
            )

    def _open_list(self, block: bytes) -> int:
        start = len(_BOM) if self.offset == 0 and block.startswith(_BOM) else 0
        found = _CONTENT.search(block, start)
        if found is None:
            return len(block)
        if block[found.start()] != ord("["):
            self._fail(block, found.start(), "expected a list of rows")
        self.started, self.depth = True, 1
        self._start_row(found.end(), block)
        return found.end()

    def _skip_string(self, block: bytes, position: int) -> int:
        """Past the string's closing quote, or the block's end (then ``escaped`` says whether
        the block ends inside an escape: after an odd run of backslashes)."""
        if self.escaped:  # the block starts with the byte a backslash escapes
            self.escaped = False
            position += 1
        if block.find(b'"', position) < 0 and block.find(b"\\", position) < 0:
            return len(block)  # memchr's speed through a long string
        rest = _STRING_REST.match(block, position)
        if rest is not None:
            self.in_string = False
            return rest.end()
        backslashes = len(block) - max(len(block.rstrip(b"\\")), position)
        self.escaped = backslashes % 2 == 1
        return len(block)

    def _start_row(self, position: int, block: bytes) -> None:
        self._count_lines(block, position)
        self.row_offset, self.row_line = self.offset + position, self.line
        self.parts, self.size, self.too_deep = [], 0, False

    def _keep(self, data: bytes) -> None:
        self.size += len(data)
        if self.parts is not None and (self.size > self.row_limit or self.too_deep):
            self.parts = None
        elif self.parts is not None:
            self.parts.append(data)

    def _end_row(self, *, last: bool) -> Iterator[Row | BadRow]:
        number = self.number + 1
        if self.parts is None:
            self.number = number
            reason = (
                f"row nests deeper than {JSON_MAX_DEPTH} levels"
                if self.too_deep
                else f"row is {self.size} bytes, above {self.row_limit}"
            )
            yield BadRow(number, reason)
            return
        text = b"".join(self.parts).decode("utf-8", errors="surrogateescape")
        if last and self.number == 0 and not text.strip():
            return  # an empty list
        self.number = number
        try:
            yield number, json.loads(text)
        except json.JSONDecodeError as error:
            line = self.row_line + error.lineno - 1
            offset = self.row_offset + len(text[: error.pos].encode(errors="surrogateescape"))
            raise ImportFileError(
                f"{self.name} is not valid JSON: {error.msg}: line {line}, byte {offset}"
                f" (row {number})"
            ) from error
        except ValueError as error:  # valid JSON Python refuses, such as a 5,000-digit number
            yield BadRow(number, f"row cannot be read: {error}")

    def _refuse_trailing(self, block: bytes, position: int) -> None:
        found = _CONTENT.search(block, position)
        if found is not None:
            self._fail(block, found.start(), "extra data after the list")

    def _fail(self, block: bytes, position: int, message: str) -> None:
        self._count_lines(block, position)
        raise ImportFileError(
            f"{self.name} is not valid JSON: {message}: line {self.line},"
            f" byte {self.offset + position}"
        )

    def _count_lines(self, block: bytes, position: int) -> None:
        if position > self.counted:
            self.line += block.count(b"\n", self.counted, position)
            self.counted = position
