"""Taxonomy from a dataset's own categories: a map to SPA-VL subcategories, and the row rule.

The map is a JSON object ``{"their category": "class1/class2/class3"}`` (a target may also be
``[class1, class2, class3]``, or null for "no subcategory"), every target a live subcategory,
checked before anything is imported. A row's subcategory comes from mapped class columns (the
SPA-VL strings byte for byte) or from its category through the map; one the taxonomy does not
know rejects the row, or, when unknown categories are kept, leaves it without a subcategory.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from annotation.exceptions import ImportFileError, RowRejected
from annotation.services.imports.column_map import CLASSES, ColumnMap
from annotation.services.imports.jsonfile import open_data_file
from annotation.services.imports.rows import TaxonomyResolver, optional_text

TAXONOMY_MAP_MAX_BYTES = 1 << 20


def load_taxonomy_map(
    source: Path | Mapping[str, Any], *, taxonomy: TaxonomyResolver
) -> dict[str, int | None]:
    """{dataset category: subcategory id, or None for "no subcategory"} from a JSON object of
    ``"category": "class1/class2/class3"`` (or ``[class1, class2, class3]``, or null)."""
    document = _read_taxonomy_map(source) if isinstance(source, Path) else source
    if not isinstance(document, Mapping):
        raise ImportFileError("the taxonomy map is not a JSON object of category: class path")
    resolved: dict[str, int | None] = {}
    bad: list[str] = []
    for category, target in document.items():
        try:
            resolved[str(category)] = _map_target(target, taxonomy)
        except RowRejected as error:
            bad.append(f"{category!r}: {error}")
    if bad:
        shown = "; ".join(bad[:5]) + (f"; and {len(bad) - 5} more" if len(bad) > 5 else "")
        raise ImportFileError(f"the taxonomy map names no live subcategory for {shown}")
    return resolved


def _read_taxonomy_map(path: Path) -> Any:
    with open_data_file(path) as handle:
        data = handle.read(TAXONOMY_MAP_MAX_BYTES + 1)
    if len(data) > TAXONOMY_MAP_MAX_BYTES:
        raise ImportFileError(
            f"the taxonomy map {path.name} is above {TAXONOMY_MAP_MAX_BYTES} bytes"
        )
    try:
        return json.loads(data.decode("utf-8"))
    except (ValueError, RecursionError) as error:
        raise ImportFileError(f"the taxonomy map {path.name} is not valid JSON: {error}") from error


def _map_target(target: Any, taxonomy: TaxonomyResolver) -> int | None:
    if target is None:
        return None
    keys = target.split("/") if isinstance(target, str) else target
    if not isinstance(keys, list) or len(keys) != 3 or not all(isinstance(k, str) for k in keys):
        raise RowRejected(f"{target!r} is not class1/class2/class3")
    return taxonomy.resolve(*keys)


class RowTaxonomy:
    """A row's subcategory from its class columns or its category, as the mapping says."""

    def __init__(
        self,
        *,
        mapping: ColumnMap,
        resolver: TaxonomyResolver,
        categories: dict[str, int | None] | None,
        keep_unknown: bool,
    ) -> None:
        self._classes = [mapping.keys[key] for key in CLASSES if key in mapping.keys]
        self._category = mapping.get("category")
        self._resolver = resolver
        self._categories = categories or {}
        self._keep_unknown = keep_unknown

    def subcategory(self, record: Mapping[str, Any]) -> int | None:
        """The row's subcategory; a NUL or text that is not UTF-8 rejects the row whatever."""
        if self._classes:
            keys = [optional_text(record, column) for column in self._classes]
            missing = [column for column, key in zip(self._classes, keys, strict=True) if not key]
            if missing:
                return self._unknown(f"missing field {missing[0]!r}")
            try:
                return self._resolver.resolve(*keys)
            except RowRejected as error:
                return self._unknown(str(error))
        if self._category is None:
            return None
        category = self._category_text(record, self._category)
        if not category:
            return self._unknown(f"missing field {self._category!r}")
        if category not in self._categories:
            return self._unknown(f"category {category!r} is not in the taxonomy map")
        return self._categories[category]

    def _unknown(self, reason: str) -> int | None:
        """No subcategory for a taxonomy nobody knows, where that was asked for."""
        if not self._keep_unknown:
            raise RowRejected(reason)
        return None

    @staticmethod
    def _category_text(record: Mapping[str, Any], column: str) -> str:
        value = record.get(column)
        if isinstance(value, int) and not isinstance(value, bool):
            return str(value)  # numbered categories; the map's keys are text
        return optional_text(record, column)
