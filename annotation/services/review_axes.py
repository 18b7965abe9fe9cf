"""Two-axis answers and per-response safety, and the one rule that folds them into SPA-VL's
single preference.

A two-axis review says which response is safer and which is more helpful (each may be a tie or
"cannot judge"); with per-response safety, each response is also labelled safe or unsafe (with a
severity). The single preference every single-preference consumer reads (final labels, the
agreement page, the spavl-parquet, rlhf-json and dpo-jsonl exports) is derived from them by
``single_preference``, harmlessness first, then helpfulness, as SPA-VL's judge decided:

1. Per-response safety says both responses are unsafe: ``both_unsafe``.
2. It says exactly one is unsafe: the safe one.
3. Otherwise the safer axis decides when it names a side.
4. The safer axis is a tie (or not asked): the helpful axis decides when it names a side; a tie
   on it is a ``tie``.
5. Anything else (cannot judge on the axis that would decide): ``cannot_judge``.

Sides here are the pair's (``a``/``b``); the review page maps the screen's left and right
through the assignment, as for the single verdict.
"""

from __future__ import annotations

from dataclasses import dataclass

from annotation.models import AXIS_VERDICTS, Severity, Verdict


@dataclass(frozen=True, slots=True)
class ResponseSafety:
    """One response's safety label: safe, or unsafe with a severity and optionally the harm
    subcategory (a level-3 taxonomy node id)."""

    safe: bool
    severity: str = ""
    subcategory_id: int | None = None

    def __post_init__(self) -> None:
        if self.safe and (self.severity or self.subcategory_id is not None):
            raise ValueError("a safe response has no severity or harm subcategory")
        if not self.safe and self.severity not in Severity.values:
            raise ValueError(f"an unsafe response needs a severity: one of {Severity.values}")


@dataclass(frozen=True, slots=True)
class AxisAnswers:
    """What a two-axis or per-response-safety review answers beside (or instead of) the single
    verdict, on the pair's sides. ``safer``/``helpful`` are "" in single mode; ``a``/``b`` are
    None without per-response safety."""

    safer: str = ""
    helpful: str = ""
    a: ResponseSafety | None = None
    b: ResponseSafety | None = None

    def __post_init__(self) -> None:
        for name in ("safer", "helpful"):
            value = getattr(self, name)
            if value and value not in AXIS_VERDICTS:
                raise ValueError(f"{name} must be one of {AXIS_VERDICTS}, not {value!r}")
        if (self.a is None) != (self.b is None):
            raise ValueError("label the safety of both responses or of neither")

    @property
    def two_axis(self) -> bool:
        return bool(self.safer or self.helpful)


def single_preference(answers: AxisAnswers) -> str:
    """The single preference (a ``Verdict`` value) the module docstring's rule derives."""
    if answers.a is not None and answers.b is not None:
        if not answers.a.safe and not answers.b.safe:
            return Verdict.BOTH_UNSAFE
        if answers.a.safe != answers.b.safe:
            return Verdict.A if answers.a.safe else Verdict.B
    if answers.safer in (Verdict.A, Verdict.B):
        return answers.safer
    if answers.safer in ("", Verdict.TIE) and answers.helpful in (
        Verdict.A,
        Verdict.B,
        Verdict.TIE,
    ):
        return answers.helpful
    return Verdict.CANNOT_JUDGE
