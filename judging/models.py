"""Judge configurations, runs, batches and judgements (the model's verdicts on pairs), and the
generation runs that collect responses from local vision-language models."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

from spavl_web.jobs import job_lease


class JudgeBackend(models.TextChoices):
    BASELINE = "baseline", "baseline (heuristics, no model)"
    TRANSFORMERS = "transformers", "transformers (vision-language model)"


class JudgeConfiguration(models.Model):
    """What produced a judgement. Library versions are recorded per judgement, not here, so a
    library upgrade does not silently start a new configuration."""

    backend = models.CharField(max_length=16, choices=JudgeBackend.choices)
    model_id = models.CharField(max_length=300, blank=True)
    model_revision = models.CharField(max_length=100, blank=True)
    guard_model_id = models.CharField(max_length=300, blank=True)
    prompt_version = models.CharField(max_length=50)
    dtype = models.CharField(max_length=20, blank=True)
    max_pixels = models.PositiveIntegerField(default=448 * 448)
    # The model's family ("qwen", "llava", ...; see judging.families): a judge of the family of
    # one of a pair's responses may prefer its own kin.
    model_family = models.CharField(max_length=50, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=[
                    "backend",
                    "model_id",
                    "model_revision",
                    "guard_model_id",
                    "prompt_version",
                    "dtype",
                    "max_pixels",
                ],
                name="judge_configuration_unique",
            ),
        ]

    def __str__(self) -> str:
        if self.backend == JudgeBackend.BASELINE:
            return f"baseline (no model), prompt {self.prompt_version}"
        return (
            f"{self.model_id}@{self.model_revision or 'latest'} {self.dtype} {self.prompt_version}"
        )


@dataclass(frozen=True)
class StallInfo:
    reason: str
    last_heartbeat: datetime | None


class RunStatus(models.TextChoices):
    QUEUED = "queued", "queued"
    RUNNING = "running", "running"
    FINISHED = "finished", "finished"
    CANCELLED = "cancelled", "cancelled"
    FAILED = "failed", "failed"


def _activity_aggregates(prefix: str = "") -> dict[str, models.Aggregate]:
    running = Q(**{f"{prefix}status": BatchStatus.RUNNING})
    return {
        "last_heartbeat": models.Max(f"{prefix}heartbeat_at"),
        "running_batches": models.Count(f"{prefix}pk", filter=running),
        "last_sent": models.Max(f"{prefix}enqueued_at"),
    }


def _stall_of(run: JudgeRun | GenerationRun, *, worker: str) -> StallInfo | None:
    if not run.is_active:
        return None
    activity = _activity_of(run)
    cutoff = timezone.now() - job_lease()
    last = activity["last_heartbeat"] or run.started_at
    if activity["running_batches"]:
        return StallInfo("no heartbeat", last) if last is None or last < cutoff else None
    waiting_since = max(filter(None, [last, activity["last_sent"], run.created_at]))
    return StallInfo(f"waiting for {worker}", last) if waiting_since < cutoff else None


def _activity_of(run: JudgeRun | GenerationRun) -> dict[str, Any]:
    names = _activity_aggregates().keys()
    if hasattr(run, "activity_running_batches"):
        return {name: getattr(run, f"activity_{name}") for name in names}
    return run.batches.aggregate(**_activity_aggregates())


class JudgeRunQuerySet(models.QuerySet["JudgeRun"]):
    def with_activity(self) -> JudgeRunQuerySet:
        """Annotate what ``JudgeRun.stall`` needs, so a list of runs asks once."""
        return self.annotate(
            **{f"activity_{k}": v for k, v in _activity_aggregates("batches__").items()}
        )


class JudgeRun(models.Model):
    # The judge asked for, as typed: recorded without loading anything, so the web process never
    # imports torch. Blank revision and dtype mean the latest revision and the device's default.
    backend = models.CharField(max_length=16, choices=JudgeBackend.choices)
    model = models.CharField(max_length=300, blank=True)
    revision = models.CharField(max_length=100, blank=True)
    dtype = models.CharField(max_length=20, blank=True)
    max_pixels = models.PositiveIntegerField(default=448 * 448)
    guard_model = models.CharField(max_length=300, blank=True)
    # What a worker loaded for it (resolved revision, dtype, prompt version): set by the first
    # batch, empty until then and for a run whose judge could not be loaded.
    configuration = models.ForeignKey(
        JudgeConfiguration, null=True, blank=True, on_delete=models.PROTECT, related_name="runs"
    )
    status = models.CharField(max_length=16, choices=RunStatus.choices, default=RunStatus.QUEUED)
    pair_selection = models.CharField(max_length=16, default="unjudged")
    total = models.PositiveIntegerField(default=0)
    done = models.PositiveIntegerField(default=0)
    failed = models.PositiveIntegerField(default=0)
    pairs_per_second = models.FloatField(null=True, blank=True)
    # Verdict summary, added up per batch under the run's row lock so the runs page stays O(1).
    prefers_a_count = models.PositiveIntegerField(default=0)
    decided_by_safety_count = models.PositiveIntegerField(default=0)
    needs_review_count = models.PositiveIntegerField(default=0)
    review_reason_counts = models.JSONField(default=dict, blank=True)
    label_mass_sum = models.FloatField(default=0.0)
    error = models.TextField(blank=True)
    started_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    objects = JudgeRunQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.CheckConstraint(
                condition=Q(done__lte=models.F("total")), name="judge_run_done_within_total"
            ),
            models.CheckConstraint(
                condition=~Q(backend=JudgeBackend.TRANSFORMERS, model=""),
                name="judge_run_transformers_has_model",
            ),
        ]

    def __str__(self) -> str:
        return f"run {self.pk} ({self.status})"

    @property
    def judge_description(self) -> str:
        """The configuration once a worker resolved it, otherwise what was asked for."""
        if self.configuration is not None:
            return str(self.configuration)
        if self.backend == JudgeBackend.BASELINE:
            return "baseline (no model)"
        dtype = f" {self.dtype}" if self.dtype else ""
        return f"{self.model}@{self.revision or 'latest'}{dtype} (requested)"

    @property
    def is_active(self) -> bool:
        return self.status in {RunStatus.QUEUED, RunStatus.RUNNING}

    @property
    def processed(self) -> int:
        return self.done + self.failed

    @property
    def percent_processed(self) -> float:
        return 100.0 * self.processed / self.total if self.total else 100.0

    @property
    def share_preferring_a(self) -> float | None:
        return self.prefers_a_count / self.done if self.done else None

    @property
    def mean_label_mass(self) -> float | None:
        return self.label_mass_sum / self.done if self.done else None

    @property
    def throughput(self) -> float | None:
        """Pairs per second: final once the run ended, so far while it runs."""
        if self.finished_at is not None or self.started_at is None:
            return self.pairs_per_second
        elapsed = (timezone.now() - self.started_at).total_seconds()
        return self.processed / elapsed if elapsed > 0 and self.processed else None

    def stall(self) -> StallInfo | None:
        """Why an active run makes no progress, for the runs page, or None: a batch whose
        worker stopped heartbeating, or batches waiting with no worker taking them. Reads
        the annotations of ``JudgeRunQuerySet.with_activity`` when the run has them."""
        return _stall_of(self, worker="a judge worker")

    def batch_status_counts(self) -> dict[str, int]:
        rows = self.batches.order_by().values_list("status").annotate(count=models.Count("pk"))
        return dict(rows)

    def review_reasons_by_count(self) -> list[tuple[str, int]]:
        return sorted(self.review_reason_counts.items(), key=lambda item: (-item[1], item[0]))


class BatchStatus(models.TextChoices):
    PENDING = "pending", "pending"
    RUNNING = "running", "running"
    DONE = "done", "done"
    FAILED = "failed", "failed"
    CANCELLED = "cancelled", "cancelled"


class JudgeBatch(models.Model):
    """One Celery task's worth of pairs. ``attempts`` counts deliveries, so a batch that kills
    its worker every time (out of memory) stops being redelivered."""

    run = models.ForeignKey(JudgeRun, on_delete=models.CASCADE, related_name="batches")
    index = models.PositiveIntegerField()
    pair_ids = models.JSONField()
    status = models.CharField(
        max_length=16, choices=BatchStatus.choices, default=BatchStatus.PENDING
    )
    attempts = models.PositiveSmallIntegerField(default=0)
    error = models.TextField(blank=True)
    # Sign of life of the worker judging it (the database's clock; see spavl_web.jobs), and
    # when its task was last sent, so the recovery sweep can tell dead and lost batches.
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    enqueued_at = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["run", "index"]
        constraints = [
            models.UniqueConstraint(fields=["run", "index"], name="judge_batch_unique_index"),
        ]

    def __str__(self) -> str:
        return f"run {self.run_id} batch {self.index} ({self.status})"


class DecidedBy(models.TextChoices):
    PREFERENCE = "preference", "preference"
    SAFETY = "safety", "safety first"


class JudgementStatus(models.TextChoices):
    OK = "ok", "judged"
    FAILED = "failed", "failed"


class JudgementQuerySet(models.QuerySet["Judgement"]):
    def succeeded(self) -> JudgementQuerySet:
        return self.filter(status=JudgementStatus.OK)

    def needing_review(self) -> JudgementQuerySet:
        return self.succeeded().filter(needs_review=True)


class Judgement(models.Model):
    """The judge's verdict on one pair under one configuration; probabilities are of A being
    the better response, combined over both presentation orders."""

    pair = models.ForeignKey("annotation.Pair", on_delete=models.CASCADE, related_name="judgements")
    configuration = models.ForeignKey(
        JudgeConfiguration, on_delete=models.PROTECT, related_name="judgements"
    )
    run = models.ForeignKey(
        JudgeRun, null=True, blank=True, on_delete=models.SET_NULL, related_name="judgements"
    )
    status = models.CharField(max_length=8, choices=JudgementStatus.choices)
    error = models.TextField(blank=True)
    p_a_better = models.FloatField(null=True, blank=True)
    p_a_first = models.FloatField(null=True, blank=True)
    p_a_second = models.FloatField(null=True, blank=True)
    position_bias = models.FloatField(null=True, blank=True)
    label_mass = models.FloatField(null=True, blank=True)
    orders_agree = models.BooleanField(null=True, blank=True)
    p_unsafe_a = models.FloatField(null=True, blank=True)
    p_unsafe_b = models.FloatField(null=True, blank=True)
    decided_by = models.CharField(max_length=16, choices=DecidedBy.choices, blank=True)
    prefers_a = models.BooleanField(null=True, blank=True)
    needs_review = models.BooleanField(default=False)
    review_reasons = models.JSONField(default=list, blank=True)
    library_versions = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    objects = JudgementQuerySet.as_manager()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["pair", "configuration"], name="judgement_one_per_pair_and_configuration"
            ),
            models.CheckConstraint(
                condition=Q(status=JudgementStatus.FAILED)
                | Q(p_a_better__gte=0, p_a_better__lte=1, prefers_a__isnull=False),
                name="judgement_ok_has_probability",
            ),
        ]
        indexes = [
            models.Index(
                fields=["pair"], condition=Q(needs_review=True), name="judgement_needs_review"
            ),
            # Each pair's latest usable judgement, in order and with what the agreement
            # dashboard reads, so its DISTINCT ON is one index-only scan (PostgreSQL; SQLite
            # gets the index without the included columns).
            models.Index(
                fields=["pair", "-created_at", "-id"],
                include=[
                    "run",
                    "configuration",
                    "p_a_better",
                    "p_a_first",
                    "p_a_second",
                    "prefers_a",
                    "p_unsafe_a",
                    "p_unsafe_b",
                ],
                condition=Q(status=JudgementStatus.OK),
                name="judgement_latest_ok",
            ),
        ]

    def __str__(self) -> str:
        return f"judgement of pair {self.pair_id} by {self.configuration_id}"

    @property
    def confidence(self) -> float | None:
        """Probability of the side the judge prefers."""
        if self.p_a_better is None:
            return None
        return max(self.p_a_better, 1 - self.p_a_better)


# Response generation: the second stage of SPA-VL (local vision-language models answering the
# questions), on the judge's machinery: runs snapshot their work into batches that GPU workers
# on the `generate` queue take, with attempts counted and the recovery sweep behind them.


class GenerationConfiguration(models.Model):
    """What produced a generated response: the model as a worker loaded it (resolved
    revision), the dtype asked for, the prompt template and the full sampling config."""

    model_id = models.CharField(max_length=300)
    model_revision = models.CharField(max_length=100, blank=True)
    model_type = models.CharField(max_length=100, blank=True)
    model_family = models.CharField(max_length=50, blank=True)
    dtype = models.CharField(max_length=20, blank=True)
    prompt_version = models.CharField(max_length=50)
    config = models.JSONField()
    # Of the config's canonical JSON: equal configs are one row whatever the key order.
    config_sha256 = models.CharField(max_length=64)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["model_id", "model_revision", "dtype", "prompt_version", "config_sha256"],
                name="generation_configuration_unique",
            ),
        ]

    def __str__(self) -> str:
        dtype = f" {self.dtype}" if self.dtype else ""
        return f"{self.model_id}@{self.model_revision or 'latest'}{dtype} {self.prompt_version}"

    @staticmethod
    def digest(config: dict[str, Any]) -> str:
        canonical = json.dumps(config, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()


class QuestionSelection(models.TextChoices):
    ALL = "all", "all questions"
    MISSING = "missing", "questions without a response from the model"


class GenerationRunQuerySet(models.QuerySet["GenerationRun"]):
    def with_activity(self) -> GenerationRunQuerySet:
        """Annotate what ``GenerationRun.stall`` needs, so a list of runs asks once."""
        return self.annotate(
            **{f"activity_{k}": v for k, v in _activity_aggregates("batches__").items()}
        )


class GenerationRun(models.Model):
    """Responses of one or more models to a selection of questions, ``samples`` per model and
    question. ``total`` counts (question, model, sample) items; each item ends as created
    (a new response), existing (stored by an earlier run), duplicate or failed."""

    # [{"model": hub id or local path, "revision": "" for the latest}], as typed: nothing is
    # loaded in the web process. A batch's model_index points into it.
    requested_models = models.JSONField()
    dtype = models.CharField(max_length=20, blank=True)
    question_selection = models.CharField(
        max_length=16, choices=QuestionSelection.choices, default=QuestionSelection.MISSING
    )
    taxonomy_node_ids = models.JSONField(default=list, blank=True)
    question_types = models.JSONField(default=list, blank=True)
    import_batch = models.ForeignKey(
        "annotation.ImportBatch", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    samples = models.PositiveSmallIntegerField(default=1)
    sampling = models.JSONField(help_text="SamplingSettings.as_config() of the run.")
    status = models.CharField(max_length=16, choices=RunStatus.choices, default=RunStatus.QUEUED)
    total = models.PositiveIntegerField(default=0)
    done = models.PositiveIntegerField(default=0)
    failed = models.PositiveIntegerField(default=0)
    created = models.PositiveIntegerField(default=0)
    existing = models.PositiveIntegerField(default=0)
    # Generated, but the same text as another response of that model to the question (greedy
    # samples, say): a pair needs two texts, so it is not stored twice.
    duplicates = models.PositiveIntegerField(default=0)
    truncated = models.PositiveIntegerField(default=0)
    tokens_out = models.PositiveBigIntegerField(default=0)
    generation_seconds = models.FloatField(default=0.0)
    responses_per_second = models.FloatField(null=True, blank=True)
    tokens_per_second = models.FloatField(null=True, blank=True)
    error = models.TextField(blank=True)
    started_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    objects = GenerationRunQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.CheckConstraint(
                condition=Q(done__lte=models.F("total")), name="generation_run_done_within_total"
            ),
            models.CheckConstraint(condition=Q(samples__gte=1), name="generation_run_samples"),
        ]

    def __str__(self) -> str:
        return f"generation run {self.pk} ({self.status})"

    @property
    def model_names(self) -> list[str]:
        return [entry["model"] for entry in self.requested_models]

    @property
    def models_description(self) -> str:
        return ", ".join(
            f"{entry['model']}@{entry['revision']}" if entry.get("revision") else entry["model"]
            for entry in self.requested_models
        )

    @property
    def is_active(self) -> bool:
        return self.status in {RunStatus.QUEUED, RunStatus.RUNNING}

    @property
    def processed(self) -> int:
        return self.done + self.failed

    @property
    def percent_processed(self) -> float:
        return 100.0 * self.processed / self.total if self.total else 100.0

    @property
    def generated(self) -> int:
        """Items generated by this run (those found stored already were not generated)."""
        return self.done - self.existing

    @property
    def share_truncated(self) -> float | None:
        return self.truncated / self.generated if self.generated else None

    @property
    def throughput(self) -> tuple[float | None, float | None]:
        """(responses/s, output tokens/s): final once the run ended, so far while it runs."""
        if self.finished_at is not None or self.started_at is None:
            return self.responses_per_second, self.tokens_per_second
        elapsed = (timezone.now() - self.started_at).total_seconds()
        if elapsed <= 0 or not self.generated:
            return None, None
        return self.generated / elapsed, self.tokens_out / elapsed

    def stall(self) -> StallInfo | None:
        """As ``JudgeRun.stall``, for the generate workers."""
        return _stall_of(self, worker="a generate worker")


class GenerationBatch(models.Model):
    """One Celery task's worth of generation: one model, some questions, every sample of each.
    ``attempts`` counts deliveries, as for a judge batch."""

    run = models.ForeignKey(GenerationRun, on_delete=models.CASCADE, related_name="batches")
    index = models.PositiveIntegerField()
    model_index = models.PositiveSmallIntegerField()
    question_ids = models.JSONField()
    # What the worker loaded for the batch's model; later batches of that model load the same.
    configuration = models.ForeignKey(
        GenerationConfiguration, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    status = models.CharField(
        max_length=16, choices=BatchStatus.choices, default=BatchStatus.PENDING
    )
    attempts = models.PositiveSmallIntegerField(default=0)
    error = models.TextField(blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    enqueued_at = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["run", "index"]
        constraints = [
            models.UniqueConstraint(fields=["run", "index"], name="generation_batch_unique_index"),
        ]

    def __str__(self) -> str:
        return f"generation run {self.run_id} batch {self.index} ({self.status})"
