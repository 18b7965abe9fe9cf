"""rlhf-json: the SPA-VL-RLHF training JSON, a list of {id, image, question, chosen, rejected}.

``image`` is a path relative to the image root laid out as ``class1/class2/class3/N.jpg``, so the
taxonomy comes from the path. The JSON list is loaded whole (the file holds text only; images are
read one row at a time).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from annotation.exceptions import RowRejected
from annotation.services.imports.jsonfile import load_json_list
from annotation.services.imports.rows import (
    BadRow,
    ImportRow,
    TaxonomyResolver,
    chosen_rejected,
    read_image_file,
    require_record,
    text_field,
)


class RlhfJsonSource:
    split = ""

    def __init__(self, *, path: Path, image_root: Path | None, taxonomy: TaxonomyResolver) -> None:
        self.files = [path]
        self._records = load_json_list(path)
        self._root = image_root or path.parent
        self._taxonomy = taxonomy
        self.total: int | None = len(self._records)

    def rows(self) -> Iterator[ImportRow | BadRow]:
        for index, value in enumerate(self._records):
            yield self._row(index + 1, value)

    def _row(self, number: int, value: Any) -> ImportRow | BadRow:
        try:
            record = require_record(value)
            relative = text_field(record, "image", allow_empty=False)
            subcategory_id = self._taxonomy.from_image_path(relative)
            return ImportRow(
                number=number,
                image=read_image_file(root=self._root, relative=relative),
                image_name=relative,
                question=text_field(record, "question", allow_empty=False),
                subcategory_id=subcategory_id,
                responses=chosen_rejected(record),
                is_pair=True,
            )
        except RowRejected as error:
            return BadRow(number, str(error))
