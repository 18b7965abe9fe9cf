"""The counted forms of the agreement measures, fed by SQL aggregates, against the item forms."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from annotation.services.agreement.stats import (
    CountedCell,
    cohens_kappa,
    fleiss_kappa,
    gwet_ac1,
    krippendorff_alpha_nominal,
    many_rater_measures_from_profiles,
    percent_agreement,
    two_rater_measures_from_counts,
)

VERDICTS = ["a", "b", "tie", "both_unsafe"]
cells = st.lists(
    st.tuples(
        st.sampled_from(VERDICTS),
        st.sampled_from(VERDICTS),
        st.integers(0, 20),
        st.sampled_from([1.0, 2.5, 4.0]),
    ),
    min_size=1,
    max_size=12,
)


@settings(max_examples=40, deadline=None)
@given(cells)
def test_it_gives_exactly_the_item_results_from_counted_cells(rows):
    a = [x for x, _, count, _ in rows for _ in range(count)]
    b = [y for _, y, count, _ in rows for _ in range(count)]
    weights = [w for _, _, count, w in rows for _ in range(count)]
    counted = two_rater_measures_from_counts(
        cells=[CountedCell(a=x, b=y, count=c, weight=w) for x, y, c, w in rows],
        categories=VERDICTS,
        resamples=200,
        seed=3,
    )
    kwargs = {"a": a, "b": b, "weights": weights, "categories": VERDICTS, "resamples": 200}
    assert counted["percent"] == percent_agreement(**kwargs, seed=3)
    assert counted["kappa"] == cohens_kappa(**kwargs, seed=3)
    assert counted["ac1"] == gwet_ac1(**kwargs, seed=3)


profiles = st.lists(
    st.tuples(st.lists(st.integers(0, 3), min_size=4, max_size=4), st.integers(0, 5)),
    min_size=1,
    max_size=10,
)


@settings(max_examples=40, deadline=None)
@given(profiles)
def test_it_gives_the_unit_list_point_estimates_from_profiles(rows):
    units = [
        [VERDICTS[i] for i, c in enumerate(counts) for _ in range(c)]
        for counts, times in rows
        for _ in range(times)
    ]
    counted = many_rater_measures_from_profiles(profiles=rows, resamples=50)
    for name, reference in (
        ("alpha", krippendorff_alpha_nominal(units=units, resamples=50)),
        ("fleiss", fleiss_kappa(units=units, resamples=50)),
    ):
        assert counted[name].n == reference.n
        assert counted[name].withheld == reference.withheld
        if reference.estimate is not None:
            assert counted[name].estimate == pytest.approx(reference.estimate, abs=1e-12)


def test_it_brackets_the_profile_estimate_with_its_interval():
    rng = np.random.default_rng(1)
    rows = [(list(rng.multinomial(3, [0.6, 0.2, 0.1, 0.1])), 1) for _ in range(200)]
    alpha = many_rater_measures_from_profiles(profiles=rows)["alpha"]
    assert alpha.low is not None and alpha.high is not None and alpha.estimate is not None
    assert alpha.low <= alpha.estimate <= alpha.high
    assert alpha.high - alpha.low < 0.3
