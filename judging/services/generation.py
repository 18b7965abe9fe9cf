"""Generation runs: responses from local vision-language models, on the judge's machinery.

A run records the models asked for and snapshots, per model, the questions it covers into
batches (one model each, every sample of each question), without loading any model: the web
process never imports torch. One `generate` task per batch calls `run_generation_batch` on a GPU
worker, which keeps the last model it loaded between batches (batches are planned model by
model, so one worker loads each model once). The first batch of a model resolves its
configuration (revision as loaded, prompt version, sampling config); later batches load that
one. Writing is idempotent: the (question, configuration, sample index) constraint turns a
redelivered batch into nothing new, and a re-run skips what is stored before generating.
Lock order everywhere: the run row, then the batch row.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass

from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.contrib.auth.models import User
from django.db import transaction
from django.db.models import Exists, F, OuterRef, Q
from django.db.models.functions import Now
from django.utils import timezone

from annotation.models import (
    ImportBatch,
    Question,
    QuestionType,
    Response,
    TaxonomyNode,
    text_digest,
)
from judging.engine.generate import load_generator
from judging.engine.generation_types import (
    Generation,
    GenerationItem,
    Generator,
    SamplingSettings,
)
from judging.engine.images import decode_image
from judging.engine.types import ImageRejected
from judging.exceptions import BatchWillRetry, JudgeRunError
from judging.families import model_family
from judging.models import (
    BatchStatus,
    GenerationBatch,
    GenerationConfiguration,
    GenerationRun,
    QuestionSelection,
    RunStatus,
)
from judging.services.runs import _simulated_gpu_call
from spavl_web.jobs import enqueue_on_commit, heartbeat, lapsed

GENERATE_TASK = "judging.tasks.generate_batch"
# Questions per task: with 256 new tokens a batch of 16 questions and a few samples takes
# well under a minute on one GPU, far inside the soft time limit.
QUESTIONS_PER_BATCH = 16
MAX_SAMPLES = 64
MAX_NEW_TOKENS = 4096
MODEL_NAME_LENGTH = 200  # Response.model_name

logger = logging.getLogger(__name__)

_TERMINAL_BATCH = [BatchStatus.DONE, BatchStatus.FAILED, BatchStatus.CANCELLED]
_RUN_COUNTER_FIELDS = [
    "done",
    "failed",
    "created",
    "existing",
    "duplicates",
    "truncated",
    "tokens_out",
    "generation_seconds",
]


@dataclass(frozen=True, slots=True)
class ModelRequest:
    """A model as asked for: hub id or local path, and a revision ("" for the latest)."""

    model: str
    revision: str = ""

    @classmethod
    def parse(cls, text: str) -> ModelRequest:
        """``ID`` or ``ID@REVISION``, as the command and the form take them."""
        model, _, revision = text.strip().partition("@")
        return cls(model=model.strip(), revision=revision.strip())


@dataclass(frozen=True, slots=True)
class GeneratorSpec:
    """What the per-process cache keys on."""

    model: str
    revision: str = ""
    dtype: str = ""


# The generator this worker process loaded last. Only one is kept: twelve 7B models do not fit
# on one GPU together, and runs are planned model by model, so one is all a worker reuses.
_generators: dict[GeneratorSpec, Generator] = {}


def get_generator(*, spec: GeneratorSpec) -> Generator:
    """The generator for `spec`, loaded on first use in this process and kept until another
    model is asked for."""
    if spec not in _generators:
        _generators.clear()
        _generators[spec] = load_generator(
            spec.model, revision=spec.revision or None, dtype=spec.dtype or None
        )
    return _generators[spec]


def select_question_ids(
    *,
    model: str,
    questions: str,
    taxonomy_node_ids: Sequence[int] = (),
    question_types: Sequence[str] = (),
    import_batch_id: int | None = None,
) -> list[int]:
    """Ids of the questions a run asks `model` for: all of them or those without a response
    from it, narrowed to taxonomy nodes (at any level), question types and an import batch."""
    queryset = Question.objects.order_by("pk")
    if taxonomy_node_ids:
        queryset = queryset.filter(
            Q(subcategory__in=taxonomy_node_ids)
            | Q(subcategory__parent__in=taxonomy_node_ids)
            | Q(subcategory__parent__parent__in=taxonomy_node_ids)
        )
    if question_types:
        queryset = queryset.filter(question_type__in=question_types)
    if import_batch_id is not None:
        queryset = queryset.filter(import_batch_id=import_batch_id)
    if questions == QuestionSelection.MISSING:
        answered = Response.objects.filter(question=OuterRef("pk"), model_name=model)
        queryset = queryset.filter(~Exists(answered))
    return list(queryset.values_list("pk", flat=True))


def start_generation_run(
    *,
    models: Sequence[ModelRequest],
    questions: str = QuestionSelection.MISSING,
    taxonomy_node_ids: Sequence[int] = (),
    question_types: Sequence[str] = (),
    import_batch_id: int | None = None,
    samples: int = 1,
    sampling: SamplingSettings | None = None,
    dtype: str | None = None,
    batch_size: int | None = None,
    by: User | None = None,
) -> GenerationRun:
    """Record the models asked for (none is loaded here), snapshot each one's questions into
    batches and enqueue one `generate_batch` task per batch after commit. Raises JudgeRunError
    for a request that cannot run. Without a broker the tasks run in-process when this commits,
    so the returned run has already ended."""
    sampling = sampling or SamplingSettings()
    size = batch_size or QUESTIONS_PER_BATCH
    _check_request(
        models=models,
        questions=questions,
        samples=samples,
        sampling=sampling,
        size=size,
        taxonomy_node_ids=taxonomy_node_ids,
        question_types=question_types,
        import_batch_id=import_batch_id,
    )
    with transaction.atomic():
        per_model = [
            select_question_ids(
                model=m.model,
                questions=questions,
                taxonomy_node_ids=taxonomy_node_ids,
                question_types=question_types,
                import_batch_id=import_batch_id,
            )
            for m in models
        ]
        run = GenerationRun.objects.create(
            requested_models=[asdict(m) for m in models],
            dtype=dtype or "",
            question_selection=questions,
            taxonomy_node_ids=list(taxonomy_node_ids),
            question_types=list(question_types),
            import_batch_id=import_batch_id,
            samples=samples,
            sampling=asdict(sampling),
            total=sum(len(ids) for ids in per_model) * samples,
            started_by=by,
        )
        batches = GenerationBatch.objects.bulk_create(_plan_batches(run, per_model, size))
        if not batches:
            _finish_run(run=run)
        _enqueue(batch_ids=[batch.pk for batch in batches])
    run.refresh_from_db()
    return run


def _check_request(
    *,
    models: Sequence[ModelRequest],
    questions: str,
    samples: int,
    sampling: SamplingSettings,
    size: int,
    taxonomy_node_ids: Sequence[int],
    question_types: Sequence[str],
    import_batch_id: int | None,
) -> None:
    names = [m.model for m in models]
    if not names or not all(names):
        raise JudgeRunError("Name at least one model (hub id or local path) and no empty one.")
    if len(set(models)) != len(models):
        raise JudgeRunError("A model is named twice with the same revision.")
    if any(len(name) > MODEL_NAME_LENGTH for name in names):
        raise JudgeRunError(f"A model id is longer than {MODEL_NAME_LENGTH} characters.")
    if questions not in QuestionSelection.values:
        raise JudgeRunError(f"Questions must be one of {QuestionSelection.values}.")
    if not 1 <= samples <= MAX_SAMPLES:
        raise JudgeRunError(f"Samples per question must be from 1 to {MAX_SAMPLES}.")
    if size < 1:
        raise JudgeRunError("The batch size must be at least 1.")
    _check_sampling(sampling)
    unknown_types = set(question_types) - set(QuestionType.values)
    if unknown_types:
        raise JudgeRunError(f"Unknown question types: {sorted(unknown_types)}.")
    found = TaxonomyNode.objects.filter(pk__in=taxonomy_node_ids).count()
    if found != len(set(taxonomy_node_ids)):
        raise JudgeRunError("A taxonomy node id names no node.")
    if import_batch_id is not None and not ImportBatch.objects.filter(pk=import_batch_id).exists():
        raise JudgeRunError(f"No import batch {import_batch_id}.")


def _check_sampling(sampling: SamplingSettings) -> None:
    if not 1 <= sampling.max_new_tokens <= MAX_NEW_TOKENS:
        raise JudgeRunError(f"Max new tokens must be from 1 to {MAX_NEW_TOKENS}.")
    if sampling.temperature < 0:
        raise JudgeRunError("The temperature must be 0 (greedy) or more.")
    if not 0 < sampling.top_p <= 1:
        raise JudgeRunError("Top-p must be above 0 and at most 1.")
    if sampling.seed < 0:
        raise JudgeRunError("The seed must be 0 or more.")


def _plan_batches(
    run: GenerationRun, per_model: list[list[int]], size: int
) -> Iterable[GenerationBatch]:
    """Model by model, so a worker taking them in order loads each model once."""
    index = 0
    for model_index, ids in enumerate(per_model):
        for start in range(0, len(ids), size):
            yield GenerationBatch(
                run=run,
                index=index,
                model_index=model_index,
                question_ids=ids[start : start + size],
            )
            index += 1


def _enqueue(*, batch_ids: Iterable[int]) -> None:
    """Send one task per batch once the transaction commits, noting when (for the sweep)."""
    batch_ids = list(batch_ids)
    GenerationBatch.objects.filter(pk__in=batch_ids).update(enqueued_at=Now())
    for batch_id in batch_ids:
        enqueue_on_commit(GENERATE_TASK, batch_id)


def run_generation_batch(*, batch_id: int) -> GenerationBatch:
    """Generate one batch and write its responses in one transaction. Idempotent: a batch that
    ended, or that a live worker holds, is skipped; a batch whose worker died is generated again
    and written once. After `JUDGE_MAX_ATTEMPTS` deliveries it is given up, its items failed."""
    batch, claimed = _claim_batch(batch_id=batch_id)
    if not claimed:
        return batch
    try:
        with heartbeat(lambda: _beat(batch)):
            return _generate_claimed(batch)
    except SoftTimeLimitExceeded:
        logger.warning("generation batch %s hit the soft time limit", batch_id)
        return _record_batch_error(batch_id=batch_id, error="hit the soft time limit")


def _claim_batch(*, batch_id: int) -> tuple[GenerationBatch, bool]:
    """Count this delivery and mark the batch running, in one conditional UPDATE; False (with
    the batch) when it is not to be generated now."""
    with transaction.atomic():
        run = GenerationRun.objects.select_for_update().get(batches=batch_id)
        claimable = GenerationBatch.objects.filter(
            Q(status=BatchStatus.PENDING) | (Q(status=BatchStatus.RUNNING) & lapsed()),
            pk=batch_id,
            attempts__lt=settings.JUDGE_MAX_ATTEMPTS,
        )
        claimed = run.is_active and claimable.update(
            status=BatchStatus.RUNNING,
            attempts=F("attempts") + 1,
            started_at=Now(),
            heartbeat_at=Now(),
        )
        batch = GenerationBatch.objects.select_for_update().get(pk=batch_id)
        if claimed:
            if run.status == RunStatus.QUEUED:
                run.status, run.started_at = RunStatus.RUNNING, timezone.now()
                run.save(update_fields=["status", "started_at"])
            batch.run = run
            return batch, True
        return _explain_unclaimed(run=run, batch=batch), False


def _explain_unclaimed(*, run: GenerationRun, batch: GenerationBatch) -> GenerationBatch:
    """A delivery not claimed: the batch ended, its run was cancelled, a live worker holds it,
    or its attempts are spent (then it is given up)."""
    if batch.status in _TERMINAL_BATCH:
        return batch
    if run.status == RunStatus.CANCELLED:
        batch.status = BatchStatus.CANCELLED
        batch.save(update_fields=["status"])
        return batch
    dead = batch.status == BatchStatus.PENDING or _lapsed(batch.pk)
    if dead and batch.attempts >= settings.JUDGE_MAX_ATTEMPTS:
        return _give_up_batch(run=run, batch=batch)
    return batch


def _lapsed(batch_id: int) -> bool:
    return GenerationBatch.objects.filter(lapsed(), pk=batch_id).exists()


def _beat(batch: GenerationBatch) -> bool:
    mine = GenerationBatch.objects.filter(
        pk=batch.pk, status=BatchStatus.RUNNING, attempts=batch.attempts
    )
    return mine.update(heartbeat_at=Now()) > 0


def _generate_claimed(batch: GenerationBatch) -> GenerationBatch:
    try:
        generator, configuration = _generator_of(batch)
    except SoftTimeLimitExceeded:
        raise
    except Exception as exc:
        logger.exception("generation batch %s could not load its model", batch.pk)
        model = batch.run.requested_models[batch.model_index]["model"]
        error = f"could not load the model {model}: {type(exc).__name__}: {exc}"
        return _fail_model_on_load_error(batch_id=batch.pk, error=error[:2000])
    try:
        work = _load_items(batch=batch, configuration=configuration)
        settings_ = SamplingSettings(**batch.run.sampling)
        generations = generator.generate(work.items, settings_) if work.items else []
    except SoftTimeLimitExceeded:
        raise
    except Exception as exc:
        logger.exception("generation batch %s failed on attempt %s", batch.pk, batch.attempts)
        return _record_batch_error(batch_id=batch.pk, error=f"{type(exc).__name__}: {exc}")
    if settings.JUDGE_BATCH_DELAY_S and work.items:
        _simulated_gpu_call(seconds=settings.JUDGE_BATCH_DELAY_S)
    return _write_batch(
        batch_id=batch.pk, configuration=configuration, generations=generations, work=work
    )


def _generator_of(batch: GenerationBatch) -> tuple[Generator, GenerationConfiguration]:
    """The batch's model: loaded as asked by the first batch of that model, which resolves its
    configuration; later batches load that configuration's revision, so every worker of the
    run generates with the same one."""
    run = batch.run
    requested = run.requested_models[batch.model_index]
    pinned = _configuration_of(run=run, model_index=batch.model_index)
    if pinned is None:
        asked = GeneratorSpec(requested["model"], requested.get("revision", ""), run.dtype)
        generator = get_generator(spec=asked)
        resolved = GeneratorSpec(requested["model"], generator.revision or "", run.dtype)
        _generators.setdefault(resolved, generator)
        pinned = _resolve_configuration(batch_id=batch.pk, generator=generator)
    spec = GeneratorSpec(requested["model"], pinned.model_revision, run.dtype)
    return get_generator(spec=spec), pinned


def _configuration_of(*, run: GenerationRun, model_index: int) -> GenerationConfiguration | None:
    resolved = run.batches.filter(model_index=model_index, configuration__isnull=False)
    batch = resolved.select_related("configuration").first()
    return batch.configuration if batch is not None else None


def _resolve_configuration(*, batch_id: int, generator: Generator) -> GenerationConfiguration:
    """Set the batch's configuration under the run's row lock: a worker that loaded the model
    while another resolved it takes the one already set."""
    with transaction.atomic():
        run = GenerationRun.objects.select_for_update().get(batches=batch_id)
        batch = GenerationBatch.objects.select_for_update().get(pk=batch_id)
        configuration = _configuration_of(run=run, model_index=batch.model_index)
        if configuration is None:
            configuration = _get_or_create_configuration(run=run, generator=generator)
        batch.configuration = configuration
        batch.save(update_fields=["configuration"])
    return configuration


def _get_or_create_configuration(
    *, run: GenerationRun, generator: Generator
) -> GenerationConfiguration:
    config = SamplingSettings(**run.sampling).as_config()
    configuration, _ = GenerationConfiguration.objects.get_or_create(
        model_id=generator.model_id,
        model_revision=generator.revision or "",
        dtype=run.dtype,
        prompt_version=generator.prompt_version,
        config_sha256=GenerationConfiguration.digest(config),
        defaults={
            "config": config,
            "model_type": generator.model_type or "",
            "model_family": model_family(generator.model_id, generator.model_type or ""),
        },
    )
    return configuration


def _load_items(*, batch: GenerationBatch, configuration: GenerationConfiguration) -> _BatchItems:
    """The batch's (question, sample) items not stored under `configuration` yet, with image
    bytes, in two queries; how many were stored already; and the items that cannot be
    generated: of questions deleted since the run started, or whose image no decoder takes
    (checked here, so one bad image fails its own question, not the batch)."""
    samples = range(batch.run.samples)
    stored = set(
        Response.objects.filter(
            generation_configuration=configuration, question_id__in=batch.question_ids
        ).values_list("question_id", "sample_index")
    )
    rows = Question.objects.filter(pk__in=batch.question_ids).values_list(
        "pk", "image__data", "text"
    )
    found = {pk: (bytes(data), text) for pk, data, text in rows}
    rejected: dict[int, str] = {}
    for pk, (data, _) in found.items():
        if all((pk, sample) in stored for sample in samples):
            continue
        try:
            decode_image(data)
        except ImageRejected as exc:
            rejected[pk] = str(exc)
    usable = [pk for pk in batch.question_ids if pk in found and pk not in rejected]
    items = [
        GenerationItem(key=pk, image=found[pk][0], prompt=found[pk][1], sample_index=sample)
        for pk in usable
        for sample in samples
        if (pk, sample) not in stored
    ]
    kept = sum((pk, s) in stored for pk in batch.question_ids if pk in found for s in samples)
    missing = sum(pk not in found for pk in batch.question_ids) * len(samples)
    unusable = sum((pk, s) not in stored for pk in rejected for s in samples)
    notes = [f"question {pk}: {reason}" for pk, reason in sorted(rejected.items())]
    return _BatchItems(items=items, stored=kept, failed=missing + unusable, notes=notes)


@dataclass(frozen=True, slots=True)
class _BatchItems:
    items: list[GenerationItem]
    stored: int
    failed: int  # items that cannot be generated
    notes: list[str]  # why, per question


def _write_batch(
    *,
    batch_id: int,
    configuration: GenerationConfiguration,
    generations: Sequence[Generation],
    work: _BatchItems,
) -> GenerationBatch:
    with transaction.atomic():
        run = GenerationRun.objects.select_for_update().get(batches=batch_id)
        batch = GenerationBatch.objects.select_for_update().get(pk=batch_id)
        if batch.status != BatchStatus.RUNNING:
            return batch  # another delivery of this batch finished first
        created = _insert_responses(
            configuration=configuration, generations=generations, question_ids=batch.question_ids
        )
        batch.status, batch.finished_at = BatchStatus.DONE, timezone.now()
        batch.error = "\n".join(work.notes)[:2000]
        batch.save(update_fields=["status", "finished_at", "error"])
        run.done += len(generations) + work.stored
        run.existing += work.stored
        run.created += created
        run.duplicates += len(generations) - created
        run.failed += work.failed
        run.truncated += sum(g.finish_reason == "length" for g in generations)
        run.tokens_out += sum(g.tokens_out for g in generations)
        run.generation_seconds += sum(g.seconds for g in generations)
        _save_counters(run=run)
    return batch


def _insert_responses(
    *,
    configuration: GenerationConfiguration,
    generations: Sequence[Generation],
    question_ids: Sequence[int],
) -> int:
    """One statement; a row whose (question, configuration, sample) or (question, model, text)
    exists is skipped. Returns how many rows were new (the caller holds the batch's lock, so
    only another run with the same configuration could write these keys meanwhile)."""
    mine = Response.objects.filter(
        generation_configuration=configuration, question_id__in=question_ids
    )
    before = mine.count()
    Response.objects.bulk_create(
        [_response_row(configuration=configuration, generation=g) for g in generations],
        ignore_conflicts=True,
    )
    return mine.count() - before


def _response_row(*, configuration: GenerationConfiguration, generation: Generation) -> Response:
    return Response(
        question_id=generation.key,
        model_name=configuration.model_id,
        text=generation.text,
        text_sha256=text_digest(generation.text),
        generation_configuration=configuration,
        sample_index=generation.sample_index,
        tokens_in=generation.tokens_in,
        tokens_out=generation.tokens_out,
        finish_reason=generation.finish_reason,
        generation_seconds=generation.seconds,
    )


def _items_of(*, run: GenerationRun, batch: GenerationBatch) -> int:
    return len(batch.question_ids) * run.samples


def _give_up_batch(*, run: GenerationRun, batch: GenerationBatch) -> GenerationBatch:
    reason = f"gave up after {batch.attempts} attempts: {batch.error or 'the worker died'}"
    batch.status, batch.error, batch.finished_at = BatchStatus.FAILED, reason, timezone.now()
    batch.save(update_fields=["status", "error", "finished_at"])
    run.failed += _items_of(run=run, batch=batch)
    _save_counters(run=run)
    return batch


def _fail_model_on_load_error(*, batch_id: int, error: str) -> GenerationBatch:
    """A model that cannot be loaded as asked (a bad id, no network, no torch) fails every
    batch of it at once, and the run ends failed with the reason; other models go on. Once
    another worker resolved the model, the failure is this worker's own: retried as any."""
    with transaction.atomic():
        run = GenerationRun.objects.select_for_update().get(batches=batch_id)
        batch = GenerationBatch.objects.select_for_update().get(pk=batch_id)
        if batch.status != BatchStatus.RUNNING:
            return batch
        if _configuration_of(run=run, model_index=batch.model_index) is None:
            doomed = run.batches.filter(model_index=batch.model_index).exclude(
                status__in=_TERMINAL_BATCH
            )
            run.failed += sum(len(ids) for ids in doomed.values_list("question_ids", flat=True)) * (
                run.samples
            )
            doomed.update(status=BatchStatus.FAILED, error=error, finished_at=Now())
            run.error = "\n".join(filter(None, [run.error, error]))
            run.save(update_fields=["error"])
            _save_counters(run=run)
            batch.refresh_from_db()
            return batch
    return _record_batch_error(batch_id=batch_id, error=error)


def _record_batch_error(*, batch_id: int, error: str) -> GenerationBatch:
    """Keep the error; give up at the last attempt, otherwise ask the task to retry."""
    with transaction.atomic():
        run = GenerationRun.objects.select_for_update().get(batches=batch_id)
        batch = GenerationBatch.objects.select_for_update().get(pk=batch_id)
        if batch.status != BatchStatus.RUNNING:
            return batch
        batch.error = error
        if batch.attempts >= settings.JUDGE_MAX_ATTEMPTS:
            return _give_up_batch(run=run, batch=batch)
        batch.status = BatchStatus.PENDING
        batch.save(update_fields=["error", "status"])
    raise BatchWillRetry(error)


def release_dead_generation_batch(*, batch_id: int) -> GenerationBatch:
    """The recovery sweep's part: a running batch whose worker stopped heartbeating is sent
    again, or given up once its attempts are spent; the run ends when it was the last."""
    with transaction.atomic():
        run = GenerationRun.objects.select_for_update().get(batches=batch_id)
        batch = GenerationBatch.objects.select_for_update().get(pk=batch_id)
        if batch.status != BatchStatus.RUNNING or not _lapsed(batch_id):
            return batch
        batch.error = f"the worker stopped heartbeating during attempt {batch.attempts}"
        if batch.attempts >= settings.JUDGE_MAX_ATTEMPTS:
            return _give_up_batch(run=run, batch=batch)
        batch.status = BatchStatus.PENDING
        batch.save(update_fields=["error", "status"])
        _enqueue(batch_ids=[batch.pk])
    return batch


def resend_lost_generation_batches(*, batch_ids: Sequence[int]) -> None:
    """Send pending batches again whose messages the broker no longer holds."""
    with transaction.atomic():
        _enqueue(batch_ids=batch_ids)


def _save_counters(*, run: GenerationRun) -> None:
    """Save a batch's additions to the run's counters, and end the run after its last batch;
    the caller holds the run's row lock."""
    run.save(update_fields=_RUN_COUNTER_FIELDS)
    if not run.batches.exclude(status__in=_TERMINAL_BATCH).exists():
        _finish_run(run=run)


def _finish_run(*, run: GenerationRun) -> None:
    now = timezone.now()
    elapsed = (now - (run.started_at or run.created_at)).total_seconds()
    generated = run.generated
    run.finished_at = now
    run.responses_per_second = generated / elapsed if elapsed > 0 and generated else None
    run.tokens_per_second = run.tokens_out / elapsed if elapsed > 0 and generated else None
    if run.status != RunStatus.CANCELLED:
        run.status = RunStatus.FAILED if run.error else RunStatus.FINISHED
    run.save(update_fields=["finished_at", "responses_per_second", "tokens_per_second", "status"])


def cancel_generation_run(*, run_id: int, by: User | None = None) -> GenerationRun:
    """Cancel a queued or running run: pending batches are cancelled, a batch being generated
    finishes and is written. Raises JudgeRunError for a run that already ended."""
    with transaction.atomic():
        run = GenerationRun.objects.select_for_update().get(pk=run_id)
        if not run.is_active:
            raise JudgeRunError(f"Generation run {run.pk} has already ended ({run.status}).")
        run.batches.filter(status=BatchStatus.PENDING).update(status=BatchStatus.CANCELLED)
        who = by.get_username() if by is not None else "unknown"
        run.status, run.error = RunStatus.CANCELLED, f"cancelled by {who}"
        _finish_run(run=run)
        run.save(update_fields=["error"])
    return run
