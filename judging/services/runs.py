"""Judge runs: start, process one batch, cancel, and the judge-only final label rule.

A run records the judge asked for and snapshots its pair ids into batches, without loading any
model: the web process never imports torch. One Celery task per batch calls `judge_batch`; the
first batch a worker judges resolves the run's configuration from the judge it loaded, and a
judge that cannot be loaded fails the run. `judge_batch` is idempotent, so a batch delivered
twice (a worker killed mid-batch, a Redis redelivery) writes each judgement once and counts it
once. Lock order everywhere: the run row, then the batch row.
"""

from __future__ import annotations

import logging
import signal
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, fields

from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.contrib.auth.models import User
from django.db import transaction
from django.db.models import Exists, Max, OuterRef, Q, QuerySet
from django.db.models.functions import Now
from django.utils import timezone

from annotation.models import Pair
from annotation.services.final_label import apply_judge_labels
from judging.engine import (
    Judge,
    JudgeInfo,
    PairInput,
    PairVerdict,
    base_prompt_version,
    error_verdict,
    load_judge,
)
from judging.exceptions import BatchWillRetry, JudgeRunError
from judging.families import model_family
from judging.models import (
    BatchStatus,
    JudgeBackend,
    JudgeBatch,
    JudgeConfiguration,
    Judgement,
    JudgementStatus,
    JudgeRun,
    RunStatus,
)
from spavl_web.jobs import enqueue_on_commit, heartbeat, lapsed

BATCH_TASK = "judging.tasks.judge_batch"

logger = logging.getLogger(__name__)

PAIR_SELECTIONS = ("all", "unjudged")
_VERDICT_FIELDS = [
    "run",
    "status",
    "error",
    "p_a_better",
    "p_a_first",
    "p_a_second",
    "position_bias",
    "label_mass",
    "orders_agree",
    "p_unsafe_a",
    "p_unsafe_b",
    "decided_by",
    "prefers_a",
    "needs_review",
    "review_reasons",
    "library_versions",
    "created_at",
]


_RUN_COUNTER_FIELDS = [
    "done",
    "failed",
    "prefers_a_count",
    "decided_by_safety_count",
    "needs_review_count",
    "label_mass_sum",
    "review_reason_counts",
]
_TERMINAL_BATCH = [BatchStatus.DONE, BatchStatus.FAILED, BatchStatus.CANCELLED]


@dataclass(frozen=True, slots=True)
class JudgeSpec:
    """How to load a judge: what `load_judge` needs, and what the per-process cache keys on.
    Its fields are those of the run that asks for it."""

    backend: str
    model: str = ""
    revision: str = ""
    dtype: str = ""
    max_pixels: int = 448 * 448
    guard_model: str = ""

    @classmethod
    def of(cls, configuration: JudgeConfiguration) -> JudgeSpec:
        return cls.of_info(configuration, max_pixels=configuration.max_pixels)

    @classmethod
    def of_info(cls, info: JudgeInfo | JudgeConfiguration, *, max_pixels: int) -> JudgeSpec:
        """The spec that loads again what `info` describes (resolved revision and dtype); a
        configuration keeps the same fields as the judge's info it was made from."""
        return cls(
            backend=info.backend,
            model=info.model_id,
            revision=info.model_revision,
            dtype=info.dtype,
            max_pixels=max_pixels,
            guard_model=info.guard_model_id,
        )

    @classmethod
    def requested_by(cls, run: JudgeRun) -> JudgeSpec:
        """The spec a run recorded: its fields are named as the spec's (see `start_run`)."""
        return cls(**{field.name: getattr(run, field.name) for field in fields(cls)})


# One loaded judge per worker process: a model load takes seconds to minutes.
_judges: dict[JudgeSpec, Judge] = {}


def get_judge(*, spec: JudgeSpec) -> Judge:
    """The judge for `spec`, loaded on first use in this process and kept."""
    if spec not in _judges:
        _judges[spec] = load_judge(
            backend=spec.backend,
            model=spec.model or None,
            revision=spec.revision or None,
            dtype=spec.dtype or None,
            max_pixels=spec.max_pixels,
            guard_model=spec.guard_model or None,
        )
    return _judges[spec]


def get_or_create_configuration(*, judge: Judge, max_pixels: int) -> JudgeConfiguration:
    """The configuration of the loaded judge, with its model family; a configuration recorded
    before families were (its family read from the id alone, or not at all) gets the loaded
    model's when it had none."""
    info = judge.info
    family = model_family(info.model_id, _model_type_of(judge))
    configuration, created = JudgeConfiguration.objects.get_or_create(
        backend=info.backend,
        model_id=info.model_id,
        model_revision=info.model_revision,
        guard_model_id=info.guard_model_id,
        prompt_version=info.prompt_version,
        dtype=info.dtype,
        max_pixels=max_pixels,
        defaults={"model_family": family},
    )
    if not created and family and not configuration.model_family:
        configuration.model_family = family
        configuration.save(update_fields=["model_family"])
    return configuration


def _model_type_of(judge: Judge) -> str:
    """The loaded model's transformers model_type, "" for the baseline. JudgeInfo does not
    carry it; the transformers judge's runner holds the model, and the model its config."""
    model = getattr(getattr(judge, "runner", None), "model", None)
    return str(getattr(getattr(model, "config", None), "model_type", "") or "")


def configurations_matching(*, spec: JudgeSpec) -> QuerySet[JudgeConfiguration]:
    """The configurations a judge loaded for `spec` may resolve to, told without loading it: the
    same backend, model, guard and image size under the engine's current prompt, at any revision
    and dtype unless `spec` names one."""
    prompt = base_prompt_version(spec.backend)
    matching = JudgeConfiguration.objects.filter(
        Q(prompt_version=prompt) | Q(prompt_version__startswith=f"{prompt}+"),
        backend=spec.backend,
        model_id=spec.model,
        guard_model_id=spec.guard_model,
        max_pixels=spec.max_pixels,
    )
    if spec.revision:
        matching = matching.filter(model_revision=spec.revision)
    if spec.dtype:
        matching = matching.filter(dtype=spec.dtype)
    return matching


def select_pair_ids(*, spec: JudgeSpec, pairs: str) -> list[int]:
    """Ids of the pairs a run covers: every pair, or those without a successful judgement by
    a configuration matching `spec`."""
    queryset = Pair.objects.order_by("pk")
    if pairs == "unjudged":
        judged = Judgement.objects.succeeded().filter(
            pair=OuterRef("pk"), configuration__in=configurations_matching(spec=spec)
        )
        queryset = queryset.filter(~Exists(judged))
    return list(queryset.values_list("pk", flat=True))


def start_run(
    *,
    backend: str,
    model: str | None = None,
    pairs: str = "unjudged",
    batch_size: int | None = None,
    dtype: str | None = None,
    max_pixels: int = 448 * 448,
    revision: str | None = None,
    guard_model: str | None = None,
    by: User | None = None,
) -> JudgeRun:
    """Record the judge asked for (no model is loaded here), snapshot the pairs into batches
    and enqueue one `judge_batch` task per batch after commit. Without a broker the tasks run
    in-process when this function commits, so the returned run has already ended."""
    if backend not in JudgeBackend.values:
        raise JudgeRunError(f"Unknown backend {backend!r}: choose one of {JudgeBackend.values}.")
    if pairs not in PAIR_SELECTIONS:
        raise JudgeRunError(f"Pairs must be one of {PAIR_SELECTIONS}, not {pairs!r}.")
    if backend == JudgeBackend.TRANSFORMERS and not model:
        raise JudgeRunError("The transformers backend needs a model (hub id or local path).")
    size = batch_size or settings.JUDGE_BATCH_SIZE
    if size < 1:
        raise JudgeRunError("The batch size must be at least 1.")
    spec = JudgeSpec(
        backend=backend,
        model=model or "",
        revision=revision or "",
        dtype=dtype or "",
        max_pixels=max_pixels,
        guard_model=guard_model or "",
    )
    with transaction.atomic():
        pair_ids = select_pair_ids(spec=spec, pairs=pairs)
        run = JudgeRun.objects.create(
            **asdict(spec),
            pair_selection=pairs,
            total=len(pair_ids),
            started_by=by,
        )
        batches = JudgeBatch.objects.bulk_create(
            JudgeBatch(run=run, index=index, pair_ids=pair_ids[start : start + size])
            for index, start in enumerate(range(0, len(pair_ids), size))
        )
        if not batches:
            _finish_run(run=run)
        _enqueue(batch_ids=[batch.pk for batch in batches])
    run.refresh_from_db()
    return run


def _enqueue(*, batch_ids: Iterable[int]) -> None:
    """Send one task per batch once the transaction commits, noting when (for the sweep)."""
    batch_ids = list(batch_ids)
    JudgeBatch.objects.filter(pk__in=batch_ids).update(enqueued_at=Now())
    for batch_id in batch_ids:
        enqueue_on_commit(BATCH_TASK, batch_id)


def judge_batch(*, batch_id: int) -> JudgeBatch:
    """Judge one batch and write its judgements in one transaction. Idempotent: a batch that is
    done, failed or cancelled, or that another live worker is judging, is skipped; a batch
    whose worker died is judged again and written once. After `JUDGE_MAX_ATTEMPTS` deliveries
    the batch is given up and its pairs recorded failed. Past the soft time limit the batch is
    released for a retry, in two halves when it holds more than one pair."""
    batch, claimed = _claim_batch(batch_id=batch_id)
    if not claimed:
        return batch
    try:
        with heartbeat(lambda: _beat(batch)):
            return _judge_claimed(batch)
    except SoftTimeLimitExceeded:
        logger.warning("judge batch %s hit the soft time limit", batch_id)
        return _release_after_time_limit(batch_id=batch_id)


def _beat(batch: JudgeBatch) -> bool:
    mine = JudgeBatch.objects.filter(
        pk=batch.pk, status=BatchStatus.RUNNING, attempts=batch.attempts
    )
    return mine.update(heartbeat_at=Now()) > 0


def _judge_claimed(batch: JudgeBatch) -> JudgeBatch:
    try:
        judge = _judge_of(batch.run)
    except SoftTimeLimitExceeded:
        raise
    except Exception as exc:
        logger.exception("judge batch %s could not load its judge", batch.pk)
        wanted = batch.run.model or batch.run.backend
        error = f"could not load the judge {wanted}: {type(exc).__name__}: {exc}"
        return _fail_run_on_load_error(batch_id=batch.pk, error=error[:2000])
    try:
        inputs, missing = _load_pair_inputs(pair_ids=batch.pair_ids)
        verdicts = judge.judge(inputs) + [_missing_verdict(pair_id) for pair_id in missing]
    except SoftTimeLimitExceeded:
        raise
    except Exception as exc:
        logger.exception("judge batch %s failed on attempt %s", batch.pk, batch.attempts)
        return _record_batch_error(batch_id=batch.pk, error=f"{type(exc).__name__}: {exc}")
    if settings.JUDGE_BATCH_DELAY_S:
        _simulated_gpu_call(seconds=settings.JUDGE_BATCH_DELAY_S)
    return _write_batch(batch_id=batch.pk, verdicts=verdicts, judge=judge)


def _judge_of(run: JudgeRun) -> Judge:
    """The run's judge; the first batch loads it as asked and resolves the run's configuration
    from it. Later batches load that configuration (pinned revision and dtype), so every worker
    judges with the same one."""
    if run.configuration is not None:
        return get_judge(spec=JudgeSpec.of(run.configuration))
    judge = get_judge(spec=JudgeSpec.requested_by(run))
    _judges.setdefault(JudgeSpec.of_info(judge.info, max_pixels=run.max_pixels), judge)
    return get_judge(spec=JudgeSpec.of(_resolve_configuration(run_id=run.pk, judge=judge)))


def _resolve_configuration(*, run_id: int, judge: Judge) -> JudgeConfiguration:
    """Set the run's configuration once, under its row lock: a worker that loaded the judge
    while another resolved it takes the one already set."""
    with transaction.atomic():
        locked = JudgeRun.objects.select_for_update(of=("self",)).select_related("configuration")
        run = locked.get(pk=run_id)
        if run.configuration is None:
            run.configuration = get_or_create_configuration(judge=judge, max_pixels=run.max_pixels)
            run.save(update_fields=["configuration"])
    return run.configuration


def _fail_run_on_load_error(*, batch_id: int, error: str) -> JudgeBatch:
    """A judge that cannot be loaded as asked (a bad model id, no network, no torch) fails the
    run at once: no batch of it could be judged. Once another worker resolved the run, the
    failure is this worker's own, and the batch is retried as after any other error."""
    with transaction.atomic():
        run = JudgeRun.objects.select_for_update().get(batches=batch_id)
        batch = JudgeBatch.objects.select_for_update().get(pk=batch_id)
        if run.configuration_id is None:
            return _fail_run(run=run, batch=batch, reason=error)
    return _record_batch_error(batch_id=batch_id, error=error)


def _fail_run(*, run: JudgeRun, batch: JudgeBatch, reason: str) -> JudgeBatch:
    """End a run that has no configuration (so no judgement can be written): its batches that
    have not ended fail with the reason, and deliveries of them are skipped."""
    now = timezone.now()
    run.batches.exclude(status__in=_TERMINAL_BATCH).update(
        status=BatchStatus.FAILED, error=reason, finished_at=now
    )
    if run.is_active:
        run.status, run.error, run.finished_at = RunStatus.FAILED, reason, now
        run.save(update_fields=["status", "error", "finished_at"])
    batch.refresh_from_db()
    return batch


def _simulated_gpu_call(*, seconds: float) -> None:
    """Sleep as a CUDA kernel would block: Python signal handlers (Celery's soft time limit)
    run only once it returns."""
    blocked = {signal.SIGUSR1}
    signal.pthread_sigmask(signal.SIG_BLOCK, blocked)
    try:
        time.sleep(seconds)
    finally:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, blocked)


def _claim_batch(*, batch_id: int) -> tuple[JudgeBatch, bool]:
    """Count this delivery and mark the batch running; False (with the batch) when it is not
    to be judged now: it ended, its run was cancelled, or a live worker holds it."""
    with transaction.atomic():
        run = JudgeRun.objects.select_for_update().get(batches=batch_id)
        # Only the batch row: PostgreSQL locks no nullable side of a join (the configuration).
        locked = JudgeBatch.objects.select_for_update(of=("self",)).select_related(
            "run__configuration"
        )
        batch = locked.get(pk=batch_id)
        if batch.status in _TERMINAL_BATCH:
            return batch, False
        if run.status == RunStatus.CANCELLED:
            batch.status = BatchStatus.CANCELLED
            batch.save(update_fields=["status"])
            return batch, False
        if batch.status == BatchStatus.RUNNING and not _lapsed(batch_id):
            return batch, False  # a second delivery while a live worker judges it
        if batch.attempts >= settings.JUDGE_MAX_ATTEMPTS:
            return _give_up_batch(run=run, batch=batch), False
        now = timezone.now()
        batch.attempts += 1
        batch.status = BatchStatus.RUNNING
        batch.started_at = now
        batch.heartbeat_at = Now()
        batch.save(update_fields=["attempts", "status", "started_at", "heartbeat_at"])
        if run.status == RunStatus.QUEUED:
            run.status, run.started_at = RunStatus.RUNNING, now
            run.save(update_fields=["status", "started_at"])
    return batch, True


def _lapsed(batch_id: int) -> bool:
    return JudgeBatch.objects.filter(lapsed(), pk=batch_id).exists()


def _release_after_time_limit(*, batch_id: int) -> JudgeBatch:
    """A batch past its soft time limit: split in two halves that are sent again (each half
    keeps counting attempts), or, for one pair, recorded as a failed attempt and retried."""
    if len(JudgeBatch.objects.get(pk=batch_id).pair_ids) < 2:
        return _record_batch_error(batch_id=batch_id, error="hit the soft time limit")
    with transaction.atomic():
        run = JudgeRun.objects.select_for_update().get(batches=batch_id)
        batch = JudgeBatch.objects.select_for_update().get(pk=batch_id)
        if batch.status != BatchStatus.RUNNING:
            return batch
        half = len(batch.pair_ids) // 2
        last_index = run.batches.aggregate(last=Max("index"))["last"]
        second = JudgeBatch.objects.create(
            run=run, index=last_index + 1, pair_ids=batch.pair_ids[half:], attempts=batch.attempts
        )
        batch.pair_ids, batch.status = batch.pair_ids[:half], BatchStatus.PENDING
        batch.error = f"hit the soft time limit with {half * 2} pairs: split in two"
        batch.save(update_fields=["pair_ids", "status", "error"])
        _enqueue(batch_ids=[batch.pk, second.pk])
    return batch


def _give_up_batch(*, run: JudgeRun, batch: JudgeBatch) -> JudgeBatch:
    reason = f"gave up after {batch.attempts} attempts: {batch.error or 'the worker died'}"
    if run.configuration_id is None:
        return _fail_run(run=run, batch=batch, reason=reason)
    verdicts = [error_verdict(pair_id=pair_id, error=reason) for pair_id in batch.pair_ids]
    _upsert_judgements(run=run, verdicts=verdicts, library_versions={})
    batch.status, batch.error, batch.finished_at = BatchStatus.FAILED, reason, timezone.now()
    batch.save(update_fields=["status", "error", "finished_at"])
    _count_verdicts(run=run, verdicts=verdicts)
    return batch


def _record_batch_error(*, batch_id: int, error: str) -> JudgeBatch:
    """Keep the error; give up at the last attempt, otherwise ask the task to retry."""
    with transaction.atomic():
        run = JudgeRun.objects.select_for_update().get(batches=batch_id)
        batch = JudgeBatch.objects.select_for_update().get(pk=batch_id)
        if batch.status != BatchStatus.RUNNING:
            return batch
        batch.error = error
        if batch.attempts >= settings.JUDGE_MAX_ATTEMPTS:
            return _give_up_batch(run=run, batch=batch)
        batch.status = BatchStatus.PENDING
        batch.save(update_fields=["error", "status"])
    raise BatchWillRetry(error)


def release_dead_batch(*, batch_id: int) -> JudgeBatch:
    """The recovery sweep's part: a running batch whose worker stopped heartbeating (killed,
    out of memory, past the hard time limit) is sent again, or given up once its attempts
    are spent; the run finishes when it was the last batch."""
    with transaction.atomic():
        run = JudgeRun.objects.select_for_update().get(batches=batch_id)
        batch = JudgeBatch.objects.select_for_update().get(pk=batch_id)
        if batch.status != BatchStatus.RUNNING or not _lapsed(batch_id):
            return batch
        batch.error = f"the worker stopped heartbeating during attempt {batch.attempts}"
        if batch.attempts >= settings.JUDGE_MAX_ATTEMPTS:
            return _give_up_batch(run=run, batch=batch)
        batch.status = BatchStatus.PENDING
        batch.save(update_fields=["error", "status"])
        _enqueue(batch_ids=[batch.pk])
    return batch


def resend_lost_batches(*, batch_ids: Sequence[int]) -> None:
    """Send pending batches again whose messages the broker no longer holds."""
    with transaction.atomic():
        _enqueue(batch_ids=batch_ids)


def _write_batch(*, batch_id: int, verdicts: Sequence[PairVerdict], judge: Judge) -> JudgeBatch:
    with transaction.atomic():
        run = JudgeRun.objects.select_for_update().get(batches=batch_id)
        batch = JudgeBatch.objects.select_for_update().get(pk=batch_id)
        if batch.status != BatchStatus.RUNNING:
            return batch  # another delivery of this batch finished first
        judgements = _upsert_judgements(
            run=run, verdicts=verdicts, library_versions=judge.info.library_versions
        )
        apply_judge_labels(judgements=[j for j in judgements if j.status == JudgementStatus.OK])
        batch.status, batch.finished_at = BatchStatus.DONE, timezone.now()
        batch.save(update_fields=["status", "finished_at"])
        _count_verdicts(run=run, verdicts=verdicts)
    return batch


def _upsert_judgements(
    *, run: JudgeRun, verdicts: Sequence[PairVerdict], library_versions: dict[str, str]
) -> list[Judgement]:
    """One statement; the (pair, configuration) constraint turns a second write into an update."""
    rows = [
        _judgement_row(run=run, verdict=verdict, library_versions=library_versions)
        for verdict in verdicts
    ]
    return Judgement.objects.bulk_create(
        rows,
        update_conflicts=True,
        unique_fields=["pair", "configuration"],
        update_fields=_VERDICT_FIELDS,
    )


def _judgement_row(
    *, run: JudgeRun, verdict: PairVerdict, library_versions: dict[str, str]
) -> Judgement:
    common = {
        "pair_id": verdict.pair_id,
        "configuration_id": run.configuration_id,
        "run": run,
        "library_versions": library_versions,
        "created_at": timezone.now(),
    }
    if verdict.error is not None:
        return Judgement(**common, status=JudgementStatus.FAILED, error=verdict.error[:2000])
    return Judgement(
        **common,
        status=JudgementStatus.OK,
        p_a_better=verdict.p_a_better,
        p_a_first=verdict.p_a_first,
        p_a_second=verdict.p_a_second,
        position_bias=verdict.position_bias,
        label_mass=verdict.label_mass,
        orders_agree=verdict.orders_agree,
        p_unsafe_a=verdict.p_unsafe_a,
        p_unsafe_b=verdict.p_unsafe_b,
        decided_by=verdict.decided_by,
        prefers_a=verdict.prefers_a,
        needs_review=verdict.needs_review,
        review_reasons=list(verdict.review_reasons),
    )


def _count_verdicts(*, run: JudgeRun, verdicts: Sequence[PairVerdict]) -> None:
    """Add a batch to the run's counters; the caller holds the run's row lock."""
    succeeded = [v for v in verdicts if v.error is None]
    reasons = Counter(run.review_reason_counts)
    reasons.update(r for v in succeeded if v.needs_review for r in v.review_reasons)
    run.done += len(succeeded)
    run.failed += len(verdicts) - len(succeeded)
    run.prefers_a_count += sum(v.prefers_a for v in succeeded)
    run.decided_by_safety_count += sum(v.decided_by == "safety" for v in succeeded)
    run.needs_review_count += sum(v.needs_review for v in succeeded)
    run.label_mass_sum += sum(v.label_mass for v in succeeded)
    run.review_reason_counts = dict(reasons)
    run.save(update_fields=_RUN_COUNTER_FIELDS)
    if not run.batches.exclude(status__in=_TERMINAL_BATCH).exists():
        _finish_run(run=run)


def _finish_run(*, run: JudgeRun) -> None:
    now = timezone.now()
    run.finished_at = now
    started = run.started_at or run.created_at
    elapsed = (now - started).total_seconds()
    run.pairs_per_second = run.processed / elapsed if elapsed > 0 and run.processed else None
    if run.status != RunStatus.CANCELLED:
        run.status = RunStatus.FINISHED
    run.save(update_fields=["finished_at", "pairs_per_second", "status"])


def _load_pair_inputs(*, pair_ids: Sequence[int]) -> tuple[list[PairInput], list[int]]:
    """The batch's pairs with their image bytes, in one query; ids of deleted pairs apart."""
    rows = Pair.objects.filter(pk__in=pair_ids).values_list(
        "pk", "question__image__data", "question__text", "response_a__text", "response_b__text"
    )
    found = {
        pk: PairInput(pair_id=pk, image=bytes(data), question=q, response_a=a, response_b=b)
        for pk, data, q, a, b in rows
    }
    inputs = [found[pk] for pk in pair_ids if pk in found]
    return inputs, [pk for pk in pair_ids if pk not in found]


def _missing_verdict(pair_id: int) -> PairVerdict:
    return error_verdict(pair_id=pair_id, error="the pair was deleted")


def cancel_run(*, run_id: int, by: User | None = None) -> JudgeRun:
    """Cancel a queued or running run: pending batches are cancelled, a batch being judged
    finishes and is written. Raises JudgeRunError for a run that already ended."""
    with transaction.atomic():
        run = JudgeRun.objects.select_for_update().get(pk=run_id)
        if not run.is_active:
            raise JudgeRunError(f"Run {run.pk} has already ended ({run.status}).")
        run.batches.filter(status=BatchStatus.PENDING).update(status=BatchStatus.CANCELLED)
        who = by.get_username() if by is not None else "unknown"
        run.status, run.error = RunStatus.CANCELLED, f"cancelled by {who}"
        _finish_run(run=run)
        run.save(update_fields=["error"])
    return run
