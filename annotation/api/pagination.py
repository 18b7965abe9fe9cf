"""Cursor pages in id order for the API's listings, strict about what a client sends."""

from __future__ import annotations

import re
from typing import Any

from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.pagination import Cursor, CursorPagination
from rest_framework.request import Request

MAX_PAGE_SIZE = 500
ID = re.compile(r"-?[0-9]{1,18}")  # within bigint, whatever it names


class IdCursor(CursorPagination):
    """Pages in id order: rows inserted meanwhile come after every page already read, so a
    walk through the pages sees each row once. A page size out of range is refused (400)
    rather than quietly changed, and the schema states its bounds."""

    ordering = "id"
    page_size = 100
    page_size_query_param = "page_size"
    max_page_size = MAX_PAGE_SIZE

    def get_page_size(self, request: Request) -> int:
        given = request.query_params.get("page_size")
        if given is None:
            return self.page_size
        try:
            size = int(given)
        except ValueError:
            size = 0
        if not 1 <= size <= MAX_PAGE_SIZE:
            raise ValidationError({"page_size": [f"a whole number from 1 to {MAX_PAGE_SIZE}"]})
        return size

    def decode_cursor(self, request: Request) -> Cursor | None:
        """DRF's decoding, and a position that is an id: a forged one would reach the query."""
        cursor = super().decode_cursor(request)
        position = cursor.position if cursor is not None else None
        if position is not None and not ID.fullmatch(str(position)):
            raise NotFound(self.invalid_cursor_message)
        return cursor

    def get_schema_operation_parameters(self, view: Any) -> list[dict[str, Any]]:
        parameters = super().get_schema_operation_parameters(view)
        for parameter in parameters:
            if parameter["name"] == "page_size":
                parameter["schema"] |= {"minimum": 1, "maximum": MAX_PAGE_SIZE, "default": 100}
        return parameters
