"""Cached dashboards, keyed by the slice and a fingerprint of the data they rest on.

The fingerprint (queries.data_fingerprint) checksums every review, adjudication, judgement,
campaign pair and final label with portable integer aggregates, so any write, undo or delete, by any code
path (services, admin, bulk updates), changes the key: nothing has to remember to invalidate.
"""

from __future__ import annotations

import hashlib
from typing import Any

from django.core.cache import cache

from annotation.agreement import queries
from annotation.agreement.dashboard import DEFAULT_TARGET, build_dashboard
from annotation.agreement.queries import AgreementSlice

TIMEOUT_S = 24 * 3600


def data_version() -> str:
    return hashlib.sha256(repr(queries.data_fingerprint()).encode()).hexdigest()[:16]


def cached_dashboard(*, slice_: AgreementSlice, target: float = DEFAULT_TARGET) -> dict[str, Any]:
    """The slice's dashboard, computed once per version of the data."""
    key = f"agreement:1:{data_version()}:{slice_.cache_key()}:{target:.4f}"
    result: dict[str, Any] | None = cache.get(key)
    if result is None:
        result = build_dashboard(slice_=slice_, target=target)
        cache.set(key, result, TIMEOUT_S)
    return result
