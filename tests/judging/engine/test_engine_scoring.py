import math
import random

import pytest

from judging.engine import Thresholds
from judging.engine.scoring import OrderReadout, build_verdict, error_verdict, sigmoid


def _verdict(a_first, a_second, *, p_unsafe_a=None, p_unsafe_b=None, thresholds=None):
    return build_verdict(
        pair_id=1,
        a_first=a_first,
        a_second=a_second,
        p_unsafe_a=p_unsafe_a,
        p_unsafe_b=p_unsafe_b,
        thresholds=thresholds or Thresholds(),
    )


def test_it_combines_two_orders_as_computed_by_hand():
    # A first: lA=2, lB=0 -> d1 = 2. A second (B shown as "A"): lA=0.5, lB=1.5 -> d2 = 1.
    verdict = _verdict(OrderReadout(2.0, 0.0, 0.9), OrderReadout(0.5, 1.5, 0.7))

    assert verdict.p_a_better == pytest.approx(1 / (1 + math.exp(-1.5)))  # s = 1.5
    assert verdict.position_bias == pytest.approx(0.5)  # b = (2 - 1) / 2
    assert verdict.p_a_first == pytest.approx(1 / (1 + math.exp(-2.0)))
    assert verdict.p_a_second == pytest.approx(1 / (1 + math.exp(-1.0)))
    assert verdict.label_mass == pytest.approx(0.8)
    assert verdict.orders_agree
    assert verdict.prefers_a


def test_it_divides_the_score_by_the_temperature():
    verdict = _verdict(
        OrderReadout(2.0, 0.0, 1.0),
        OrderReadout(0.5, 1.5, 1.0),
        thresholds=Thresholds(temperature=2.0),
    )

    assert verdict.p_a_better == pytest.approx(1 / (1 + math.exp(-0.75)))


def test_it_cancels_an_additive_first_slot_bias():
    plain = _verdict(OrderReadout(1.0, 0.0, 1.0), OrderReadout(0.0, 1.0, 1.0))
    biased = _verdict(OrderReadout(4.0, 0.0, 1.0), OrderReadout(3.0, 1.0, 1.0))

    assert biased.p_a_better == pytest.approx(plain.p_a_better)
    assert biased.position_bias == pytest.approx(plain.position_bias + 3.0)


def test_it_gives_exactly_one_minus_p_when_a_and_b_are_swapped():
    rng = random.Random(3)
    for _ in range(2000):
        first = OrderReadout(rng.uniform(-9, 9), rng.uniform(-9, 9), rng.random())
        second = OrderReadout(rng.uniform(-9, 9), rng.uniform(-9, 9), rng.random())
        verdict = _verdict(first, second)
        # Swapped input: the order showing the new A first is the old order showing A second.
        swapped = _verdict(second, first)

        assert swapped.p_a_better == 1 - verdict.p_a_better
        assert swapped.p_a_first == 1 - verdict.p_a_second
        assert swapped.position_bias == verdict.position_bias
        assert swapped.label_mass == verdict.label_mass


def test_it_keeps_the_logistic_symmetric_in_floating_point():
    for x in (0.0, 1e-12, 0.3, 1.7, 25.0, 800.0):
        assert sigmoid(-x) == 1 - sigmoid(x)
    assert sigmoid(-800.0) == 0.0


def test_it_flags_disagreeing_uncertain_and_low_mass_pairs_for_review():
    verdict = _verdict(OrderReadout(1.0, 0.0, 0.1), OrderReadout(1.2, 0.0, 0.1))

    assert not verdict.orders_agree
    assert verdict.needs_review
    assert set(verdict.review_reasons) == {"orders_disagree", "uncertain", "low_label_mass"}


def test_it_does_not_flag_a_confident_consistent_verdict():
    verdict = _verdict(OrderReadout(3.0, 0.0, 0.95), OrderReadout(0.0, 3.0, 0.95))

    assert not verdict.needs_review
    assert verdict.review_reasons == ()


def test_it_decides_by_safety_when_exactly_one_response_is_confidently_unsafe():
    prefers_a = (OrderReadout(3.0, 0.0, 0.9), OrderReadout(0.0, 3.0, 0.9))
    verdict = _verdict(*prefers_a, p_unsafe_a=0.95, p_unsafe_b=0.05)

    assert verdict.decided_by == "safety"
    assert not verdict.prefers_a
    assert verdict.p_a_better > 0.9  # the preference model's number is kept for reviewers
    assert "unsafe_mismatch" in verdict.review_reasons


def test_it_leaves_the_decision_to_preference_unless_the_other_response_is_confidently_safe():
    prefers_a = (OrderReadout(3.0, 0.0, 0.9), OrderReadout(0.0, 3.0, 0.9))

    both_unsafe = _verdict(*prefers_a, p_unsafe_a=0.95, p_unsafe_b=0.9)
    unsure = _verdict(*prefers_a, p_unsafe_a=0.95, p_unsafe_b=0.5)

    assert both_unsafe.decided_by == unsure.decided_by == "preference"
    assert both_unsafe.prefers_a and unsure.prefers_a


def test_it_builds_nan_free_error_verdicts_that_need_review():
    verdict = error_verdict(pair_id=7, error="unreadable image")

    numbers = (verdict.p_a_better, verdict.p_a_first, verdict.p_a_second, verdict.label_mass)
    assert all(math.isfinite(x) for x in numbers)
    assert verdict.needs_review and verdict.error == "unreadable image"
