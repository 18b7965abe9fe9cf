"""Estimates as the dashboard shows them: ``results.Figure`` dicts that keep their n and lose
their number below MIN_SLICE_N pairs (or reviews), shared by every section of the dashboard."""

from __future__ import annotations

from annotation.services.agreement.queries import VERDICTS
from annotation.services.agreement.results import Figure, Measures
from annotation.services.agreement.stats import (
    MIN_SLICE_N,
    CountedCell,
    Estimate,
    two_rater_measures_from_counts,
    wilson_interval,
    withhold_small_slice,
)


def figure(result: Estimate, *, min_n: int = MIN_SLICE_N) -> Figure:
    shown = withhold_small_slice(result=result, min_n=min_n)
    return Figure(
        estimate=shown.estimate,
        n=shown.n,
        low=shown.low,
        high=shown.high,
        withheld=shown.withheld,
    )


def proportion(*, k: int, n: int) -> Figure:
    return figure(wilson_interval(k=k, n=n))


def measures(cells: list[CountedCell]) -> Measures:
    """Judge-vs-people agreement, Cohen's kappa and Gwet's AC1 over counted verdict cells."""
    found = two_rater_measures_from_counts(cells=cells, categories=VERDICTS)
    return Measures(
        percent=figure(found["percent"]),
        kappa=figure(found["kappa"]),
        ac1=figure(found["ac1"]),
    )
