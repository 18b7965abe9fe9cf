"""The shapes of the agreement dashboard's results, typed once.

The results stay plain, JSON-ready dicts (they are cached, rendered, flattened to CSV, written
into dataset cards and serialised by the API), so each shape is a ``TypedDict``: mypy checks
every producer and reader, and ``tests/annotation/test_agreement_results.py`` checks the API's
serializers field for field against these classes.
"""

from __future__ import annotations

from typing import NotRequired, TypedDict


class Figure(TypedDict):
    """A figure with its 95 % interval and the n it rests on; ``estimate`` is None when the
    figure is withheld (``withheld`` says why: no data, too few, no variation)."""

    estimate: float | None
    n: int
    low: float | None
    high: float | None
    withheld: str | None


class WithOthers(Figure):
    pairs: NotRequired[int]  # pairs compared with other reviewers; absent when withheld


class LeftSide(Figure):
    p_value: NotRequired[float]  # exact two-sided binomial test against ``expected``
    expected: NotRequired[float]


class Measures(TypedDict):
    percent: Figure
    kappa: Figure
    ac1: Figure


class CategoryMeasures(Measures):
    category: str


class Confusion(TypedDict):
    verdicts: list[str]
    rows: list[list[int]]  # rows: the judge's verdict; columns: the people's


class JudgeVsPeople(TypedDict):
    raw: Measures
    control: Measures
    weighted: Measures
    confusion: Confusion
    by_category: list[CategoryMeasures]


class ReviewerRow(TypedDict):
    reviewer_id: int
    reviewer: str
    reviews: int
    agreement_with_others: WithOthers
    agreement_with_judge: Figure
    gold_accuracy: Figure
    left_side: LeftSide


class PeopleVsPeople(TypedDict):
    alpha: Figure
    fleiss: Figure
    reviewers: list[ReviewerRow]


class CategoryFlip(TypedDict):
    category: str
    flip: Figure


class PositionBias(TypedDict):
    judge_flip: Figure
    by_category: list[CategoryFlip]


class Anchoring(TypedDict):
    reviews: int
    changed: Figure
    toward_judge: int
    away_from_judge: int
    other_change: int
    toward_share_of_changes: Figure


class ReliabilityBin(TypedDict):
    low: float
    high: float
    n: int
    mean_confidence: float | None
    accuracy: float | None


class Temperature(TypedDict):
    estimate: float | None
    n: int
    at_bound: bool
    withheld: str | None


class Threshold(TypedDict):
    threshold: float
    agreement: float
    n: int
    skip_share: float


class Calibration(TypedDict):
    n: int
    target: float
    bins: list[ReliabilityBin]
    ece: Figure
    temperature: Temperature | None
    threshold: Threshold | None


class UnsafeRates(TypedDict):
    """SPA-VL Table 1's unsafe rates (%) of chosen and rejected responses."""

    chosen: float
    rejected: float


class SafetyRow(TypedDict):
    category: str
    chosen: Figure
    rejected: Figure
    spavl: UnsafeRates | None


class SafetyOverall(TypedDict):
    chosen: Figure
    rejected: Figure
    spavl: UnsafeRates


class Safety(TypedDict):
    overall: SafetyOverall
    by_category: list[SafetyRow]
    cut: float


class Counts(TypedDict):
    pairs: int
    judged: int
    reviewed: int
    with_human_verdict: int
    compared: int
    reviewed_not_judged: int
    cannot_judge: int
    no_majority: int


class FamilyGroup(TypedDict):
    """A judge configuration's judged pairs of the slice on one side of the family line."""

    pairs: int  # judged by the configuration
    compared: int  # of them, with a human verdict: the n of ``agreement``
    agreement: Measures


class SelfPreference(TypedDict):
    """Over own-family pairs with one response of the judge's family where people chose a
    side: the share where the judge preferred that response, and where people did."""

    judge: Figure
    people: Figure
    both_own: int  # own-family pairs whose two responses are both of the family: left out


class OwnFamilyRow(TypedDict):
    """Judge against people on pairs where one response comes from the judge's own model
    family, and on the others (self-preference bias)."""

    configuration_id: int
    configuration: str
    family: str
    own: FamilyGroup
    other: FamilyGroup
    # Other-family pairs with a response whose family is unknown (it may be the judge's own).
    other_unknown: int
    self_preference: SelfPreference


class AxisCounts(TypedDict):
    """Pairs of the slice with a blind answer on one axis (two-axis reviews)."""

    pairs: int
    with_human_verdict: int  # a strict majority of the blind answers that are not cannot-judge
    compared: int  # of them, with the judge's answer on the axis: the n of judge_vs_people
    cannot_judge: int  # every blind answer cannot-judge
    no_majority: int


class AxisCategory(TypedDict):
    category: str
    judge_vs_people: Measures
    alpha: Figure


class AxisAgreement(TypedDict):
    """Judge against people and people against people on one axis (safer, more helpful)."""

    axis: str
    counts: AxisCounts
    judge_vs_people: Measures
    confusion: Confusion  # rows: the judge's answer; columns: the people's
    alpha: Figure  # Krippendorff's alpha (nominal) over pairs with two or more blind answers
    fleiss: Figure
    by_category: list[AxisCategory]


class GuardBin(TypedDict):
    """One bin of P(unsafe) [low, high) of the guard's reliability diagram (the last closed)."""

    low: float
    high: float
    n: int
    mean_p_unsafe: float | None
    unsafe_share: float | None  # of the bin's responses people labelled unsafe


class GuardRow(TypedDict):
    category: str
    precision: Figure
    recall: Figure
    ece: Figure


class Guard(TypedDict):
    """The judge's per-response P(unsafe) against people's final per-response labels (unsafe
    is the positive class; predicted unsafe when P(unsafe) > ``threshold``)."""

    responses: int
    threshold: float
    precision: Figure
    recall: Figure
    ece: Figure
    bins: list[GuardBin]
    by_category: list[GuardRow]


class SeverityRow(TypedDict):
    category: str
    kappa_linear: Figure
    alpha_ordinal: Figure


class SeverityAgreement(TypedDict):
    """Reviewers' blind per-response labels on the scale ``levels`` (safe, then the unsafe
    severities) against each other."""

    levels: list[str]
    kappa_linear: Figure  # responses labelled by exactly two reviews: earlier vs later
    alpha_ordinal: Figure  # responses labelled by two or more
    by_category: list[SeverityRow]


class Axes(TypedDict):
    safer: AxisAgreement
    helpful: AxisAgreement
    guard: Guard
    severity: SeverityAgreement


class SliceFields(TypedDict):
    taxonomy_node_id: int | None
    question_type: str | None
    judge_run_id: int | None
    configuration_id: int | None
    campaign_id: int | None
    reviewer_id: int | None
    week: str | None  # ISO date of the week's Monday


class Freshness(TypedDict):
    as_of: str
    version: str
    compute_s: float
    stale: bool


class Dashboard(TypedDict):
    slice: SliceFields
    counts: Counts
    judge_vs_people: JudgeVsPeople
    people_vs_people: PeopleVsPeople
    position_bias: PositionBias
    anchoring: Anchoring
    calibration: Calibration
    safety: Safety
    own_family: list[OwnFamilyRow]
    axes: Axes


class CachedDashboard(Dashboard):
    freshness: Freshness


class HeadlineJudge(TypedDict):
    raw: Measures
    control: Measures
    weighted: Measures


class HeadlinePeople(TypedDict):
    alpha: Figure
    fleiss: Figure


class ExportSummary(TypedDict):
    """The headline figures a dataset card states about the exported pairs."""

    counts: Counts
    judge_vs_people: HeadlineJudge
    people_vs_people: HeadlinePeople
    safety_overall: SafetyOverall
    definitions: dict[str, str]
