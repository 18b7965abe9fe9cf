"""/api/v1/tokens/: a user's own API tokens. Listing and revoking work with a token or a
session; making one needs a session (a token cannot mint tokens), and the answer carries the
secret, the only time it is ever shown."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import User
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.authentication import SessionAuthentication
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from spavl_web.models import ApiToken, Scope
from spavl_web.tokens import TokenError, create_token, revoke_token, user_tokens


class TokenSerializer(serializers.ModelSerializer[ApiToken]):
    class Meta:
        model = ApiToken
        fields = ["token_key", "name", "scopes", "created", "expiry", "last_used_at"]


class CreatedTokenSerializer(TokenSerializer):
    token = serializers.CharField(help_text="The secret: shown once, never stored.")

    class Meta(TokenSerializer.Meta):
        fields = [*TokenSerializer.Meta.fields, "token"]


class TokenInputSerializer(serializers.Serializer[Any]):
    name = serializers.CharField(max_length=100)
    scopes = serializers.ListField(child=serializers.ChoiceField(choices=Scope.choices))
    days = serializers.IntegerField(required=False, min_value=1)


def _user(request: Request) -> User:
    assert isinstance(request.user, User)  # IsAuthenticated ran first
    return request.user


class TokenListApi(APIView):
    @extend_schema(operation_id="tokens_list", responses={200: TokenSerializer(many=True)})
    def get(self, request: Request) -> Response:
        return Response(TokenSerializer(user_tokens(_user(request)), many=True).data)

    @extend_schema(
        operation_id="tokens_create",
        request=TokenInputSerializer,
        responses={
            201: CreatedTokenSerializer,
            400: OpenApiResponse(description="bad name, scopes or lifetime"),
            403: OpenApiResponse(description="tokens are made from a signed-in session"),
        },
    )
    def post(self, request: Request) -> Response:
        if not isinstance(request.successful_authenticator, SessionAuthentication):
            return Response(
                {"detail": "Make tokens from a signed-in session, not with a token."},
                status=status.HTTP_403_FORBIDDEN,
            )
        given = TokenInputSerializer(data=request.data)
        given.is_valid(raise_exception=True)
        try:
            token, secret = create_token(user=_user(request), **given.validated_data)
        except TokenError as error:
            raise ValidationError({"detail": str(error)}) from None
        body = TokenSerializer(token).data | {"token": secret}
        return Response(body, status=status.HTTP_201_CREATED)

    # Any token may list its user's tokens; making one is guarded above, not by scope.
    required_scopes = {"GET": None, "POST": None}


class TokenDetailApi(APIView):
    required_scopes = {"DELETE": None}  # any token may revoke its user's tokens

    @extend_schema(
        operation_id="tokens_destroy",
        responses={204: None, 404: OpenApiResponse(description="no such token of yours")},
    )
    def delete(self, request: Request, token_key: str) -> Response:
        if not revoke_token(user=_user(request), token_key=token_key):
            raise NotFound
        return Response(status=status.HTTP_204_NO_CONTENT)
