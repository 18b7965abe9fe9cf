"""Batch planning and the out-of-memory fallback; no torch here, so both are easy to test."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Executor, Future
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")


def plan_batches(
    lengths: Sequence[int], *, max_pairs: int, max_tokens: int, rows_per_pair: int
) -> list[list[int]]:
    """Group pair indices into batches of similar length under a padded-token budget.

    Longest first, so a batch that does not fit in memory fails on the first forward, not after
    an hour. Ties are broken by index, so the plan depends only on the lengths.
    """
    order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
    batches: list[list[int]] = []
    for index in order:
        batch = batches[-1] if batches else None
        # Sorted longest first, so the batch's first pair sets its padded length.
        if (
            batch
            and len(batch) < max_pairs
            and ((len(batch) + 1) * rows_per_pair * lengths[batch[0]] <= max_tokens)
        ):
            batch.append(index)
        else:
            batches.append([index])
    return batches


def run_halving(
    items: Sequence[T],
    *,
    run: Callable[[Sequence[T]], list[R]],
    is_oom: Callable[[BaseException], bool],
    on_oom: Callable[[int], None] = lambda size: None,
) -> list[R | None]:
    """`run(items)`, splitting the batch in half and retrying whenever it runs out of memory.

    `run` returns one result per item. An item that runs out of memory on its own gives None.
    `on_oom(size)` is told the size that failed (to free caches, to shrink later batches).
    """
    try:
        return list(run(items))
    except Exception as exc:
        if not is_oom(exc):
            raise
    # Retried outside the except block: the traceback holds the failed batch's tensors.
    on_oom(len(items))
    if len(items) == 1:
        return [None]
    mid = len(items) // 2
    halves = (items[:mid], items[mid:])
    return [r for half in halves for r in run_halving(half, run=run, is_oom=is_oom, on_oom=on_oom)]


def prefetched(executor: Executor, prepare: Callable[[T], R], items: Iterable[T]) -> Iterator[R]:
    """Yield prepare(item) in order, preparing the next item while the caller uses this one."""
    pending: Future[R] | None = None
    for item in items:
        future = executor.submit(prepare, item)
        if pending is not None:
            yield pending.result()
        pending = future
    if pending is not None:
        yield pending.result()
