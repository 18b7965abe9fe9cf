"""Question generation, SPA-VL's first stage: a model writes questions for images and harm
subcategories, and they are recorded as an import (an ImportBatch of format
``generated-questions``), so they are browsed, counted and answered like imported questions.

It runs in the calling process (``manage.py generate questions``, started where the GPU is): one
(image, subcategory, question type) is one row, its prompt from
``judging.engine.question_writing``, its text from ``judging.engine.generate.load_generator``, or
from the baseline's templates for the model ``baseline``. A generation the strict parser refuses
is counted and reported with its raw text, never stored. Running again creates nothing twice:
a row already written by the same writer configuration (model, revision, prompt version,
decoding) is skipped before generating, and a text the image already has is not stored again;
both count as existing.
"""

from __future__ import annotations

import csv
import hashlib
import json
import logging
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, TypeVar

from django.contrib.auth.models import User
from django.db import transaction
from django.db.models.functions import Now
from django.utils import timezone

from annotation.models import (
    Image,
    ImportBatch,
    ImportFormat,
    ImportStatus,
    Question,
    TaxonomyNode,
    text_digest,
)
from annotation.services.imports.core import (
    BATCH_ERRORS_KEPT,
    default_report_path,
    fail_batch,
    start_batch,
)
from judging.engine.generate import BASELINE, load_generator
from judging.engine.generation_types import (
    Generation,
    GenerationItem,
    Generator,
    SamplingSettings,
)
from judging.engine.images import decode_image
from judging.engine.question_writing import (
    BASELINE_QUESTION_VERSION,
    QUESTION_PROMPT_VERSION,
    QUESTION_TYPES,
    ParsedQuestion,
    RejectedQuestion,
    RejectionReason,
    baseline_question,
    parse_question,
    question_prompt,
)
from judging.engine.types import ImageRejected
from judging.exceptions import JudgeRunError
from spavl_web.jobs import heartbeat

# Images whose bytes are held at once, and items per generate() call (the generator batches
# them further on the GPU); each call's questions are written in one transaction.
IMAGES_PER_CHUNK = 8
ITEMS_PER_CALL = 32
RAW_KEPT_CHARS = 500  # of a rejected generation, in the batch's errors (the report has it all)
MODEL_NAME_LENGTH = 200
REPORT_COLUMNS = ["row", "reason", "detail", "image", "subcategory", "type", "raw"]

logger = logging.getLogger(__name__)
Progress = Callable[[int, int], None]
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class _Writer:
    """What writes the questions: a loaded generator, or the baseline's templates (None)."""

    generator: Generator | None
    model_id: str
    revision: str
    model_type: str
    prompt_version: str  # of the question prompt, or of the baseline's templates
    generator_prompt_version: str  # the generator's chat template use ("" for the baseline)

    def configuration(self, sampling: SamplingSettings) -> dict[str, Any]:
        return {
            "generated_by": self.model_id,
            "revision": self.revision,
            "model_type": self.model_type,
            "prompt_version": self.prompt_version,
            "generator_prompt_version": self.generator_prompt_version,
            # The baseline's templates do not depend on the decoding.
            "sampling": sampling.as_config() if self.generator is not None else {},
        }


@dataclass(frozen=True, slots=True)
class _Row:
    """One (image, subcategory, type) of the run, numbered in the run's order."""

    number: int
    image_id: int
    subcategory: TaxonomyNode
    question_type: str


@dataclass
class _Tally:
    read: int = 0
    created: int = 0
    existing: int = 0
    rejected: int = 0
    errors: list[dict[str, Any]] = field(default_factory=list)


def write_questions(
    *,
    model: str,
    revision: str = "",
    image_ids: Sequence[int] | None = None,
    subcategory_ids: Sequence[int] | None = None,
    question_types: Sequence[str],
    sampling: SamplingSettings | None = None,
    dtype: str | None = None,
    by: User | None = None,
    progress: Progress | None = None,
) -> ImportBatch:
    """Have ``model`` (hub id, local path or ``baseline``) write one question of each type for
    every image (default: all but placeholders) and live subcategory (default: all), and
    return the finished ImportBatch; ``progress`` gets (rows done, rows in all).

    Raises JudgeRunError, writing nothing, for a request that cannot run. A model that cannot
    be loaded returns the batch failed with the reason; any later error fails the batch and
    is raised (the questions written until then are kept: running again completes them).
    """
    types = _checked_types(question_types)
    _check_model(model)
    images = _selected_images(image_ids)
    subcategories = _selected_subcategories(subcategory_ids)
    sampling = sampling or SamplingSettings()
    batch = _start_batch(
        model=model,
        revision=revision,
        options={
            "prompt_version": (
                BASELINE_QUESTION_VERSION if model == BASELINE else QUESTION_PROMPT_VERSION
            ),
            "question_types": list(types),
            "sampling": sampling.as_config(),
            "image_ids": list(image_ids) if image_ids is not None else "all",
            "subcategory_ids": list(subcategory_ids) if subcategory_ids is not None else "all",
        },
        total=len(images) * len(subcategories) * len(types),
        by=by,
    )
    if not batch.rows_total:
        return _finish(batch, _Tally())
    try:
        writer = _load_writer(model=model, revision=revision, dtype=dtype)
    except Exception as exc:  # a bad id, no network, no torch: the batch says which
        logger.warning("question generation %s: cannot load %s", batch.pk, model, exc_info=True)
        fail_batch(batch, message=f"could not load the model {model}: {type(exc).__name__}: {exc}")
        return batch
    batch.options.update(
        generated_by=writer.model_id,
        resolved_revision=writer.revision,
        model_type=writer.model_type,
        generator_prompt_version=writer.generator_prompt_version,
    )
    batch.save(update_fields=["options"])
    try:
        with heartbeat(lambda: _beat(batch)), _report_file(batch) as report:
            run = _QuestionRun(
                batch=batch, writer=writer, sampling=sampling, report=report, progress=progress
            )
            return run.write(images=images, subcategories=subcategories, types=types)
    except Exception as exc:
        fail_batch(batch, message=f"question generation stopped: {exc!r}")
        raise


def _checked_types(question_types: Sequence[str]) -> tuple[str, ...]:
    types = tuple(dict.fromkeys(question_types))
    if not types or not set(types) <= set(QUESTION_TYPES):
        raise JudgeRunError(
            f"Question types must be some of {', '.join(QUESTION_TYPES)}, not {list(types)}."
        )
    return types


def _check_model(model: str) -> None:
    if not model.strip():
        raise JudgeRunError("Name the model that writes the questions (hub id, path, baseline).")
    if len(model) > MODEL_NAME_LENGTH:
        raise JudgeRunError(f"A model id is longer than {MODEL_NAME_LENGTH} characters.")
    if model.startswith(BASELINE + ":"):
        # The generator's baseline styles answer questions; writing them has one baseline.
        raise JudgeRunError("The question baseline has no styles: use the model 'baseline'.")


def _selected_images(image_ids: Sequence[int] | None) -> list[int]:
    if image_ids is None:
        # A placeholder stands for a row without an image: there is nothing to ask about.
        stored = Image.objects.filter(is_placeholder=False)
        return list(stored.order_by("pk").values_list("pk", flat=True))
    wanted = sorted(set(image_ids))
    found = set(Image.objects.filter(pk__in=wanted).values_list("pk", flat=True))
    missing = [pk for pk in wanted if pk not in found]
    if missing:
        raise JudgeRunError(f"No image with the id {', '.join(map(str, missing))}.")
    return wanted


def _selected_subcategories(subcategory_ids: Sequence[int] | None) -> list[TaxonomyNode]:
    live = TaxonomyNode.objects.active().subcategories().with_paths().order_by("pk")
    if subcategory_ids is None:
        return list(live)
    nodes = list(live.filter(pk__in=subcategory_ids))
    missing = sorted(set(subcategory_ids) - {node.pk for node in nodes})
    if missing:
        raise JudgeRunError(
            f"Not a live subcategory (a level-3 taxonomy node, not retired): "
            f"{', '.join(map(str, missing))}."
        )
    return nodes


def _start_batch(
    *, model: str, revision: str, options: dict[str, Any], total: int, by: User | None
) -> ImportBatch:
    name = f"{model}@{revision}" if revision else model
    batch = start_batch(
        file_name=name, import_format=ImportFormat.GENERATED_QUESTIONS, split="", by=by
    )
    batch.options = {"model": model, "revision": revision, **options}
    batch.rows_total = total
    batch.report_path = str(default_report_path(batch))
    batch.save(update_fields=["options", "rows_total", "report_path"])
    return batch


def _load_writer(*, model: str, revision: str, dtype: str | None) -> _Writer:
    if model == BASELINE:
        return _Writer(
            generator=None,
            model_id=BASELINE,
            revision="",
            model_type=BASELINE,
            prompt_version=BASELINE_QUESTION_VERSION,
            generator_prompt_version="",
        )
    generator = load_generator(model, revision=revision or None, dtype=dtype or None)
    return _Writer(
        generator=generator,
        model_id=generator.model_id,
        revision=generator.revision or "",
        model_type=generator.model_type or "",
        prompt_version=QUESTION_PROMPT_VERSION,
        generator_prompt_version=generator.prompt_version,
    )


@contextmanager
def _report_file(batch: ImportBatch) -> Iterator[IO[str]]:
    path = Path(batch.report_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="") as report:
        yield report


def _beat(batch: ImportBatch) -> bool:
    running = ImportBatch.objects.filter(pk=batch.pk, status=ImportStatus.RUNNING)
    return running.update(heartbeat_at=Now()) > 0


def _finish(batch: ImportBatch, tally: _Tally) -> ImportBatch:
    batch.status, batch.finished_at = ImportStatus.FINISHED, timezone.now()
    _save_tally(batch, tally, extra=["status", "finished_at"])
    return batch


def _save_tally(batch: ImportBatch, tally: _Tally, *, extra: Sequence[str] = ()) -> None:
    batch.rows_read, batch.rows_created = tally.read, tally.created
    batch.rows_existing, batch.rows_rejected = tally.existing, tally.rejected
    batch.errors = tally.errors
    fields = ["rows_read", "rows_created", "rows_existing", "rows_rejected", "errors"]
    batch.save(update_fields=[*fields, *extra])


class _QuestionRun:
    """One run's rows, chunk by chunk of images: skip those written before, generate the rest,
    store what the parser keeps, report the rest; the batch's counts follow along."""

    def __init__(
        self,
        *,
        batch: ImportBatch,
        writer: _Writer,
        sampling: SamplingSettings,
        report: IO[str],
        progress: Progress | None,
    ) -> None:
        self.batch, self.writer, self.sampling, self.progress = batch, writer, sampling, progress
        config = writer.configuration(sampling)
        # One string names the writer configuration, so a re-run finds its rows in one lookup.
        self.configuration_sha256 = hashlib.sha256(
            json.dumps(config, sort_keys=True).encode()
        ).hexdigest()
        self.provenance = {**config, "configuration_sha256": self.configuration_sha256}
        self.tally = _Tally()
        self._prompts: dict[tuple[int, str], str] = {}
        self._report = csv.writer(report)
        self._report.writerow(REPORT_COLUMNS)

    def write(
        self, *, images: list[int], subcategories: list[TaxonomyNode], types: tuple[str, ...]
    ) -> ImportBatch:
        rows = _numbered_rows(images, subcategories, types)
        per_chunk = IMAGES_PER_CHUNK * len(subcategories) * len(types)
        for chunk in _chunks(rows, per_chunk):
            for part in _chunks(self._to_generate(chunk), ITEMS_PER_CALL):
                self._write_part(part)
            self._advance()
        return _finish(self.batch, self.tally)

    def _to_generate(self, rows: list[_Row]) -> list[tuple[_Row, GenerationItem]]:
        """The rows not written before, with their items; rows of an image that cannot be
        decoded (or was deleted meanwhile) are rejected here, before any generating."""
        image_ids = sorted({row.image_id for row in rows})
        done = self._written_before(image_ids)
        data = {
            pk: bytes(raw)
            for pk, raw in Image.objects.filter(pk__in=image_ids).values_list("pk", "data")
        }
        problems = {pk: _image_problem(data.get(pk)) for pk in image_ids}
        wanted: list[tuple[_Row, GenerationItem]] = []
        for row in rows:
            if (row.image_id, row.subcategory.pk, row.question_type) in done:
                self.tally.read += 1
                self.tally.existing += 1
            elif problems[row.image_id]:
                self.tally.read += 1
                rejection = RejectedQuestion(RejectionReason.IMAGE, problems[row.image_id])
                self._reject(row, rejection, raw="")
            else:
                item = GenerationItem(
                    key=row.number, image=data[row.image_id], prompt=self._prompt(row)
                )
                wanted.append((row, item))
        return wanted

    def _written_before(self, image_ids: list[int]) -> set[tuple[int, int, str]]:
        # Keyed by the subcategory asked for, not the label now: a relabelled question was
        # still written for that row.
        found = Question.objects.filter(
            image_id__in=image_ids, provenance__configuration_sha256=self.configuration_sha256
        ).values_list("image_id", "provenance__subcategory_id", "question_type")
        return {(image_id, subcategory_id, kind) for image_id, subcategory_id, kind in found}

    def _prompt(self, row: _Row) -> str:
        key = (row.subcategory.pk, row.question_type)
        if key not in self._prompts:
            category = row.subcategory.parent
            assert category is not None and category.parent is not None
            self._prompts[key] = question_prompt(
                domain=category.parent.name,
                category=category.name,
                subcategory=row.subcategory.name,
                question_type=row.question_type,
            )
        return self._prompts[key]

    def _write_part(self, part: list[tuple[_Row, GenerationItem]]) -> None:
        generations = self._generate(part)
        questions: list[Question] = []
        for (row, _), generation in zip(part, generations, strict=True):
            outcome = _parsed(generation, row.question_type)
            if isinstance(outcome, RejectedQuestion):
                self._reject(row, outcome, raw=generation.text)
            else:
                questions.append(self._question(row, outcome, generation))
        created = _insert(questions)
        self.tally.read += len(part)
        self.tally.created += created
        self.tally.existing += len(questions) - created
        self._advance()

    def _generate(self, part: list[tuple[_Row, GenerationItem]]) -> list[Generation]:
        if self.writer.generator is None:
            return [_baseline_generation(row) for row, _ in part]
        return self.writer.generator.generate([item for _, item in part], self.sampling)

    def _question(self, row: _Row, parsed: ParsedQuestion, generation: Generation) -> Question:
        return Question(
            image_id=row.image_id,
            text=parsed.text,
            text_sha256=text_digest(parsed.text),
            question_type=parsed.question_type,
            subcategory=row.subcategory,
            import_batch=self.batch,
            provenance={
                **self.provenance,
                "subcategory_id": row.subcategory.pk,
                "subcategory": row.subcategory.path,
                "tokens_in": generation.tokens_in,
                "tokens_out": generation.tokens_out,
                "finish_reason": generation.finish_reason,
                "seconds": generation.seconds,
            },
        )

    def _reject(self, row: _Row, rejection: RejectedQuestion, *, raw: str) -> None:
        self.tally.rejected += 1
        where = [row.image_id, row.subcategory.path, row.question_type]
        self._report.writerow([row.number, rejection.reason, rejection.detail, *where, _safe(raw)])
        if len(self.tally.errors) < BATCH_ERRORS_KEPT:
            self.tally.errors.append(
                {
                    "row": row.number,
                    "reason": str(rejection.reason),
                    "detail": rejection.detail,
                    "raw": _safe(raw[:RAW_KEPT_CHARS]),
                    "image": row.image_id,
                    "subcategory": row.subcategory.path,
                    "type": row.question_type,
                }
            )

    def _advance(self) -> None:
        _save_tally(self.batch, self.tally)
        if self.progress is not None:
            self.progress(self.tally.read, self.batch.rows_total or 0)


def _numbered_rows(
    images: list[int], subcategories: list[TaxonomyNode], types: tuple[str, ...]
) -> Iterator[_Row]:
    number = 0
    for image_id in images:
        for subcategory in subcategories:
            for question_type in types:
                number += 1
                yield _Row(number, image_id, subcategory, question_type)


def _chunks(items: Iterator[T] | list[T], size: int) -> Iterator[list[T]]:
    chunk: list[T] = []
    for item in items:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _image_problem(data: bytes | None) -> str:
    """Why the image cannot be shown to a model, or "" when it can."""
    if data is None:
        return "the image was deleted during the run"
    try:
        decode_image(data)
    except ImageRejected as exc:
        return f"image rejected: {exc}"
    return ""


def _parsed(generation: Generation, question_type: str) -> ParsedQuestion | RejectedQuestion:
    if generation.finish_reason == "length":
        detail = f"cut at {generation.tokens_out} new tokens (max_new_tokens)"
        return RejectedQuestion(RejectionReason.TRUNCATED, detail)
    return parse_question(generation.text, question_type=question_type)


def _baseline_generation(row: _Row) -> Generation:
    text = baseline_question(
        subcategory=row.subcategory.name,
        question_type=row.question_type,
        image_index=row.image_id,
    )
    return Generation(
        key=row.number,
        sample_index=0,
        text=text,
        tokens_in=0,
        tokens_out=len(text.split()),
        finish_reason="stop",
        seconds=0.0,
    )


def _insert(questions: list[Question]) -> int:
    """Store the questions an image does not have yet; return how many were new. Counted on
    the rows' own keys, so a text two rows (or an earlier import) share is stored once."""
    if not questions:
        return 0
    keys = Question.objects.filter(
        image_id__in={q.image_id for q in questions},
        text_sha256__in={q.text_sha256 for q in questions},
    )
    with transaction.atomic():
        before = keys.count()
        Question.objects.bulk_create(questions, ignore_conflicts=True)
        return keys.count() - before


def _safe(text: str) -> str:
    """``text`` as PostgreSQL's jsonb and a UTF-8 file can hold it: NUL and lone surrogates
    written as escapes (a rejected generation may hold anything)."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8").replace("\x00", "\\x00")
