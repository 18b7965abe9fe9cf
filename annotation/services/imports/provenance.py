"""A source row's other columns as provenance: JSON that PostgreSQL's jsonb stores as given.

jsonb refuses ``\\u0000`` and lone surrogates, and JSON has no NaN, bytes or dates, so values
are made JSON-safe on the way in: bytes are summarised as ``{"omitted_bytes": N}`` (an image
column nobody mapped would otherwise double the row), non-finite floats become their names,
dates and decimals their text. A string holding a NUL character or text that is not UTF-8
rejects the row with the column's name, as a mapped text would: nothing is altered silently.
The whole is bounded by ``IMPORT_ROW_MAX_BYTES`` as JSON, and by a nesting depth.
"""

from __future__ import annotations

import datetime as dt
import decimal
import json
import math
from collections.abc import Mapping
from typing import Any

from django.conf import settings

from annotation.exceptions import RowRejected
from annotation.services.imports.jsonfile import JSON_MAX_DEPTH


def provenance_of(values: Mapping[str, Any]) -> dict[str, Any]:
    """``values`` made JSON-safe, or RowRejected naming the column that cannot be kept."""
    kept = {
        _text(str(name), str(name)): _safe(value, str(name), 0) for name, value in values.items()
    }
    size = len(json.dumps(kept, ensure_ascii=False, separators=(",", ":")).encode())
    limit = settings.IMPORT_ROW_MAX_BYTES
    if size > limit:
        raise RowRejected(
            f"the columns kept as provenance hold {size} bytes of JSON, above {limit}"
        )
    return kept


def _safe(value: Any, column: str, depth: int) -> Any:
    if depth > JSON_MAX_DEPTH:
        raise RowRejected(f"column {column!r} nests deeper than {JSON_MAX_DEPTH} levels")
    if value is None or isinstance(value, bool | int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, str):
        return _text(value, column)
    if isinstance(value, bytes | bytearray | memoryview):
        return {"omitted_bytes": len(value)}
    if isinstance(value, Mapping):
        return {
            _text(str(key), column): _safe(item, column, depth + 1) for key, item in value.items()
        }
    if isinstance(value, list | tuple):
        return [_safe(item, column, depth + 1) for item in value]
    if isinstance(value, dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, decimal.Decimal | dt.timedelta):
        return str(value)
    raise RowRejected(f"column {column!r} holds a {type(value).__name__}, which JSON cannot keep")


def _text(value: str, column: str) -> str:
    if "\x00" in value:
        raise RowRejected(f"column {column!r} contains a NUL character")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as error:
        raise RowRejected(f"column {column!r} is not valid UTF-8") from error
    return value
