"""Agreement statistics for the agreement dashboard: the standard library and numpy, no Django.

Every coefficient comes with its n; a figure that cannot be given (no data, a slice below
MIN_SLICE_N, a coefficient undefined on the data) is None with a `withheld` reason, never a
made-up number. Intervals are 95 % bootstrap percentile intervals, seeded so pages are stable.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Hashable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from statistics import NormalDist
from typing import cast

import numpy as np

MIN_SLICE_N = 30
DEFAULT_RESAMPLES = 1000
TEMPERATURE_BOUNDS = (0.01, 100.0)
_DIRECT_GROUPS = 4096  # up to this many groups of interchangeable items: draw a multinomial
_DRAWS_PER_CHUNK = 2_000_000  # bounds bootstrap memory to a few tens of MB

Category = Hashable
Statistic = Callable[[np.ndarray], np.ndarray]


class Withheld(StrEnum):
    EMPTY = "no data"
    INSUFFICIENT = "too few for a reliable figure"
    NO_VARIATION = "undefined: the data show no variation"


@dataclass(frozen=True)
class Estimate:
    """A figure, its 95 % interval (None where not asked for) and the n it rests on."""

    estimate: float | None
    n: int
    low: float | None = None
    high: float | None = None
    withheld: Withheld | None = None


@dataclass(frozen=True)
class RaterAgreement:
    """Share of a rater's pairable comparisons (n) that agree with another rater's value."""

    rater: Hashable
    estimate: float
    n: int
    agreeing: int
    units: int


@dataclass(frozen=True)
class BinomialTest:
    """Observed rate k / n with its Wilson interval and the exact two-sided p-value against p."""

    estimate: float | None
    n: int
    k: int
    expected: float
    p_value: float
    low: float | None
    high: float | None


@dataclass(frozen=True)
class ReliabilityBin:
    """One equal-width confidence bin [low, high) of a reliability diagram (the last is closed)."""

    low: float
    high: float
    n: int
    mean_confidence: float | None
    accuracy: float | None


@dataclass(frozen=True)
class TemperatureFit:
    """Temperature T such that sigmoid(score / T) is calibrated; at_bound if T was clipped."""

    estimate: float | None
    n: int
    at_bound: bool = False
    withheld: Withheld | None = None


@dataclass(frozen=True)
class ConfidenceThreshold:
    """Smallest threshold whose n pairs at or above it agree at least at the target rate."""

    threshold: float
    agreement: float
    n: int
    skip_share: float


def withhold_small_slice(*, result: Estimate, min_n: int = MIN_SLICE_N) -> Estimate:
    """Keep only the n of a result resting on fewer than min_n, so no misleading figure shows."""
    if result.n >= min_n or result.estimate is None:
        return result
    return Estimate(estimate=None, n=result.n, withheld=Withheld.INSUFFICIENT)


# Two raters (judge vs people) -----------------------------------------------------------------


def percent_agreement(
    *,
    a: Sequence[Category],
    b: Sequence[Category],
    weights: Sequence[float] | None = None,
    categories: Sequence[Category] | None = None,
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
) -> Estimate:
    """Share of items where a and b agree, optionally weighted per item, with bootstrap interval."""
    return _two_raters(
        a=a,
        b=b,
        weights=weights,
        categories=categories,
        resamples=resamples,
        seed=seed,
        statistic=_observed_agreement,
    )


def cohens_kappa(
    *,
    a: Sequence[Category],
    b: Sequence[Category],
    weights: Sequence[float] | None = None,
    categories: Sequence[Category] | None = None,
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
) -> Estimate:
    """Cohen's kappa (sample weights as in sklearn); withheld NO_VARIATION when both raters
    use one and the same category only, where chance agreement is 1 and kappa is 0 / 0."""
    return _two_raters(
        a=a,
        b=b,
        weights=weights,
        categories=categories,
        resamples=resamples,
        seed=seed,
        statistic=_kappa,
    )


def gwet_ac1(
    *,
    a: Sequence[Category],
    b: Sequence[Category],
    weights: Sequence[float] | None = None,
    categories: Sequence[Category] | None = None,
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
) -> Estimate:
    """Gwet's AC1 over `categories` (default: those either rater used); 1.0 when only one
    category exists, since both raters then necessarily agree and AC1 stays defined."""
    return _two_raters(
        a=a,
        b=b,
        weights=weights,
        categories=categories,
        resamples=resamples,
        seed=seed,
        statistic=_ac1,
    )


def _two_raters(
    *,
    a: Sequence[Category],
    b: Sequence[Category],
    weights: Sequence[float] | None,
    categories: Sequence[Category] | None,
    resamples: int,
    seed: int,
    statistic: Statistic,
) -> Estimate:
    cells, n_categories = _encode_pairs(a=a, b=b, categories=categories)
    item_weights = _checked_weights(weights=weights, n=len(cells))
    # Items sharing a cell and a weight are interchangeable: one bootstrap group each.
    weight_values, weight_ids = np.unique(item_weights, return_inverse=True)
    groups, group_of = np.unique(cells * len(weight_values) + weight_ids, return_inverse=True)
    into_table = np.zeros((len(groups), n_categories**2))
    into_table[np.arange(len(groups)), groups // len(weight_values)] = weight_values[
        groups % len(weight_values)
    ]

    def on_tables(multiplicities: np.ndarray) -> np.ndarray:
        tables = multiplicities @ into_table
        return statistic(tables.reshape(-1, n_categories, n_categories))

    return _bootstrapped(
        group_of=group_of, n_groups=len(groups), statistic=on_tables, resamples=resamples, seed=seed
    )


def _encode_pairs(
    *, a: Sequence[Category], b: Sequence[Category], categories: Sequence[Category] | None
) -> tuple[np.ndarray, int]:
    if len(a) != len(b):
        raise ValueError(f"a has {len(a)} items but b has {len(b)}")
    known = dict.fromkeys(categories if categories is not None else [*a, *b])
    index = {category: i for i, category in enumerate(known)}
    if unknown := (set(a) | set(b)) - index.keys():
        raise ValueError(f"values outside categories: {sorted(map(repr, unknown))}")
    codes = np.array([index[x] * len(index) + index[y] for x, y in zip(a, b, strict=True)])
    return codes.astype(np.int64), max(len(index), 1)


def _checked_weights(*, weights: Sequence[float] | None, n: int) -> np.ndarray:
    if weights is None:
        return np.ones(n)
    checked = np.asarray(weights, dtype=float)
    if checked.shape != (n,) or not np.all(np.isfinite(checked)) or np.any(checked < 0):
        raise ValueError("weights must be one finite, non-negative number per item")
    return checked


def _observed_agreement(tables: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.trace(tables, axis1=1, axis2=2) / tables.sum(axis=(1, 2))


def _kappa(tables: np.ndarray) -> np.ndarray:
    total = tables.sum(axis=(1, 2))
    chance = (tables.sum(axis=2) * tables.sum(axis=1)).sum(axis=1) / total**2
    with np.errstate(invalid="ignore", divide="ignore"):
        kappa = (_observed_agreement(tables) - chance) / (1 - chance)
    return np.where(chance < 1 - 1e-12, kappa, np.nan)


def _ac1(tables: np.ndarray) -> np.ndarray:
    n_categories = tables.shape[1]
    if n_categories == 1:
        return np.where(tables.sum(axis=(1, 2)) > 0, 1.0, np.nan)
    shares = (tables.sum(axis=2) + tables.sum(axis=1)) / (2 * tables.sum(axis=(1, 2)))[:, None]
    # Chance agreement is at most 1 / K here, so the denominator never vanishes.
    chance = (shares * (1 - shares)).sum(axis=1) / (n_categories - 1)
    return (_observed_agreement(tables) - chance) / (1 - chance)


# Many raters (people vs people) ---------------------------------------------------------------


def krippendorff_alpha_nominal(
    *, units: Sequence[Sequence[Category | None]], resamples: int = DEFAULT_RESAMPLES, seed: int = 0
) -> Estimate:
    """Krippendorff's alpha (nominal) over per-unit value lists, None meaning a missing review;
    units with fewer than two values are not pairable and n counts the pairable units."""
    return _many_raters(units=units, statistic=_alpha, resamples=resamples, seed=seed)


def fleiss_kappa(
    *, units: Sequence[Sequence[Category | None]], resamples: int = DEFAULT_RESAMPLES, seed: int = 0
) -> Estimate:
    """Fleiss' kappa over units with two or more values. Unequal counts per unit use the usual
    generalisation (each unit's agreement over its own m(m - 1) ordered pairs, category shares
    pooled over all values), which is exactly Fleiss (1971) when all counts are equal."""
    return _many_raters(units=units, statistic=_fleiss, resamples=resamples, seed=seed)


def _many_raters(
    *, units: Sequence[Sequence[Category | None]], statistic: Statistic, resamples: int, seed: int
) -> Estimate:
    counts = _category_counts(units)
    # Units with the same category counts are interchangeable: one bootstrap group each.
    profiles, group_of = np.unique(counts, axis=0, return_inverse=True)
    group_of = group_of.reshape(-1)
    values = profiles.sum(axis=1)
    agreeing_pairs = (profiles * (profiles - 1)).sum(axis=1)  # ordered pairs of equal values
    pairs = values * (values - 1)
    # Per unit: values, Krippendorff's disagreement (pairs weighted 1 / (m - 1)), Fleiss' agreement.
    features = np.column_stack(
        [values, (pairs - agreeing_pairs) / (values - 1), agreeing_pairs / pairs, profiles]
    ).astype(float)

    def on_sums(multiplicities: np.ndarray) -> np.ndarray:
        return statistic(np.column_stack([multiplicities.sum(axis=1), multiplicities @ features]))

    return _bootstrapped(
        group_of=group_of, n_groups=len(profiles), statistic=on_sums, resamples=resamples, seed=seed
    )


def _category_counts(units: Sequence[Sequence[Category | None]]) -> np.ndarray:
    present = [[value for value in unit if value is not None] for unit in units]
    pairable = [unit for unit in present if len(unit) >= 2]
    used = dict.fromkeys(value for unit in pairable for value in unit)
    index = {category: i for i, category in enumerate(used)}
    counts = np.zeros((len(pairable), max(len(index), 1)), dtype=np.int64)
    for row, unit in enumerate(pairable):
        for value in unit:
            counts[row, index[value]] += 1
    return counts


def _alpha(sums: np.ndarray) -> np.ndarray:
    # Columns: units, then the sums of the per-unit features built in _many_raters.
    values, disagreeing, categories = sums[:, 1], sums[:, 2], sums[:, 4:]
    expected = values**2 - (categories**2).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        alpha = 1 - (values - 1) * disagreeing / expected
    return np.where(expected > 0, alpha, np.nan)


def _fleiss(sums: np.ndarray) -> np.ndarray:
    units, values, unit_agreement, categories = sums[:, 0], sums[:, 1], sums[:, 3], sums[:, 4:]
    with np.errstate(invalid="ignore", divide="ignore"):
        chance = ((categories / values[:, None]) ** 2).sum(axis=1)
        kappa = (unit_agreement / units - chance) / (1 - chance)
    return np.where(chance < 1 - 1e-12, kappa, np.nan)


def rater_agreement(*, units: Sequence[Mapping[Hashable, Category | None]]) -> list[RaterAgreement]:
    """Per rater, in order of first appearance: agreement of their values with every other
    rater's value on the same unit (each unit-rater pair is one comparison; no interval)."""
    agreeing: Counter[Hashable] = Counter()
    comparisons: Counter[Hashable] = Counter()
    rated: Counter[Hashable] = Counter()
    for unit in units:
        present = {rater: value for rater, value in unit.items() if value is not None}
        if len(present) < 2:
            continue
        tally = Counter(present.values())
        for rater, value in present.items():
            agreeing[rater] += tally[value] - 1
            comparisons[rater] += len(present) - 1
            rated[rater] += 1
    return [
        RaterAgreement(
            rater=rater,
            estimate=agreeing[rater] / comparisons[rater],
            n=comparisons[rater],
            agreeing=agreeing[rater],
            units=rated[rater],
        )
        for rater in comparisons
    ]


# Bootstrap ------------------------------------------------------------------------------------


def _bootstrapped(
    *, group_of: np.ndarray, n_groups: int, statistic: Statistic, resamples: int, seed: int
) -> Estimate:
    return _bootstrapped_together(
        group_of=group_of,
        n_groups=n_groups,
        statistics={"only": statistic},
        resamples=resamples,
        seed=seed,
    )["only"]


def _bootstrapped_together(
    *,
    group_of: np.ndarray,
    n_groups: int,
    statistics: dict[str, Statistic],
    resamples: int,
    seed: int,
) -> dict[str, Estimate]:
    """Each statistic with its percentile interval, all over the same resamples, drawn once."""
    n = len(group_of)
    if n == 0:
        return {name: Estimate(estimate=None, n=0, withheld=Withheld.EMPTY) for name in statistics}
    observed = np.bincount(group_of, minlength=n_groups)[None, :]
    estimates = {name: statistic(observed)[0] for name, statistic in statistics.items()}
    live = {
        name: statistic for name, statistic in statistics.items() if not np.isnan(estimates[name])
    }
    replicates: dict[str, list[np.ndarray]] = {name: [] for name in live}
    if live:
        for chunk in _resampled_multiplicities(
            group_of=group_of, n_groups=n_groups, resamples=resamples, seed=seed
        ):
            for name, statistic in live.items():
                replicates[name].append(statistic(chunk))
    results = {}
    for name in statistics:
        if name not in live:
            results[name] = Estimate(estimate=None, n=n, withheld=Withheld.NO_VARIATION)
            continue
        drawn = np.concatenate(replicates[name] or [np.empty(0)])
        drawn = drawn[~np.isnan(drawn)]  # resamples where the coefficient is undefined
        if drawn.size == 0:
            results[name] = Estimate(estimate=float(estimates[name]), n=n)
            continue
        low, high = np.percentile(drawn, [2.5, 97.5])
        results[name] = Estimate(
            estimate=float(estimates[name]), n=n, low=float(low), high=float(high)
        )
    return results


def _resampled_multiplicities(
    *, group_of: np.ndarray, n_groups: int, resamples: int, seed: int
) -> Iterator[np.ndarray]:
    """Yield (rows, n_groups) counts of each group in resamples of the items with replacement.

    Drawing items with replacement draws the groups of interchangeable items multinomially, so
    with few groups (always without weights, and for weights taking a few values) the multinomial
    is drawn directly: exact and fast. With many groups (continuous weights) the items are drawn.
    """
    rng = np.random.default_rng(seed)
    n = len(group_of)
    direct = n_groups <= _DIRECT_GROUPS
    shares = np.bincount(group_of, minlength=n_groups) / n
    rows = max(1, _DRAWS_PER_CHUNK // (n_groups if direct else n))
    for start in range(0, resamples, rows):
        size = min(rows, resamples - start)
        if direct:
            yield rng.multinomial(n, shares, size=size)
            continue
        drawn = group_of[rng.integers(0, n, size=(size, n))] + n_groups * np.arange(size)[:, None]
        yield np.bincount(drawn.ravel(), minlength=size * n_groups).reshape(size, n_groups)


# Proportions and tests ------------------------------------------------------------------------


def wilson_interval(*, k: int, n: int, confidence: float = 0.95) -> Estimate:
    """Proportion k / n with its Wilson score interval; withheld EMPTY when n is 0."""
    if not 0 <= k <= n:
        raise ValueError(f"need 0 <= k <= n, got k={k}, n={n}")
    if n == 0:
        return Estimate(estimate=None, n=0, withheld=Withheld.EMPTY)
    z = NormalDist().inv_cdf(0.5 + confidence / 2)
    rate = k / n
    centre = (rate + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(rate * (1 - rate) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    # At k = 0 or k = n a bound is exactly 0 or 1; rounding would leave it a hair inside.
    low = 0.0 if k == 0 else centre - half
    high = 1.0 if k == n else centre + half
    return Estimate(estimate=rate, n=n, low=low, high=high)


def binomial_test_two_sided(*, k: int, n: int, p: float = 0.5) -> BinomialTest:
    """Exact two-sided binomial test: the probability of outcomes no likelier than k (as R's
    binom.test and scipy), computed in log space so large n neither overflows nor underflows."""
    if not 0 < p < 1:
        raise ValueError(f"p must lie strictly between 0 and 1, got {p}")
    interval = wilson_interval(k=k, n=n)
    outcomes = np.arange(n + 1)
    log_choose = np.concatenate([[0.0], np.cumsum(np.log((n - outcomes[1:] + 1) / outcomes[1:]))])
    log_pmf = log_choose + outcomes * math.log(p) + (n - outcomes) * math.log1p(-p)
    # The relative tolerance keeps outcomes exactly as likely as k despite rounding (as R does).
    as_unlikely = log_pmf[log_pmf <= log_pmf[k] + 1e-7]
    top = as_unlikely.max()
    p_value = min(1.0, math.exp(top) * float(np.exp(as_unlikely - top).sum()))
    return BinomialTest(
        estimate=interval.estimate,
        n=n,
        k=k,
        expected=p,
        p_value=p_value,
        low=interval.low,
        high=interval.high,
    )


# Calibration ----------------------------------------------------------------------------------


def reliability_bins(
    *, confidences: Sequence[float], correct: Sequence[bool], n_bins: int = 10
) -> list[ReliabilityBin]:
    """Equal-width bins over [0, 1]: count, mean confidence and accuracy (None when empty)."""
    confidence, hit = _checked_calibration_data(confidences=confidences, correct=correct)
    which = np.minimum((confidence * n_bins).astype(np.int64), n_bins - 1)
    counts = np.bincount(which, minlength=n_bins)
    confidence_sums = np.bincount(which, weights=confidence, minlength=n_bins)
    hit_sums = np.bincount(which, weights=hit, minlength=n_bins)
    return [
        ReliabilityBin(
            low=i / n_bins,
            high=(i + 1) / n_bins,
            n=int(counts[i]),
            mean_confidence=confidence_sums[i] / counts[i] if counts[i] else None,
            accuracy=hit_sums[i] / counts[i] if counts[i] else None,
        )
        for i in range(n_bins)
    ]


def expected_calibration_error(
    *, confidences: Sequence[float], correct: Sequence[bool], n_bins: int = 10
) -> Estimate:
    """Count-weighted mean gap |accuracy - mean confidence| over the equal-width bins."""
    bins = reliability_bins(confidences=confidences, correct=correct, n_bins=n_bins)
    n = sum(b.n for b in bins)
    if n == 0:
        return Estimate(estimate=None, n=0, withheld=Withheld.EMPTY)
    gaps = (
        b.n * abs(b.accuracy - b.mean_confidence)
        for b in bins
        if b.accuracy is not None and b.mean_confidence is not None
    )
    return Estimate(estimate=float(sum(gaps) / n), n=n)


def fit_temperature(
    *, scores: Sequence[float], labels: Sequence[bool], counts: Sequence[int] | None = None
) -> TemperatureFit:
    """Maximum-likelihood T for P(label) = sigmoid(score / T), a logistic regression in 1 / T
    without intercept, by safeguarded Newton; T stays within TEMPERATURE_BOUNDS (separable
    data would send it to 0). ``counts`` gives how many items share each (score, label)."""
    score, label = np.asarray(scores, dtype=float), np.asarray(labels, dtype=float)
    times = np.ones_like(score) if counts is None else np.asarray(counts, dtype=float)
    if score.shape != label.shape or times.shape != score.shape:
        raise ValueError("need one label (and count) per score")
    n = int(times.sum())
    if n == 0:
        return TemperatureFit(estimate=None, n=0, withheld=Withheld.EMPTY)
    if not np.any(score[times > 0]):
        return TemperatureFit(estimate=None, n=n, withheld=Withheld.NO_VARIATION)
    weighted = score * times

    def slope_and_curvature(inverse_t: float) -> tuple[float, float]:
        probability = 0.5 * (1 + np.tanh(inverse_t * score / 2))  # sigmoid without overflow
        curvature = -(weighted * score) @ (probability * (1 - probability))
        return float(weighted @ (label - probability)), float(curvature)

    # The log-likelihood is concave in 1 / T, so its slope falls: bracket the root, then Newton.
    low, high = 1 / TEMPERATURE_BOUNDS[1], 1 / TEMPERATURE_BOUNDS[0]
    if slope_and_curvature(high)[0] >= 0:
        return TemperatureFit(estimate=TEMPERATURE_BOUNDS[0], n=n, at_bound=True)
    if slope_and_curvature(low)[0] <= 0:
        return TemperatureFit(estimate=TEMPERATURE_BOUNDS[1], n=n, at_bound=True)
    inverse_t = 1.0
    for _ in range(200):
        slope, curvature = slope_and_curvature(inverse_t)
        low, high = (inverse_t, high) if slope > 0 else (low, inverse_t)
        step = inverse_t - slope / curvature if curvature < 0 else math.nan
        inverse_t = step if low < step < high else (low + high) / 2
        if high - low < 1e-12 * inverse_t or abs(slope) < 1e-12 * n:
            break
    return TemperatureFit(estimate=1 / inverse_t, n=n)


def confidence_threshold_for_agreement(
    *, confidences: Sequence[float], correct: Sequence[bool], target: float
) -> ConfidenceThreshold | None:
    """Smallest observed confidence t such that pairs with confidence >= t agree at least at
    `target`, with the share of all pairs that could then skip review; None if none does."""
    if not 0 <= target <= 1:
        raise ValueError(f"target must lie in [0, 1], got {target}")
    confidence, hit = _checked_calibration_data(confidences=confidences, correct=correct)
    order = np.argsort(confidence, kind="stable")
    confidence, hit = confidence[order], hit[order]
    thresholds, first = np.unique(confidence, return_index=True)
    at_or_above = confidence.size - first
    agreeing = np.concatenate([np.cumsum(hit[::-1])[::-1], [0.0]])[first]
    reached = np.flatnonzero(agreeing >= target * at_or_above - 1e-9)
    if reached.size == 0:
        return None
    i = reached[0]
    return ConfidenceThreshold(
        threshold=float(thresholds[i]),
        agreement=float(agreeing[i] / at_or_above[i]),
        n=int(at_or_above[i]),
        skip_share=float(at_or_above[i] / hit.size),
    )


def _checked_calibration_data(
    *, confidences: Sequence[float], correct: Sequence[bool]
) -> tuple[np.ndarray, np.ndarray]:
    confidence = np.asarray(confidences, dtype=float).reshape(-1)
    hit = np.asarray(correct, dtype=float).reshape(-1)
    if confidence.shape != hit.shape:
        raise ValueError("need one correctness flag per confidence")
    if np.any((confidence < 0) | (confidence > 1) | np.isnan(confidence)):
        raise ValueError("confidences must lie in [0, 1]")
    return confidence, hit


# Counted input (fed by SQL aggregates) ---------------------------------------------------------


@dataclass(frozen=True)
class CountedCell:
    """`count` items rated `a` by one rater and `b` by the other, each carrying `weight`."""

    a: Category
    b: Category
    count: int
    weight: float = 1.0


def two_rater_measures_from_counts(
    *,
    cells: Sequence[CountedCell],
    categories: Sequence[Category],
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
) -> dict[str, Estimate]:
    """percent_agreement, cohens_kappa and gwet_ac1 of the items the cells count, exactly as
    those functions give them on the expanded items (same groups, same bootstrap draws)."""
    kept = [cell for cell in cells if cell.count > 0]
    index = {category: i for i, category in enumerate(categories)}
    k = max(len(index), 1)
    codes = np.array([index[cell.a] * k + index[cell.b] for cell in kept], dtype=np.int64)
    counts = np.array([cell.count for cell in kept], dtype=np.int64)
    item_weights = _checked_weights(weights=[cell.weight for cell in kept], n=len(kept))
    weight_values, weight_ids = np.unique(item_weights, return_inverse=True)
    groups, group_in = np.unique(codes * len(weight_values) + weight_ids, return_inverse=True)
    group_counts = np.bincount(group_in, weights=counts, minlength=len(groups)).astype(np.int64)
    group_of = np.repeat(np.arange(len(groups)), group_counts)
    into_table = np.zeros((len(groups), k * k))
    into_table[np.arange(len(groups)), groups // len(weight_values)] = weight_values[
        groups % len(weight_values)
    ]
    statistics = {"percent": _observed_agreement, "kappa": _kappa, "ac1": _ac1}

    def on_tables(statistic: Statistic) -> Statistic:
        return lambda multiplicities: statistic((multiplicities @ into_table).reshape(-1, k, k))

    # The three share one set of resamples (as they would on the expanded items with one seed).
    return _bootstrapped_together(
        group_of=group_of,
        n_groups=len(groups),
        statistics={name: on_tables(statistic) for name, statistic in statistics.items()},
        resamples=resamples,
        seed=seed,
    )


def many_rater_measures_from_profiles(
    *,
    profiles: Sequence[tuple[Sequence[int], int]],
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
) -> dict[str, Estimate]:
    """Krippendorff's alpha and Fleiss' kappa from (category counts of a unit, number of units
    with those counts): the same point estimates as the unit-list functions; units with fewer
    than two values are not pairable and dropped."""
    expanded = [
        (tuple(int(c) for c in counts), int(units))
        for counts, units in profiles
        if units > 0 and sum(counts) >= 2
    ]
    width = max((len(counts) for counts, _ in expanded), default=1)
    table = np.array([list(c) + [0] * (width - len(c)) for c, _ in expanded], dtype=np.int64)
    table = table.reshape(-1, width)
    multiplicity = np.array([units for _, units in expanded], dtype=np.int64)
    used = table.sum(axis=0) > 0
    table = table[:, used] if used.any() else table[:, :1]
    return {
        "alpha": _many_raters_counted(
            table=table, multiplicity=multiplicity, statistic=_alpha, resamples=resamples, seed=seed
        ),
        "fleiss": _many_raters_counted(
            table=table,
            multiplicity=multiplicity,
            statistic=_fleiss,
            resamples=resamples,
            seed=seed,
        ),
    }


def _many_raters_counted(
    *, table: np.ndarray, multiplicity: np.ndarray, statistic: Statistic, resamples: int, seed: int
) -> Estimate:
    profiles, group_in = np.unique(table, axis=0, return_inverse=True)
    group_in = group_in.reshape(-1)
    group_counts = np.bincount(group_in, weights=multiplicity, minlength=len(profiles))
    group_of = np.repeat(np.arange(len(profiles)), group_counts.astype(np.int64))
    values = profiles.sum(axis=1)
    agreeing_pairs = (profiles * (profiles - 1)).sum(axis=1)
    pairs = values * (values - 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        features = np.column_stack(
            [values, (pairs - agreeing_pairs) / (values - 1), agreeing_pairs / pairs, profiles]
        ).astype(float)

    def on_sums(multiplicities: np.ndarray) -> np.ndarray:
        return statistic(np.column_stack([multiplicities.sum(axis=1), multiplicities @ features]))

    return _bootstrapped(
        group_of=group_of, n_groups=len(profiles), statistic=on_sums, resamples=resamples, seed=seed
    )


# Ordinal scales (severity) --------------------------------------------------------------------


def weighted_kappa_from_counts(
    *,
    cells: Sequence[CountedCell],
    levels: int,
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
) -> Estimate:
    """Cohen's kappa with linear weights (disagreement |i - j| / (levels - 1)) of two raters
    over counted cells of ordinal codes 0 .. levels - 1, with a bootstrap interval over items.
    Every level counts as a step of the scale, used or not (as scikit-learn's
    ``cohen_kappa_score(weights="linear")`` with ``labels`` naming all of them)."""
    kept = [cell for cell in cells if cell.count > 0]
    codes = np.array([cast(int, c.a) * levels + cast(int, c.b) for c in kept], dtype=np.int64)
    counts = np.array([cell.count for cell in kept], dtype=np.int64)
    groups, group_in = np.unique(codes, return_inverse=True)
    group_counts = np.bincount(group_in, weights=counts, minlength=len(groups)).astype(np.int64)
    group_of = np.repeat(np.arange(len(groups)), group_counts)
    into_table = np.zeros((len(groups), levels * levels))
    into_table[np.arange(len(groups)), groups] = 1.0
    steps = np.arange(levels)
    weights = np.abs(steps[:, None] - steps[None, :]) / max(levels - 1, 1)

    def statistic(multiplicities: np.ndarray) -> np.ndarray:
        tables = (multiplicities @ into_table).reshape(-1, levels, levels)
        total = tables.sum(axis=(1, 2))
        with np.errstate(invalid="ignore", divide="ignore"):
            expected = tables.sum(axis=2)[:, :, None] * tables.sum(axis=1)[:, None, :]
            expected = expected / total[:, None, None]
            observed_d = (tables * weights).sum(axis=(1, 2))
            expected_d = (expected * weights).sum(axis=(1, 2))
            kappa = 1 - observed_d / expected_d
        return np.where(expected_d > 1e-12, kappa, np.nan)

    return _bootstrapped(
        group_of=group_of, n_groups=len(groups), statistic=statistic, resamples=resamples, seed=seed
    )


def krippendorff_alpha_ordinal_from_profiles(
    *,
    profiles: Sequence[tuple[Sequence[int], int]],
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
) -> Estimate:
    """Krippendorff's alpha with the ordinal metric from (counts of each ordered level in a
    unit, number of units with those counts); units with fewer than two values are dropped.
    The metric's distance between levels c and k is the number of pairable values from c to k
    less half of c's and k's, from the coincidence matrix's margins (Krippendorff 2011), so it
    is recomputed in every bootstrap resample."""
    kept = [(tuple(int(c) for c in counts), int(units)) for counts, units in profiles]
    kept = [(counts, units) for counts, units in kept if units > 0 and sum(counts) >= 2]
    if not kept:
        return Estimate(estimate=None, n=0, withheld=Withheld.EMPTY)
    levels = max((len(counts) for counts, _ in kept), default=1)
    table = np.array([list(c) + [0] * (levels - len(c)) for c, _ in kept], dtype=np.int64)
    table = table.reshape(-1, levels)
    multiplicity = np.array([units for _, units in kept], dtype=np.int64)
    group_of = np.repeat(np.arange(len(kept)), multiplicity)
    values = table.sum(axis=1)
    # Each unit's coincidences: ordered pairs of its values, weighted 1 / (m - 1).
    pairs = table[:, :, None] * table[:, None, :] - np.eye(levels)[None] * table[:, :, None]
    features = (pairs / np.maximum(values - 1, 1)[:, None, None]).reshape(len(kept), -1)

    def statistic(multiplicities: np.ndarray) -> np.ndarray:
        coincidences = (multiplicities @ features).reshape(-1, levels, levels)
        margins = coincidences.sum(axis=2)
        n = margins.sum(axis=1)
        middle = np.cumsum(margins, axis=1) - margins / 2
        distance = (middle[:, :, None] - middle[:, None, :]) ** 2
        observed = (coincidences * distance).sum(axis=(1, 2))
        expected = (margins[:, :, None] * margins[:, None, :] * distance).sum(axis=(1, 2))
        with np.errstate(invalid="ignore", divide="ignore"):
            alpha = 1 - (n - 1) * observed / expected
        return np.where(expected > 1e-12, alpha, np.nan)

    return _bootstrapped(
        group_of=group_of, n_groups=len(kept), statistic=statistic, resamples=resamples, seed=seed
    )
