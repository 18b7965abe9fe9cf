"""Judge services: runs and batches (`runs`). The judge's base label is a final label like any
other: annotation.services.final_label.apply_judge_labels writes it."""

from judging.services.runs import (
    PAIR_SELECTIONS,
    JudgeSpec,
    cancel_run,
    get_judge,
    judge_batch,
    select_pair_ids,
    start_run,
)

__all__ = [
    "PAIR_SELECTIONS",
    "JudgeSpec",
    "cancel_run",
    "get_judge",
    "judge_batch",
    "select_pair_ids",
    "start_run",
]
