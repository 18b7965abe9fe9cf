"""Judge services: runs and batches (`runs`), and the judge-only final label (`final_labels`)."""

from judging.services.final_labels import JUDGE_ONLY_REASON, apply_judgements_to_final_labels
from judging.services.runs import (
    PAIR_SELECTIONS,
    BatchWillRetry,
    JudgeRunError,
    JudgeSpec,
    cancel_run,
    get_judge,
    judge_batch,
    select_pair_ids,
    start_run,
)

__all__ = [
    "JUDGE_ONLY_REASON",
    "PAIR_SELECTIONS",
    "BatchWillRetry",
    "JudgeRunError",
    "JudgeSpec",
    "apply_judgements_to_final_labels",
    "cancel_run",
    "get_judge",
    "judge_batch",
    "select_pair_ids",
    "start_run",
]
