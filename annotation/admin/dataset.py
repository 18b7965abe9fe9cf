"""Admin: browse the dataset and edit the taxonomy. Every taxonomy edit goes through a service."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.auth.models import User
from django.db import transaction
from django.db.models import Count, IntegerField, OuterRef, Q, QuerySet, Subquery, Value
from django.db.models.functions import Coalesce
from django.http import HttpRequest
from django.shortcuts import render
from django.urls import reverse
from django.utils.html import format_html

from annotation.exceptions import TaxonomyError
from annotation.models import (
    FinalLabelChange,
    Image,
    ImportBatch,
    LabelChange,
    Pair,
    Question,
    Response,
    Review,
    TaxonomyChange,
    TaxonomyNode,
)
from annotation.services import taxonomy


def _questions_under(outer: str = "pk") -> Subquery:
    under = (
        Q(subcategory=OuterRef(outer))
        | Q(subcategory__parent=OuterRef(outer))
        | Q(subcategory__parent__parent=OuterRef(outer))
    )
    counted = (
        Question.objects.filter(under)
        .order_by()
        .annotate(one=Value(1))
        .values("one")
        .annotate(n=Count("pk"))
        .values("n")
    )
    return Subquery(counted, output_field=IntegerField())


def _actor(request: HttpRequest) -> User | None:
    return request.user if isinstance(request.user, User) else None


class RetiredFilter(admin.SimpleListFilter):
    title = "state"
    parameter_name = "state"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("live", "live"), ("retired", "retired or merged")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        if self.value() == "live":
            return queryset.filter(retired_at__isnull=True)
        if self.value() == "retired":
            return queryset.filter(retired_at__isnull=False)
        return queryset


class MergeForm(forms.Form):
    target = forms.ModelChoiceField(queryset=TaxonomyNode.objects.none())

    def __init__(self, *args: Any, level: int, exclude: list[int], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        field = self.fields["target"]
        assert isinstance(field, forms.ModelChoiceField)
        field.queryset = (
            TaxonomyNode.objects.active().filter(level=level).exclude(pk__in=exclude).with_paths()
        )


class TaxonomyNodeForm(forms.ModelForm[TaxonomyNode]):
    """Adds and edits run the taxonomy services while the form is checked, in a savepoint: a
    refusal (a clash, a retired parent) is a form error and nothing of the edit is kept."""

    saved: TaxonomyNode

    class Meta:
        model = TaxonomyNode
        fields = ["level", "key", "name", "parent"]

    def _post_clean(self) -> None:
        """No model validation of the raw fields: the services decide."""

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if self.errors:
            return data
        actor: User | None = getattr(self, "actor", None)
        try:
            with transaction.atomic():
                if self.instance.pk is None:
                    self.saved = taxonomy.create_node(
                        level=data["level"],
                        key=data["key"],
                        name=data["name"],
                        parent=data.get("parent"),
                        by=actor,
                    )
                else:
                    self.saved = taxonomy.edit_node(
                        node=TaxonomyNode.objects.get(pk=self.instance.pk),
                        key=data["key"],
                        name=data["name"],
                        parent=data.get("parent"),
                        by=actor,
                    )
        except TaxonomyError as error:
            raise forms.ValidationError(str(error)) from error
        return data


@admin.register(TaxonomyNode)
class TaxonomyNodeAdmin(admin.ModelAdmin[TaxonomyNode]):
    list_display = ["key", "name", "level", "parent_path", "question_count", "state"]
    list_filter = ["level", RetiredFilter]
    search_fields = ["key", "name"]
    fields = ["level", "key", "name", "parent"]
    actions = ["merge_into", "retire", "restore"]
    list_select_related = ["parent__parent"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[TaxonomyNode]:
        return super().get_queryset(request).annotate(n_questions=Coalesce(_questions_under(), 0))

    def get_readonly_fields(self, request: HttpRequest, obj: TaxonomyNode | None = None) -> Any:
        return ["level"] if obj else []

    @admin.display(description="questions", ordering="n_questions")
    def question_count(self, obj: TaxonomyNode) -> int:
        return getattr(obj, "n_questions", 0)

    @admin.display(description="parent")
    def parent_path(self, obj: TaxonomyNode) -> str:
        return obj.parent.path if obj.parent else "—"

    @admin.display(description="state")
    def state(self, obj: TaxonomyNode) -> str:
        if obj.merged_into_id:
            return f"merged into {obj.merged_into}"
        return "retired" if obj.is_retired else "live"

    def get_form(
        self,
        request: HttpRequest,
        obj: TaxonomyNode | None = None,
        change: bool = False,
        **kwargs: Any,
    ) -> Any:
        kwargs["form"] = TaxonomyNodeForm
        form = super().get_form(request, obj, change, **kwargs)
        return type(form.__name__, (form,), {"actor": _actor(request)})

    def save_model(self, request: HttpRequest, obj: TaxonomyNode, form: Any, change: bool) -> None:
        """Through the taxonomy services, each in one transaction (TaxonomyNodeForm already
        ran them in a savepoint and kept the node they returned)."""
        saved = form.saved
        obj.pk, obj.level, obj.key, obj.name = saved.pk, saved.level, saved.key, saved.name
        obj.parent_id = saved.parent_id
        obj._state.adding = False

    @admin.action(description="Merge the selected nodes into another node")
    def merge_into(self, request: HttpRequest, queryset: QuerySet[TaxonomyNode]) -> Any:
        levels = set(queryset.values_list("level", flat=True))
        if len(levels) != 1:
            self.message_user(request, "Select nodes of one level to merge.", messages.ERROR)
            return None
        form = MergeForm(
            request.POST if "apply" in request.POST else None,
            level=levels.pop(),
            exclude=list(queryset.values_list("pk", flat=True)),
        )
        if form.is_valid():
            target = form.cleaned_data["target"]
            try:
                for source in queryset:
                    taxonomy.merge_nodes(source=source, target=target, by=_actor(request))
            except TaxonomyError as error:
                self.message_user(request, str(error), messages.ERROR)
                return None
            self.message_user(request, f"Merged {queryset.count()} node(s) into {target.path}.")
            return None
        context = {
            **self.admin_site.each_context(request),
            "title": "Merge taxonomy nodes",
            "nodes": queryset,
            "form": form,
            "action": "merge_into",
            "opts": self.model._meta,
        }
        return render(request, "admin/annotation/merge_nodes.html", context)

    @admin.action(description="Retire the selected nodes (hide from pickers, keep labels)")
    def retire(self, request: HttpRequest, queryset: QuerySet[TaxonomyNode]) -> None:
        for node in queryset:
            taxonomy.retire_node(node=node, by=_actor(request))
        self.message_user(request, f"Retired {queryset.count()} node(s); their labels are kept.")

    @admin.action(description="Restore the selected retired nodes")
    def restore(self, request: HttpRequest, queryset: QuerySet[TaxonomyNode]) -> None:
        try:
            for node in queryset:
                taxonomy.restore_node(node=node, by=_actor(request))
        except TaxonomyError as error:
            self.message_user(request, str(error), messages.ERROR)


@admin.register(TaxonomyChange)
class TaxonomyChangeAdmin(admin.ModelAdmin[TaxonomyChange]):
    list_display = ["version", "action", "old_value", "new_value", "changed_by", "changed_at"]
    list_filter = ["action"]
    list_select_related = ["changed_by"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


def _delete_unreviewed(
    model_admin: admin.ModelAdmin[Any], request: HttpRequest, queryset: QuerySet[Any], reviewed: Q
) -> None:
    """Delete what no person has reviewed; reviews (and the labels they set) are never
    deleted by the cascade of an image, question or pair."""
    kept = queryset.filter(reviewed).distinct()
    count = kept.count()
    queryset.exclude(pk__in=kept.values("pk")).delete()
    if count:
        model_admin.message_user(
            request, f"{count} selected item(s) have reviews and were kept.", messages.WARNING
        )


def _thumbnail(image_id: int, size: int = 64) -> str:
    url = reverse("review:image", args=[image_id])
    return format_html(
        '<img src="{}" alt="image {}" loading="lazy" style="max-width:{}px;max-height:{}px">',
        url,
        image_id,
        size,
        size,
    )


@admin.register(Image)
class ImageAdmin(admin.ModelAdmin[Image]):
    list_display = [
        "thumbnail",
        "source_name",
        "format",
        "width",
        "height",
        "byte_size",
        "is_placeholder",
    ]
    list_filter = ["format", "is_placeholder"]
    search_fields = ["sha256", "source_name"]
    exclude = ["data"]
    readonly_fields = [
        "preview",
        "sha256",
        "format",
        "width",
        "height",
        "byte_size",
        "dhash",
        "source_name",
        "is_placeholder",
    ]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Image]:
        return super().get_queryset(request).defer("data")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # images come from imports, validated there

    def has_delete_permission(self, request: HttpRequest, obj: Image | None = None) -> bool:
        reviewed = obj is not None and Review.objects.filter(pair__question__image=obj).exists()
        return not reviewed and super().has_delete_permission(request, obj)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Image]) -> None:
        _delete_unreviewed(self, request, queryset, Q(questions__pairs__reviews__isnull=False))

    @admin.display(description="image")
    def thumbnail(self, obj: Image) -> str:
        return _thumbnail(obj.pk)

    @admin.display(description="preview")
    def preview(self, obj: Image) -> str:
        return _thumbnail(obj.pk, size=448) if obj.pk else "—"


class ResponseInline(admin.TabularInline[Response, Question]):
    model = Response
    fields = ["model_name", "text"]
    readonly_fields = ["model_name", "text"]
    extra = 0
    can_delete = False


class LabelChangeInline(admin.TabularInline[LabelChange, Question]):
    model = LabelChange
    fk_name = "question"
    fields = [
        "changed_at",
        "old_subcategory",
        "new_subcategory",
        "taxonomy_version",
        "reason",
        "changed_by",
    ]
    readonly_fields = fields  # type: ignore[assignment]  # same names, narrower type
    extra = 0
    can_delete = False


@admin.register(Question)
class QuestionAdmin(admin.ModelAdmin[Question]):
    list_display = ["thumbnail", "short_text", "question_type", "subcategory_path"]
    list_filter = [
        "question_type",
        ("subcategory__parent__parent", admin.RelatedOnlyFieldListFilter),
        ("subcategory__parent", admin.RelatedOnlyFieldListFilter),
        ("subcategory", admin.RelatedOnlyFieldListFilter),
    ]
    search_fields = ["text"]
    list_select_related = ["subcategory__parent__parent"]
    readonly_fields = [
        "image_preview",
        "text",
        "question_type",
        "subcategory",
        "taxonomy_version",
        "import_batch",
    ]
    exclude = ["image", "text_sha256"]
    inlines = [ResponseInline, LabelChangeInline]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # questions come from imports

    def has_delete_permission(self, request: HttpRequest, obj: Question | None = None) -> bool:
        reviewed = obj is not None and Review.objects.filter(pair__question=obj).exists()
        return not reviewed and super().has_delete_permission(request, obj)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Question]) -> None:
        _delete_unreviewed(self, request, queryset, Q(pairs__reviews__isnull=False))

    @admin.display(description="image")
    def thumbnail(self, obj: Question) -> str:
        return _thumbnail(obj.image_id)

    @admin.display(description="image")
    def image_preview(self, obj: Question) -> str:
        return _thumbnail(obj.image_id, size=448)

    @admin.display(description="question")
    def short_text(self, obj: Question) -> str:
        return str(obj)

    @admin.display(description="subcategory", ordering="subcategory__key")
    def subcategory_path(self, obj: Question) -> str:
        return obj.subcategory.path if obj.subcategory else "—"


class FinalLabelChangeInline(admin.TabularInline[FinalLabelChange, Pair]):
    model = FinalLabelChange
    fields = ["changed_at", "old_label", "old_chosen", "new_label", "new_chosen", "reason"]
    readonly_fields = fields  # type: ignore[assignment]  # same names, narrower type
    extra = 0
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Pair)
class PairAdmin(admin.ModelAdmin[Pair]):
    list_display = ["pk", "thumbnail", "question_text", "model_a", "model_b", "origin"]
    list_filter = [
        "origin",
        "question__question_type",
        ("question__subcategory__parent__parent", admin.RelatedOnlyFieldListFilter),
        ("question__subcategory", admin.RelatedOnlyFieldListFilter),
    ]
    list_select_related = ["question", "response_a", "response_b"]
    search_fields = ["question__text"]
    # The final label belongs to annotation.services.final_label (reviews, adjudication, the
    # judge): shown here with its history, never edited.
    readonly_fields = [
        "question",
        "response_a",
        "response_b",
        "origin",
        "import_batch",
        "final_label",
        "final_chosen",
        "final_label_at",
    ]
    inlines = [FinalLabelChangeInline]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Pair | None = None) -> bool:
        reviewed = obj is not None and Review.objects.filter(pair=obj).exists()
        return not reviewed and super().has_delete_permission(request, obj)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Pair]) -> None:
        _delete_unreviewed(self, request, queryset, Q(reviews__isnull=False))

    @admin.display(description="image")
    def thumbnail(self, obj: Pair) -> str:
        return _thumbnail(obj.question.image_id)

    @admin.display(description="question")
    def question_text(self, obj: Pair) -> str:
        return str(obj.question)

    @admin.display(description="A (chosen if imported)")
    def model_a(self, obj: Pair) -> str:
        return obj.response_a.model_name or "unknown"

    @admin.display(description="B")
    def model_b(self, obj: Pair) -> str:
        return obj.response_b.model_name or "unknown"


@admin.register(ImportBatch)
class ImportBatchAdmin(admin.ModelAdmin[ImportBatch]):
    list_display = [
        "file_name",
        "format",
        "split",
        "status",
        "rows_read",
        "rows_created",
        "rows_existing",
        "rows_rejected",
        "started_at",
        "finished_at",
    ]
    list_filter = ["format", "status"]
    readonly_fields = [f.name for f in ImportBatch._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
