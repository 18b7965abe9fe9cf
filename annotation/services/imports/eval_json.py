"""eval-json: the HarmEval/HelpEval layout, a list of {class1, class2, class3, question, response}.

Rows have no image unless an ``image`` path (relative to the image root) is given; otherwise a
placeholder picture is made per question and stored with ``is_placeholder``. The model name is
the row's ``model``, else the ``--model`` option, else unknown. The list is read one row at a time.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from annotation.exceptions import RowRejected
from annotation.services.images import placeholder_image_bytes
from annotation.services.imports.jsonfile import check_json_list, json_list_rows
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


class EvalJsonSource:
    split = ""

    def __init__(
        self, *, path: Path, image_root: Path | None, model_name: str, taxonomy: TaxonomyResolver
    ) -> None:
        check_json_list(path)
        self.files = [path]
        self._path = path
        self._root = image_root or path.parent
        self._model_name = model_name
        self._taxonomy = taxonomy
        self.total: int | None = None

    def rows(self) -> Iterator[ImportRow | BadRow]:
        for row in json_list_rows(self._path):
            yield row if isinstance(row, BadRow) else self._row(*row)

    def _row(self, number: int, value: Any) -> ImportRow | BadRow:
        try:
            record = require_record(value)
            question = text_field(record, "question", allow_empty=False)
            subcategory_id = self._taxonomy.resolve_record(record)
            response = (
                (model_name_field(record, self._model_name), text_field(record, "response")),
            )
            if record.get("image") is not None:
                name = text_field(record, "image", allow_empty=False)
                image, placeholder = read_image_file(root=self._root, relative=name), False
            else:
                name, image, placeholder = "", placeholder_image_bytes(text=question), True
            return ImportRow(
                number=number,
                image=image,
                image_name=name,
                question=question,
                subcategory_id=subcategory_id,
                question_type=question_type_field(record),
                responses=response,
                image_is_placeholder=placeholder,
            )
        except RowRejected as error:
            return BadRow(number, str(error))
