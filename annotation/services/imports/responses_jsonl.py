"""responses-jsonl: one model response per line, streamed line by line.

``{image, question, class1, class2, class3, question_type?, model, response}``; ``image`` is a
path relative to the image root (the file's folder by default). Responses with the same image
and question text belong to the same question. A line above ``IMPORT_ROW_MAX_BYTES`` is rejected
as that row without being held, and reading goes on at the next line.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

from django.conf import settings

from annotation.exceptions import ImportFileError, RowRejected
from annotation.services.imports.jsonfile import json_lines, open_data_file
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
        self.files = [path]
        self._path = path
        self._root = image_root or path.parent
        self._taxonomy = taxonomy
        self._check_first_line()

    def _check_first_line(self) -> None:
        """A file whose first non-blank line is not a JSON object is not JSONL at all.

        A first line above the limit is read no further than its start: it must open an object.
        """
        limit = settings.IMPORT_ROW_MAX_BYTES
        with open_data_file(self._path) as handle:
            while raw := handle.readline(limit + 1):
                if not raw.strip():
                    continue
                if len(raw) > limit and not raw.endswith(b"\n"):
                    if raw.lstrip().startswith(b"{"):
                        return
                    raise ImportFileError(
                        f"{self._path.name} is not JSON lines: line 1 is above {limit} bytes"
                        " and does not start with '{'"
                    )
                try:
                    json.loads(raw.decode("utf-8", errors="surrogateescape"))
                except (ValueError, RecursionError) as error:
                    raise ImportFileError(
                        f"{self._path.name} is not JSON lines: line 1: {error}"
                    ) from error
                return

    def rows(self) -> Iterator[ImportRow | BadRow]:
        for line in json_lines(self._path):
            yield line if isinstance(line, BadRow) else self._row(*line)

    def _row(self, number: int, raw: bytes) -> ImportRow | BadRow:
        try:
            try:
                value = json.loads(raw.decode("utf-8"))
            except UnicodeDecodeError as error:
                raise RowRejected("line is not valid UTF-8") from error
            except (ValueError, RecursionError) as error:
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
