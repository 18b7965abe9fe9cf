"""/api/v1/questions/, /responses/, /pairs/: the dataset for pipeline scripts, filtered and
paged by cursor, each row with its taxonomy path, and a pair with its latest judgement, final
label and history. Data readers only (analysts, exporters, judge watchers); a pair's reviews
only for analysts. Thin views over ``annotation.services.browse``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.db.models import QuerySet
from django.shortcuts import get_object_or_404
from django.urls import reverse
from drf_spectacular.utils import extend_schema, extend_schema_field
from rest_framework import generics, serializers
from rest_framework.exceptions import ValidationError
from rest_framework.request import Request
from rest_framework.response import Response as ApiResponse

from annotation.access import access_data, is_analyst
from annotation.api.pagination import IdCursor
from annotation.models import (
    FinalLabel,
    Pair,
    Question,
    QuestionType,
    Response,
)
from annotation.services.browse import (
    DataFilters,
    configuration_names,
    label_history,
    latest_judgement,
    pair_reviews,
    pairs_matching,
    question_history,
    questions_matching,
    responses_matching,
    subcategory_keys,
)
from judging.models import Judgement

ID_MAX = 2**63 - 1
NO_FINAL_LABEL = "none"


# Query parameters. Each filter a listing does not take is absent from its serializer.
class _Filters(serializers.Serializer[Any]):
    taxonomy = serializers.IntegerField(
        required=False, min_value=1, max_value=ID_MAX, help_text="A taxonomy node at any level."
    )
    question_type = serializers.ChoiceField(choices=QuestionType.values, required=False)
    model = serializers.CharField(required=False, max_length=200, help_text="Model name, exact.")
    import_batch = serializers.IntegerField(required=False, min_value=1, max_value=ID_MAX)


class ResponseFilters(_Filters):
    pass


class QuestionFilters(_Filters):
    campaign = serializers.IntegerField(required=False, min_value=1, max_value=ID_MAX)


class PairFilters(QuestionFilters):
    final_label = serializers.ChoiceField(
        choices=[NO_FINAL_LABEL, *(label for label in FinalLabel.values if label)],
        required=False,
        help_text="How the final label was reached; `none`: no final label yet.",
    )
    judged = serializers.BooleanField(required=False, allow_null=True, default=None)
    needs_review = serializers.BooleanField(
        required=False, allow_null=True, default=None, help_text="The judge flagged the pair."
    )


def _filters(request: Request, serializer: type[serializers.Serializer[Any]]) -> DataFilters:
    given = serializer(data=request.query_params.dict())
    if not given.is_valid():
        raise ValidationError(given.errors)
    values = {key: value for key, value in given.validated_data.items() if value is not None}
    if "taxonomy" in values:
        values["taxonomy_node"] = values.pop("taxonomy")
    if values.get("final_label") == NO_FINAL_LABEL:
        values["final_label"] = FinalLabel.NONE.value
    return DataFilters(**values)


# Rows.
class NodeSerializer(serializers.Serializer[Any]):
    """What the schema says a subcategory looks like; :class:`NodeField` writes it."""

    id = serializers.IntegerField()
    path = serializers.CharField(help_text="class1 / class2 / class3, the dataset's strings.")
    classes = serializers.ListField(child=serializers.CharField(), min_length=3, max_length=3)


def _once(context: Any, key: str, load: Callable[[], Any]) -> Any:
    """A lookup table loaded once per response, shared by every row's fields."""
    if key not in context:
        context[key] = load()
    return context[key]


@extend_schema_field(NodeSerializer(allow_null=True))
class NodeField(serializers.Field):  # type: ignore[type-arg]
    """A subcategory, named by its id (``source`` is the ``..._id`` attribute), as
    {id, path, classes}: the strings come from one table per response, not joined rows."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(read_only=True, **kwargs)

    def to_representation(self, node_id: int) -> dict[str, Any]:
        keys = _once(self.context, "subcategory_keys", subcategory_keys)[node_id]
        return {"id": node_id, "path": " / ".join(keys), "classes": list(keys)}


class ResponseSerializer(serializers.ModelSerializer[Response]):
    model = serializers.CharField(source="model_name", help_text="Empty when unknown.")

    class Meta:
        model = Response
        fields = ["id", "question_id", "model", "text", "import_batch_id"]


class _QuestionFields(serializers.ModelSerializer[Question]):
    subcategory = NodeField(source="subcategory_id", allow_null=True)
    image_url = serializers.SerializerMethodField()

    def get_image_url(self, question: Question) -> str:
        return _image_url(self.context, question.image_id)


class QuestionBriefSerializer(_QuestionFields):
    class Meta:
        model = Question
        fields = ["id", "text", "question_type", "image_id", "image_url", "subcategory"]


class QuestionSerializer(_QuestionFields):
    class Meta:
        model = Question
        fields = [
            "id",
            "text",
            "question_type",
            "image_id",
            "image_url",
            "subcategory",
            "taxonomy_version",
            "import_batch_id",
            "provenance",
            "created_at",
        ]


class JudgementSerializer(serializers.ModelSerializer[Judgement]):
    configuration = serializers.SerializerMethodField()

    class Meta:
        model = Judgement
        fields = [
            "id",
            "configuration",
            "run_id",
            "p_a_better",
            "p_a_first",
            "p_a_second",
            "position_bias",
            "p_unsafe_a",
            "p_unsafe_b",
            "decided_by",
            "prefers_a",
            "needs_review",
            "review_reasons",
            "created_at",
        ]

    def get_configuration(self, judgement: Judgement) -> str:
        names = _once(self.context, "configuration_names", configuration_names)
        return str(names[judgement.configuration_id])


class LatestJudgementSerializer(JudgementSerializer):
    """The pair's newest succeeded judgement (null when none), from the page's prefetch."""

    def get_attribute(self, instance: Any) -> Judgement | None:
        return latest_judgement(instance)


class PairSerializer(serializers.ModelSerializer[Pair]):
    question = QuestionBriefSerializer()
    response_a = ResponseSerializer()
    response_b = ResponseSerializer()
    judgement = LatestJudgementSerializer(
        source="*", allow_null=True, read_only=True, help_text="The latest succeeded judgement."
    )

    class Meta:
        model = Pair
        fields = [
            "id",
            "question",
            "response_a",
            "response_b",
            "origin",
            "final_label",
            "final_chosen",
            "final_label_at",
            "source_id",
            "import_batch_id",
            "created_at",
            "judgement",
        ]

    def to_representation(self, pair: Pair) -> dict[str, Any]:
        """The declared fields (they make the schema), written by hand: a page is a hundred
        pairs of some thirty fields each, and DRF's field-by-field walk was most of its time.
        tests/annotation/test_data_api.py checks this against the declared serializers."""
        question, judgement = pair.question, latest_judgement(pair)
        keys = _once(self.context, "subcategory_keys", subcategory_keys)
        subcategory = question.subcategory_id
        return {
            "id": pair.pk,
            "question": {
                "id": question.pk,
                "text": question.text,
                "question_type": question.question_type,
                "image_id": question.image_id,
                "image_url": _image_url(self.context, question.image_id),
                "subcategory": None
                if subcategory is None
                else {
                    "id": subcategory,
                    "path": " / ".join(keys[subcategory]),
                    "classes": list(keys[subcategory]),
                },
            },
            "response_a": _response(pair.response_a),
            "response_b": _response(pair.response_b),
            "origin": pair.origin,
            "final_label": pair.final_label,
            "final_chosen": pair.final_chosen,
            "final_label_at": _datetime(pair.final_label_at),
            "source_id": pair.source_id,
            "import_batch_id": pair.import_batch_id,
            "created_at": _datetime(pair.created_at),
            "judgement": None if judgement is None else self._judgement(judgement),
        }

    def _judgement(self, judgement: Judgement) -> dict[str, Any]:
        names = _once(self.context, "configuration_names", configuration_names)
        row = {name: getattr(judgement, name) for name in _JUDGEMENT_VALUES}
        row["configuration"] = names[judgement.configuration_id]
        row["review_reasons"] = list(judgement.review_reasons)
        row["created_at"] = _datetime(judgement.created_at)
        return row


_DATETIME = serializers.DateTimeField()
_JUDGEMENT_VALUES = [
    name
    for name in JudgementSerializer.Meta.fields
    if name not in ("configuration", "review_reasons", "created_at")
]


def _datetime(value: Any) -> str | None:
    return None if value is None else _DATETIME.to_representation(value)


def _response(response: Response) -> dict[str, Any]:
    return {
        "id": response.pk,
        "question_id": response.question_id,
        "model": response.model_name,
        "text": response.text,
        "import_batch_id": response.import_batch_id,
    }


def _image_url(context: Any, image_id: int) -> str:
    # reverse() once per response: "/images/0/" names every image's URL but for its id.
    template = _once(context, "image_url", lambda: reverse("review:image", args=[0]))
    head, _, tail = template.rpartition("/0/")
    return f"{head}/{image_id}/{tail}"


class FinalLabelChangeSerializer(serializers.Serializer[Any]):
    old_label = serializers.CharField()
    old_chosen = serializers.CharField()
    new_label = serializers.CharField()
    new_chosen = serializers.CharField()
    reason = serializers.CharField()
    changed_by = serializers.CharField(source="changed_by.username", default=None)
    changed_at = serializers.DateTimeField()


class PairReviewSerializer(serializers.Serializer[Any]):
    id = serializers.IntegerField()
    campaign_id = serializers.IntegerField()
    reviewer = serializers.CharField(source="reviewer.username")
    blind_verdict = serializers.CharField()
    final_verdict = serializers.CharField()
    left_side = serializers.CharField(help_text="The response shown on the left: a or b.")
    active_seconds = serializers.IntegerField()
    taxonomy_correction = NodeField(source="taxonomy_correction_id", allow_null=True)
    flags = serializers.ListField(child=serializers.CharField())
    submitted_at = serializers.DateTimeField()


class PairDetailSerializer(PairSerializer):
    provenance = serializers.JSONField(help_text="The source row's other columns.")
    final_label_history = serializers.SerializerMethodField()
    reviews = serializers.SerializerMethodField(
        help_text="Submitted reviews; null for users who may not see reviews (analysts may)."
    )

    class Meta(PairSerializer.Meta):
        fields = [*PairSerializer.Meta.fields, "provenance", "final_label_history", "reviews"]

    def to_representation(self, pair: Pair) -> dict[str, Any]:
        row = super().to_representation(pair)
        row["provenance"] = pair.provenance
        row["final_label_history"] = self.get_final_label_history(pair)
        row["reviews"] = self.get_reviews(pair)
        return row

    @extend_schema_field(FinalLabelChangeSerializer(many=True))
    def get_final_label_history(self, pair: Pair) -> list[Any]:
        return list(FinalLabelChangeSerializer(label_history(pair), many=True).data)

    @extend_schema_field(PairReviewSerializer(many=True, allow_null=True))
    def get_reviews(self, pair: Pair) -> list[Any] | None:
        if not self.context.get("show_reviews"):
            return None
        return list(PairReviewSerializer(pair_reviews(pair), many=True).data)


class LabelChangeSerializer(serializers.Serializer[Any]):
    old_subcategory = NodeField(source="old_subcategory_id", allow_null=True)
    new_subcategory = NodeField(source="new_subcategory_id", allow_null=True)
    taxonomy_version = serializers.IntegerField()
    reason = serializers.CharField()
    changed_by = serializers.CharField(source="changed_by.username", default=None)
    changed_at = serializers.DateTimeField()


class QuestionDetailSerializer(QuestionSerializer):
    responses = ResponseSerializer(many=True)
    label_history = serializers.SerializerMethodField()

    class Meta(QuestionSerializer.Meta):
        fields = [*QuestionSerializer.Meta.fields, "responses", "label_history"]

    @extend_schema_field(LabelChangeSerializer(many=True))
    def get_label_history(self, question: Question) -> list[Any]:
        return list(LabelChangeSerializer(question_history(question), many=True).data)


# Views.
class _DataList(generics.ListAPIView):  # type: ignore[type-arg]
    pagination_class = IdCursor
    filters: type[serializers.Serializer[Any]]

    def list(self, request: Request, *args: Any, **kwargs: Any) -> ApiResponse:
        access_data(user=request.user)
        return super().list(request, *args, **kwargs)


class PairListApi(_DataList):
    serializer_class = PairSerializer

    def get_queryset(self) -> QuerySet[Pair]:
        return pairs_matching(_filters(self.request, PairFilters))

    @extend_schema(operation_id="pairs_list", parameters=[PairFilters])
    def get(self, request: Request, *args: Any, **kwargs: Any) -> ApiResponse:
        return super().get(request, *args, **kwargs)


class PairDetailApi(generics.GenericAPIView):  # type: ignore[type-arg]
    serializer_class = PairDetailSerializer

    @extend_schema(operation_id="pairs_retrieve")
    def get(self, request: Request, pair_id: int) -> ApiResponse:
        user = access_data(user=request.user)
        pair = get_object_or_404(pairs_matching(DataFilters()), pk=pair_id)
        context = {"request": request, "show_reviews": is_analyst(user)}
        return ApiResponse(PairDetailSerializer(pair, context=context).data)


class QuestionListApi(_DataList):
    serializer_class = QuestionSerializer

    def get_queryset(self) -> QuerySet[Question]:
        return questions_matching(_filters(self.request, QuestionFilters))

    @extend_schema(operation_id="questions_list", parameters=[QuestionFilters])
    def get(self, request: Request, *args: Any, **kwargs: Any) -> ApiResponse:
        return super().get(request, *args, **kwargs)


class QuestionDetailApi(generics.GenericAPIView):  # type: ignore[type-arg]
    serializer_class = QuestionDetailSerializer

    @extend_schema(operation_id="questions_retrieve")
    def get(self, request: Request, question_id: int) -> ApiResponse:
        access_data(user=request.user)
        questions = questions_matching(DataFilters()).prefetch_related("responses")
        question = get_object_or_404(questions, pk=question_id)
        return ApiResponse(QuestionDetailSerializer(question).data)


class ResponseListApi(_DataList):
    serializer_class = ResponseSerializer

    def get_queryset(self) -> QuerySet[Response]:
        return responses_matching(_filters(self.request, ResponseFilters))

    @extend_schema(operation_id="responses_list", parameters=[ResponseFilters])
    def get(self, request: Request, *args: Any, **kwargs: Any) -> ApiResponse:
        return super().get(request, *args, **kwargs)


class ResponseDetailApi(generics.GenericAPIView):  # type: ignore[type-arg]
    serializer_class = ResponseSerializer

    @extend_schema(operation_id="responses_retrieve")
    def get(self, request: Request, response_id: int) -> ApiResponse:
        access_data(user=request.user)
        response = get_object_or_404(responses_matching(DataFilters()), pk=response_id)
        return ApiResponse(ResponseSerializer(response).data)


__all__ = [
    "PairDetailApi",
    "PairListApi",
    "QuestionDetailApi",
    "QuestionListApi",
    "ResponseDetailApi",
    "ResponseListApi",
]
