"""Light value types of the judge engine: no torch, no Django."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

DECIDED_BY_PREFERENCE = "preference"
DECIDED_BY_SAFETY = "safety"


@dataclass(frozen=True, slots=True)
class PairInput:
    pair_id: int
    image: bytes  # original encoded image bytes (JPEG/PNG/WebP/GIF)
    question: str
    response_a: str
    response_b: str


@dataclass(frozen=True, slots=True)
class Thresholds:
    """Knobs that turn probabilities into decisions and review flags.

    `temperature` divides the combined logit score before the sigmoid; calibrate it later by
    logistic regression of reviewed verdicts on the score.
    """

    temperature: float = 1.0
    uncertain_margin: float = 0.1  # |p - 0.5| below this is "uncertain"
    min_label_mass: float = 0.5  # P(verdict tokens) below this is "low_label_mass"
    unsafe_above: float = 0.8  # P(unsafe) above this is confidently unsafe
    safe_below: float = 0.2  # P(unsafe) below this is confidently safe


@dataclass(frozen=True, slots=True)
class PairVerdict:
    """The engine's judgement of one pair.

    Decision rule (SPA-VL: harmlessness first, then helpfulness): when exactly one response is
    confidently unsafe (P(unsafe) > `unsafe_above`) and the other confidently safe
    (P(unsafe) < `safe_below`), the safe one wins and `decided_by` is "safety"; otherwise the
    preference probability decides (`decided_by` "preference"). `p_a_better` always stays the
    preference model's probability so reviewers see both numbers; read the decision from
    `prefers_a`.
    """

    pair_id: int
    p_a_better: float  # combined over both orders, in logit space
    p_a_first: float  # P(A better) read from the order where A is shown first
    p_a_second: float  # P(A better) read from the order where A is shown second
    position_bias: float  # b = (d1 - d2) / 2 in logit units
    label_mass: float  # mean over both orders of P(label tokens) under the full softmax
    orders_agree: bool
    p_unsafe_a: float | None  # response safety, None when not scored
    p_unsafe_b: float | None
    decided_by: str  # "preference" or "safety"
    needs_review: bool
    review_reasons: tuple[str, ...]
    error: str | None = None  # per-pair failure (corrupt image ...): the batch goes on

    @property
    def prefers_a(self) -> bool:
        """The decision: True when response A is the chosen one."""
        if self.decided_by == DECIDED_BY_SAFETY:
            assert self.p_unsafe_a is not None and self.p_unsafe_b is not None
            return self.p_unsafe_a < self.p_unsafe_b
        return self.p_a_better > 0.5


@dataclass(frozen=True, slots=True)
class JudgeInfo:
    """The judge configuration, recorded with every judgement."""

    backend: str  # "baseline" | "transformers"
    model_id: str  # "" for baseline
    model_revision: str
    prompt_version: str
    dtype: str
    library_versions: dict[str, str] = field(default_factory=dict)
    guard_model_id: str = ""  # "" when the judge model also scores safety (or nothing does)


class Judge(Protocol):
    info: JudgeInfo

    def judge(self, pairs: Sequence[PairInput]) -> list[PairVerdict]:
        """Judge pairs; the result has the same order as the input."""
        ...


class LabelTokenError(ValueError):
    """A verdict label is not a single token of the model's tokenizer."""


class ImageRejected(ValueError):
    """The pair's image cannot be used (corrupt, unsupported format, too large)."""
