"""/api/v1/campaigns/: review campaigns over HTTP. Analysts list them and follow their progress;
admins create them (the same selection, rules and checks as the admin), change their rules,
name and state, and add or remove reviewers (a token needs the ``admin`` scope for that).
Everyone else gets 404. Thin views over ``annotation.services.campaigns``."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from django.contrib.auth.models import User
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_field
from rest_framework import generics, serializers, status
from rest_framework.exceptions import ValidationError
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from annotation.access import (
    access_campaign_admin,
    access_campaign_progress,
    access_campaigns,
    access_managed_campaign,
    campaigns_for_display,
)
from annotation.api.pagination import IdCursor
from annotation.exceptions import DomainError
from annotation.models import Campaign, JudgePolicy, QuestionType, ReviewMode, TaxonomyNode
from annotation.services.campaigns import (
    MAX_BREAK_AFTER,
    MAX_LEASE_MINUTES,
    MAX_OVERLAP,
    CampaignRules,
    add_campaign_reviewers,
    campaign_progress,
    change_campaign,
    create_campaign,
    remove_campaign_reviewer,
    rules_of,
)
from judging.models import JudgeRun
from spavl_web.models import Scope

ID_MAX = 2**63 - 1
USERNAME_MAX = 150  # django.contrib.auth's
LISTED_MAX = 1000
SEED_MAX = 2**62
NAMED = r"\S"  # something besides spaces: names are stripped


# Input fields that name rows: each list is looked up in one query, and the error names every
# key that matches nothing (the admin's model choice fields, without a query per key).
class UsernamesField(serializers.ListField):
    child = serializers.CharField(max_length=USERNAME_MAX, trim_whitespace=False)

    def to_internal_value(self, data: Any) -> list[User]:
        names = list(dict.fromkeys(super().to_internal_value(data)))
        users = {user.username: user for user in User.objects.filter(username__in=names)}
        if unknown := [name for name in names if name not in users]:
            raise ValidationError(f"no user is named {', '.join(map(repr, unknown))}")
        return [users[name] for name in names]


class TaxonomyNodesField(serializers.ListField):
    child = serializers.IntegerField(min_value=1, max_value=ID_MAX)

    def to_internal_value(self, data: Any) -> list[TaxonomyNode]:
        ids = list(dict.fromkeys(super().to_internal_value(data)))
        nodes = TaxonomyNode.objects.in_bulk(ids)
        if unknown := [str(pk) for pk in ids if pk not in nodes]:
            raise ValidationError(f"no taxonomy node has the id {', '.join(unknown)}")
        return [nodes[pk] for pk in ids]


class RulesSerializer(serializers.Serializer[Any]):
    """In a request, each rule left out keeps its default (creating) or its value (changing)."""

    overlap = serializers.IntegerField(
        required=False, min_value=1, max_value=MAX_OVERLAP, help_text="Reviews needed per pair."
    )
    lease_minutes = serializers.IntegerField(
        required=False, min_value=1, max_value=MAX_LEASE_MINUTES
    )
    control_share = serializers.FloatField(
        required=False,
        min_value=0,
        max_value=1,
        help_text="Share of the pairs drawn into the control slice (handed out without priority).",
    )
    gold_rate = serializers.FloatField(
        required=False, min_value=0, max_value=1, help_text="How often a gold pair is mixed in."
    )
    judge_policy = serializers.ChoiceField(choices=JudgePolicy.choices, required=False)
    break_after_reviews = serializers.IntegerField(
        required=False, min_value=1, max_value=MAX_BREAK_AFTER
    )
    break_after_minutes = serializers.IntegerField(
        required=False, min_value=1, max_value=MAX_BREAK_AFTER
    )
    review_mode = serializers.ChoiceField(
        choices=ReviewMode.choices,
        required=False,
        help_text="What reviewers answer; cannot change once the campaign has a review.",
    )
    per_response_safety = serializers.BooleanField(
        required=False,
        help_text="Reviewers also label each response safe or unsafe; cannot change once the "
        "campaign has a review.",
    )


class SelectionInputSerializer(serializers.Serializer[Any]):
    judge_run = serializers.PrimaryKeyRelatedField(
        queryset=JudgeRun.objects.all(),
        pk_field=serializers.IntegerField(min_value=1, max_value=ID_MAX),
        required=False,
        allow_null=True,
        error_messages={"does_not_exist": "no judge run has the id {pk_value}"},
        help_text="Only pairs this run judged.",
    )
    taxonomy_nodes = TaxonomyNodesField(
        required=False, max_length=LISTED_MAX, help_text="Node ids at any level; empty: all."
    )
    question_types = serializers.ListField(
        child=serializers.ChoiceField(choices=QuestionType.choices),
        required=False,
        max_length=len(QuestionType.values),
        help_text="Empty: all.",
    )
    flagged_only = serializers.BooleanField(
        required=False, help_text="Only pairs the judge flagged."
    )


class SelectionSerializer(serializers.Serializer[Any]):
    judge_run = serializers.IntegerField(source="judge_run_id", allow_null=True)
    taxonomy_nodes = serializers.SerializerMethodField()
    question_types = serializers.ListField(child=serializers.CharField())
    flagged_only = serializers.BooleanField()

    @extend_schema_field(serializers.ListField(child=serializers.IntegerField()))
    def get_taxonomy_nodes(self, campaign: Campaign) -> list[int]:
        return [node.pk for node in campaign.taxonomy_nodes.all()]


class CampaignSerializer(serializers.ModelSerializer[Campaign]):
    created_by = serializers.CharField(source="created_by.username", default=None, allow_null=True)
    selection = SelectionSerializer(source="*")
    rules = RulesSerializer(source="*")
    reviewers: serializers.SlugRelatedField[User] = serializers.SlugRelatedField(
        slug_field="username", many=True, read_only=True
    )

    class Meta:
        model = Campaign
        fields = [
            "id",
            "name",
            "is_active",
            "created_by",
            "created_at",
            "seed",
            "selection",
            "rules",
            "reviewers",
        ]


# Mirrors annotation.services.campaigns.CampaignProgress.
class ReviewerProgressSerializer(serializers.Serializer[Any]):
    username = serializers.CharField()
    reviews_submitted = serializers.IntegerField()
    live_leases = serializers.IntegerField()


class ProgressSerializer(serializers.Serializer[Any]):
    pairs = serializers.IntegerField(help_text="open + leased + done + gold")
    open = serializers.IntegerField(help_text="Reviews still wanted, no live lease.")
    leased = serializers.IntegerField(help_text="A live lease on it.")
    done = serializers.IntegerField(help_text="As many submitted reviews as the overlap.")
    gold = serializers.IntegerField(help_text="Gold pairs, mixed in at the gold rate.")
    reviewers = ReviewerProgressSerializer(
        many=True, help_text="The campaign's reviewers, and anyone taken off it who reviewed."
    )


class CampaignDetailSerializer(CampaignSerializer):
    progress = ProgressSerializer()

    class Meta(CampaignSerializer.Meta):
        fields = [*CampaignSerializer.Meta.fields, "progress"]


def _detail(campaign: Campaign) -> dict[str, Any]:
    """The campaign as CampaignDetailSerializer describes it."""
    progress = ProgressSerializer(campaign_progress(campaign=campaign)).data
    return CampaignSerializer(campaign).data | {"progress": progress}


def _fresh(campaign_id: int) -> dict[str, Any]:
    """The detail read afresh, after a change."""
    return _detail(campaigns_for_display().get(pk=campaign_id))


class CampaignInputSerializer(serializers.Serializer[Any]):
    name = serializers.RegexField(NAMED, max_length=200)
    selection = SelectionInputSerializer(required=False)
    rules = RulesSerializer(required=False)
    reviewers = UsernamesField(required=False, max_length=LISTED_MAX)
    seed = serializers.IntegerField(
        required=False,
        allow_null=True,
        min_value=0,
        max_value=SEED_MAX,
        help_text="Seed of the control-slice draw; none: a random one (stored).",
    )


class CampaignListApi(generics.ListAPIView):  # type: ignore[type-arg]
    required_scopes = {"GET": Scope.READ.value, "POST": Scope.ADMIN.value}
    pagination_class = IdCursor
    serializer_class = CampaignSerializer

    def get_queryset(self) -> Any:
        return campaigns_for_display()

    @extend_schema(operation_id="campaigns_list")
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        access_campaigns(user=request.user)
        return super().get(request, *args, **kwargs)

    @extend_schema(
        operation_id="campaigns_create",
        request=CampaignInputSerializer,
        responses={
            201: CampaignDetailSerializer,
            400: OpenApiResponse(description="a field is wrong, or the rules are refused"),
        },
    )
    def post(self, request: Request) -> Response:
        user = access_campaign_admin(user=request.user)
        given = CampaignInputSerializer(data=request.data)
        given.is_valid(raise_exception=True)
        data = given.validated_data
        try:
            campaign = create_campaign(
                name=data["name"],
                created_by=user,
                reviewers=data.get("reviewers", []),
                rules=CampaignRules(**data.get("rules", {})),
                seed=data.get("seed"),
                **data.get("selection", {}),
            )
        except DomainError as error:
            raise ValidationError({"detail": str(error)}) from None
        return Response(_fresh(campaign.pk), status=status.HTTP_201_CREATED)


class CampaignChangeSerializer(serializers.Serializer[Any]):
    name = serializers.RegexField(NAMED, required=False, max_length=200)
    is_active = serializers.BooleanField(
        required=False, help_text="false closes it: no pair handed out, live leases end."
    )
    rules = RulesSerializer(required=False)


class CampaignDetailApi(APIView):
    required_scopes = {"GET": Scope.READ.value, "PATCH": Scope.ADMIN.value}

    @extend_schema(operation_id="campaigns_retrieve", responses={200: CampaignDetailSerializer})
    def get(self, request: Request, campaign_id: int) -> Response:
        campaign = access_campaign_progress(user=request.user, campaign_id=campaign_id)
        return Response(_detail(campaign))

    @extend_schema(
        operation_id="campaigns_partial_update",
        request=CampaignChangeSerializer,
        responses={
            200: CampaignDetailSerializer,
            409: OpenApiResponse(description="the campaign cannot take these rules as it is"),
        },
    )
    def patch(self, request: Request, campaign_id: int) -> Response:
        campaign = access_managed_campaign(user=request.user, campaign_id=campaign_id)
        given = CampaignChangeSerializer(data=request.data)
        given.is_valid(raise_exception=True)
        data = given.validated_data
        rules = replace(rules_of(campaign), **data["rules"]) if "rules" in data else None
        try:
            change_campaign(
                campaign=campaign,
                name=data.get("name"),
                rules=rules,
                active=data.get("is_active"),
            )
        except DomainError as error:
            return Response({"detail": str(error)}, status=status.HTTP_409_CONFLICT)
        return Response(_fresh(campaign.pk))


class ReviewersInputSerializer(serializers.Serializer[Any]):
    usernames = UsernamesField(min_length=1, max_length=LISTED_MAX)


class CampaignReviewersApi(APIView):
    required_scopes = {"POST": Scope.ADMIN.value}

    @extend_schema(
        operation_id="campaigns_reviewers_create",
        request=ReviewersInputSerializer,
        responses={200: CampaignDetailSerializer},
    )
    def post(self, request: Request, campaign_id: int) -> Response:
        campaign = access_managed_campaign(user=request.user, campaign_id=campaign_id)
        given = ReviewersInputSerializer(data=request.data)
        given.is_valid(raise_exception=True)
        add_campaign_reviewers(campaign=campaign, reviewers=given.validated_data["usernames"])
        return Response(_fresh(campaign.pk))


class CampaignReviewerApi(APIView):
    required_scopes = {"DELETE": Scope.ADMIN.value}

    @extend_schema(
        operation_id="campaigns_reviewers_destroy",
        responses={
            204: None,
            404: OpenApiResponse(description="no such campaign, or nobody of that name on it"),
        },
    )
    def delete(self, request: Request, campaign_id: int, username: str) -> Response:
        campaign = access_managed_campaign(user=request.user, campaign_id=campaign_id)
        reviewer = get_object_or_404(campaign.reviewers.all(), username=username)
        remove_campaign_reviewer(campaign=campaign, reviewer=reviewer)
        return Response(status=status.HTTP_204_NO_CONTENT)
