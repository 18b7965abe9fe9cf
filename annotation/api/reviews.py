"""/api/v1/reviews/ and /api/v1/adjudications/: people's reviews and the adjudicators'
decisions, filtered and paged by cursor, for analysis elsewhere. Analysts only (adjudicators
and admins are analysts): a reviewer must not read colleagues' verdicts on pairs they still
review, so they get 404 like everyone else. Thin views over
``annotation.services.review_listing``."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from drf_spectacular.utils import extend_schema
from rest_framework import generics, serializers
from rest_framework.exceptions import ValidationError
from rest_framework.request import Request
from rest_framework.response import Response

from annotation.access import access_reviews
from annotation.api.pagination import IdCursor
from annotation.models import Adjudication, AdjudicationStatus, Review, Verdict
from annotation.services.review_listing import (
    AdjudicationFilters,
    ReviewFilters,
    adjudications_matching,
    reviews_matching,
)
from spavl_web.models import Scope

ID_MAX = 2**63 - 1
USERNAME_MAX = 150


# Query parameters.
class _Filters(serializers.Serializer[Any]):
    campaign = serializers.IntegerField(required=False, min_value=1, max_value=ID_MAX)
    pair = serializers.IntegerField(required=False, min_value=1, max_value=ID_MAX)


class ReviewFilterParameters(_Filters):
    reviewer = serializers.CharField(
        required=False,
        min_length=1,
        max_length=USERNAME_MAX,
        trim_whitespace=False,
        help_text="The reviewer's username.",
    )
    verdict = serializers.ChoiceField(
        choices=Verdict.choices, required=False, help_text="The final verdict."
    )
    since = serializers.DateTimeField(
        required=False, help_text="Submitted at or after this time (ISO 8601)."
    )
    flagged = serializers.BooleanField(
        required=False,
        allow_null=True,
        default=None,
        help_text="The reviewer raised a flag (image irrelevant, question malformed...).",
    )


class AdjudicationFilterParameters(_Filters):
    status = serializers.ChoiceField(choices=AdjudicationStatus.choices, required=False)
    verdict = serializers.ChoiceField(choices=Verdict.choices, required=False)
    adjudicator = serializers.CharField(
        required=False,
        min_length=1,
        max_length=USERNAME_MAX,
        trim_whitespace=False,
        help_text="The username of who decided.",
    )
    since = serializers.DateTimeField(
        required=False, help_text="Opened or decided at or after this time (ISO 8601)."
    )


def _parameters(request: Request, parameters: type[serializers.Serializer[Any]]) -> Any:
    given = parameters(data=request.query_params.dict())
    if not given.is_valid():
        raise ValidationError(given.errors)
    return {key: value for key, value in given.validated_data.items() if value is not None}


# Rows.
class NodePathSerializer(serializers.Serializer[Any]):
    id = serializers.IntegerField()
    path = serializers.CharField(help_text="class1 / class2 / class3, the dataset's strings.")


class ReviewSerializer(serializers.ModelSerializer[Review]):
    campaign = serializers.IntegerField(source="campaign_id")
    pair = serializers.IntegerField(source="pair_id")
    reviewer = serializers.CharField(source="reviewer.username")
    left_side = serializers.CharField(
        help_text="The response shown on the left: a or b (empty for old reviews)."
    )
    taxonomy_correction = NodePathSerializer(
        allow_null=True, help_text="The subcategory the reviewer gave the question, if new."
    )
    flags = serializers.ListField(child=serializers.CharField())
    judge_flagged = serializers.BooleanField(source="flagged", help_text="The judge flagged it.")

    class Meta:
        model = Review
        fields = [
            "id",
            "campaign",
            "pair",
            "reviewer",
            "blind_verdict",
            "final_verdict",
            "changed_after_reveal",
            "left_side",
            "active_seconds",
            "taxonomy_correction",
            "flags",
            "note",
            "judge_flagged",
            "from_control_slice",
            "is_gold",
            "revealed_at",
            "submitted_at",
        ]
        extra_kwargs = {
            "final_verdict": {"help_text": "Empty until the review is submitted."},
            "revealed_at": {"help_text": "When the blind verdict was given (the review began)."},
        }


class AdjudicationSerializer(serializers.ModelSerializer[Adjudication]):
    campaign = serializers.IntegerField(source="campaign_pair.campaign_id")
    pair = serializers.IntegerField(source="pair_id")
    adjudicator = serializers.CharField(source="decided_by.username", default=None, allow_null=True)
    taxonomy_correction = NodePathSerializer(allow_null=True)

    class Meta:
        model = Adjudication
        fields = [
            "id",
            "campaign",
            "pair",
            "reason",
            "status",
            "verdict",
            "exclude",
            "taxonomy_correction",
            "note",
            "adjudicator",
            "created_at",
            "decided_at",
        ]


# Views.
class _AnalysisList(generics.ListAPIView):  # type: ignore[type-arg]
    required_scopes = {"GET": Scope.READ.value}
    pagination_class = IdCursor

    def list(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        access_reviews(user=request.user)
        return super().list(request, *args, **kwargs)


class ReviewListApi(_AnalysisList):
    serializer_class = ReviewSerializer

    def get_queryset(self) -> QuerySet[Review]:
        filters = ReviewFilters(**_parameters(self.request, ReviewFilterParameters))
        return reviews_matching(filters)

    @extend_schema(operation_id="reviews_list", parameters=[ReviewFilterParameters])
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)


class AdjudicationListApi(_AnalysisList):
    serializer_class = AdjudicationSerializer

    def get_queryset(self) -> QuerySet[Adjudication]:
        filters = AdjudicationFilters(**_parameters(self.request, AdjudicationFilterParameters))
        return adjudications_matching(filters)

    @extend_schema(operation_id="adjudications_list", parameters=[AdjudicationFilterParameters])
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)
