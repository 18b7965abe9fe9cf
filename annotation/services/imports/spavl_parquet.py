"""spavl-parquet: Hugging Face parquet files of the SPA-VL layout, a file or a folder of shards.

Read in memory bounded whatever the file says (``parquet_reader``: page headers walked before a
row group is read, images and text measured in Arrow before they become Python objects). The
layout is recognised from the columns (or named with ``--split``):

- train: image, question, chosen, rejected, image_name (taxonomy from ``c1/c2/c3/N.jpg`` names)
- validation: image, question, chosen, rejected, class1, class2, class3
- test: image, question, class1, class2, class3 (no responses: question and image only)
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from annotation.exceptions import ImportFileError, RowRejected
from annotation.services.imports.parquet_reader import BoundedRows, open_parquet, parquet_shards
from annotation.services.imports.rows import (
    BadRow,
    ImportRow,
    TaxonomyResolver,
    chosen_rejected,
    optional_text,
    text_field,
)

LAYOUTS: dict[str, tuple[str, ...]] = {
    "validation": ("image", "question", "chosen", "rejected", "class1", "class2", "class3"),
    "train": ("image", "question", "chosen", "rejected", "image_name"),
    "test": ("image", "question", "class1", "class2", "class3"),
}


class SpavlParquetSource:
    def __init__(self, *, path: Path, split: str, taxonomy: TaxonomyResolver) -> None:
        self.files = parquet_shards(path)
        self._taxonomy = taxonomy
        self._parquet = [open_parquet(file) for file in self.files]
        columns = set(self._parquet[0].schema_arrow.names)
        self.split = split or _detect_layout(columns)
        if self.split not in LAYOUTS:
            raise ImportFileError(f"unknown split {split!r}: use one of {', '.join(LAYOUTS)}")
        for file, parquet in zip(self.files, self._parquet, strict=True):
            missing = [c for c in LAYOUTS[self.split] if c not in parquet.schema_arrow.names]
            if missing:
                raise ImportFileError(
                    f"{file.name} lacks the {self.split} columns {', '.join(missing)}"
                )
        self.total: int | None = sum(p.metadata.num_rows for p in self._parquet)

    def rows(self) -> Iterator[ImportRow | BadRow]:
        shards = list(zip(self.files, self._parquet, strict=True))
        yield from BoundedRows(
            shards=shards, image_column="image", parse=self._row, columns=LAYOUTS[self.split]
        )

    def _row(self, number: int, record: Mapping[str, Any]) -> ImportRow | BadRow:
        try:
            image, image_name = _image(record)
            if self.split == "train":
                image_name = optional_text(record, "image_name") or image_name
                subcategory_id = self._taxonomy.from_image_path(image_name)
            else:
                subcategory_id = self._taxonomy.resolve_record(record)
            responses: tuple[tuple[str, str], ...] = ()
            if self.split != "test":
                responses = chosen_rejected(record)
            return ImportRow(
                number=number,
                image=image,
                image_name=image_name,
                question=text_field(record, "question", allow_empty=False),
                subcategory_id=subcategory_id,
                responses=responses,
                is_pair=bool(responses),
            )
        except RowRejected as error:
            return BadRow(number, str(error))


def _detect_layout(columns: set[str]) -> str:
    for split, needed in LAYOUTS.items():
        if columns.issuperset(needed):
            return split
    raise ImportFileError(
        "the columns match no SPA-VL layout (train, validation, test): "
        + ", ".join(sorted(columns))
    )


def _image(record: Mapping[str, Any]) -> tuple[bytes, str]:
    value = record.get("image")
    if isinstance(value, dict):
        data, name = value.get("bytes"), value.get("path") or ""
    else:
        data, name = value, ""
    if not data:
        raise RowRejected("missing image bytes")
    if not isinstance(data, bytes):
        raise RowRejected(f"image is a {type(data).__name__}, not bytes")
    return data, name if isinstance(name, str) else ""
