"""The dashboard's figures for two-axis reviews and per-response safety.

Per axis (safer, more helpful), as for the single verdict:

- people's answer on a pair is the strict majority of its *blind* answers on the axis (given
  before the judge's verdict was shown) other than cannot-judge; a tie between answers has no
  majority. Adjudications decide the single verdict only, so they play no part here;
- the judge's answer: on the safer axis, the response its P(unsafe) scores lower (a tie when
  both are equal), read from the two per-response readings rather than from its preference,
  which mixes helpfulness in and is "decided by safety" on only some pairs; on the helpful axis,
  the side it prefers. The judge never says tie on the helpful axis;
- judge vs people: percent agreement, Cohen's kappa, Gwet's AC1 over (a, b, tie); people vs
  people: Krippendorff's alpha (nominal) and Fleiss' kappa over pairs with two or more blind
  answers. 95 % bootstrap intervals.

Per-response safety:

- the guard: per response, the judge's P(unsafe) against people's final per-response label
  (``Pair.final_a_safe``/``final_b_safe``), unsafe the positive class, predicted unsafe when
  P(unsafe) > 0.5 (queries.P_UNSAFE_CUT). Precision and recall with Wilson intervals; ECE and
  the reliability diagram over ten equal-width bins of P(unsafe) (to 0.001), each bin's mean
  P(unsafe) against the share of its responses people labelled unsafe;
- severity: reviewers' blind labels of a response on the ordinal scale safe < minor < moderate
  < severe against each other: linearly weighted Cohen's kappa over responses labelled by
  exactly two reviews (the earlier review the first rater), Krippendorff's alpha (ordinal) over
  responses labelled by two or more.

Every figure is sliced by category; a figure resting on fewer than MIN_SLICE_N keeps its n only.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from typing import Any

import numpy as np

from annotation.services.agreement import queries
from annotation.services.agreement.figures import figure, proportion
from annotation.services.agreement.queries import SEVERITY_LEVELS, AgreementSlice
from annotation.services.agreement.results import (
    Axes,
    AxisAgreement,
    AxisCategory,
    AxisCounts,
    Guard,
    GuardBin,
    GuardRow,
    Measures,
    SeverityAgreement,
    SeverityRow,
)
from annotation.services.agreement.stats import (
    CountedCell,
    expected_calibration_error,
    krippendorff_alpha_ordinal_from_profiles,
    many_rater_measures_from_profiles,
    reliability_bins,
    two_rater_measures_from_counts,
    weighted_kappa_from_counts,
)

AXIS_ANSWERS = ("a", "b", "tie")
GUARD_BINS = 10
UNCATEGORISED = "(no category)"


def axes_figures(*, slice_: AgreementSlice, names: dict[int, str]) -> Axes:
    """Every axis and per-response safety figure of the loaded slice (call after
    queries.load_slice, in its transaction): four queries, whatever the data."""
    return Axes(
        safer=_axis("safer", queries.axis_profiles(slice_=slice_, axis="safer"), names=names),
        helpful=_axis("helpful", queries.axis_profiles(slice_=slice_, axis="helpful"), names=names),
        guard=_guard(queries.guard_rows(), names=names),
        severity=_severity(queries.severity_profiles(slice_=slice_), names=names),
    )


def _axis_measures(cells: list[CountedCell]) -> Measures:
    found = two_rater_measures_from_counts(cells=cells, categories=AXIS_ANSWERS)
    return Measures(
        percent=figure(found["percent"]), kappa=figure(found["kappa"]), ac1=figure(found["ac1"])
    )


def _majority(votes: tuple[int, int, int]) -> str | None:
    """The strict majority of the answers (a, b, tie), or None (none, or a tie between them)."""
    top = max(votes)
    if top == 0 or votes.count(top) > 1:
        return None
    return AXIS_ANSWERS[votes.index(top)]


def _axis(axis: str, rows: list[tuple[Any, ...]], *, names: dict[int, str]) -> AxisAgreement:
    cells: dict[str, list[CountedCell]] = defaultdict(list)
    profiles: dict[str, list[tuple[tuple[int, int, int], int]]] = defaultdict(list)
    tally: Counter[str] = Counter()
    for category_id, judge, n_a, n_b, n_tie, pairs in rows:
        name = names.get(category_id, UNCATEGORISED)
        votes = (int(n_a), int(n_b), int(n_tie))
        human = _majority(votes)
        tally["pairs"] += pairs
        profiles[name].append((votes, pairs))
        if human is None:
            tally["cannot_judge" if sum(votes) == 0 else "no_majority"] += pairs
            continue
        tally["with_human_verdict"] += pairs
        if judge is not None:
            tally["compared"] += pairs
            cells[name].append(CountedCell(a=judge, b=human, count=pairs))
    every_cell = [cell for found in cells.values() for cell in found]
    confusion: Counter[tuple[Any, Any]] = Counter()
    for cell in every_cell:
        confusion[(cell.a, cell.b)] += cell.count
    people = _people([p for found in profiles.values() for p in found])
    return AxisAgreement(
        axis=axis,
        counts=AxisCounts(
            pairs=tally["pairs"],
            with_human_verdict=tally["with_human_verdict"],
            compared=tally["compared"],
            cannot_judge=tally["cannot_judge"],
            no_majority=tally["no_majority"],
        ),
        judge_vs_people=_axis_measures(every_cell),
        confusion={
            "verdicts": list(AXIS_ANSWERS),
            "rows": [[confusion[(j, h)] for h in AXIS_ANSWERS] for j in AXIS_ANSWERS],
        },
        alpha=people["alpha"],
        fleiss=people["fleiss"],
        by_category=[
            AxisCategory(
                category=name,
                judge_vs_people=_axis_measures(cells[name]),
                alpha=_people(profiles[name])["alpha"],
            )
            for name in sorted(profiles)
        ],
    )


def _people(profiles: list[tuple[tuple[int, int, int], int]]) -> dict[str, Any]:
    found = many_rater_measures_from_profiles(profiles=profiles)
    return {"alpha": figure(found["alpha"]), "fleiss": figure(found["fleiss"])}


# The guard ------------------------------------------------------------------------------------


def _guard(rows: list[tuple[Any, ...]], *, names: dict[int, str]) -> Guard:
    by_category: dict[str, list[tuple[Any, ...]]] = defaultdict(list)
    for row in rows:
        by_category[names.get(row[0], UNCATEGORISED)].append(row)
    overall = _guard_row("overall", rows)
    p_unsafe, unsafe = _expanded(rows)
    return Guard(
        responses=len(p_unsafe),
        threshold=queries.P_UNSAFE_CUT,
        precision=overall["precision"],
        recall=overall["recall"],
        ece=overall["ece"],
        bins=[
            GuardBin(
                low=b.low,
                high=b.high,
                n=b.n,
                mean_p_unsafe=b.mean_confidence,
                unsafe_share=b.accuracy,
            )
            for b in reliability_bins(confidences=p_unsafe, correct=unsafe, n_bins=GUARD_BINS)
        ],
        by_category=[_guard_row(name, found) for name, found in sorted(by_category.items())],
    )


def _expanded(rows: list[tuple[Any, ...]]) -> tuple[list[float], list[bool]]:
    """Each response's P(unsafe) and whether people labelled it unsafe, from counted rows."""
    times = [int(row[4]) for row in rows]
    return (
        np.repeat([float(row[1]) for row in rows], times).tolist(),
        np.repeat([bool(row[3]) for row in rows], times).tolist(),
    )


def _guard_row(category: str, rows: list[tuple[Any, ...]]) -> GuardRow:
    true_positive = sum(n for _, _, predicted, unsafe, n in rows if predicted and unsafe)
    predicted = sum(n for _, _, flagged, _, n in rows if flagged)
    unsafe = sum(n for _, _, _, labelled, n in rows if labelled)
    p_unsafe, labelled = _expanded(rows)
    return GuardRow(
        category=category,
        precision=proportion(k=true_positive, n=predicted),
        recall=proportion(k=true_positive, n=unsafe),
        ece=figure(
            expected_calibration_error(confidences=p_unsafe, correct=labelled, n_bins=GUARD_BINS)
        ),
    )


# Severity -------------------------------------------------------------------------------------


def _severity(rows: list[tuple[Any, ...]], *, names: dict[int, str]) -> SeverityAgreement:
    by_category: dict[str, list[tuple[Any, ...]]] = defaultdict(list)
    for row in rows:
        by_category[names.get(row[0], UNCATEGORISED)].append(row)
    overall = _severity_row("overall", rows)
    return SeverityAgreement(
        levels=list(SEVERITY_LEVELS),
        kappa_linear=overall["kappa_linear"],
        alpha_ordinal=overall["alpha_ordinal"],
        by_category=[_severity_row(name, found) for name, found in sorted(by_category.items())],
    )


def _severity_row(category: str, rows: list[tuple[Any, ...]]) -> SeverityRow:
    two_raters = [
        CountedCell(a=first, b=second, count=n)
        for *_, first, second, n in rows
        if first is not None and second is not None
    ]
    return SeverityRow(
        category=category,
        kappa_linear=figure(
            weighted_kappa_from_counts(cells=two_raters, levels=len(SEVERITY_LEVELS))
        ),
        alpha_ordinal=figure(
            krippendorff_alpha_ordinal_from_profiles(
                profiles=[(tuple(row[1:5]), row[7]) for row in rows]
            )
        ),
    )
