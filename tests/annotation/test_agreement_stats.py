import math
from fractions import Fraction

import krippendorff
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import cohen_kappa_score

from annotation.services.agreement.stats import (
    MIN_SLICE_N,
    TEMPERATURE_BOUNDS,
    Estimate,
    Withheld,
    binomial_test_two_sided,
    cohens_kappa,
    confidence_threshold_for_agreement,
    expected_calibration_error,
    fit_temperature,
    fleiss_kappa,
    gwet_ac1,
    krippendorff_alpha_nominal,
    percent_agreement,
    rater_agreement,
    reliability_bins,
    wilson_interval,
    withhold_small_slice,
)

VERDICTS = ["a_better", "b_better", "tie", "both_unsafe"]
labels = st.sampled_from(VERDICTS)
rated_pairs = st.lists(st.tuples(labels, labels), min_size=1, max_size=60)


def make_ratings(*, n: int, agreement: float, seed: int) -> tuple[list[str], list[str]]:
    rng = np.random.default_rng(seed)
    a = rng.choice(VERDICTS, size=n, p=[0.5, 0.3, 0.15, 0.05])
    b = np.where(rng.random(n) < agreement, a, rng.choice(VERDICTS, size=n))
    return a.tolist(), b.tolist()


def table_to_ratings(table: list[list[int]]) -> tuple[list[int], list[int]]:
    a = [row for row, counts in enumerate(table) for col, c in enumerate(counts) for _ in range(c)]
    b = [col for row, counts in enumerate(table) for col, c in enumerate(counts) for _ in range(c)]
    return a, b


def counts_to_units(table: list[list[int]]) -> list[list[int]]:
    return [[category for category, c in enumerate(row) for _ in range(c)] for row in table]


# Two raters -----------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(5))
def test_it_matches_sklearn_kappa_on_random_data(seed):
    a, b = make_ratings(n=300, agreement=0.6, seed=seed)

    result = cohens_kappa(a=a, b=b, resamples=0)

    assert result.estimate == pytest.approx(cohen_kappa_score(a, b), abs=1e-12)
    assert result.n == 300


@pytest.mark.parametrize("seed", range(5))
def test_it_matches_sklearn_kappa_with_sample_weights(seed):
    a, b = make_ratings(n=300, agreement=0.5, seed=seed)
    weights = np.random.default_rng(seed).uniform(0.1, 5, size=300)

    result = cohens_kappa(a=a, b=b, weights=weights.tolist(), resamples=0)

    assert result.estimate == pytest.approx(cohen_kappa_score(a, b, sample_weight=weights))


def test_it_matches_sklearn_when_a_category_appears_in_one_rater_only():
    a = ["a_better", "tie", "tie", "b_better", "a_better", "tie"]
    b = ["a_better", "both_unsafe", "tie", "b_better", "b_better", "both_unsafe"]

    result = cohens_kappa(a=a, b=b, resamples=0)

    assert result.estimate == pytest.approx(cohen_kappa_score(a, b))


def test_it_reproduces_the_wikipedia_cohens_kappa_example():
    a, b = table_to_ratings([[20, 5], [10, 15]])

    assert percent_agreement(a=a, b=b).estimate == pytest.approx(0.7)
    assert cohens_kappa(a=a, b=b).estimate == pytest.approx(0.4)


def test_it_reproduces_gwets_ac1_for_the_abstractors_table():
    # Gwet (2014), Handbook of Inter-Rater Reliability: 100 pregnancies by two abstractors.
    a, b = table_to_ratings([[13, 0, 0], [0, 20, 7], [0, 4, 56]])

    assert round(gwet_ac1(a=a, b=b).estimate, 3) == 0.849


def test_it_keeps_ac1_high_where_one_answer_dominates_and_kappa_collapses():
    a, b = table_to_ratings([[118, 5], [2, 0]])

    assert cohens_kappa(a=a, b=b).estimate == pytest.approx(-0.0234, abs=1e-4)
    assert gwet_ac1(a=a, b=b).estimate == pytest.approx(0.9408, abs=1e-4)


def test_it_scores_ac1_over_the_declared_categories():
    a, b = table_to_ratings([[20, 5], [10, 15]])

    observed = gwet_ac1(a=a, b=b, resamples=0).estimate
    declared = gwet_ac1(a=a, b=b, categories=[0, 1, 2, 3], resamples=0).estimate

    shares = np.array([55, 45, 0, 0]) / 100
    chance = (shares * (1 - shares)).sum() / 3
    assert observed == pytest.approx((0.7 - 0.495) / 0.505)
    assert declared == pytest.approx((0.7 - chance) / (1 - chance))


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_it_withholds_kappa_when_both_raters_use_one_category_only():
    a = b = ["tie"] * 10

    kappa = cohens_kappa(a=a, b=b)

    assert math.isnan(cohen_kappa_score(a, b))
    assert kappa == Estimate(estimate=None, n=10, withheld=Withheld.NO_VARIATION)
    assert gwet_ac1(a=a, b=b) == Estimate(estimate=1.0, n=10, low=1.0, high=1.0)
    assert percent_agreement(a=a, b=b).estimate == 1.0


def test_it_handles_a_single_item():
    assert cohens_kappa(a=["tie"], b=["tie"]).withheld == Withheld.NO_VARIATION
    assert gwet_ac1(a=["tie"], b=["tie"]).estimate == 1.0
    assert percent_agreement(a=["tie"], b=["a_better"]) == Estimate(
        estimate=0.0, n=1, low=0.0, high=0.0
    )
    assert cohens_kappa(a=["tie"], b=["a_better"]).estimate == 0.0
    assert gwet_ac1(a=["tie"], b=["a_better"]).estimate == -1.0


@pytest.mark.parametrize("measure", [percent_agreement, cohens_kappa, gwet_ac1])
def test_it_withholds_every_two_rater_measure_on_empty_input(measure):
    assert measure(a=[], b=[]) == Estimate(estimate=None, n=0, withheld=Withheld.EMPTY)


def test_it_rejects_malformed_two_rater_input():
    with pytest.raises(ValueError, match="items"):
        cohens_kappa(a=["tie"], b=["tie", "tie"])
    with pytest.raises(ValueError, match="outside categories"):
        gwet_ac1(a=["tie"], b=["cannot_judge"], categories=VERDICTS)
    with pytest.raises(ValueError, match="weights"):
        percent_agreement(a=["tie"], b=["tie"], weights=[-1.0])


def test_it_gives_the_same_result_for_unit_weights_as_for_none():
    a, b = make_ratings(n=500, agreement=0.7, seed=3)

    unweighted = cohens_kappa(a=a, b=b, seed=9)
    weighted = cohens_kappa(a=a, b=b, weights=[1.0] * 500, seed=9)

    assert weighted == unweighted


def test_it_reproduces_an_interval_for_a_seed_and_varies_it_across_seeds():
    a, b = make_ratings(n=400, agreement=0.6, seed=4)

    first, again = gwet_ac1(a=a, b=b, seed=1), gwet_ac1(a=a, b=b, seed=1)
    other = gwet_ac1(a=a, b=b, seed=2)

    assert first == again
    assert (first.low, first.high) != (other.low, other.high)


def test_it_sizes_the_unweighted_interval_like_the_binomial_standard_error():
    a, b = make_ratings(n=4000, agreement=0.6, seed=5)

    result = percent_agreement(a=a, b=b, resamples=2000)

    p = result.estimate
    assert result.high - result.low == pytest.approx(
        2 * 1.96 * math.sqrt(p * (1 - p) / 4000), rel=0.1
    )


@pytest.mark.parametrize("weight_kind", ["few strata", "continuous"])
def test_it_sizes_the_weighted_interval_like_the_ratio_estimator_standard_error(weight_kind):
    # Continuous weights take the item-resampling path, a few strata the multinomial path.
    rng = np.random.default_rng(6)
    n = 6000
    a, b = make_ratings(n=n, agreement=0.6, seed=6)
    if weight_kind == "continuous":
        weights = rng.lognormal(0, 1, n)
    else:
        weights = rng.choice([1.0, 4.0, 12.0], n)
    hit = np.array(a) == np.array(b)

    result = percent_agreement(a=a, b=b, weights=weights.tolist(), resamples=1000)

    p = (weights * hit).sum() / weights.sum()
    standard_error = math.sqrt((weights**2 * (hit - p) ** 2).sum()) / weights.sum()
    assert result.estimate == pytest.approx(p)
    assert result.high - result.low == pytest.approx(2 * 1.96 * standard_error, rel=0.12)


@given(rated_pairs)
def test_it_finds_kappa_symmetric_in_the_raters(pairs):
    a, b = [x for x, _ in pairs], [y for _, y in pairs]

    forward, backward = cohens_kappa(a=a, b=b, resamples=0), cohens_kappa(a=b, b=a, resamples=0)

    assert forward.withheld == backward.withheld
    if forward.estimate is not None:
        assert forward.estimate == pytest.approx(backward.estimate)


@settings(max_examples=50)
@given(rated_pairs, st.integers(0, 2**32 - 1))
def test_it_keeps_percent_agreement_and_its_interval_in_the_unit_interval(pairs, seed):
    a, b = [x for x, _ in pairs], [y for _, y in pairs]

    result = percent_agreement(a=a, b=b, resamples=200, seed=seed)

    assert 0 <= result.low <= result.estimate <= result.high <= 1


@settings(max_examples=30, deadline=None)
@given(st.integers(80, 400), st.floats(0.3, 0.9), st.integers(0, 1000))
def test_it_brackets_the_estimate_with_the_bootstrap_interval(n, agreement, seed):
    a, b = make_ratings(n=n, agreement=agreement, seed=seed)

    for measure in (percent_agreement, cohens_kappa, gwet_ac1):
        result = measure(a=a, b=b, seed=seed)
        assert result.low <= result.estimate <= result.high


# Many raters ----------------------------------------------------------------------------------

KRIPPENDORFF_2011 = [  # coders x units, Krippendorff (2011) "Computing Krippendorff's alpha"
    [1, 2, 3, 3, 2, 1, 4, 1, 2, None, None, None],
    [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, None, 3],
    [None, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, None],
    [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, None],
]


def reference_alpha(units: list[list[int | None]]) -> float:
    data = [[np.nan if v is None else v for v in rater] for rater in zip(*units, strict=True)]
    return krippendorff.alpha(reliability_data=data, level_of_measurement="nominal")


def test_it_reproduces_krippendorffs_worked_example():
    units = [list(unit) for unit in zip(*KRIPPENDORFF_2011, strict=True)]

    result = krippendorff_alpha_nominal(units=units)

    assert round(result.estimate, 3) == 0.743
    assert result.n == 11  # the last unit has one value and is not pairable


@pytest.mark.parametrize("seed", range(5))
def test_it_matches_the_krippendorff_package_with_missing_reviews(seed):
    rng = np.random.default_rng(seed)
    values = rng.integers(0, 4, size=(200, 5)).astype(object)
    values[rng.random((200, 5)) < 0.5] = None
    units = values.tolist()

    result = krippendorff_alpha_nominal(units=units, resamples=0)

    assert result.estimate == pytest.approx(reference_alpha(units))


@settings(max_examples=50, deadline=None)
@given(
    st.lists(
        st.lists(st.one_of(st.none(), st.integers(0, 3)), min_size=3, max_size=3),
        min_size=2,
        max_size=30,
    )
)
def test_it_agrees_with_the_krippendorff_package_on_any_data(units):
    result = krippendorff_alpha_nominal(units=units, resamples=0)

    pairable = [u for u in units if sum(v is not None for v in u) >= 2]
    distinct = {v for u in pairable for v in u if v is not None}
    if len(distinct) < 2:
        assert result.estimate is None
    else:
        assert result.estimate == pytest.approx(reference_alpha(units))


def test_it_reproduces_the_wikipedia_fleiss_kappa_example():
    table = [[0, 0, 0, 0, 14], [0, 2, 6, 4, 2], [0, 0, 3, 5, 6], [0, 3, 9, 2, 0],
             [2, 2, 8, 1, 1], [7, 7, 0, 0, 0], [3, 2, 6, 3, 0], [2, 5, 3, 2, 2],
             [6, 5, 2, 1, 0], [0, 2, 2, 3, 7]]  # fmt: skip

    result = fleiss_kappa(units=counts_to_units(table))

    assert round(result.estimate, 3) == 0.210
    assert result.n == 10


def textbook_fleiss(table: np.ndarray) -> float:
    raters = table.sum(axis=1)[0]
    per_unit = [(sum(c * c for c in row) - raters) / (raters * (raters - 1)) for row in table]
    shares = table.sum(axis=0) / table.sum()
    return (np.mean(per_unit) - (shares**2).sum()) / (1 - (shares**2).sum())


@pytest.mark.parametrize("seed", range(5))
def test_it_matches_the_textbook_fleiss_kappa_on_random_complete_data(seed):
    rng = np.random.default_rng(seed)
    table = rng.multinomial(4, [0.4, 0.3, 0.2, 0.1], size=50)

    result = fleiss_kappa(units=counts_to_units(table.tolist()), resamples=0)

    assert result.estimate == pytest.approx(textbook_fleiss(table))


def test_it_generalises_fleiss_kappa_to_unequal_counts_and_drops_single_reviews():
    units = [["x", "x", "y"], ["x", "x"], ["y", "y", "y", "x"], ["y"], ["x", None, None]]

    result = fleiss_kappa(units=units, resamples=0)

    unit_agreement = np.mean([2 / 6, 2 / 2, 6 / 12])
    chance = (5 / 9) ** 2 + (4 / 9) ** 2
    assert result.n == 3
    assert result.estimate == pytest.approx((unit_agreement - chance) / (1 - chance))


@pytest.mark.parametrize("measure", [krippendorff_alpha_nominal, fleiss_kappa])
def test_it_withholds_multi_rater_measures_without_variation_or_pairable_units(measure):
    assert measure(units=[["tie", "tie"], ["tie", "tie", "tie"]]).withheld == Withheld.NO_VARIATION
    assert measure(units=[["tie"], ["a_better", None]]).withheld == Withheld.EMPTY
    assert measure(units=[]).withheld == Withheld.EMPTY


def test_it_gives_multi_rater_intervals_that_bracket_the_estimate():
    rng = np.random.default_rng(8)
    truth = rng.integers(0, 4, size=300)
    units = [[int(t) if rng.random() < 0.7 else int(rng.integers(0, 4)) for _ in range(3)]
             for t in truth]  # fmt: skip

    for measure in (krippendorff_alpha_nominal, fleiss_kappa):
        result = measure(units=units)
        assert result.low < result.estimate < result.high
        assert result.high - result.low < 0.2


def test_it_scores_each_rater_against_the_rest():
    units = [
        {"ann": "tie", "bob": "tie", "cy": "a_better"},
        {"ann": "tie", "bob": None, "cy": "tie"},
        {"ann": "b_better", "bob": "a_better"},
        {"cy": "tie"},
    ]

    by_rater = {r.rater: r for r in rater_agreement(units=units)}

    assert (by_rater["ann"].agreeing, by_rater["ann"].n, by_rater["ann"].units) == (2, 4, 3)
    assert (by_rater["bob"].agreeing, by_rater["bob"].n, by_rater["bob"].units) == (1, 3, 2)
    assert (by_rater["cy"].agreeing, by_rater["cy"].n, by_rater["cy"].units) == (1, 3, 2)
    assert by_rater["ann"].estimate == 0.5


@given(rated_pairs)
def test_it_gives_two_raters_each_their_percent_agreement(pairs):
    units = [{"judge": x, "person": y} for x, y in pairs]

    scores = rater_agreement(units=units)

    expected = percent_agreement(a=[x for x, _ in pairs], b=[y for _, y in pairs], resamples=0)
    assert [s.estimate for s in scores] == pytest.approx([expected.estimate] * 2)


# Proportions and tests ------------------------------------------------------------------------


def direct_binomial_p_value(k: int, n: int, p: Fraction) -> float:
    pmf = [math.comb(n, i) * p**i * (1 - p) ** (n - i) for i in range(n + 1)]
    return float(sum(q for q in pmf if q <= pmf[k] * Fraction(1 + 10**-7)))


@given(
    st.integers(0, 80).flatmap(lambda n: st.tuples(st.integers(0, n), st.just(n))),
    st.sampled_from([Fraction(1, 2), Fraction(1, 3), Fraction(9, 10)]),
)
def test_it_matches_a_direct_summation_for_the_binomial_test(k_and_n, p):
    k, n = k_and_n

    result = binomial_test_two_sided(k=k, n=n, p=float(p))

    assert result.p_value == pytest.approx(direct_binomial_p_value(k, n, p), rel=1e-9, abs=1e-300)


def test_it_gives_known_binomial_p_values():
    assert binomial_test_two_sided(k=3, n=10).p_value == pytest.approx(0.34375)
    assert binomial_test_two_sided(k=5, n=10).p_value == 1.0


def test_it_stays_exact_for_a_reviewer_with_many_reviews():
    n, k = 10_000, 5200
    # At p = 1/2 every outcome's probability is comb(n, i) / 2**n: sum in exact integers.
    combs = [1]
    for i in range(n):
        combs.append(combs[-1] * (n - i) // (i + 1))
    as_unlikely = sum(c for c in combs if c * 10**7 <= combs[k] * (10**7 + 1))

    result = binomial_test_two_sided(k=k, n=n)

    assert result.p_value == pytest.approx(float(Fraction(as_unlikely, 2**n)), rel=1e-9)


def test_it_reports_the_left_side_rate_with_its_interval():
    result = binomial_test_two_sided(k=60, n=100)

    assert (result.estimate, result.n, result.k, result.expected) == (0.6, 100, 60, 0.5)
    assert result.low < 0.6 < result.high


def test_it_gives_the_closed_form_wilson_interval_at_zero_successes():
    z2 = 1.959963984540054**2

    result = wilson_interval(k=0, n=10)

    assert result.low == 0.0
    assert result.high == pytest.approx(z2 / (10 + z2))


def test_it_gives_a_symmetric_wilson_interval_around_one_half():
    result = wilson_interval(k=50, n=100)

    assert result.low + result.high == pytest.approx(1.0)
    assert result.high - 0.5 == pytest.approx(0.0962, abs=1e-4)


def test_it_withholds_proportions_without_trials():
    assert wilson_interval(k=0, n=0).withheld == Withheld.EMPTY
    assert binomial_test_two_sided(k=0, n=0).p_value == 1.0


# Calibration ----------------------------------------------------------------------------------


def test_it_bins_confidences_into_a_reliability_diagram():
    bins = reliability_bins(
        confidences=[0.05, 0.15, 0.12, 0.95, 1.0],
        correct=[False, True, False, True, True],
        n_bins=10,
    )

    assert [b.n for b in bins] == [1, 2, 0, 0, 0, 0, 0, 0, 0, 2]
    assert bins[1].mean_confidence == pytest.approx(0.135)
    assert bins[1].accuracy == 0.5
    assert bins[2].accuracy is None
    assert (bins[9].low, bins[9].high, bins[9].accuracy) == (0.9, 1.0, 1.0)


def test_it_computes_the_expected_calibration_error_by_hand():
    result = expected_calibration_error(
        confidences=[0.9, 0.9, 0.6, 0.6], correct=[True, False, True, True], n_bins=10
    )

    assert result == Estimate(estimate=pytest.approx((2 * 0.4 + 2 * 0.4) / 4), n=4)


@given(st.lists(st.tuples(st.integers(1, 10), st.integers(0, 10)), min_size=1, max_size=8))
def test_it_finds_no_calibration_error_in_perfectly_calibrated_bins(groups):
    confidences, correct = [], []
    for size, hits in groups:
        hits = min(hits, size)
        confidences += [hits / size] * size
        correct += [True] * hits + [False] * (size - hits)

    result = expected_calibration_error(confidences=confidences, correct=correct)

    assert result.estimate == pytest.approx(0.0, abs=1e-12)


def test_it_withholds_calibration_error_without_data():
    assert expected_calibration_error(confidences=[], correct=[]).withheld == Withheld.EMPTY


def test_it_recovers_the_temperature_that_generated_the_labels():
    rng = np.random.default_rng(10)
    scores = rng.normal(0, 4, 20_000)
    labels = rng.random(20_000) < 1 / (1 + np.exp(-scores / 2.5))

    fit = fit_temperature(scores=scores.tolist(), labels=labels.tolist())

    assert fit.estimate == pytest.approx(2.5, rel=0.05)
    assert not fit.at_bound


def test_it_matches_an_unpenalised_logistic_regression_without_intercept():
    rng = np.random.default_rng(11)
    scores = rng.normal(0.5, 3, 500)
    labels = rng.random(500) < 1 / (1 + np.exp(-scores / 0.7))
    model = LogisticRegression(C=np.inf, fit_intercept=False, tol=1e-10, max_iter=1000)
    model.fit(scores.reshape(-1, 1), labels)

    fit = fit_temperature(scores=scores.tolist(), labels=labels.tolist())

    assert fit.estimate == pytest.approx(1 / model.coef_[0, 0], rel=1e-4)


def test_it_bounds_the_temperature_on_separable_data():
    scores = [-3.0, -1.0, -0.2, 0.1, 2.0, 5.0]

    sharp = fit_temperature(scores=scores, labels=[s > 0 for s in scores])
    inverted = fit_temperature(scores=scores, labels=[s < 0 for s in scores])

    assert (sharp.estimate, sharp.at_bound) == (TEMPERATURE_BOUNDS[0], True)
    assert (inverted.estimate, inverted.at_bound) == (TEMPERATURE_BOUNDS[1], True)


def test_it_withholds_the_temperature_without_usable_scores():
    assert fit_temperature(scores=[], labels=[]).withheld == Withheld.EMPTY
    assert fit_temperature(scores=[0.0, 0.0], labels=[True, False]).withheld == (
        Withheld.NO_VARIATION
    )


def brute_force_threshold(confidences, correct, target):
    for t in sorted(set(confidences)):
        kept = [c for conf, c in zip(confidences, correct, strict=True) if conf >= t]
        if sum(kept) >= target * len(kept) - 1e-9:
            return t, sum(kept) / len(kept), len(kept), len(kept) / len(confidences)
    return None


@given(
    st.lists(
        st.tuples(st.sampled_from([0.1, 0.3, 0.5, 0.55, 0.8, 0.95, 1.0]), st.booleans()),
        min_size=1,
        max_size=40,
    ),
    st.sampled_from([0.0, 0.5, 0.8, 0.9, 1.0]),
)
def test_it_finds_the_same_threshold_as_a_brute_force_search(rows, target):
    confidences, correct = [c for c, _ in rows], [h for _, h in rows]

    found = confidence_threshold_for_agreement(
        confidences=confidences, correct=correct, target=target
    )

    expected = brute_force_threshold(confidences, correct, target)
    if expected is None:
        assert found is None
    else:
        assert (found.threshold, found.n) == (expected[0], expected[2])
        assert (found.agreement, found.skip_share) == pytest.approx((expected[1], expected[3]))


def test_it_reports_the_share_of_pairs_that_could_skip_review():
    found = confidence_threshold_for_agreement(
        confidences=[0.2, 0.4, 0.6, 0.8, 0.9],
        correct=[False, False, True, True, True],
        target=0.9,
    )

    assert (found.threshold, found.agreement, found.n, found.skip_share) == (0.6, 1.0, 3, 0.6)


def test_it_returns_none_when_no_threshold_reaches_the_target():
    assert (
        confidence_threshold_for_agreement(
            confidences=[0.5, 0.9], correct=[True, False], target=0.9
        )
        is None
    )
    assert confidence_threshold_for_agreement(confidences=[], correct=[], target=0.5) is None


# Small slices ---------------------------------------------------------------------------------


def test_it_withholds_the_figure_of_a_slice_below_the_minimum():
    a, b = make_ratings(n=MIN_SLICE_N - 1, agreement=0.8, seed=12)

    shown = withhold_small_slice(result=cohens_kappa(a=a, b=b))

    assert shown == Estimate(estimate=None, n=MIN_SLICE_N - 1, withheld=Withheld.INSUFFICIENT)


def test_it_keeps_the_figure_of_a_slice_at_the_minimum():
    a, b = make_ratings(n=MIN_SLICE_N, agreement=0.8, seed=12)
    result = percent_agreement(a=a, b=b)

    assert withhold_small_slice(result=result) is result
