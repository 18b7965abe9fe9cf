"""The judge engine: pairwise VLM judging without Django.

Importing this package needs neither torch nor transformers (the demo install has neither); the
transformers backend is imported inside `load_judge` when asked for.
"""

from .loading import load_judge
from .scoring import error_verdict
from .types import (
    ImageRejected,
    Judge,
    JudgeInfo,
    LabelTokenError,
    PairInput,
    PairVerdict,
    Thresholds,
)

__all__ = [
    "ImageRejected",
    "Judge",
    "JudgeInfo",
    "LabelTokenError",
    "PairInput",
    "PairVerdict",
    "Thresholds",
    "error_verdict",
    "load_judge",
]
