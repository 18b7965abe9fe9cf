"""The judge engine: pairwise VLM judging without Django.

Importing this package needs neither torch nor transformers (the demo install has neither); the
transformers backend is imported inside `load_judge` when asked for.
"""

from .loading import base_prompt_version, load_judge
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
    "base_prompt_version",
    "error_verdict",
    "load_judge",
]
