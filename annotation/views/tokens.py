"""The user's own API tokens: make one (its secret shown on this page once), see them, revoke
them. The same services as ``/api/v1/tokens/`` and ``manage.py create_api_token``."""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.http import Http404, HttpResponse, HttpResponseBase
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST

from spavl_web.http import Request
from spavl_web.models import Scope
from spavl_web.tokens import TokenError, allowed_scopes, create_token, revoke_token, user_tokens


class TokenForm(forms.Form):
    name = forms.CharField(max_length=100, help_text="What the token is for.")
    scopes = forms.MultipleChoiceField(choices=Scope.choices, widget=forms.CheckboxSelectMultiple)
    days = forms.IntegerField(min_value=1, initial=30, label="Lifetime in days")


def _render(
    request: Request, form: TokenForm, *, secret: str = "", status: int = 200
) -> HttpResponse:
    usable = allowed_scopes(request.user)
    context = {
        "form": form,
        "tokens": user_tokens(request.user),
        "scopes": [(value, label, value in usable) for value, label in Scope.choices],
        "secret": secret,
    }
    return render(request, "annotation/tokens.html", context, status=status)


@require_GET
def tokens(request: Request) -> HttpResponse:
    return _render(request, TokenForm())


@require_POST
def make_token(request: Request) -> HttpResponse:
    form = TokenForm(request.POST)
    if not form.is_valid():
        return _render(request, form, status=400)
    try:
        token, secret = create_token(user=request.user, **form.cleaned_data)
    except TokenError as error:
        form.add_error(None, str(error))
        return _render(request, form, status=400)
    messages.success(request, f"Token {token.name!r} made: copy its secret now.")
    response = _render(request, TokenForm(), secret=secret)
    response["Cache-Control"] = "no-store"  # the secret must not sit in any cache
    return response


@require_POST
def revoke(request: Request, token_key: str) -> HttpResponseBase:
    if not revoke_token(user=request.user, token_key=token_key):
        raise Http404  # missing and not-yours alike
    messages.success(request, "Token revoked: it no longer works.")
    return redirect("review:tokens")
