"""Startup checks of the deployment's settings (``manage.py check``, runserver and migrate run
them; so does every ``manage.py`` command a container starts with)."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.checks import Tags, Warning, register

LOCAL_HOSTS = {"localhost", "127.0.0.1", "::1", "[::1]", "testserver"}


def _local(host: str) -> bool:
    return host in LOCAL_HOSTS or host.endswith(".localhost")


@register(Tags.security)
def debug_on_a_public_host(**kwargs: Any) -> list[Warning]:
    """DEBUG shows settings, SQL and data in error pages, and runs with the public development
    key unless SECRET_KEY is set: fine on loopback, never where others can reach it."""
    public = [host for host in settings.ALLOWED_HOSTS if not _local(host)]
    if not settings.DEBUG or not public:
        return []
    return [
        Warning(
            f"DEBUG is on while ALLOWED_HOSTS names {', '.join(public)}: anyone who reaches "
            "those hosts sees debug pages (settings, SQL, data) and sessions are signed with "
            + (
                "the public development key."
                if settings.SECRET_KEY.startswith("django-insecure")
                else "a key that DEBUG pages can reveal."
            ),
            hint="Set SPAVL_PRODUCTION=1 (with SECRET_KEY) to serve anyone but yourself.",
            id="spavl.W001",
        )
    ]


@register(Tags.security, deploy=True)
def https_without_a_trusted_proxy(**kwargs: Any) -> list[Warning]:
    if not getattr(settings, "SECURE_SSL_REDIRECT", False) or settings.TRUSTED_PROXIES:
        return []
    return [
        Warning(
            "SECURE_SSL_REDIRECT is on but SPAVL_TRUSTED_PROXIES is empty: no request is taken "
            "to be HTTPS unless gunicorn terminates TLS itself, so every page redirects.",
            hint="List the TLS proxy's address in SPAVL_TRUSTED_PROXIES.",
            id="spavl.W002",
        )
    ]
