"""Scoped API tokens: who may make which, how a request proves one, what each allows.

A token never has more than its user: its scopes are checked here, and every view still calls
the same access gate a page does (spavl_web.roles, annotation.access), so a token with the
``export`` scope still answers 404 for an export its user may not see. A session (the browser,
or a script logged in like one) is not limited by scopes, only by the user's roles.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth.models import User
from django.db.models import QuerySet
from django.db.models.functions import Now
from django.utils import timezone
from knox.auth import TokenAuthentication
from rest_framework.permissions import SAFE_METHODS, BasePermission
from rest_framework.request import Request

from annotation.exceptions import DomainError
from spavl_web.models import ApiToken, Scope
from spavl_web.roles import AnyUser, is_admin, is_exporter, is_importer, is_judge_operator

LAST_USED_EVERY = timedelta(minutes=1)  # at most one write per token per minute


class TokenError(DomainError):
    """A token that cannot be made as asked."""


def allowed_scopes(user: AnyUser) -> set[str]:
    """The scopes a user's roles can use: nobody gets a token for what they may not do."""
    if not isinstance(user, User) or not user.is_active:
        return set()
    allowed = {Scope.READ.value, Scope.REVIEW.value}
    if is_exporter(user):
        allowed.add(Scope.EXPORT.value)
    if is_judge_operator(user):
        allowed.add(Scope.JUDGE.value)
    if is_importer(user):
        allowed.add(Scope.IMPORT.value)
    if is_admin(user):
        allowed.add(Scope.ADMIN.value)
    return allowed


def create_token(
    *, user: User, name: str, scopes: Iterable[str], days: int | None = None
) -> tuple[ApiToken, str]:
    """Make a token; returns it and its secret, which is never stored nor shown again."""
    wanted = sorted(set(scopes))
    name = name.strip()
    if not name or len(name) > 100:
        raise TokenError("name the token (1 to 100 characters): what is it for?")
    if not wanted:
        raise TokenError(f"give at least one scope: {', '.join(Scope.values)}")
    unknown = [scope for scope in wanted if scope not in Scope.values]
    if unknown:
        raise TokenError(f"unknown scopes {', '.join(unknown)}: use {', '.join(Scope.values)}")
    beyond = [scope for scope in wanted if scope not in allowed_scopes(user)]
    if beyond:
        raise TokenError(f"{user.get_username()} may not use the scopes {', '.join(beyond)}")
    days = settings.TOKEN_TTL_DAYS if days is None else days
    if not 1 <= days <= settings.TOKEN_MAX_TTL_DAYS:
        raise TokenError(f"a token lives 1 to {settings.TOKEN_MAX_TTL_DAYS} days, not {days}")
    token, secret = ApiToken.objects.create(
        user=user, expiry=timedelta(days=days), name=name, scopes=wanted
    )
    return token, secret


def user_tokens(user: User) -> QuerySet[ApiToken]:
    """The user's tokens that have not expired, newest first."""
    return ApiToken.objects.filter(user=user, expiry__gt=timezone.now())


def revoke_token(*, user: User, token_key: str) -> bool:
    """Delete one of the user's tokens; False when they hold none with that key."""
    deleted, _ = ApiToken.objects.filter(user=user, token_key=token_key).delete()
    return deleted > 0


class ScopedTokenAuthentication(TokenAuthentication):
    """knox's token check (digest compared in constant time, expired tokens refused and
    deleted), noting when each token was last used."""

    def authenticate_credentials(self, token: bytes) -> tuple[User, ApiToken]:
        user, auth_token = super().authenticate_credentials(token)
        last = auth_token.last_used_at
        if last is None or timezone.now() - last > LAST_USED_EVERY:
            ApiToken.objects.filter(digest=auth_token.digest).update(last_used_at=Now())
        return user, auth_token


Needed = str | tuple[str, ...] | None  # one scope, any of several, or any valid token


def required_scope(view: Any, method: str) -> Needed:
    """The scope a view needs for a method: its ``required_scopes`` mapping, else ``read``
    for safe methods and ``admin`` for anything that changes state."""
    declared: dict[str, Needed] = getattr(view, "required_scopes", {})
    if method in declared:
        return declared[method]
    return Scope.READ.value if method in SAFE_METHODS else Scope.ADMIN.value


class TokenHasScope(BasePermission):
    """With a token, the request needs the view's scope (``admin`` covers every scope)."""

    message = "This token lacks the scope this request needs."

    def has_permission(self, request: Request, view: Any) -> bool:
        token = request.auth
        if not isinstance(token, ApiToken):
            return True  # a session: the user's roles decide, in the access gates
        needed = required_scope(view, request.method or "GET")
        accepted = (needed,) if isinstance(needed, str) else needed
        if accepted is None or Scope.ADMIN.value in token.scopes:
            return True
        if any(scope in token.scopes for scope in accepted):
            return True
        wanted = " or ".join(repr(scope) for scope in accepted)
        self.message = f"This token lacks the {wanted} scope (it has {', '.join(token.scopes)})."
        return False
