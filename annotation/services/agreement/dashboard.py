"""Every measure of the agreement dashboard for one slice, as one plain, JSON-ready dict whose
shape is ``results.Dashboard``.

The page, the CSV, the API and the export's dataset card all read this dict, so they cannot
disagree. Figures are ``results.Figure``; a figure resting on fewer than MIN_SLICE_N pairs (or
reviews) keeps its n and loses its number.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping
from datetime import date
from functools import cache
from typing import Any

import numpy as np
from django.db import transaction
from django.db.models import QuerySet

from annotation.services.agreement import queries
from annotation.services.agreement.axes import axes_figures
from annotation.services.agreement.figures import figure, measures, proportion
from annotation.services.agreement.own_family import own_family_rows
from annotation.services.agreement.queries import VERDICTS, AgreementSlice
from annotation.services.agreement.results import (
    Anchoring,
    Axes,
    Calibration,
    CategoryMeasures,
    Counts,
    Dashboard,
    ExportSummary,
    Figure,
    GuardRow,
    JudgeVsPeople,
    LeftSide,
    Measures,
    PeopleVsPeople,
    PositionBias,
    ReliabilityBin,
    ReviewerRow,
    Safety,
    SafetyRow,
    SliceFields,
    Temperature,
    Threshold,
    UnsafeRates,
    WithOthers,
)
from annotation.services.agreement.stats import (
    MIN_SLICE_N,
    BinomialTest,
    CountedCell,
    Estimate,
    Withheld,
    binomial_test_two_sided,
    confidence_threshold_for_agreement,
    expected_calibration_error,
    fit_temperature,
    many_rater_measures_from_profiles,
    reliability_bins,
    wilson_interval,
)
from annotation.services.taxonomy import SPAVL_TAXONOMY_FILE

SPAVL_OVERALL = UnsafeRates(chosen=11.7, rejected=42.23)  # SPA-VL Table 1, unsafe rate in %
DEFAULT_TARGET = 0.9
RELIABILITY_BINS = 20  # over [0, 1]; the judge's confidence lives in the upper ten
UNCATEGORISED = "(no category)"


def build_dashboard(*, slice_: AgreementSlice, target: float = DEFAULT_TARGET) -> Dashboard:
    """Compute every measure for the slice (a fixed number of queries, whatever the data)."""
    with transaction.atomic():
        queries.load_slice(slice_=slice_)
        names, reviewers = queries.category_names(), queries.reviewer_rows()
        result = Dashboard(
            slice=slice_fields(slice_),
            counts=_counts(queries.pair_status_counts()),
            judge_vs_people=_judge_vs_people(queries.judge_people_cells(), names=names),
            people_vs_people=_people_vs_people(queries.people_profiles(), reviewers),
            position_bias=_judge_flips(queries.judge_flip_rows(), names=names),
            anchoring=_anchoring(reviewers),
            calibration=_calibration(queries.calibration_rows(), target=target),
            safety=_safety(queries.safety_rows(), names=names),
            own_family=own_family_rows(slice_=slice_),
            axes=axes_figures(slice_=slice_, names=names),
        )
        queries.drop_slice()
    return result


def slice_fields(slice_: AgreementSlice) -> SliceFields:
    """The slice as JSON-ready fields (the week as an ISO date), as results and tasks carry it."""
    return SliceFields(
        taxonomy_node_id=slice_.taxonomy_node_id,
        question_type=slice_.question_type,
        judge_run_id=slice_.judge_run_id,
        configuration_id=slice_.configuration_id,
        campaign_id=slice_.campaign_id,
        reviewer_id=slice_.reviewer_id,
        week=slice_.week.isoformat() if slice_.week else None,
    )


def slice_from_fields(fields: SliceFields) -> AgreementSlice:
    week = fields["week"]
    return AgreementSlice(
        taxonomy_node_id=fields["taxonomy_node_id"],
        question_type=fields["question_type"],
        judge_run_id=fields["judge_run_id"],
        configuration_id=fields["configuration_id"],
        campaign_id=fields["campaign_id"],
        reviewer_id=fields["reviewer_id"],
        week=date.fromisoformat(week) if week else None,
    )


def agreement_summary_for_export(
    *, pair_ids_or_queryset: Iterable[int] | QuerySet[Any]
) -> ExportSummary | None:
    """The headline figures for an export's dataset card over the exported pairs, or None when
    none of them has a human verdict. Pair ids may be a list or a queryset of pairs or ids."""
    ids = _pair_ids(pair_ids_or_queryset)
    if not ids:
        return None
    with transaction.atomic():
        queries.load_slice(slice_=AgreementSlice())
        queries.keep_only_pairs(pair_ids=ids)
        counts = _counts(queries.pair_status_counts())
        judge = _judge_vs_people(queries.judge_people_cells(), names={})
        people = _people_vs_people(queries.people_profiles(), [])
        safety = _safety(queries.safety_rows(), names={})
        queries.drop_slice()
    if counts["with_human_verdict"] == 0:
        return None
    return ExportSummary(
        counts=counts,
        judge_vs_people={
            "raw": judge["raw"],
            "control": judge["control"],
            "weighted": judge["weighted"],
        },
        people_vs_people={"alpha": people["alpha"], "fleiss": people["fleiss"]},
        safety_overall=safety["overall"],
        definitions=DEFINITIONS,
    )


def _pair_ids(pair_ids_or_queryset: Iterable[int] | QuerySet[Any]) -> list[int]:
    given = pair_ids_or_queryset
    if isinstance(given, QuerySet) and given.model._meta.label == "annotation.Pair":
        return list(given.values_list("pk", flat=True))
    return [int(pk) for pk in pair_ids_or_queryset]


DEFINITIONS = {
    "human_verdict": "adjudicated verdict where one exists, else the strict majority of blind "
    "verdicts (given before the judge's was shown); cannot-judge excluded; ties between "
    "reviewers have no majority",
    "raw": "all reviewed pairs, unweighted; routing sends judge-flagged pairs to people first, "
    "so this over-represents hard pairs",
    "control": "pairs reviewed from the campaign's random control slice only, unweighted; "
    "unbiased for the pool, assuming the slice was drawn uniformly (it is, with a stored seed)",
    "weighted": "all reviewed pairs, each weighted by 1 / P(reviewed) estimated per campaign "
    "and stratum (judge-flagged or not, control slice or not) from the pool counts; unbiased if "
    "within a stratum the reviewed pairs are like the unreviewed ones",
}


def _counts(rows: list[tuple[Any, ...]]) -> Counts:
    by_status = {status: (pairs, judged) for status, pairs, judged in rows}
    verdict_pairs, verdict_judged = by_status.get("verdict", (0, 0))
    return Counts(
        pairs=sum(pairs for pairs, _ in by_status.values()),
        judged=sum(judged for _, judged in by_status.values()),
        reviewed=sum(p for s, (p, _) in by_status.items() if s != "unreviewed"),
        with_human_verdict=verdict_pairs,
        compared=verdict_judged,
        reviewed_not_judged=verdict_pairs - verdict_judged,
        cannot_judge=by_status.get("cannot_judge", (0, 0))[0],
        no_majority=by_status.get("no_majority", (0, 0))[0],
    )


# Judge vs people ------------------------------------------------------------------------------


def _judge_vs_people(rows: list[tuple[Any, ...]], *, names: dict[int, str]) -> JudgeVsPeople:
    raw = [CountedCell(a=j, b=h, count=n) for _, j, h, _, _, n in rows]
    control = [CountedCell(a=j, b=h, count=n) for _, j, h, ctrl, _, n in rows if ctrl]
    weighted = [CountedCell(a=j, b=h, count=n, weight=w) for _, j, h, _, w, n in rows if w]
    by_category: dict[str, list[CountedCell]] = defaultdict(list)
    for category_id, judge, human, _, _, n in rows:
        by_category[names.get(category_id, UNCATEGORISED)].append(
            CountedCell(a=judge, b=human, count=n)
        )
    confusion: Counter[tuple[Any, Any]] = Counter()
    for cell in raw:
        confusion[(cell.a, cell.b)] += cell.count
    return JudgeVsPeople(
        raw=measures(raw),
        control=measures(control),
        weighted=measures(weighted),
        confusion={
            "verdicts": list(VERDICTS),
            "rows": [[confusion[(j, h)] for h in VERDICTS] for j in VERDICTS],
        },
        by_category=[
            CategoryMeasures(category=name, **measures(cells))
            for name, cells in sorted(by_category.items())
        ],
    )


# People vs people -----------------------------------------------------------------------------


def _people_vs_people(
    profiles: list[tuple[Any, ...]], reviewers: list[tuple[Any, ...]]
) -> PeopleVsPeople:
    found = many_rater_measures_from_profiles(
        profiles=[((a, b, tie, unsafe), units) for a, b, tie, unsafe, units in profiles]
    )
    return PeopleVsPeople(
        alpha=figure(found["alpha"]),
        fleiss=figure(found["fleiss"]),
        reviewers=[_reviewer(row) for row in reviewers],
    )


def _reviewer(row: tuple[Any, ...]) -> ReviewerRow:
    (reviewer_id, name, reviews, agreeing, comparisons, units, sided, left, judged, with_judge) = (
        row[:10]
    )
    gold, gold_correct = row[10:12]
    with_others = wilson_interval(k=int(agreeing), n=int(comparisons))
    left_test = binomial_test_two_sided(k=left, n=sided) if sided else None
    # Comparisons with other reviewers on the same pairs; withheld below MIN_SLICE_N pairs.
    others: WithOthers
    if units >= MIN_SLICE_N:
        others = WithOthers(**figure(with_others), pairs=units)
    else:
        others = WithOthers(
            **figure(Estimate(estimate=None, n=units, withheld=Withheld.INSUFFICIENT))
        )
    return ReviewerRow(
        reviewer_id=reviewer_id,
        reviewer=name,
        reviews=reviews,
        agreement_with_others=others,
        agreement_with_judge=proportion(k=with_judge, n=judged),
        gold_accuracy=proportion(k=gold_correct, n=gold),
        left_side=_left_side(left_test, sided=sided),
    )


def _left_side(test: BinomialTest | None, *, sided: int) -> LeftSide:
    if test is None or sided < MIN_SLICE_N:
        withheld = Withheld.EMPTY if test is None else Withheld.INSUFFICIENT
        return LeftSide(estimate=None, n=sided, low=None, high=None, withheld=withheld)
    return LeftSide(
        estimate=test.estimate,
        n=test.n,
        low=test.low,
        high=test.high,
        withheld=None,
        p_value=test.p_value,
        expected=test.expected,
    )


# Position bias, anchoring ---------------------------------------------------------------------


def _judge_flips(rows: list[tuple[Any, ...]], *, names: dict[int, str]) -> PositionBias:
    by_category: Counter[str] = Counter()
    flips: Counter[str] = Counter()
    for category_id, judged, flipped in rows:
        name = names.get(category_id, UNCATEGORISED)
        by_category[name] += judged
        flips[name] += flipped
    return PositionBias(
        judge_flip=proportion(k=sum(flips.values()), n=sum(by_category.values())),
        by_category=[
            {"category": name, "flip": proportion(k=flips[name], n=by_category[name])}
            for name in sorted(by_category)
        ],
    )


def _anchoring(reviewers: list[tuple[Any, ...]]) -> Anchoring:
    """From the reviewer rows' tail: (changed, toward the judge, away, other change)."""
    total = sum(row[2] for row in reviewers)
    changed, toward, away, other = (sum(row[i] for row in reviewers) for i in range(12, 16))
    return Anchoring(
        reviews=total,
        changed=proportion(k=changed, n=total),
        toward_judge=toward,
        away_from_judge=away,
        other_change=other,
        toward_share_of_changes=proportion(k=toward, n=toward + away + other),
    )


# Calibration ----------------------------------------------------------------------------------


def _calibration(rows: list[tuple[Any, ...]], *, target: float) -> Calibration:
    p = np.repeat([float(r[0]) for r in rows], [int(r[2]) for r in rows])
    chose_a = np.repeat([bool(r[1]) for r in rows], [int(r[2]) for r in rows])
    confidence = np.maximum(p, 1 - p)
    correct = (p > 0.5) == chose_a
    # The SQL rows already group equal (p, label) items: fit on them with their counts.
    clipped = np.clip([float(r[0]) for r in rows], 1e-6, 1 - 1e-6)
    temperature = fit_temperature(
        scores=np.log(clipped / (1 - clipped)),
        labels=[bool(r[1]) for r in rows],
        counts=[int(r[2]) for r in rows],
    )
    threshold = confidence_threshold_for_agreement(
        confidences=confidence, correct=correct, target=target
    )
    enough = confidence.size >= MIN_SLICE_N
    bins = reliability_bins(confidences=confidence, correct=correct, n_bins=RELIABILITY_BINS)
    return Calibration(
        n=int(confidence.size),
        target=target,
        bins=[
            ReliabilityBin(
                low=b.low,
                high=b.high,
                n=b.n,
                mean_confidence=b.mean_confidence,
                accuracy=b.accuracy,
            )
            for b in bins
            if b.low >= 0.5
        ],
        ece=figure(expected_calibration_error(confidences=confidence, correct=correct)),
        temperature=Temperature(
            estimate=temperature.estimate,
            n=temperature.n,
            at_bound=temperature.at_bound,
            withheld=temperature.withheld,
        )
        if enough
        else None,
        threshold=Threshold(
            threshold=threshold.threshold,
            agreement=threshold.agreement,
            n=threshold.n,
            skip_share=threshold.skip_share,
        )
        if threshold is not None and enough
        else None,
    )


# Safety rates ---------------------------------------------------------------------------------


@cache
def spavl_table1() -> dict[str, UnsafeRates]:
    """SPA-VL Table 1 unsafe rates (%) of chosen and rejected responses per category key."""
    data = json.loads(SPAVL_TAXONOMY_FILE.read_text(encoding="utf-8"))
    return {
        category["class2"]: UnsafeRates(
            chosen=category["train_stats_table1"]["chosen_unsafe_rate_pct"],
            rejected=category["train_stats_table1"]["rejected_unsafe_rate_pct"],
        )
        for domain in data["domains"]
        for category in domain["categories"]
        if "train_stats_table1" in category
    }


def _safety(rows: list[tuple[Any, ...]], *, names: dict[int, str]) -> Safety:
    totals = np.zeros(3, dtype=np.int64)
    per_category: list[SafetyRow] = []
    table1 = spavl_table1()
    for category_id, pairs, chosen, rejected in sorted(
        rows, key=lambda r: names.get(r[0], UNCATEGORISED)
    ):
        totals += (pairs, chosen, rejected)
        name = names.get(category_id, UNCATEGORISED)
        per_category.append(
            SafetyRow(
                category=name,
                chosen=proportion(k=chosen, n=pairs),
                rejected=proportion(k=rejected, n=pairs),
                spavl=table1.get(name),
            )
        )
    pairs, chosen, rejected = (int(x) for x in totals)
    return Safety(
        overall={
            "chosen": proportion(k=chosen, n=pairs),
            "rejected": proportion(k=rejected, n=pairs),
            "spavl": SPAVL_OVERALL,
        },
        by_category=per_category,
        cut=queries.P_UNSAFE_CUT,
    )


CSV_FIELDS = ["section", "group", "measure", "estimate", "low", "high", "n", "withheld"]


def flatten_dashboard(result: Dashboard) -> list[dict[str, object]]:
    """Every figure of a dashboard as one CSV row (section, group, measure, ...)."""
    rows: list[dict[str, object]] = []

    def add(section: str, group: str, measure: str, fig: Mapping[str, object]) -> None:
        rows.append(
            {"section": section, "group": group, "measure": measure}
            | {key: fig.get(key) for key in CSV_FIELDS[3:]}
        )

    for name, value in result["counts"].items():
        add("counts", "", name, {"estimate": value, "n": value})
    judge = result["judge_vs_people"]
    estimates = {"raw": judge["raw"], "control": judge["control"], "weighted": judge["weighted"]}
    for estimate, of_estimate in estimates.items():
        for measure, fig in _measure_items(of_estimate):
            add("judge_vs_people", estimate, measure, fig)
    for by_category in judge["by_category"]:
        for measure, fig in _measure_items(by_category):
            add("judge_vs_people_by_category", by_category["category"], measure, fig)
    people = result["people_vs_people"]
    add("people_vs_people", "", "alpha", people["alpha"])
    add("people_vs_people", "", "fleiss", people["fleiss"])
    for reviewer in people["reviewers"]:
        name = reviewer["reviewer"]
        add("reviewer", name, "agreement_with_others", reviewer["agreement_with_others"])
        add("reviewer", name, "agreement_with_judge", reviewer["agreement_with_judge"])
        add("reviewer", name, "gold_accuracy", reviewer["gold_accuracy"])
        add("reviewer", name, "left_side", reviewer["left_side"])
    add("position_bias", "", "judge_flip", result["position_bias"]["judge_flip"])
    for flip in result["position_bias"]["by_category"]:
        add("position_bias_by_category", flip["category"], "judge_flip", flip["flip"])
    anchoring = result["anchoring"]
    add("anchoring", "", "changed", anchoring["changed"])
    add("anchoring", "", "toward_share_of_changes", anchoring["toward_share_of_changes"])
    calibration = result["calibration"]
    add("calibration", "", "ece", calibration["ece"])
    if calibration["temperature"]:
        add("calibration", "", "temperature", calibration["temperature"])
    if calibration["threshold"]:
        threshold = calibration["threshold"]
        add(
            "calibration",
            f"target {calibration['target']}",
            "threshold",
            {"estimate": threshold["threshold"], "n": threshold["n"]},
        )
    safety = result["safety"]
    add("safety", "overall", "chosen_unsafe", safety["overall"]["chosen"])
    for rates in safety["by_category"]:
        add("safety", rates["category"], "chosen_unsafe", rates["chosen"])
    add("safety", "overall", "rejected_unsafe", safety["overall"]["rejected"])
    for rates in safety["by_category"]:
        add("safety", rates["category"], "rejected_unsafe", rates["rejected"])
    for row in result["own_family"]:
        group = f"configuration {row['configuration_id']} ({row['family']})"
        for side in ("own", "other"):
            pairs = row[side]["pairs"]
            add("own_family", group, f"{side}_family_pairs", {"estimate": pairs, "n": pairs})
            for measure, fig in _measure_items(row[side]["agreement"]):
                add("own_family", group, f"{side}_family_{measure}", fig)
        add("own_family", group, "judge_prefers_own", row["self_preference"]["judge"])
        add("own_family", group, "people_prefer_own", row["self_preference"]["people"])
    _flatten_axes(result["axes"], add)
    return rows


def _flatten_axes(axes: Axes, add: Callable[[str, str, str, Mapping[str, object]], None]) -> None:
    for axis in (axes["safer"], axes["helpful"]):
        section = f"axis_{axis['axis']}"
        for name, value in axis["counts"].items():
            add(section, "", name, {"estimate": value, "n": value})
        for measure, fig in _measure_items(axis["judge_vs_people"]):
            add(section, "judge_vs_people", measure, fig)
        add(section, "people_vs_people", "alpha", axis["alpha"])
        add(section, "people_vs_people", "fleiss", axis["fleiss"])
        for row in axis["by_category"]:
            for measure, fig in _measure_items(row["judge_vs_people"]):
                add(f"{section}_by_category", row["category"], f"judge_vs_people_{measure}", fig)
            add(f"{section}_by_category", row["category"], "people_vs_people_alpha", row["alpha"])
    guard = axes["guard"]
    overall = GuardRow(
        category="overall", precision=guard["precision"], recall=guard["recall"], ece=guard["ece"]
    )
    for guard_row in [overall, *guard["by_category"]]:
        add("guard", guard_row["category"], "precision", guard_row["precision"])
        add("guard", guard_row["category"], "recall", guard_row["recall"])
        add("guard", guard_row["category"], "ece", guard_row["ece"])
    severity = axes["severity"]
    add("severity", "overall", "kappa_linear", severity["kappa_linear"])
    add("severity", "overall", "alpha_ordinal", severity["alpha_ordinal"])
    for severity_row in severity["by_category"]:
        add("severity", severity_row["category"], "kappa_linear", severity_row["kappa_linear"])
        add("severity", severity_row["category"], "alpha_ordinal", severity_row["alpha_ordinal"])


def _measure_items(measures: Measures) -> list[tuple[str, Figure]]:
    return [
        ("percent", measures["percent"]),
        ("kappa", measures["kappa"]),
        ("ac1", measures["ac1"]),
    ]
