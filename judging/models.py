"""Judge configurations, runs, batches and judgements (the model's verdicts on pairs)."""

from __future__ import annotations

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
        if not self.is_active:
            return None
        activity = self._activity()
        cutoff = timezone.now() - job_lease()
        last = activity["last_heartbeat"] or self.started_at
        if activity["running_batches"]:
            return StallInfo("no heartbeat", last) if last is None or last < cutoff else None
        waiting_since = max(filter(None, [last, activity["last_sent"], self.created_at]))
        return StallInfo("waiting for a judge worker", last) if waiting_since < cutoff else None

    def _activity(self) -> dict[str, Any]:
        names = _activity_aggregates().keys()
        if hasattr(self, "activity_running_batches"):
            return {name: getattr(self, f"activity_{name}") for name in names}
        return self.batches.aggregate(**_activity_aggregates())

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
