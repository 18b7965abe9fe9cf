"""Judge services: runs and batches (`runs`), generation runs (`generation`). The judge's base
label is a final label like any other: annotation.services.final_label.apply_judge_labels
writes it."""

from judging.services.generation import (
    ModelRequest,
    cancel_generation_run,
    run_generation_batch,
    start_generation_run,
)
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
    "ModelRequest",
    "cancel_generation_run",
    "cancel_run",
    "get_judge",
    "judge_batch",
    "run_generation_batch",
    "select_pair_ids",
    "start_generation_run",
    "start_run",
]
