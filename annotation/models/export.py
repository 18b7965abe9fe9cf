"""Dataset exports: a saved definition of what to export and the jobs that write it.

A job copies its definition into ``definition_snapshot`` when it is created, so editing the
definition later never changes what a running or finished job writes.
"""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

from spavl_web.jobs import job_lease

__all__ = [
    "EXPORT_LEASE",
    "ExportDefinition",
    "ExportFormat",
    "ExportJob",
    "ExportStatus",
    "SeparateMode",
]


# A running job whose worker has not reported for this long is taken to be dead: the recovery
# sweep sends its task again, and that delivery claims and resumes it (spavl_web.jobs).
EXPORT_LEASE = timedelta(seconds=settings.JOB_LEASE_S)


class ExportFormat(models.TextChoices):
    SPAVL_PARQUET = "spavl-parquet", "SPA-VL parquet (Hugging Face)"
    RLHF_JSON = "rlhf-json", "SPA-VL-RLHF training JSON + images (tar)"
    DPO_JSONL = "dpo-jsonl", "DPO JSONL + images (tar)"
    SAFE_RLHF_JSONL = "safe-rlhf-jsonl", "Safe RLHF JSONL (helpfulness and safety) + images (tar)"


class SeparateMode(models.TextChoices):
    EXCLUDE = "exclude", "exclude"
    SEPARATE = "separate", "write to a separate file"


def _default_final_labels() -> list[str]:
    return ["imported", "judge_only", "confirmed", "flipped", "adjudicated"]


def _default_formats() -> list[str]:
    return [ExportFormat.SPAVL_PARQUET]


class ExportDefinition(models.Model):
    """Which pairs to export, how labels map to rows, how to split them, and in which formats."""

    name = models.CharField(max_length=100, unique=True)
    description = models.TextField(blank=True)
    final_labels = models.JSONField(
        default=_default_final_labels,
        help_text='Final-label sources to include, e.g. ["confirmed", "flipped"] for '
        "people-confirmed pairs only.",
    )
    min_judge_confidence = models.FloatField(
        null=True, blank=True, help_text="Judge-only pairs need a judgement at least this sure."
    )
    judge_configuration = models.ForeignKey(
        "judging.JudgeConfiguration",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        help_text="Judgements used for the threshold and provenance; empty: any configuration.",
    )
    taxonomy_keys = models.JSONField(
        default=list,
        blank=True,
        help_text="Keys of domains, categories or subcategories; [] = all.",
    )
    question_types = models.JSONField(default=list, blank=True, help_text="[] = all.")
    exclude_flagged = models.BooleanField(
        default=False, help_text="Leave out judge-only pairs the judge flagged for review."
    )
    tie_mode = models.CharField(
        max_length=10, choices=SeparateMode.choices, default=SeparateMode.EXCLUDE
    )
    both_unsafe_mode = models.CharField(
        max_length=10, choices=SeparateMode.choices, default=SeparateMode.EXCLUDE
    )
    train_ratio = models.FloatField(default=0.8)
    validation_ratio = models.FloatField(default=0.1)
    test_ratio = models.FloatField(default=0.1)
    split_seed = models.IntegerField(default=0)
    near_duplicate_distance = models.PositiveSmallIntegerField(
        default=4, help_text="Images whose dHash differ in at most this many bits share a split."
    )
    formats = models.JSONField(default=_default_formats)
    include_provenance = models.BooleanField(default=False)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.CheckConstraint(
                condition=Q(train_ratio__gte=0, validation_ratio__gte=0, test_ratio__gte=0),
                name="export_definition_ratios_not_negative",
            ),
        ]

    def __str__(self) -> str:
        return self.name

    def format_choices(self) -> list[tuple[str, str]]:
        """The definition's formats as (value, label), or every format when it names none."""
        labels = dict(ExportFormat.choices)
        named = [(value, labels[value]) for value in self.formats if value in labels]
        return named or list(ExportFormat.choices)


class ExportStatus(models.TextChoices):
    QUEUED = "queued", "queued"
    RUNNING = "running", "running"
    FINISHED = "finished", "finished"
    FAILED = "failed", "failed"


class ExportJob(models.Model):
    """One export run in one format. ``files`` lists finished files only:
    ``[{"name": "data/train-00000-of-00001.parquet", "size": 123, "sha256": "..."}]``."""

    definition = models.ForeignKey(
        ExportDefinition, null=True, blank=True, on_delete=models.SET_NULL, related_name="jobs"
    )
    definition_snapshot = models.JSONField()
    format = models.CharField(max_length=16, choices=ExportFormat.choices)
    status = models.CharField(
        max_length=10, choices=ExportStatus.choices, default=ExportStatus.QUEUED
    )
    done = models.PositiveIntegerField(default=0)
    total = models.PositiveIntegerField(default=0)
    files = models.JSONField(default=list, blank=True)
    output_dir = models.CharField(max_length=500, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    heartbeat_at = models.DateTimeField(
        null=True, blank=True, help_text="Last sign of life of the worker running the job."
    )
    enqueued_at = models.DateTimeField(
        null=True, blank=True, help_text="When its task was last sent to the broker."
    )
    error = models.TextField(blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        permissions = [("run_export", "Can run dataset exports")]
        constraints = [
            models.CheckConstraint(
                condition=Q(done__lte=models.F("total")), name="export_job_done_within_total"
            ),
        ]

    def __str__(self) -> str:
        return f"export {self.pk} {self.format} ({self.status})"

    @property
    def is_active(self) -> bool:
        return self.status in {ExportStatus.QUEUED, ExportStatus.RUNNING}

    @property
    def lease_lapsed(self) -> bool:
        """Running, but its worker has gone quiet for longer than the lease."""
        quiet_since = self.heartbeat_at or self.started_at
        return self.status == ExportStatus.RUNNING and (
            quiet_since is None or quiet_since < timezone.now() - job_lease()
        )

    @property
    def percent(self) -> int:
        return int(100 * self.done / self.total) if self.total else 0

    def finished_file(self, name: str) -> dict[str, object] | None:
        """The recorded entry of a finished file, or None (never a file still being written)."""
        return next((entry for entry in self.files if entry.get("name") == name), None)
