"""GET /api/v1/taxonomy/: the harm taxonomy as a tree, with its current version. Every signed-in
user may read it (reviewers correct labels with it).

/api/v1/taxonomy/nodes/...: admins create, rename and move (one change: both or neither), merge,
retire and restore nodes through the services the Django admin uses, so labels follow nodes and
every edit is in the history with a new version. A token needs the ``admin`` scope."""

from __future__ import annotations

from typing import Any

from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.exceptions import ValidationError
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from annotation.access import access_taxonomy_admin
from annotation.exceptions import TaxonomyConflict, TaxonomyError
from annotation.models import TaxonomyChange, TaxonomyLevel, TaxonomyNode
from annotation.services.taxonomy import (
    create_node,
    edit_node,
    merge_nodes,
    restore_node,
    retire_node,
    taxonomy_tree,
)
from spavl_web.models import Scope

ID_MAX = 2**63 - 1


class NodeSerializer(serializers.Serializer[Any]):
    id = serializers.IntegerField()
    key = serializers.CharField(help_text="The dataset's own string, typos and all.")
    name = serializers.CharField()
    retired = serializers.BooleanField()
    merged_into = serializers.IntegerField(allow_null=True)


class SubcategorySerializer(NodeSerializer):
    children = serializers.ListField(child=serializers.DictField(), max_length=0)


class CategorySerializer(NodeSerializer):
    children = SubcategorySerializer(many=True, help_text="Subcategories (class3).")


class DomainSerializer(NodeSerializer):
    children = CategorySerializer(many=True, help_text="Categories (class2).")


class TaxonomySerializer(serializers.Serializer[Any]):
    version = serializers.IntegerField(help_text="Bumped by every taxonomy edit.")
    domains = DomainSerializer(many=True, help_text="Domains (class1).")


class TaxonomyApi(APIView):
    @extend_schema(operation_id="taxonomy_retrieve", responses={200: TaxonomySerializer})
    def get(self, request: Request) -> Response:
        return Response(TaxonomySerializer(taxonomy_tree()).data)


class EditedNodeSerializer(serializers.Serializer[Any]):
    id = serializers.IntegerField()
    level = serializers.IntegerField()
    key = serializers.CharField()
    name = serializers.CharField()
    path = serializers.CharField()
    parent = serializers.IntegerField(source="parent_id", allow_null=True)  # type: ignore[assignment]
    retired = serializers.BooleanField(source="is_retired")
    merged_into = serializers.IntegerField(source="merged_into_id", allow_null=True)
    version = serializers.SerializerMethodField(help_text="The taxonomy's version after the edit.")

    def get_version(self, node: TaxonomyNode) -> int:
        return TaxonomyChange.current_version()


# A field called ``parent`` shadows DRF's Field.parent in the type stubs only (hence the ignores).


def _key_field(**kwargs: Any) -> serializers.CharField:
    # Kept exactly as given: the dataset's keys are compared byte for byte.
    return serializers.CharField(max_length=200, trim_whitespace=False, **kwargs)


class CreateNodeSerializer(serializers.Serializer[Any]):
    level = serializers.ChoiceField(choices=TaxonomyLevel.values)
    key = _key_field()
    name = _key_field(required=False, allow_blank=True)
    parent = serializers.IntegerField(required=False, min_value=1, max_value=ID_MAX)  # type: ignore[assignment]


class EditNodeSerializer(serializers.Serializer[Any]):
    key = _key_field(required=False)
    name = _key_field(required=False)
    parent = serializers.IntegerField(required=False, min_value=1, max_value=ID_MAX)  # type: ignore[assignment]


class MergeSerializer(serializers.Serializer[Any]):
    into = serializers.IntegerField(min_value=1, max_value=ID_MAX, help_text="The target node.")


def _node(node_id: int) -> TaxonomyNode:
    return get_object_or_404(TaxonomyNode.objects.with_paths(), pk=node_id)


def _parent(node_id: int | None) -> TaxonomyNode | None:
    if node_id is None:
        return None
    parent = TaxonomyNode.objects.with_paths().filter(pk=node_id).first()
    if parent is None:
        raise ValidationError({"parent": [f"no taxonomy node {node_id}"]})
    return parent


def _refused(error: TaxonomyError) -> Response:
    """A clash with the taxonomy as it stands is a conflict (409); any other refusal, 400."""
    code = status.HTTP_409_CONFLICT if isinstance(error, TaxonomyConflict) else 400
    return Response({"detail": str(error)}, status=code)


def _edited(node: TaxonomyNode, code: int = status.HTTP_200_OK) -> Response:
    return Response(EditedNodeSerializer(_node(node.pk)).data, status=code)


class NodeCreateApi(APIView):
    required_scopes = {"POST": Scope.ADMIN.value}

    @extend_schema(
        operation_id="taxonomy_nodes_create",
        request=CreateNodeSerializer,
        responses={
            201: EditedNodeSerializer,
            409: OpenApiResponse(description="a live node of that level already has the key"),
        },
    )
    def post(self, request: Request) -> Response:
        admin = access_taxonomy_admin(user=request.user)
        given = CreateNodeSerializer(data=request.data)
        given.is_valid(raise_exception=True)
        fields = given.validated_data
        try:
            node = create_node(
                level=fields["level"],
                key=fields["key"],
                name=fields.get("name", ""),
                parent=_parent(fields.get("parent")),
                by=admin,
            )
        except TaxonomyError as error:
            return _refused(error)
        return _edited(node, status.HTTP_201_CREATED)


class NodeEditApi(APIView):
    required_scopes = {"PATCH": Scope.ADMIN.value}

    @extend_schema(
        operation_id="taxonomy_nodes_partial_update",
        request=EditNodeSerializer,
        responses={
            200: EditedNodeSerializer,
            409: OpenApiResponse(description="a live node of that level already has the key"),
        },
    )
    def patch(self, request: Request, node_id: int) -> Response:
        admin = access_taxonomy_admin(user=request.user)
        node = _node(node_id)
        given = EditNodeSerializer(data=request.data)
        given.is_valid(raise_exception=True)
        fields = given.validated_data
        try:
            node = edit_node(
                node=node,
                key=fields.get("key", node.key),
                name=fields.get("name", node.name),
                parent=_parent(fields.get("parent")),
                by=admin,
            )
        except TaxonomyError as error:
            return _refused(error)
        return _edited(node)


class NodeMergeApi(APIView):
    required_scopes = {"POST": Scope.ADMIN.value}

    @extend_schema(
        operation_id="taxonomy_nodes_merge",
        request=MergeSerializer,
        responses={200: EditedNodeSerializer},
    )
    def post(self, request: Request, node_id: int) -> Response:
        """Merge this node into ``into``: its questions or children move there, it retires."""
        admin = access_taxonomy_admin(user=request.user)
        source = _node(node_id)
        given = MergeSerializer(data=request.data)
        given.is_valid(raise_exception=True)
        target = _parent(given.validated_data["into"])
        assert target is not None
        try:
            merge_nodes(source=source, target=target, by=admin)
        except TaxonomyError as error:
            return _refused(error)
        return _edited(source)


class NodeRetireApi(APIView):
    required_scopes = {"POST": Scope.ADMIN.value}

    @extend_schema(
        operation_id="taxonomy_nodes_retire", request=None, responses={200: EditedNodeSerializer}
    )
    def post(self, request: Request, node_id: int) -> Response:
        """Hide the node from pickers; labels on it stay. Retiring twice changes nothing."""
        admin = access_taxonomy_admin(user=request.user)
        return _edited(retire_node(node=_node(node_id), by=admin))


class NodeRestoreApi(APIView):
    required_scopes = {"POST": Scope.ADMIN.value}

    @extend_schema(
        operation_id="taxonomy_nodes_restore",
        request=None,
        responses={
            200: EditedNodeSerializer,
            409: OpenApiResponse(description="merged, or a live node has its key"),
        },
    )
    def post(self, request: Request, node_id: int) -> Response:
        admin = access_taxonomy_admin(user=request.user)
        try:
            node = restore_node(node=_node(node_id), by=admin)
        except TaxonomyError as error:
            return Response({"detail": str(error)}, status=status.HTTP_409_CONFLICT)
        return _edited(node)
