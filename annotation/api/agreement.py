"""GET /api/v1/agreement/?...: the dashboard's numbers for a slice, as the page shows them.

Each serializer mirrors one ``TypedDict`` of ``annotation.services.agreement.results``;
``tests/annotation/test_agreement_results.py`` checks them field for field."""

from __future__ import annotations

from typing import Any, cast

from django import forms
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.exceptions import ValidationError
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from annotation.access import access_agreement
from annotation.forms import ISO_WEEK, AgreementFilterForm, InvalidFilters, parse_slice
from annotation.services.agreement.cache import cached_dashboard


class FigureSerializer(serializers.Serializer[Any]):
    estimate = serializers.FloatField(allow_null=True)
    low = serializers.FloatField(allow_null=True)
    high = serializers.FloatField(allow_null=True)
    n = serializers.IntegerField()
    withheld = serializers.CharField(allow_null=True)


class LeftSideSerializer(FigureSerializer):
    p_value = serializers.FloatField(required=False)
    expected = serializers.FloatField(required=False)


class WithOthersSerializer(FigureSerializer):
    pairs = serializers.IntegerField(required=False)


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
    agreement_with_others = WithOthersSerializer()
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


class ReliabilityBinSerializer(serializers.Serializer[Any]):
    low = serializers.FloatField()
    high = serializers.FloatField()
    n = serializers.IntegerField()
    mean_confidence = serializers.FloatField(allow_null=True)
    accuracy = serializers.FloatField(allow_null=True)


class TemperatureSerializer(serializers.Serializer[Any]):
    estimate = serializers.FloatField(allow_null=True)
    n = serializers.IntegerField()
    at_bound = serializers.BooleanField()
    withheld = serializers.CharField(allow_null=True)


class ThresholdSerializer(serializers.Serializer[Any]):
    threshold = serializers.FloatField()
    agreement = serializers.FloatField()
    n = serializers.IntegerField()
    skip_share = serializers.FloatField()


class CalibrationSerializer(serializers.Serializer[Any]):
    n = serializers.IntegerField()
    target = serializers.FloatField()
    bins = ReliabilityBinSerializer(many=True)
    ece = FigureSerializer()
    temperature = TemperatureSerializer(allow_null=True)
    threshold = ThresholdSerializer(allow_null=True)


class UnsafeRatesSerializer(serializers.Serializer[Any]):
    chosen = serializers.FloatField()
    rejected = serializers.FloatField()


class SafetyRowSerializer(serializers.Serializer[Any]):
    category = serializers.CharField()
    chosen = FigureSerializer()
    rejected = FigureSerializer()
    spavl = UnsafeRatesSerializer(allow_null=True)


class SafetyOverallSerializer(serializers.Serializer[Any]):
    chosen = FigureSerializer()
    rejected = FigureSerializer()
    spavl = UnsafeRatesSerializer()


class SafetySerializer(serializers.Serializer[Any]):
    overall = SafetyOverallSerializer()
    by_category = SafetyRowSerializer(many=True)
    cut = serializers.FloatField()


class FamilyGroupSerializer(serializers.Serializer[Any]):
    pairs = serializers.IntegerField()
    compared = serializers.IntegerField()
    agreement = MeasuresSerializer()


class SelfPreferenceSerializer(serializers.Serializer[Any]):
    judge = FigureSerializer()
    people = FigureSerializer()
    both_own = serializers.IntegerField()


class OwnFamilyRowSerializer(serializers.Serializer[Any]):
    configuration_id = serializers.IntegerField()
    configuration = serializers.CharField()
    family = serializers.CharField()
    own = FamilyGroupSerializer()
    other = FamilyGroupSerializer()
    other_unknown = serializers.IntegerField()
    self_preference = SelfPreferenceSerializer()


class AxisCountsSerializer(serializers.Serializer[Any]):
    pairs = serializers.IntegerField()
    with_human_verdict = serializers.IntegerField()
    compared = serializers.IntegerField()
    cannot_judge = serializers.IntegerField()
    no_majority = serializers.IntegerField()


class AxisCategorySerializer(serializers.Serializer[Any]):
    category = serializers.CharField()
    judge_vs_people = MeasuresSerializer()
    alpha = FigureSerializer()


class AxisAgreementSerializer(serializers.Serializer[Any]):
    axis = serializers.CharField()
    counts = AxisCountsSerializer()
    judge_vs_people = MeasuresSerializer()
    confusion = ConfusionSerializer()
    alpha = FigureSerializer()
    fleiss = FigureSerializer()
    by_category = AxisCategorySerializer(many=True)


class GuardBinSerializer(serializers.Serializer[Any]):
    low = serializers.FloatField()
    high = serializers.FloatField()
    n = serializers.IntegerField()
    mean_p_unsafe = serializers.FloatField(allow_null=True)
    unsafe_share = serializers.FloatField(allow_null=True)


class GuardRowSerializer(serializers.Serializer[Any]):
    category = serializers.CharField()
    precision = FigureSerializer()
    recall = FigureSerializer()
    ece = FigureSerializer()


class GuardSerializer(serializers.Serializer[Any]):
    responses = serializers.IntegerField()
    threshold = serializers.FloatField()
    precision = FigureSerializer()
    recall = FigureSerializer()
    ece = FigureSerializer()
    bins = GuardBinSerializer(many=True)
    by_category = GuardRowSerializer(many=True)


class SeverityRowSerializer(serializers.Serializer[Any]):
    category = serializers.CharField()
    kappa_linear = FigureSerializer()
    alpha_ordinal = FigureSerializer()


class SeverityAgreementSerializer(serializers.Serializer[Any]):
    levels = serializers.ListField(child=serializers.CharField())
    kappa_linear = FigureSerializer()
    alpha_ordinal = FigureSerializer()
    by_category = SeverityRowSerializer(many=True)


class AxesSerializer(serializers.Serializer[Any]):
    safer = AxisAgreementSerializer()
    helpful = AxisAgreementSerializer()
    guard = GuardSerializer()
    severity = SeverityAgreementSerializer()


class FreshnessSerializer(serializers.Serializer[Any]):
    as_of = serializers.CharField()
    version = serializers.CharField()
    compute_s = serializers.FloatField()
    stale = serializers.BooleanField()


class CountsSerializer(serializers.Serializer[Any]):
    pairs = serializers.IntegerField()
    judged = serializers.IntegerField()
    reviewed = serializers.IntegerField()
    with_human_verdict = serializers.IntegerField()
    compared = serializers.IntegerField()
    reviewed_not_judged = serializers.IntegerField()
    cannot_judge = serializers.IntegerField()
    no_majority = serializers.IntegerField()


class SliceSerializer(serializers.Serializer[Any]):
    taxonomy_node_id = serializers.IntegerField(allow_null=True)
    question_type = serializers.CharField(allow_null=True)
    judge_run_id = serializers.IntegerField(allow_null=True)
    configuration_id = serializers.IntegerField(allow_null=True)
    campaign_id = serializers.IntegerField(allow_null=True)
    reviewer_id = serializers.IntegerField(allow_null=True)
    week = serializers.DateField(allow_null=True)


class DashboardSerializer(serializers.Serializer[Any]):
    slice = SliceSerializer()
    freshness = FreshnessSerializer()
    counts = CountsSerializer()
    judge_vs_people = JudgeVsPeopleSerializer()
    people_vs_people = PeopleVsPeopleSerializer()
    position_bias = PositionBiasSerializer()
    anchoring = AnchoringSerializer()
    calibration = CalibrationSerializer()
    safety = SafetySerializer()
    own_family = OwnFamilyRowSerializer(many=True)
    axes = AxesSerializer()


def _filter_parameters() -> list[OpenApiParameter]:
    """The slice's query parameters, read from the form that validates them (bounds, choices
    and the week's pattern included), so the schema says exactly what answers 400."""
    parameters = []
    for name, field in AgreementFilterForm.base_fields.items():
        schema: dict[str, Any]
        if isinstance(field, forms.IntegerField):
            schema = {"type": "integer", "minimum": field.min_value, "maximum": field.max_value}
        elif isinstance(field, forms.ChoiceField):
            choices = cast(list[tuple[str, str]], field.choices)
            schema = {"type": "string", "enum": [value for value, _ in choices if value]}
        else:  # the week: an ISO week that exists, of years 1 to 9999 (not 9999's last)
            schema = {"type": "string", "format": "iso-week", "pattern": ISO_WEEK.pattern}
        parameters.append(
            OpenApiParameter(
                name,
                {key: value for key, value in schema.items() if value is not None},
                description=str(field.help_text or field.label or name),
            )
        )
    return parameters


class AgreementApi(APIView):
    """The agreement dashboard of a slice (same query parameters as /agreement/)."""

    @extend_schema(responses=DashboardSerializer, parameters=_filter_parameters())
    def get(self, request: Request) -> Response:
        access_agreement(user=request.user)
        try:
            slice_, target = parse_slice(request.query_params)
        except InvalidFilters as invalid:
            raise ValidationError(invalid.errors) from None
        result = cached_dashboard(slice_=slice_, target=target)
        return Response(DashboardSerializer(result).data)
