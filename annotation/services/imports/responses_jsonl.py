"""responses-jsonl: one model response per line, streamed line by line.

``{image, question, class1, class2, class3, question_type?, model, response}``; ``image`` is a
path relative to the image root (the file's folder by default). Responses with the same image
and question text belong to the same question.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

from annotation.exceptions import ImportFileError, RowRejected
from annotation.services.imports.rows import (
    BadRow,
    ImportRow,
    TaxonomyResolver,
    model_name_field,
    question_type_field,
    read_image_file,
    require_record,
    text_field,
)


class ResponsesJsonlSource:
    split = ""
    total: int | None = None

    def __init__(self, *, path: Path, image_root: Path | None, taxonomy: TaxonomyResolver) -> None:
        if not path.is_file():
            raise ImportFileError(f"{path} does not exist or is not a file")
        self.files = [path]
        self._path = path
        self._root = image_root or path.parent
        self._taxonomy = taxonomy
        self._check_first_line()

    def _check_first_line(self) -> None:
        """A file whose first non-blank line is not a JSON object is not JSONL at all."""
        with self._path.open("rb") as handle:
            for raw in handle:
                if raw.strip():
                    try:
                        json.loads(raw.decode("utf-8", errors="surrogateescape"))
                    except ValueError as error:
                        raise ImportFileError(
                            f"{self._path.name} is not JSON lines: line 1: {error}"
                        ) from error
                    return

    def rows(self) -> Iterator[ImportRow | BadRow]:
        with self._path.open("rb") as handle:
            for number, raw in enumerate(handle, start=1):
                if raw.strip():
                    yield self._row(number, raw)

    def _row(self, number: int, raw: bytes) -> ImportRow | BadRow:
        try:
            try:
                value = json.loads(raw.decode("utf-8"))
            except UnicodeDecodeError as error:
                raise RowRejected("line is not valid UTF-8") from error
            except ValueError as error:
                raise RowRejected(f"line is not valid JSON: {error}") from error
            record = require_record(value)
            relative = text_field(record, "image", allow_empty=False)
            return ImportRow(
                number=number,
                image=read_image_file(root=self._root, relative=relative),
                image_name=relative,
                question=text_field(record, "question", allow_empty=False),
                subcategory_id=self._taxonomy.resolve_record(record),
                question_type=question_type_field(record),
                responses=((model_name_field(record, ""), text_field(record, "response")),),
            )
        except RowRejected as error:
            return BadRow(number, str(error))
