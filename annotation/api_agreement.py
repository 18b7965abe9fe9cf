"""GET /api/v1/agreement/?...: the dashboard's numbers for a slice, as the page shows them."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from annotation.access import access_agreement
from annotation.agreement.cache import cached_dashboard
from annotation.agreement_views import parse_slice


class FigureSerializer(serializers.Serializer[Any]):
    estimate = serializers.FloatField(allow_null=True)
    low = serializers.FloatField(allow_null=True)
    high = serializers.FloatField(allow_null=True)
    n = serializers.IntegerField()
    withheld = serializers.CharField(allow_null=True)


class LeftSideSerializer(FigureSerializer):
    p_value = serializers.FloatField(required=False)
    expected = serializers.FloatField(required=False)


class MeasuresSerializer(serializers.Serializer[Any]):
    percent = FigureSerializer()
    kappa = FigureSerializer()
    ac1 = FigureSerializer()


class CategoryMeasuresSerializer(MeasuresSerializer):
    category = serializers.CharField()


class ConfusionSerializer(serializers.Serializer[Any]):
    verdicts = serializers.ListField(child=serializers.CharField())
    rows = serializers.ListField(child=serializers.ListField(child=serializers.IntegerField()))


class JudgeVsPeopleSerializer(serializers.Serializer[Any]):
    raw = MeasuresSerializer()
    control = MeasuresSerializer()
    weighted = MeasuresSerializer()
    confusion = ConfusionSerializer()
    by_category = CategoryMeasuresSerializer(many=True)


class ReviewerSerializer(serializers.Serializer[Any]):
    reviewer_id = serializers.IntegerField()
    reviewer = serializers.CharField()
    reviews = serializers.IntegerField()
    agreement_with_others = FigureSerializer()
    agreement_with_judge = FigureSerializer()
    gold_accuracy = FigureSerializer()
    left_side = LeftSideSerializer()


class PeopleVsPeopleSerializer(serializers.Serializer[Any]):
    alpha = FigureSerializer()
    fleiss = FigureSerializer()
    reviewers = ReviewerSerializer(many=True)


class CategoryFlipSerializer(serializers.Serializer[Any]):
    category = serializers.CharField()
    flip = FigureSerializer()


class PositionBiasSerializer(serializers.Serializer[Any]):
    judge_flip = FigureSerializer()
    by_category = CategoryFlipSerializer(many=True)


class AnchoringSerializer(serializers.Serializer[Any]):
    reviews = serializers.IntegerField()
    changed = FigureSerializer()
    toward_judge = serializers.IntegerField()
    away_from_judge = serializers.IntegerField()
    other_change = serializers.IntegerField()
    toward_share_of_changes = FigureSerializer()


class CalibrationSerializer(serializers.Serializer[Any]):
    n = serializers.IntegerField()
    target = serializers.FloatField()
    bins = serializers.ListField(child=serializers.DictField())
    ece = FigureSerializer()
    temperature = serializers.DictField(allow_null=True)
    threshold = serializers.DictField(allow_null=True)


class SafetyRowSerializer(serializers.Serializer[Any]):
    category = serializers.CharField()
    chosen = FigureSerializer()
    rejected = FigureSerializer()
    spavl = serializers.DictField(child=serializers.FloatField(), allow_null=True)


class SafetyOverallSerializer(serializers.Serializer[Any]):
    chosen = FigureSerializer()
    rejected = FigureSerializer()
    spavl = serializers.DictField(child=serializers.FloatField())


class SafetySerializer(serializers.Serializer[Any]):
    overall = SafetyOverallSerializer()
    by_category = SafetyRowSerializer(many=True)
    cut = serializers.FloatField()


class FreshnessSerializer(serializers.Serializer[Any]):
    as_of = serializers.CharField()
    version = serializers.CharField()
    compute_s = serializers.FloatField()
    stale = serializers.BooleanField()


class DashboardSerializer(serializers.Serializer[Any]):
    slice = serializers.DictField()
    freshness = FreshnessSerializer()
    counts = serializers.DictField(child=serializers.IntegerField())
    judge_vs_people = JudgeVsPeopleSerializer()
    people_vs_people = PeopleVsPeopleSerializer()
    position_bias = PositionBiasSerializer()
    anchoring = AnchoringSerializer()
    calibration = CalibrationSerializer()
    safety = SafetySerializer()


class AgreementApi(APIView):
    """The agreement dashboard of a slice (same query parameters as /agreement/)."""

    @extend_schema(responses=DashboardSerializer)
    def get(self, request: Request) -> Response:
        access_agreement(user=request.user)
        slice_, target = parse_slice(request.query_params)
        result = cached_dashboard(slice_=slice_, target=target)
        return Response(DashboardSerializer(result).data)
