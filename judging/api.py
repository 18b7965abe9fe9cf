"""/api/v1/judge-runs/: start, follow and cancel judge runs over HTTP. Thin views over the
services and gates the runs page uses: judge watchers read, judge operators start and cancel
(a token needs the ``judge`` scope for that); everyone else gets 404."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.exceptions import ValidationError
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from annotation.exceptions import DomainError
from judging.access import access_judge_run, access_judge_run_management, access_judge_runs
from judging.models import JudgeBackend, JudgeRun
from judging.services import PAIR_SELECTIONS, cancel_run, start_run
from spavl_web.models import Scope

RUNS_LISTED = 50


class RunSerializer(serializers.ModelSerializer[JudgeRun]):
    configuration = serializers.CharField(source="configuration.__str__", default=None)
    started_by = serializers.CharField(source="started_by.username", default=None)

    class Meta:
        model = JudgeRun
        fields = [
            "id",
            "status",
            "backend",
            "model",
            "pair_selection",
            "configuration",
            "total",
            "done",
            "failed",
            "pairs_per_second",
            "prefers_a_count",
            "decided_by_safety_count",
            "needs_review_count",
            "error",
            "started_by",
            "created_at",
            "started_at",
            "finished_at",
        ]


class StartRunSerializer(serializers.Serializer[Any]):
    backend = serializers.ChoiceField(choices=JudgeBackend.choices)
    model = serializers.CharField(
        required=False, allow_blank=True, max_length=300, help_text="Hub id or local path."
    )
    pairs = serializers.ChoiceField(choices=[(p, p) for p in PAIR_SELECTIONS], default="unjudged")
    batch_size = serializers.IntegerField(required=False, min_value=1, max_value=10_000)


class RunListApi(APIView):
    # A judge token follows the runs it starts; a read token only reads.
    required_scopes = {"GET": (Scope.READ.value, Scope.JUDGE.value), "POST": Scope.JUDGE.value}

    @extend_schema(operation_id="judge_runs_list", responses={200: RunSerializer(many=True)})
    def get(self, request: Request) -> Response:
        access_judge_runs(user=request.user)
        runs = JudgeRun.objects.select_related("configuration", "started_by").order_by("-pk")
        return Response(RunSerializer(runs[:RUNS_LISTED], many=True).data)

    @extend_schema(
        operation_id="judge_runs_create",
        request=StartRunSerializer,
        responses={
            201: RunSerializer,
            400: OpenApiResponse(description="the run cannot be started as asked"),
        },
    )
    def post(self, request: Request) -> Response:
        user = access_judge_run_management(user=request.user)
        given = StartRunSerializer(data=request.data)
        given.is_valid(raise_exception=True)
        try:
            run = start_run(**given.validated_data, by=user)
        except DomainError as error:
            raise ValidationError({"detail": str(error)}) from None
        return Response(RunSerializer(run).data, status=status.HTTP_201_CREATED)


class RunDetailApi(APIView):
    required_scopes = {"GET": (Scope.READ.value, Scope.JUDGE.value)}

    @extend_schema(operation_id="judge_runs_retrieve", responses={200: RunSerializer})
    def get(self, request: Request, run_id: int) -> Response:
        return Response(RunSerializer(access_judge_run(user=request.user, run_id=run_id)).data)


class RunCancelApi(APIView):
    required_scopes = {"POST": Scope.JUDGE.value}

    @extend_schema(
        operation_id="judge_runs_cancel",
        request=None,
        responses={200: RunSerializer, 409: OpenApiResponse(description="the run already ended")},
    )
    def post(self, request: Request, run_id: int) -> Response:
        user = access_judge_run_management(user=request.user)
        run = access_judge_run(user=user, run_id=run_id)
        try:
            run = cancel_run(run_id=run.pk, by=user)
        except DomainError as error:
            return Response({"detail": str(error)}, status=status.HTTP_409_CONFLICT)
        return Response(RunSerializer(run).data)
