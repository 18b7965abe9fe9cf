"""rlhf-json: the SPA-VL-RLHF training JSON, a list of {id, image, question, chosen, rejected}.

``image`` is a path relative to the image root laid out as ``class1/class2/class3/N.jpg``, so the
taxonomy comes from the path. SPA-VL-RLHF keeps one file per question type (``easy_train.json``,
``hardq_train.json``, ``hardd_train.json``), so the type comes from the file name's keyword, or
from the ``question_type`` option, which wins. ``id`` is kept as the pair's source id. The list is
read one row at a time (``jsonfile``), as are the images.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from annotation.exceptions import ImportFileError, RowRejected
from annotation.models import QuestionType
from annotation.services.imports.jsonfile import check_json_list, json_list_rows
from annotation.services.imports.rows import (
    BadRow,
    ImportRow,
    TaxonomyResolver,
    chosen_rejected,
    read_image_file,
    require_record,
    text_field,
)

# SPA-VL-RLHF's keyword for each question type, in its file names and data configs. It spells
# the hard statement "hardd" where we store "hards"; the stored value stays.
RLHF_KEYWORDS: dict[str, str] = {
    QuestionType.EASY: "easy",
    QuestionType.HARD_QUESTION: "hardq",
    QuestionType.HARD_STATEMENT: "hardd",
    QuestionType.UNKNOWN: "unknown",
}
FILE_KEYWORDS = {keyword: str(kind) for kind, keyword in RLHF_KEYWORDS.items()}
# What the ``question_type`` option accepts: either spelling of each type.
QUESTION_TYPE_NAMES = FILE_KEYWORDS | {str(kind): str(kind) for kind in QuestionType}
SOURCE_ID_MAX = 200  # Pair.source_id's max_length


def question_type_of(*, path: Path, question_type: str) -> str:
    """The option's type if given, else the file name's keyword (``hardd_test.json``: hards)."""
    if question_type:
        if question_type not in QUESTION_TYPE_NAMES:
            names = ", ".join(sorted(QUESTION_TYPE_NAMES))
            raise ImportFileError(f"unknown question type {question_type!r}: use one of {names}")
        return QUESTION_TYPE_NAMES[question_type]
    keyword, underscore, _ = path.name.partition("_")
    return FILE_KEYWORDS.get(keyword, QuestionType.UNKNOWN) if underscore else QuestionType.UNKNOWN


def source_id_field(record: Mapping[str, Any]) -> str:
    """The record's ``id`` as text: an integer (as SPA-VL's are) or a string; none gives ""."""
    value = record.get("id")
    if value is None:
        return ""
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise RowRejected(f"field 'id' is a {type(value).__name__}, not an integer or text")
    text = str(value) if isinstance(value, int) else text_field(record, "id")
    if len(text) > SOURCE_ID_MAX:
        raise RowRejected(f"field 'id' is longer than {SOURCE_ID_MAX} characters")
    return text


class RlhfJsonSource:
    split = ""

    def __init__(
        self,
        *,
        path: Path,
        image_root: Path | None,
        taxonomy: TaxonomyResolver,
        question_type: str = "",
    ) -> None:
        check_json_list(path)
        self.files = [path]
        self._path = path
        self._root = image_root or path.parent
        self._taxonomy = taxonomy
        self._question_type = question_type_of(path=path, question_type=question_type)
        self.total: int | None = None

    def rows(self) -> Iterator[ImportRow | BadRow]:
        for row in json_list_rows(self._path):
            yield row if isinstance(row, BadRow) else self._row(*row)

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
                question_type=self._question_type,
                responses=chosen_rejected(record),
                is_pair=True,
                source_id=source_id_field(record),
            )
        except RowRejected as error:
            return BadRow(number, str(error))
