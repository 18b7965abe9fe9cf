"""Cached dashboards, keyed by the slice and a version of the data they rest on.

The data version changes whenever a review, response safety label, adjudication, judgement,
campaign pair, pair, question or taxonomy node does, by any code path (services, admin, bulk
updates, raw SQL), so nothing has to remember to invalidate. On PostgreSQL it is the sum of
write counters that statement triggers bump (``DataVersion``, migrations 0010-0011 and 0020):
reading it costs a fraction of a millisecond, where checksumming 600,000 rows cost 85 ms on
every page view. Without counters (SQLite, or before the first write) it is a checksum of the
data (queries.data_fingerprint).

Stale while revalidate: when the data changed and the slice's last computation took longer
than ``settings.SPAVL_AGREEMENT_INLINE_S``, the previous figures are served, marked stale with
their "as of" time, while a Celery task recomputes them (one at a time per slice). Small data
is always recomputed inline, so the figures shown are fresh wherever that is cheap.
"""

from __future__ import annotations

import hashlib
import time

from django.conf import settings
from django.core.cache import cache
from django.utils import timezone

from annotation.services.agreement import queries
from annotation.services.agreement.dashboard import (
    DEFAULT_TARGET,
    build_dashboard,
    slice_fields,
    slice_from_fields,
)
from annotation.services.agreement.queries import AgreementSlice
from annotation.services.agreement.results import CachedDashboard, SliceFields
from spavl_web.jobs import enqueue_on_commit

REFRESH_TASK = "annotation.tasks.refresh_agreement_dashboard"

TIMEOUT_S = 24 * 3600
REFRESH_LOCK_S = 10 * 60  # a refresh that died frees its slice after this


def data_version() -> str:
    slots, total = queries.write_counters()
    if slots:
        return f"w{slots}-{total}"
    return hashlib.sha256(repr(queries.data_fingerprint()).encode()).hexdigest()[:16]


# Bumped with the dashboard's shape (3: the own-family figures; 4: the axis, guard and
# severity figures), so no page or API answer meets a cached dashboard without the fields it
# reads.
SHAPE = 4


def _key(*, slice_: AgreementSlice, target: float, version: str) -> str:
    return f"agreement:{SHAPE}:{version}:{slice_.cache_key()}:{target:.4f}"


def compute_and_store(
    *, slice_: AgreementSlice, target: float, version: str | None = None
) -> CachedDashboard:
    """Compute the slice's dashboard, stamp it (as of, data version, seconds) and cache it
    both under its version and as the slice's latest."""
    version = version or data_version()
    started = time.perf_counter()
    result = CachedDashboard(
        **build_dashboard(slice_=slice_, target=target),
        freshness={
            "as_of": timezone.now().isoformat(timespec="seconds"),
            "version": version,
            "compute_s": round(time.perf_counter() - started, 3),
            "stale": False,
        },
    )
    cache.set_many(
        {
            _key(slice_=slice_, target=target, version=version): result,
            _key(slice_=slice_, target=target, version="latest"): result,
        },
        TIMEOUT_S,
    )
    return result


def cached_dashboard(*, slice_: AgreementSlice, target: float = DEFAULT_TARGET) -> CachedDashboard:
    """The slice's dashboard for the current data, or its previous figures marked stale while
    a background recompute runs (see the module docstring)."""
    version = data_version()
    result: CachedDashboard | None = cache.get(_key(slice_=slice_, target=target, version=version))
    if result is not None:
        return result
    latest: CachedDashboard | None = cache.get(_key(slice_=slice_, target=target, version="latest"))
    inline_s = settings.SPAVL_AGREEMENT_INLINE_S
    if latest is None or latest["freshness"]["compute_s"] < inline_s:
        return compute_and_store(slice_=slice_, target=target, version=version)
    _enqueue_refresh(slice_=slice_, target=target)
    return CachedDashboard(**latest | {"freshness": latest["freshness"] | {"stale": True}})


def _enqueue_refresh(*, slice_: AgreementSlice, target: float) -> None:
    # Debounced: while one refresh of the slice is queued or running, writes enqueue nothing.
    if cache.add(f"agreement:refreshing:{slice_.cache_key()}:{target:.4f}", 1, REFRESH_LOCK_S):
        enqueue_on_commit(REFRESH_TASK, slice_fields=slice_fields(slice_), target=target)


def refresh_dashboard(*, slice_fields: SliceFields, target: float) -> None:
    """Recompute a slice's dashboard for the current data (the Celery task's body)."""
    slice_ = slice_from_fields(slice_fields)
    try:
        compute_and_store(slice_=slice_, target=target)
    finally:
        cache.delete(f"agreement:refreshing:{slice_.cache_key()}:{target:.4f}")
