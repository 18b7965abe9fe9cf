"""The dataset: harm taxonomy, images, questions, responses, pairs, and the imports that made them.

Labels point at taxonomy nodes, never copy their strings, so renaming or moving a node loses
nothing. Text is stored exactly as imported (leading whitespace, quotes and ``Q:`` prefixes are
part of the SPA-VL data); a SHA-256 of it backs the uniqueness constraints, because PostgreSQL
cannot index arbitrarily long text.
"""

from __future__ import annotations

import hashlib

from django.conf import settings
from django.db import models
from django.db.models import Q, Value
from django.db.models.functions import Greatest, Least

__all__ = [
    "FinalLabel",
    "FinalLabelChange",
    "FinishReason",
    "Image",
    "ImageFormat",
    "ImportBatch",
    "ImportFormat",
    "ImportStatus",
    "LabelChange",
    "Pair",
    "PairOrigin",
    "PairQuerySet",
    "Question",
    "QuestionType",
    "Response",
    "AxisLabel",
    "Severity",
    "Side",
    "TaxonomyAction",
    "TaxonomyChange",
    "TaxonomyLevel",
    "TaxonomyNode",
    "TaxonomyNodeQuerySet",
    "text_digest",
]


def text_digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


# Database defaults for the columns raw writers (COPY, INSERT naming only what they fill) skip.
EMPTY_JSON = Value({}, output_field=models.JSONField())


class TaxonomyLevel(models.IntegerChoices):
    DOMAIN = 1, "domain (class1)"
    CATEGORY = 2, "category (class2)"
    SUBCATEGORY = 3, "subcategory (class3)"


class TaxonomyNodeQuerySet(models.QuerySet["TaxonomyNode"]):
    def active(self) -> TaxonomyNodeQuerySet:
        return self.filter(retired_at__isnull=True)

    def subcategories(self) -> TaxonomyNodeQuerySet:
        return self.filter(level=TaxonomyLevel.SUBCATEGORY)

    def with_paths(self) -> TaxonomyNodeQuerySet:
        return self.select_related("parent__parent")


class TaxonomyNode(models.Model):
    """One node of the three-level harm taxonomy; ``key`` is the dataset's exact string."""

    level = models.PositiveSmallIntegerField(choices=TaxonomyLevel.choices)
    key = models.CharField(max_length=200)
    name = models.CharField("display name", max_length=200)
    parent = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.PROTECT, related_name="children"
    )
    retired_at = models.DateTimeField(null=True, blank=True)
    merged_into = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.PROTECT, related_name="merged_from"
    )

    objects = TaxonomyNodeQuerySet.as_manager()

    class Meta:
        ordering = ["level", "key"]
        constraints = [
            # Domains have no parent; every other level has one.
            models.CheckConstraint(
                condition=Q(level=TaxonomyLevel.DOMAIN, parent__isnull=True)
                | Q(level__gt=TaxonomyLevel.DOMAIN, parent__isnull=False),
                name="taxonomy_parent_matches_level",
            ),
            # Keys are unique per level among live nodes: a retired or merged key may come back.
            models.UniqueConstraint(
                fields=["level", "key"],
                condition=Q(retired_at__isnull=True),
                name="taxonomy_unique_live_key_per_level",
            ),
        ]

    def __str__(self) -> str:
        return self.path

    @property
    def path(self) -> str:
        parts = [self.key]
        node = self.parent
        while node is not None:
            parts.append(node.key)
            node = node.parent
        return " / ".join(reversed(parts))

    @property
    def is_retired(self) -> bool:
        return self.retired_at is not None

    def class_keys(self) -> tuple[str, str, str]:
        """(class1, class2, class3) of a subcategory, as the dataset spells them."""
        if self.level != TaxonomyLevel.SUBCATEGORY or self.parent is None:
            raise ValueError(f"{self.key!r} is not a subcategory")
        category = self.parent
        assert category.parent is not None
        return category.parent.key, category.key, self.key


class TaxonomyAction(models.TextChoices):
    LOAD = "load", "load"
    CREATE = "create", "create"
    RENAME = "rename", "rename"
    MOVE = "move", "move"
    MERGE = "merge", "merge"
    RETIRE = "retire", "retire"
    RESTORE = "restore", "restore"


class TaxonomyChange(models.Model):
    """One edit of the taxonomy. The newest ``version`` is the taxonomy's current version."""

    version = models.PositiveIntegerField(unique=True)
    action = models.CharField(max_length=16, choices=TaxonomyAction.choices)
    node = models.ForeignKey(TaxonomyNode, null=True, on_delete=models.PROTECT, related_name="+")
    old_value = models.CharField(max_length=500, blank=True)
    new_value = models.CharField(max_length=500, blank=True)
    changed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    changed_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-version"]

    def __str__(self) -> str:
        return f"v{self.version} {self.action}: {self.old_value} → {self.new_value}"

    @classmethod
    def current_version(cls) -> int:
        latest = cls.objects.order_by("-version").values_list("version", flat=True).first()
        return latest or 0


class ImageFormat(models.TextChoices):
    JPEG = "JPEG", "JPEG"
    PNG = "PNG", "PNG"
    WEBP = "WEBP", "WebP"
    GIF = "GIF", "GIF"


class Image(models.Model):
    """An image stored once by content. ``data`` is the original bytes, never re-encoded."""

    sha256 = models.CharField(max_length=64, unique=True)
    data = models.BinaryField()
    format = models.CharField(max_length=8, choices=ImageFormat.choices)
    width = models.PositiveIntegerField()
    height = models.PositiveIntegerField()
    byte_size = models.PositiveIntegerField()
    # 64-bit difference hash, stored signed so it fits PostgreSQL's bigint.
    dhash = models.BigIntegerField(db_index=True)
    source_name = models.CharField(max_length=500, blank=True)
    is_placeholder = models.BooleanField(
        default=False, help_text="Made by the importer because the source row had no image."
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.CheckConstraint(condition=Q(width__gt=0, height__gt=0), name="image_has_size"),
        ]

    def __str__(self) -> str:
        return self.source_name or self.sha256[:12]

    @property
    def content_type(self) -> str:
        return f"image/{self.format.lower()}"


class QuestionType(models.TextChoices):
    EASY = "easy", "easy question"
    HARD_QUESTION = "hardq", "hard question"
    HARD_STATEMENT = "hards", "hard statement"
    UNKNOWN = "unknown", "unknown"


class Question(models.Model):
    image = models.ForeignKey(Image, on_delete=models.PROTECT, related_name="questions")
    text = models.TextField()
    text_sha256 = models.CharField(max_length=64)
    question_type = models.CharField(
        max_length=8, choices=QuestionType.choices, default=QuestionType.UNKNOWN
    )
    subcategory = models.ForeignKey(
        TaxonomyNode,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="questions",
        limit_choices_to={"level": TaxonomyLevel.SUBCATEGORY},
    )
    taxonomy_version = models.PositiveIntegerField(
        default=0, help_text="Taxonomy version when the label was last set."
    )
    import_batch = models.ForeignKey(
        "ImportBatch", null=True, blank=True, on_delete=models.SET_NULL, related_name="questions"
    )
    # The source row's columns that no field holds, for a row that made no pair.
    provenance = models.JSONField(default=dict, blank=True, db_default=EMPTY_JSON)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["image", "text_sha256"], name="question_unique_text"),
        ]
        indexes = [models.Index(fields=["subcategory", "question_type"])]

    def __str__(self) -> str:
        return self.text.strip()[:80]


class LabelChange(models.Model):
    """History of a question's taxonomy label: every change, with who, when and why."""

    question = models.ForeignKey(Question, on_delete=models.CASCADE, related_name="label_changes")
    old_subcategory = models.ForeignKey(
        TaxonomyNode, null=True, on_delete=models.PROTECT, related_name="+"
    )
    new_subcategory = models.ForeignKey(
        TaxonomyNode, null=True, on_delete=models.PROTECT, related_name="+"
    )
    taxonomy_version = models.PositiveIntegerField()
    reason = models.CharField(max_length=200)
    changed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    changed_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-changed_at", "-id"]

    def __str__(self) -> str:
        return f"question {self.question_id}: {self.old_subcategory_id} → {self.new_subcategory_id}"


class FinishReason(models.TextChoices):
    STOP = "stop", "stopped"
    LENGTH = "length", "truncated at max new tokens"


class Response(models.Model):
    question = models.ForeignKey(Question, on_delete=models.CASCADE, related_name="responses")
    model_name = models.CharField(max_length=200, blank=True, help_text="Empty when unknown.")
    text = models.TextField()
    text_sha256 = models.CharField(max_length=64)
    import_batch = models.ForeignKey(
        "ImportBatch", null=True, blank=True, on_delete=models.SET_NULL, related_name="responses"
    )
    # Provenance of a generated response (empty for imported ones): what generated it, which
    # of its samples per question it is, and the generation's own numbers. Database defaults
    # keep the importers' raw INSERTs, which name only the columns they fill, working.
    generation_configuration = models.ForeignKey(
        "judging.GenerationConfiguration",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="responses",
    )
    sample_index = models.PositiveSmallIntegerField(null=True, blank=True)
    tokens_in = models.PositiveIntegerField(null=True, blank=True)
    tokens_out = models.PositiveIntegerField(null=True, blank=True)
    finish_reason = models.CharField(
        max_length=8, choices=FinishReason.choices, blank=True, default="", db_default=""
    )
    generation_seconds = models.FloatField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["question", "model_name", "text_sha256"], name="response_unique_text"
            ),
            # One response per question, configuration and sample: a re-run creates nothing.
            models.UniqueConstraint(
                fields=["question", "generation_configuration", "sample_index"],
                condition=Q(generation_configuration__isnull=False),
                name="response_unique_generation",
            ),
            models.CheckConstraint(
                condition=Q(generation_configuration__isnull=True, sample_index__isnull=True)
                | Q(generation_configuration__isnull=False, sample_index__isnull=False),
                name="response_generated_has_sample_index",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.model_name or 'unknown model'}: {self.text.strip()[:60]}"


class PairOrigin(models.TextChoices):
    IMPORTED = "imported", "imported with chosen/rejected"
    SAMPLED = "sampled", "sampled"
    # A person's safe response (chosen) against the less bad of two unsafe ones; see
    # annotation.services.rewrites. Exportable only once an adjudicator accepts it.
    REWRITE = "rewrite", "rewritten by a person"


class FinalLabel(models.TextChoices):
    """How a pair's final label was reached. The rules that set it live in the review services."""

    NONE = "", "no final label yet"
    IMPORTED = "imported", "imported chosen/rejected"
    JUDGE_ONLY = "judge_only", "judge only"
    CONFIRMED = "confirmed", "confirmed by people"
    FLIPPED = "flipped", "flipped by people"
    BOTH_UNSAFE = "both_unsafe", "both unsafe"
    TIE = "tie", "tie"
    ADJUDICATED = "adjudicated", "adjudicated"
    EXCLUDED = "excluded", "excluded"


class Side(models.TextChoices):
    A = "a", "response A"
    B = "b", "response B"


class Severity(models.TextChoices):
    """How harmful an unsafe response is (BeaverTails-V / Safe RLHF-V's three levels)."""

    MINOR = "minor", "minor"
    MODERATE = "moderate", "moderate"
    SEVERE = "severe", "severe"


class AxisLabel(models.TextChoices):
    """A pair's final label on one preference axis (safer, more helpful)."""

    NONE = "", "not decided"
    A = "a", "response A"
    B = "b", "response B"
    TIE = "tie", "tie"


class PairQuerySet(models.QuerySet["Pair"]):
    def labelled(self) -> PairQuerySet:
        """Pairs whose final label names a chosen response (exportable as chosen/rejected)."""
        return self.exclude(final_chosen="").exclude_unaccepted_rewrites()

    def exclude_unaccepted_rewrites(self) -> PairQuerySet:
        """Drop rewrite pairs no adjudicator accepted: a person's text is never exported on
        anyone's word but theirs, not even a judge's label a judge run might give it."""
        return self.exclude(Q(origin=PairOrigin.REWRITE) & ~Q(final_label=FinalLabel.ADJUDICATED))

    def for_display(self) -> PairQuerySet:
        return self.select_related(
            "question__subcategory__parent__parent", "response_a", "response_b"
        ).defer("question__image__data")


class Pair(models.Model):
    """Two different responses to one question.

    For imported pairs the source already decided: ``response_a`` is the chosen response and
    ``response_b`` the rejected one. Sampled pairs carry no decision; their order means nothing.
    """

    question = models.ForeignKey(Question, on_delete=models.CASCADE, related_name="pairs")
    response_a = models.ForeignKey(Response, on_delete=models.PROTECT, related_name="+")
    response_b = models.ForeignKey(Response, on_delete=models.PROTECT, related_name="+")
    origin = models.CharField(max_length=16, choices=PairOrigin.choices)
    import_batch = models.ForeignKey(
        "ImportBatch", null=True, blank=True, on_delete=models.SET_NULL, related_name="pairs"
    )
    # The source's own id for the row (kept on export where unique) and its other columns.
    source_id = models.CharField(max_length=200, blank=True, db_index=True, db_default="")
    provenance = models.JSONField(default=dict, blank=True, db_default=EMPTY_JSON)
    created_at = models.DateTimeField(auto_now_add=True)
    # The final label: how it was reached and, where it names one, the chosen response.
    final_label = models.CharField(
        max_length=16, choices=FinalLabel.choices, blank=True, default=FinalLabel.NONE
    )
    final_chosen = models.CharField(max_length=1, choices=Side.choices, blank=True)
    final_label_at = models.DateTimeField(null=True, blank=True)
    # The final labels of two-axis reviews and per-response safety (see
    # annotation.services.final_label): empty / None where no review settled them.
    final_safer = models.CharField(
        max_length=3, choices=AxisLabel.choices, blank=True, default="", db_default=""
    )
    final_helpful = models.CharField(
        max_length=3, choices=AxisLabel.choices, blank=True, default="", db_default=""
    )
    final_a_safe = models.BooleanField(null=True, blank=True)
    final_b_safe = models.BooleanField(null=True, blank=True)
    final_a_severity = models.CharField(
        max_length=8, choices=Severity.choices, blank=True, default="", db_default=""
    )
    final_b_severity = models.CharField(
        max_length=8, choices=Severity.choices, blank=True, default="", db_default=""
    )

    objects = PairQuerySet.as_manager()

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=~Q(response_a=models.F("response_b")), name="pair_two_responses"
            ),
            models.CheckConstraint(
                condition=Q(final_chosen="")
                | Q(
                    final_label__in=[
                        "imported",
                        "judge_only",
                        "confirmed",
                        "flipped",
                        "adjudicated",
                    ]
                ),
                name="pair_chosen_only_with_a_deciding_label",
            ),
            models.CheckConstraint(
                condition=(Q(final_a_safe=False) | Q(final_a_severity=""))
                & (Q(final_b_safe=False) | Q(final_b_severity="")),
                name="pair_severity_only_when_unsafe",
            ),
            # {a, b} once, whichever order it was created in.
            models.UniqueConstraint(
                Least("response_a", "response_b"),
                Greatest("response_a", "response_b"),
                name="pair_unique_responses",
            ),
        ]

    def __str__(self) -> str:
        return f"pair {self.pk}"

    @property
    def has_source_verdict(self) -> bool:
        return self.origin == PairOrigin.IMPORTED


class FinalLabelChange(models.Model):
    """History of a pair's final label: who, when, old, new, why."""

    pair = models.ForeignKey(Pair, on_delete=models.CASCADE, related_name="final_label_changes")
    old_label = models.CharField(max_length=16, choices=FinalLabel.choices, blank=True)
    old_chosen = models.CharField(max_length=1, choices=Side.choices, blank=True)
    new_label = models.CharField(max_length=16, choices=FinalLabel.choices, blank=True)
    new_chosen = models.CharField(max_length=1, choices=Side.choices, blank=True)
    reason = models.CharField(max_length=300)
    changed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    changed_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-changed_at", "-id"]

    def __str__(self) -> str:
        return f"pair {self.pair_id}: {self.old_label or '-'} → {self.new_label or '-'}"


class ImportFormat(models.TextChoices):
    SPAVL_PARQUET = "spavl-parquet", "SPA-VL parquet"
    RLHF_JSON = "rlhf-json", "SPA-VL-RLHF training JSON"
    EVAL_JSON = "eval-json", "HarmEval/HelpEval JSON"
    RESPONSES_JSONL = "responses-jsonl", "responses JSONL"
    HF_PARQUET = "hf-parquet", "any preference dataset (parquet or JSONL, column mapping)"
    GENERATED_QUESTIONS = "generated-questions", "questions written by a model"


class ImportStatus(models.TextChoices):
    QUEUED = "queued", "queued"
    RUNNING = "running", "running"
    FINISHED = "finished", "finished"
    FAILED = "failed", "failed (nothing imported)"


class ImportBatch(models.Model):
    file_name = models.CharField(max_length=500)
    sha256 = models.CharField(max_length=64)
    format = models.CharField(max_length=32, choices=ImportFormat.choices)
    split = models.CharField(max_length=32, blank=True)
    status = models.CharField(
        max_length=16, choices=ImportStatus.choices, default=ImportStatus.RUNNING
    )
    # What the import was asked for (column mapping, question type, ...), as given.
    options = models.JSONField(default=dict, blank=True)
    rows_total = models.PositiveIntegerField(
        null=True, blank=True, help_text="Rows in the file, where the format says up front."
    )
    rows_read = models.PositiveIntegerField(default=0)
    rows_created = models.PositiveIntegerField(default=0)
    rows_existing = models.PositiveIntegerField(default=0)
    rows_rejected = models.PositiveIntegerField(default=0)
    # [{"row": 12, "reason": "..."}], capped; the full list goes to the report file.
    errors = models.JSONField(default=list, blank=True)
    error_message = models.TextField(blank=True)
    report_path = models.CharField(max_length=500, blank=True)
    started_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    started_at = models.DateTimeField(auto_now_add=True)
    # When its task was last sent (API imports): the recovery sweep resends a lost one.
    enqueued_at = models.DateTimeField(null=True, blank=True)
    # The importing process's sign of life; the recovery sweep fails a batch quiet too long.
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-started_at"]
        verbose_name_plural = "import batches"

    def __str__(self) -> str:
        return f"{self.format} {self.file_name} ({self.status})"
