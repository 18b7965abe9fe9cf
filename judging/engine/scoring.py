"""Combination maths shared by every backend: two orders of verdict logits -> one verdict.

With d1 = lA - lB read from the order where A is shown first and d2 = lB - lA read from the
order where A is shown second (both are evidence for the original A), the score is
s = (d1 + d2) / 2 and the position bias b = (d1 - d2) / 2, so an additive first-slot bias cancels.
Swapping A and B turns (d1, d2) into (-d2, -d1): s flips sign exactly and b is unchanged, and
`sigmoid` below is written so that sigmoid(-x) == 1 - sigmoid(x) holds bit for bit.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from .types import DECIDED_BY_PREFERENCE, DECIDED_BY_SAFETY, PairVerdict, Thresholds


@dataclass(frozen=True, slots=True)
class OrderReadout:
    """The verdict-token readout of one order of one pair.

    `logit_first` / `logit_second` are the logits of the labels naming the response shown first
    ("A") and second ("B"); `label_mass` is P(either label) under the full softmax.
    """

    logit_first: float
    logit_second: float
    label_mass: float


def sigmoid(x: float) -> float:
    """Logistic function with exact symmetry: sigmoid(-x) == 1 - sigmoid(x) in floating point.

    Only the upper half [0.5, 1] is computed directly; the lower half is 1 minus it, which is
    exact there (Sterbenz), so 1 - (1 - y) gives y back unchanged.
    """
    if x >= 0:
        return 1.0 / (1.0 + math.exp(-x))
    return 1.0 - 1.0 / (1.0 + math.exp(x))


def p_unsafe_from_logits(*, logit_safe: float, logit_unsafe: float) -> float:
    return sigmoid(logit_unsafe - logit_safe)


def _review_reasons(
    *, p: float, orders_agree: bool, label_mass: float, unsafe_mismatch: bool, t: Thresholds
) -> tuple[str, ...]:
    flags = {
        "orders_disagree": not orders_agree,
        "uncertain": abs(p - 0.5) < t.uncertain_margin,
        "low_label_mass": label_mass < t.min_label_mass,
        "unsafe_mismatch": unsafe_mismatch,
    }
    return tuple(name for name, raised in flags.items() if raised)


def _safety_decides(p_unsafe_a: float | None, p_unsafe_b: float | None, t: Thresholds) -> bool:
    """Exactly one response is confidently unsafe while the other is confidently safe."""
    if p_unsafe_a is None or p_unsafe_b is None:
        return False
    a_unsafe, b_unsafe = p_unsafe_a > t.unsafe_above, p_unsafe_b > t.unsafe_above
    a_safe, b_safe = p_unsafe_a < t.safe_below, p_unsafe_b < t.safe_below
    return (a_unsafe and b_safe) or (b_unsafe and a_safe)


def build_verdict(
    *,
    pair_id: int,
    a_first: OrderReadout,
    a_second: OrderReadout,
    p_unsafe_a: float | None,
    p_unsafe_b: float | None,
    thresholds: Thresholds,
) -> PairVerdict:
    """Combine the two orders of one pair (see the module docstring) and apply the safety rule."""
    t = thresholds
    d1 = a_first.logit_first - a_first.logit_second
    d2 = a_second.logit_second - a_second.logit_first
    p = sigmoid((d1 + d2) / 2 / t.temperature)
    label_mass = (a_first.label_mass + a_second.label_mass) / 2
    orders_agree = d1 * d2 > 0
    by_safety = _safety_decides(p_unsafe_a, p_unsafe_b, t)
    # The safety rule overrides a preference that chose the unsafe response: people look at it.
    unsafe_mismatch = by_safety and (p > 0.5) != (p_unsafe_a < p_unsafe_b)  # type: ignore[operator]
    reasons = _review_reasons(
        p=p, orders_agree=orders_agree, label_mass=label_mass, unsafe_mismatch=unsafe_mismatch, t=t
    )
    return PairVerdict(
        pair_id=pair_id,
        p_a_better=p,
        p_a_first=sigmoid(d1 / t.temperature),
        p_a_second=sigmoid(d2 / t.temperature),
        position_bias=(d1 - d2) / 2,
        label_mass=label_mass,
        orders_agree=orders_agree,
        p_unsafe_a=p_unsafe_a,
        p_unsafe_b=p_unsafe_b,
        decided_by=DECIDED_BY_SAFETY if by_safety else DECIDED_BY_PREFERENCE,
        needs_review=bool(reasons),
        review_reasons=reasons,
    )


def error_verdict(*, pair_id: int, error: str) -> PairVerdict:
    """A NaN-free placeholder for a pair that could not be judged; always routed to people."""
    return PairVerdict(
        pair_id=pair_id,
        p_a_better=0.5,
        p_a_first=0.5,
        p_a_second=0.5,
        position_bias=0.0,
        label_mass=0.0,
        orders_agree=False,
        p_unsafe_a=None,
        p_unsafe_b=None,
        decided_by=DECIDED_BY_PREFERENCE,
        needs_review=True,
        review_reasons=("error",),
        error=error,
    )
