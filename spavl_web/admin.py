"""API tokens in the admin: their metadata only (never a usable secret), revoked by deleting.
Tokens are made by their owner (``manage.py create_api_token`` or ``POST /api/v1/tokens/``),
because only then can the secret be shown once to the person who will use it."""

from __future__ import annotations

from django.contrib import admin
from django.http import HttpRequest

from spavl_web.models import ApiToken


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin[ApiToken]):
    list_display = ["name", "user", "token_key", "scope_list", "created", "expiry", "last_used_at"]
    list_filter = ["created", "expiry"]
    search_fields = ["name", "token_key", "user__username"]
    fields = ["name", "user", "token_key", "scopes", "created", "expiry", "last_used_at"]
    readonly_fields = ["name", "user", "token_key", "scopes", "created", "expiry", "last_used_at"]
    actions = ["delete_selected"]

    @admin.display(description="scopes")
    def scope_list(self, token: ApiToken) -> str:
        return ", ".join(token.scopes)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: ApiToken | None = None) -> bool:
        return False
